"""Units of tensors and the graph they build, on numpy (the ONNX importer runs no torch).

Beside every tensor that depends on the input the importer keeps a :class:`Value`: the graph
node whose units the tensor's elements belong to, and for every element which unit (an int64
array of the tensor's shape; -1 where an element is a constant). Layout operators run on the
units themselves; structured layers bring their input to a grid first (a
:class:`~rfanalysis._ops.reads.Reads` node where elements moved); relations (products,
reductions, softmax, norms) read sets of units. This is the scheme of the torch importer,
written for numpy arrays.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import numpy as np

from ..._graph import Node
from ..._ops import Add, Layer, Mul
from ..._ops.reads import Reads, Relation
from ..errors import ConversionError

#: an additive constant at or below this masks a softmax input (exp(-25) ~ 1e-11)
MASK_BELOW = -25.0

_ORIGINS = count()


@dataclass(eq=False)
class Value:
    """A tensor that depends on the input: its elements' units in ``node``."""

    node: int
    units: np.ndarray  # int64, the tensor's shape (often a broadcast view); -1: a constant
    gate: bool = False  # made by a gating non-linearity (sigmoid family)
    neg: np.ndarray | None = None  # elements pushed to -inf by an additive constant mask
    # the tensor this one is a pointwise function or a layout of: operands of one origin
    # are one tensor (x * sigmoid(x)); a layer's output is a tensor of its own, even where
    # it keeps the units (a convolution of a single-unit map)
    origin: int = field(default_factory=lambda: next(_ORIGINS))
    # attention written out (as every export writes it): scores ``q @ k^T`` remember their
    # factors ``(q, k^T)``; their softmax remembers ``(q, k^T, allowed)`` for the product
    # with the values, which then reads as attention does (DESIGN section 9)
    scores: Any = None
    attn: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.units.shape)


@dataclass(eq=False)
class Opaque:
    """A tensor computed from the input that carries no gradient (a comparison, an index):
    a constant whose values are unknown."""

    shape: tuple[int, ...]
    dtype: Any


@dataclass
class Graph:
    """The network graph under construction."""

    nodes: list[Node] = field(default_factory=lambda: [Node(None, (), "input")])
    grids: list[tuple[int, ...]] = field(default_factory=list)
    input_grid: tuple[int, ...] = ()
    input_channels: int = 1
    channels: list[int] = field(default_factory=list)  # elements per unit of each node

    def grid(self, node: int) -> tuple[int, ...]:
        return self.grids[node - 1] if node else self.input_grid

    def channels_of(self, node: int) -> int:
        return self.channels[node - 1] if node else self.input_channels

    def add(self, layer: Layer, inputs: tuple[int, ...], label: str, channels: int) -> int:
        in_grids = tuple(self.grid(j) for j in inputs)
        layer = layer.expand(len(in_grids[0])) if layer.ndim is None else layer
        try:
            grid, _ = layer.resolve(in_grids)
        except ValueError as exc:
            raise ConversionError(f"from_onnx: node {label!r} ({layer.label}): {exc}") from None
        assert grid is not None
        self.nodes.append(Node(layer, tuple(inputs), str(len(self.nodes))))
        self.grids.append(tuple(grid))
        self.channels.append(channels)
        return len(self.nodes) - 1


