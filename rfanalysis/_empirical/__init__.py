"""Empirical gradient influence maps, shift invariance and torch model tracing (torch imported
on use)."""

from ._fx import from_torch
<<<<<<< HEAD
from ._influence import influence
from ._shift import ShiftInvariance, shift_invariance

__all__ = ["ShiftInvariance", "from_torch", "influence", "shift_invariance"]
=======
from ._influence import InfluenceWarning, influence

__all__ = ["InfluenceWarning", "from_torch", "influence"]
>>>>>>> ux-fixes
