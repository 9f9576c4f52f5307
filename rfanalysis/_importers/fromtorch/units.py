"""Units: what the importer keeps beside every traced tensor that depends on the input.

A :class:`Value` is the graph node whose units a tensor's elements belong to, and for every
element which unit (``units``, an array of the tensor's shape; -1 where an element is a
constant). Layout operations run on the units themselves; structured layers and relations
read sets of them (:class:`Read`). The helpers here keep the units broadcast where they are
(a map's units repeat along its channels) and compute on the distinct values only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._graph import Node
from ..._ops import Layer
from ..._ops.reads import Relation

#: an additive constant at or below this masks a softmax input (exp(-25) ~ 1e-11)
MASK_BELOW = -25.0


class Unmapped(ValueError):
    """No rule for an operation (the caller turns it into the one-line error)."""


class NeedsValues(Exception):
    """The shape run (meta tensors) reached an operation whose conversion reads the values of
    tensors computed from the input; the model is then converted running for real."""


class ReportedError(Exception):
    """A user-facing error raised while the interpreter runs (fx decorates exceptions that
    pass through it; ``text`` keeps the one line)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


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
class Graph:
    """The network graph under construction."""

    nodes: list[Node] = field(default_factory=lambda: [Node(None, (), "input")])
    grids: list[tuple[int, ...]] = field(default_factory=list)
    labels: list[str] = field(default_factory=lambda: ["input"])  # fx node behind each node

    input_grid: tuple[int, ...] = ()
    input_channels: int = 1
    channels: list[int] = field(default_factory=list)  # elements per unit of each node

    def grid(self, node: int) -> tuple[int, ...]:
        return self.grids[node - 1] if node else self.input_grid

    def channels_of(self, node: int) -> int:
        return self.channels[node - 1] if node else self.input_channels

    def add(self, layer: Layer, inputs: tuple[int, ...], label: str, channels: int) -> int:
        """Append a node making ``channels`` channels; its grid follows from the layer's shape
        rule."""
        in_grids = tuple(self.grid(j) for j in inputs)
        layer = layer.expand(len(in_grids[0])) if layer.ndim is None else layer
        try:
            grid, _ = layer.resolve(in_grids)
        except ValueError as exc:
            raise ValueError(f"from_torch: {label} ({layer.label}): {exc}") from None
        assert grid is not None
        self.nodes.append(Node(layer, tuple(inputs), str(len(self.nodes))))
        self.grids.append(tuple(grid))
        self.channels.append(channels)
        self.labels.append(label)
        return len(self.nodes) - 1


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


# Units are mostly broadcast: a map's units repeat along its channel axes. These helpers
# keep them so (a view with stride 0) and compute on the distinct values only; results are
# those of the full arrays.
def compact(x: Any) -> Any:
    """``x`` (a numpy array or torch tensor) with every axis it is broadcast along (stride 0)
    cut to length 1: broadcasting the result gives ``x`` back."""
    strides = x.strides if isinstance(x, np.ndarray) else x.stride()
    if all(st or n <= 1 for st, n in zip(strides, x.shape)):
        return x
    return x[tuple(slice(0, 1) if st == 0 else slice(None) for st in strides)]