def canonical_units(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Units of a tensor whose positions along ``axes`` are a grid's units (row-major) and
    whose other axes are channels."""
    grid = tuple(shape[a] for a in axes)
    view = [1] * len(shape)
    for a, n in zip(axes, grid):
        view[a] = n
    ids = np.arange(math.prod(grid), dtype=np.int64).reshape(grid)
    return np.broadcast_to(ids.reshape(view), shape)


def compact(x: np.ndarray) -> np.ndarray:
    """``x`` with every axis it is broadcast along (stride 0) cut to length 1."""
    if all(st or n <= 1 for st, n in zip(x.strides, x.shape)):
        return x
    return x[tuple(slice(0, 1) if st == 0 else slice(None) for st in x.strides)]


def expand_np(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return arr if arr.shape == shape else np.broadcast_to(arr, shape)


def is_canonical(units: np.ndarray, axes: tuple[int, ...]) -> bool:
    """Whether ``units`` equal :func:`canonical_units` of their shape along ``axes``."""
    small = compact(units)
    shape = tuple(units.shape)
    if any(small.shape[a] != 1 for a in range(len(shape)) if a not in axes):
        return bool(np.array_equal(units, canonical_units(shape, axes)))
    if any(small.shape[a] != shape[a] for a in axes):
        return False
    return bool(np.array_equal(small, canonical_units(tuple(small.shape), axes)))


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
    """The set of units of every row of ``rows`` (2-D; -1: none): ids (identical sets share
    one, in order of first appearance; empty sets -1) and the sets."""
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
    ``units.shape`` without ``axes``, and the sets (sorted unique units, no -1)."""
    keep = [a for a in range(units.ndim) if a not in axes]
    lead = tuple(units.shape[a] for a in keep)
    small = compact(units)
    moved = np.transpose(small, keep + list(axes))
    small_lead = moved.shape[: len(keep)]
    rows = moved.reshape(math.prod(small_lead) if small_lead else 1, -1)
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    ids, sets = row_sets(uniq)
    return expand_np(ids[inverse.ravel()].reshape(small_lead), lead), sets


def set_units(ids: np.ndarray, sets: list[np.ndarray] | None) -> np.ndarray:
    """Where every set holds one unit: the unit each set id names (-1 stays -1)."""
    if sets is None:
        return ids
    units = np.array([s[0] for s in sets] or [-1], dtype=np.int64)
    return np.where(ids >= 0, units[np.maximum(ids, 0)], -1)


def channels(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """Elements per unit: the product of the non-grid axes but the batch."""
    return max(1, math.prod(n for a, n in enumerate(shape) if a not in axes and a != 0))


@dataclass
class Read:
    """What every element of an output reads of one operand: set ids (an array of the
    output's shape, -1: nothing) into ``sets``; ``sets`` None: singletons (ids are units)."""

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
        return any(len(s) == n_units for s in self.as_sets()[1])


def union_relation(read: Read, shape: tuple[int, ...], axes: tuple[int, ...], n_in: int):
    """Every output unit (a position along ``axes``) reads every unit its elements read."""
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


def relation_for(read: Read, unit_index: np.ndarray, n_in: int) -> Relation:
    """The relation of one operand, given each output unit's element (a flat index)."""
    ids, sets = read.as_sets()
    flat = at(ids, unit_index)
    used = np.unique(flat[flat >= 0])
    remap = np.full(len(sets) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    set_of = np.where(flat >= 0, remap[flat], -1)
    return Relation.from_sets(n_in, set_of, [sets[k] for k in used])


def identity_relation(n: int) -> Relation:
    return Relation.from_sets(n, np.arange(n), [np.asarray([u]) for u in range(n)])


class Converter:
    """Makes graph nodes from values: brings a value to a grid, applies structured layers,
    and turns what elements read into merges or relations."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def grid(self, node: int) -> tuple[int, ...]:
        return self.graph.grid(node)

    def canonical(self, value: Value, axes: tuple[int, ...], label: str) -> int:
        """A node whose grid is ``value``'s tensor along ``axes``: ``value.node`` where the
        elements are its units in order, else a ``Reads`` node that gathers them."""
        shape = value.shape
        grid = tuple(shape[a] for a in axes) or (1,)
        node = value.node
        chans = channels(shape, axes)
        if self.grid(node) == grid and is_canonical(value.units, axes):
            if self.graph.channels_of(node) == chans:
                return node
            rel = identity_relation(math.prod(grid))
            layer = Reads((grid,), grid, (rel,), (rel,), "channels", out_channels=chans,
                          name=label)  # fmt: skip
            return self.graph.add(layer, (node,), label, chans)
        other = tuple(a for a in range(len(shape)) if a not in axes)
        small = compact(value.units)
        small = np.broadcast_to(small, [shape[a] if a in axes else n
                                        for a, n in enumerate(small.shape)])  # fmt: skip
        moved = np.transpose(small, tuple(axes) + other).reshape(math.prod(grid), -1)
        set_ids, sets = row_sets(moved)
        rel = Relation.from_sets(math.prod(self.grid(node)), set_ids, sets)
        layer = Reads((self.grid(node),), grid, (rel,), (rel,), "gather", out_channels=chans,
                      name=label)  # fmt: skip
        return self.graph.add(layer, (node,), label, chans)

    def structured(
        self,
        value: Value,
        layers: list[Layer],
        out_shape: tuple[int, ...],
        label: str,
        axes: tuple[int, ...] | None = None,
    ) -> Value:
        """Structured layers applied to ``value`` on its grid ``axes`` (default ``2..``)."""
        if axes is None:
            axes = tuple(range(2, value.units.ndim))
        if math.prod(self.grid(value.node)) == 1:
            present = np.unique(compact(value.units))
            present = present[present >= 0]
            if present.size == 1:
                # every element is one unit: whatever the layer mixes, its output is it
                return Value(value.node, np.broadcast_to(present[:1], out_shape))
        node = self.canonical(value, axes, label)
        chans = self.graph.channels_of(node)
        for k, layer in enumerate(layers):
            if k == len(layers) - 1:
                chans = channels(out_shape, axes)
            elif getattr(layer, "out_channels", None):
                chans = layer.out_channels  # type: ignore[attr-defined]
            node = self.graph.add(layer, (node,), label, chans)
        grid = tuple(out_shape[a] for a in axes) or (1,)
        if self.grid(node) != grid:
            got = "x".join(map(str, self.grid(node)))
            raise ConversionError(
                f"from_onnx: node {label!r} maps to "
                f"{','.join(x.spec() for x in layers)} with output {got}, but the model "
                f"gives {'x'.join(map(str, grid))}"
            )
        return Value(node, canonical_units(out_shape, axes))

    def read(self, value: Value, ids: np.ndarray, sets: list[np.ndarray]) -> Read:
        """What elements read of ``value``; a read of the whole map only modulates."""
        read = Read(value, ids, sets)
        n_units = math.prod(self.grid(value.node))
        read.local = None if read.covers(n_units) and n_units > 1 else "same"
        return read

    def relate(
        self,
        reads: list[Read],
        shape: tuple[int, ...],
        what: str,
        label: str,
        merge: str | None = None,
        force: tuple[int, ...] = (),
    ) -> Value:
        """The output of an operation whose elements read sets of units of the operands
        (see the torch importer's ``Converter.relate``)."""
        arrays = [r.ids for r in reads]
        axes = tuple(sorted(set(varying_axes(arrays)) | set(force))) if arrays else force
        if len(reads) == 1 and reads[0].sets is None and reads[0].local == "same" and not force:
            r = reads[0]
            return Value(r.value.node, r.ids)
        grid = tuple(shape[a] for a in axes) or (1,)
        unit_index = np.zeros(1, dtype=np.int64)
        for a, n in enumerate(shape):
            step = np.arange(n) if a in axes else np.zeros(1, dtype=np.int64)
            unit_index = (unit_index[:, None] * n + step[None, :]).ravel()
        structured = self._structured_merge(reads, axes, grid, merge, unit_index, label)
        if structured is not None:
            layer, inputs = structured
            node = self.graph.add(layer, inputs, label, channels(shape, axes))
        else:
            rels: list[Relation] = []
            locs: list[Relation | None] = []
            for r in reads:
                n_in = math.prod(self.grid(r.value.node))
                rel = relation_for(r, unit_index, n_in)
                rels.append(rel)
                if r.local == "same":
                    locs.append(rel)
                elif r.local is None:
                    locs.append(None)
                else:
                    locs.append(union_relation(r.local, shape, axes, n_in))
            layer = Reads(
                tuple(self.grid(r.value.node) for r in reads), grid, tuple(rels), tuple(locs),
                what, out_channels=channels(shape, axes), name=label,
            )  # fmt: skip
            node = self.graph.add(
                layer, tuple(r.value.node for r in reads), label, channels(shape, axes)
            )
        units = canonical_units(shape, axes) if axes else np.zeros(shape, dtype=np.int64)
        return Value(node, units)

    def _structured_merge(self, reads, axes, grid, merge, unit_index, label):
        if merge is None or len(reads) < 2:
            return None
        gates = []
        for k, r in enumerate(reads):
            if r.sets is not None or isinstance(r.local, Read):
                return None
            own = channels(r.value.shape, axes)
            if self.graph.channels_of(r.value.node) != own:
                return None
            if own != channels(tuple(r.ids.shape), axes) and not (merge == "mul" and own == 1):
                return None
            node_grid = self.grid(r.value.node)
            picked = at(r.ids, unit_index)
            if node_grid == grid and np.array_equal(picked, np.arange(picked.size)):
                if r.local is None:
                    gates.append(k)
                continue
            if math.prod(node_grid) == 1 and len(node_grid) <= len(grid) and (picked == 0).all():
                gates.append(k)
                continue
            return None
        inputs = tuple(r.value.node for r in reads)
        if merge == "add":
            return Add(name=label), inputs
        return Mul(gates=tuple(gates) if gates else None, name=label), inputs

    def norm_over(self, value: Value, dims: tuple[int, ...], label: str) -> Value:
        """A normalisation whose statistics span ``dims``: every unit reads the units its
        statistics read (locally itself); over channels only, the identity of space."""
        units = value.units
        ids, sets = fiber_sets(units, dims)
        ids = np.broadcast_to(np.expand_dims(ids, dims), units.shape)
        if all(len(s) == 1 for s in sets):
            return Value(value.node, value.units)
        graph = self.graph
        grid = graph.grid(value.node)
        n = math.prod(grid)
        present = units >= 0
        keys = np.unique(units[present] * len(sets) + ids[present])
        unit_of, set_id = np.divmod(keys, len(sets))
        if np.array_equal(unit_of, np.arange(n)):
            set_of, unique = set_id, sets
        else:
            bounds = np.searchsorted(unit_of, np.arange(n + 1))
            rows = [
                np.unique(np.concatenate([sets[k] for k in set_id[lo:hi]]))
                if hi > lo
                else np.zeros(0, np.int64)
                for lo, hi in itertools.pairwise(bounds)
            ]
            set_of, unique = dedupe_sets(rows)
        rel = Relation.from_sets(n, set_of, unique)
        chans = graph.channels_of(value.node)
        layer = Reads((grid,), grid, (rel,), (identity_relation(n),), "norm",
                      out_channels=chans, name=label)  # fmt: skip
        node = graph.add(layer, (value.node,), label, chans)
        return Value(node, value.units)
