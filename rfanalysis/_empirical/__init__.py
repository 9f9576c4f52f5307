"""Empirical gradient influence maps and shift invariance (torch imported on use)."""

from ._influence import InfluenceWarning, influence
from ._shift import ShiftInvariance, shift_invariance

__all__ = ["InfluenceWarning", "ShiftInvariance", "influence", "shift_invariance"]