def expand_np(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return arr if arr.shape == shape else np.broadcast_to(arr, shape)


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


def at(arr: np.ndarray, flat_index: np.ndarray) -> np.ndarray:
    """``arr.ravel()[flat_index]`` without copying a broadcast ``arr``."""
    if arr.ndim == 0:
        return arr.reshape(1)[flat_index]
    return arr[np.unravel_index(flat_index, arr.shape)]


def varying_axes(arrays: list[np.ndarray]) -> tuple[int, ...]:
    """Axes along which any of the arrays (one shape) changes."""
    ndim = arrays[0].ndim
    small = [compact(arr) for arr in arrays]
    out = []
    for a in range(ndim):
        for arr in small:
            if arr.shape[a] > 1 and (arr != np.take(arr, [0], axis=a)).any():
                out.append(a)
                break
    return tuple(out)


def dedupe_sets(rows: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Set ids for a list of unit sets, identical sets sharing one id (empty sets: -1)."""
    index: dict[bytes, int] = {}
    sets: list[np.ndarray] = []
    ids = np.empty(len(rows), dtype=np.int64)
    for k, row in enumerate(rows):
        if row.size == 0:
            ids[k] = -1
            continue
        key = row.tobytes()
        if key not in index:
            index[key] = len(sets)
            sets.append(row)
        ids[k] = index[key]
    return ids, sets


def row_sets(rows: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The set of units of every row of ``rows`` (2-D; -1: none), as
    ``dedupe_sets([np.unique(r[r >= 0]) for r in rows])`` gives them: identical sets share
    one id, numbered in order of first appearance; empty sets have id -1."""
    ids = np.full(rows.shape[0], -1, dtype=np.int64)
    if rows.size == 0:
        return ids, []
    s = np.sort(rows, axis=1)
    keep = s >= 0
    keep[:, 1:] &= s[:, 1:] != s[:, :-1]
    sizes = keep.sum(axis=1)
    full = np.flatnonzero(sizes)
    if full.size == 0:
        return ids, []
    # each set written as its sorted units, then a filler: equal sets give equal rows
    filler = np.iinfo(np.int64).max
    canon = np.sort(np.where(keep[full], s[full], filler), axis=1)[:, : int(sizes.max())]
    uniq, first, inverse = np.unique(canon, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    ids[full] = rank[inverse.ravel()]
    counts = (uniq != filler).sum(axis=1)
    return ids, [uniq[k, : counts[k]].astype(np.int64) for k in order]


def fiber_sets(units: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sets of units read along ``axes`` (a reduction's fibres): set ids of shape
    ``units.shape`` with ``axes`` removed, and the sets (sorted unique units, no -1)."""
    keep = [a for a in range(units.ndim) if a not in axes]
    lead = tuple(units.shape[a] for a in keep)
    small = compact(units)  # repeats change neither the sets nor the order of the rows
    moved = np.transpose(small, keep + list(axes))
    small_lead = moved.shape[: len(keep)]
    rows = moved.reshape(math.prod(small_lead) if small_lead else 1, -1)
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    ids, sets = row_sets(uniq)
    return expand_np(ids[inverse.ravel()].reshape(small_lead), lead), sets


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (empty if it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text else ""


def set_units(ids: np.ndarray, sets: list[np.ndarray] | None) -> np.ndarray:
    """Where every set holds one unit: the unit each set id names (-1 stays -1). Set ids
    number the distinct sets, not units (``sets`` None: the ids are units already)."""
    if sets is None:
        return ids
    units = np.array([s[0] for s in sets] or [-1], dtype=np.int64)
    return np.where(ids >= 0, units[np.maximum(ids, 0)], -1)


@dataclass
class Read:
    """What every element of an output reads of one operand: set ids (an array of the
    output's shape, -1: nothing) into ``sets``; ``sets`` None means singletons (the ids are
    units)."""

    value: Value
    ids: np.ndarray
    sets: list[np.ndarray] | None = None
    local: Any = "same"  # "same", None (only modulates), or a Read

    def as_sets(self) -> tuple[np.ndarray, list[np.ndarray]]:
        if self.sets is not None:
            return self.ids, self.sets
        small = compact(self.ids)
        uniq, inverse = np.unique(small, return_inverse=True)
        inverse = inverse.reshape(small.shape)
        sets = [np.asarray([u]) for u in uniq if u >= 0]
        offset = 1 if uniq.size and uniq[0] < 0 else 0
        return expand_np(np.where(small >= 0, inverse - offset, -1), self.ids.shape), sets

    def covers(self, n_units: int) -> bool:
        """Whether some element reads every unit of the operand's node."""
        return any(len(s) == n_units for s in self.as_sets()[1])


def union_relation(
    read: Read, shape: tuple[int, ...], axes: tuple[int, ...], n_in: int
) -> Relation:
    """The relation in which every output unit (a position along ``axes``) reads every unit
    its elements read (``read`` of singletons: one unit per element)."""
    grid = tuple(shape[a] for a in axes) or (1,)
    view = [shape[a] if a in axes else 1 for a in range(len(shape))]
    position = np.broadcast_to(np.arange(math.prod(grid)).reshape(view), shape).ravel()
    ids = np.broadcast_to(read.ids, shape).ravel()
    ok = ids >= 0
    pairs = np.unique(np.stack([position[ok], ids[ok]]), axis=1)
    n_out = math.prod(grid)
    bounds = np.searchsorted(pairs[0], np.arange(n_out + 1))
    rows = [pairs[1, bounds[v] : bounds[v + 1]] for v in range(n_out)]
    set_ids, sets = dedupe_sets(rows)
    return Relation.from_sets(n_in, set_ids, sets)


def relation_for(read: Read, unit_index: np.ndarray, n_out: int, n_in: int) -> Relation:
    """The relation of one operand, given each output unit's position (an element index into
    ``read.ids``' flat array)."""
    ids, sets = read.as_sets()
    flat = at(ids, unit_index)
    used = np.unique(flat[flat >= 0])
    remap = np.full(len(sets) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    set_of = np.where(flat >= 0, remap[flat], -1)
    return Relation.from_sets(n_in, set_of, [sets[k] for k in used])


# --------------------------------------------------------------------------- converter
