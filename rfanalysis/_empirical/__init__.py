"""Empirical gradient influence maps and torch model tracing (torch imported on use)."""

from ._fx import from_torch
from ._influence import influence

__all__ = ["from_torch", "influence"]
