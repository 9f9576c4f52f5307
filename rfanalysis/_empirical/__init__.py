"""Empirical gradient influence maps and torch model tracing (torch imported on use)."""

from ._fx import from_torch
from ._influence import InfluenceWarning, influence

__all__ = ["InfluenceWarning", "from_torch", "influence"]
