"""Units: what the importer keeps beside every traced tensor that depends on the input.

A :class:`Value` is the graph node whose units a tensor's elements belong to, and for every
element which unit (``units``, an array of the tensor's shape; -1 where an element is a
constant). Layout operations run on the units themselves; structured layers and relations
read sets of them (:class:`~rfanalysis._importers.units.Read`). The numpy helpers both
importers share are in :mod:`rfanalysis._importers.units`; here are those on torch tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._ops import Layer
from ..units import Graph as BaseGraph
from ..units import compact, expand_np


class Unmapped(ValueError):
    """No rule for an operation (the caller turns it into the one-line error)."""


class NeedsValues(Exception):
    """The shape run (meta tensors) reached an operation whose conversion reads the values of
    tensors computed from the input; the model is then converted running for real."""


#: what a rule returns for "no rule here" where None means "a constant"
NONE = object()


# --------------------------------------------------------------------------- values
@dataclass(eq=False)
class Value:
    """A traced tensor that depends on the input: its elements' units in ``node``."""

    node: int
    units: Any  # torch float64 tensor of the tensor's shape; -1: a constant element
    gate: bool = False  # made by a gating non-linearity (sigmoid family)
    neg: Any = None  # bool tensor: elements pushed to -inf by an additive constant mask

    def np(self) -> np.ndarray:
        """The units as int64 (read-only: a broadcast of the distinct values)."""
        return expand_np(compact(self.units).detach().cpu().numpy().astype(np.int64),
                         tuple(self.units.shape))  # fmt: skip


@dataclass
class Graph(BaseGraph):
    """The network graph under construction."""

    labels: list[str] = field(default_factory=lambda: ["input"])  # fx node behind each node

    def refusal(self, label: str, layer: Layer, exc: ValueError) -> Exception:
        return ValueError(f"from_torch: {label} ({layer.label}): {exc}")

    def add(self, layer: Layer, inputs: tuple[int, ...], label: str, channels: int) -> int:
        node = super().add(layer, inputs, label, channels)
        self.labels.append(label)
        return node


def canonical_units(torch: Any, shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """Units of a tensor of ``shape`` whose positions along ``axes`` are a grid's units
    (row-major) and whose other axes are channels."""
    grid = tuple(shape[a] for a in axes)
    view = [1] * len(shape)
    for a, n in zip(axes, grid):
        view[a] = n
    ids = torch.arange(math.prod(grid), dtype=torch.float64).reshape(grid)
    # arrange the grid axes in tensor order, then broadcast over the channel axes
    return ids.reshape(view).expand(shape)


def as_units(torch: Any, arr: np.ndarray) -> Any:
    """A units array as the float64 tensor layout operations run on (broadcast where ``arr``
    is)."""
    small = compact(arr)
    units = torch.from_numpy(np.ascontiguousarray(small, dtype=np.float64))
    return units.expand(arr.shape) if small.shape != arr.shape else units


def shifted_units(torch: Any, units: Any, by: float) -> Any:
    """``units + by``, broadcast where ``units`` is."""
    small = compact(units)
    out = small + by
    return out.expand(units.shape) if small.shape != units.shape else out


def is_canonical(torch: Any, units: Any, axes: tuple[int, ...]) -> bool:
    """Whether ``units`` equal :func:`canonical_units` of their shape along ``axes``."""
    small = compact(units)
    shape = tuple(units.shape)
    if any(small.shape[a] != 1 for a in range(len(shape)) if a not in axes):
        want = canonical_units(torch, shape, axes)
        return bool(torch.equal(units, want.to(units.dtype)))
    if any(small.shape[a] != shape[a] for a in axes):
        return False  # one value along an axis of the grid with several units
    want = canonical_units(torch, tuple(small.shape), axes)
    return bool(torch.equal(small, want.to(units.dtype)))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (empty if it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text else ""
