"""Empirical gradient influence maps, shift invariance and torch model tracing (torch
imported on use)."""

from ._fx import from_torch
from ._influence import InfluenceWarning, influence
from ._shift import ShiftInvariance, shift_invariance

__all__ = ["InfluenceWarning", "ShiftInvariance", "from_torch", "influence", "shift_invariance"]
