"""Units that both importers keep beside the tensors they follow, and the relations built
from them: numpy only (the ONNX importer runs no torch; the torch importer passes its units
here as numpy arrays).

A unit array holds, for every element of a tensor that depends on the input, which unit of
its graph node the element belongs to (-1 where an element is a constant). Relations read
sets of units (:class:`Read`). The helpers keep the units broadcast where they are (a map's
units repeat along its channels) and compute on the distinct values only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._graph import Node
from .._ops import Add, Layer, Mul
from .._ops.reads import Reads, Relation

#: an additive constant at or below this masks a softmax input (exp(-25) ~ 1e-11)
MASK_BELOW = -25.0


@dataclass
class Graph:
    """The network graph under construction (each importer says how it refuses a layer)."""

    nodes: list[Node] = field(default_factory=lambda: [Node(None, (), "input")])
    grids: list[tuple[int, ...]] = field(default_factory=list)
    input_grid: tuple[int, ...] = ()
    input_channels: int = 1
    channels: list[int] = field(default_factory=list)  # elements per unit of each node

    def grid(self, node: int) -> tuple[int, ...]:
        return self.grids[node - 1] if node else self.input_grid

    def channels_of(self, node: int) -> int:
        return self.channels[node - 1] if node else self.input_channels

    def refusal(self, label: str, layer: Layer, exc: ValueError) -> Exception:
        """The error for ``layer`` (made for ``label``) whose shape rule refuses its input."""
        return ValueError(f"{label} ({layer.label}): {exc}")

    def add(self, layer: Layer, inputs: tuple[int, ...], label: str, channels: int) -> int:
        """Append a node making ``channels`` channels; its grid follows from the layer's shape
        rule."""
        in_grids = tuple(self.grid(j) for j in inputs)
        layer = layer.expand(len(in_grids[0])) if layer.ndim is None else layer
        try:
            grid, _ = layer.resolve(in_grids)
        except ValueError as exc:
            raise self.refusal(label, layer, exc) from None
        assert grid is not None
        self.nodes.append(Node(layer, tuple(inputs), str(len(self.nodes))))
        self.grids.append(tuple(grid))
        self.channels.append(channels)
        return len(self.nodes) - 1


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
    if rows.shape[1] == 1:  # one element per fibre: a plain unique (no row comparison)
        flat, inverse = np.unique(rows[:, 0], return_inverse=True)
        uniq = flat[:, None]
    else:
        uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    ids, sets = row_sets(uniq)
    return expand_np(ids[inverse.ravel()].reshape(small_lead), lead), sets


def set_units(ids: np.ndarray, sets: list[np.ndarray] | None) -> np.ndarray:
    """Where every set holds one unit: the unit each set id names (-1 stays -1). Set ids
    number the distinct sets, not units (``sets`` None: the ids are units already)."""
    if sets is None:
        return ids
    units = np.array([s[0] for s in sets] or [-1], dtype=np.int64)
    small = compact(ids)  # on the distinct ids: a broadcast stays one (a dense copy of a
    # map's units repeated over its channels makes every later rule slow)
    return expand_np(np.where(small >= 0, units[np.maximum(small, 0)], -1), ids.shape)


@dataclass
class Read:
    """What every element of an output reads of one operand: set ids (an array of the
    output's shape, -1: nothing) into ``sets``; ``sets`` None means singletons (the ids are
    units)."""

    value: Any  # the importer's Value: a node and its units
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
        if self.sets is None:  # one unit per element
            return n_units == 1 and bool((compact(self.ids) >= 0).any())
        return any(len(s) == n_units for s in self.as_sets()[1])


def graph_read(graph: Any, value: Any, ids: np.ndarray, sets: list[np.ndarray]) -> Read:
    """What elements read of ``value``: sets of its units by id. A read of the whole map
    (of more than one unit) only modulates: context "local" drops it."""
    read = Read(value, ids, sets)
    n_units = math.prod(graph.grid(value.node))
    read.local = None if read.covers(n_units) and n_units > 1 else "same"
    return read


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


def singletons(n_in: int, set_of: np.ndarray, units: np.ndarray) -> Relation:
    """The relation whose set ``k`` is the one unit ``units[k]`` (built without a list of
    one-element arrays: maps have many units)."""
    return Relation(
        n_in,
        np.asarray(set_of, dtype=np.intp),
        np.arange(len(units) + 1, dtype=np.intp),
        np.asarray(units, dtype=np.intp),
    )


def identity_relation(n: int) -> Relation:
    """Every unit reads itself."""
    return singletons(n, np.arange(n), np.arange(n))


def relation_for(read: Read, unit_index: np.ndarray, n_in: int) -> Relation:
    """The relation of one operand, given each output unit's position (an element index into
    ``read.ids``' flat array)."""
    if read.sets is None:  # one unit per element: the units read are the sets
        flat = at(read.ids, unit_index)
        used, set_of = np.unique(flat, return_inverse=True)
        set_of = set_of.reshape(flat.shape)
        if used.size and used[0] < 0:  # -1: reads nothing
            used, set_of = used[1:], np.where(flat >= 0, set_of - 1, -1)
        return singletons(n_in, set_of, used)
    ids, sets = read.as_sets()
    flat = at(ids, unit_index)
    used = np.unique(flat[flat >= 0])
    remap = np.full(len(sets) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    set_of = np.where(flat >= 0, remap[flat], -1)
    return Relation.from_sets(n_in, set_of, [sets[k] for k in used])


def channels(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """Elements per unit: the product of the non-grid axes but the batch."""
    return max(1, math.prod(n for a, n in enumerate(shape) if a not in axes and a != 0))


def unit_positions(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """One element per output unit (a position along ``axes``, index 0 along the other
    axes): its row-major flat index into a tensor of ``shape``."""
    unit_index = np.zeros(1, dtype=np.int64)
    for a, n in enumerate(shape):  # row-major flat index, axis by axis
        step = np.arange(n) if a in axes else np.zeros(1, dtype=np.int64)
        unit_index = (unit_index[:, None] * n + step[None, :]).ravel()
    return unit_index


def operand_relations(
    graph: Any, reads: list[Read], unit_index: np.ndarray, shape: tuple[int, ...],
    axes: tuple[int, ...],
) -> tuple[list[Relation], list[Relation | None]]:  # fmt: skip
    """The relation of every operand of a ``Reads`` node and its relation in context "local"
    (None: the operand only modulates)."""
    rels: list[Relation] = []
    locs: list[Relation | None] = []
    for r in reads:
        n_in = math.prod(graph.grid(r.value.node))
        rel = relation_for(r, unit_index, n_in)
        rels.append(rel)
        if r.local == "same":
            locs.append(rel)
        elif r.local is None:
            locs.append(None)
        else:
            locs.append(union_relation(r.local, shape, axes, n_in))
    return rels, locs


def structured_merge(
    graph: Any, reads: list[Read], axes: tuple[int, ...], grid: tuple[int, ...],
    merge: str | None, unit_index: np.ndarray, label: str,
) -> tuple[Any, tuple[int, ...]] | None:  # fmt: skip
    """``(Add or Mul, inputs)`` where every operand reads the output's own unit or one
    broadcast unit, else None."""
    if merge is None or len(reads) < 2:
        return None
    gates = []
    for k, r in enumerate(reads):
        if r.sets is not None or isinstance(r.local, Read):
            return None
        # an operand's node must hold its tensor's channels (not a slice of them), and the
        # operands' channels must agree (a product's single channel broadcasts)
        own = channels(tuple(r.value.units.shape), axes)
        if graph.channels_of(r.value.node) != own:
            return None
        if own != channels(tuple(r.ids.shape), axes) and not (merge == "mul" and own == 1):
            return None
        node_grid = graph.grid(r.value.node)
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


def gather_node(graph: Any, node: int, units: np.ndarray, axes: tuple[int, ...], label: str) -> int:
    """A ``Reads`` node whose grid is the tensor of ``units`` (in ``node``) along ``axes``:
    every position of the new grid reads the units of its channels."""
    shape = tuple(units.shape)
    grid = tuple(shape[a] for a in axes) or (1,)
    chans = channels(shape, axes)
    other = tuple(a for a in range(len(shape)) if a not in axes)
    small = compact(units)  # repeated channels read the same units
    small = np.broadcast_to(small, [shape[a] if a in axes else n
                                    for a, n in enumerate(small.shape)])  # fmt: skip
    moved = np.transpose(small, tuple(axes) + other).reshape(math.prod(grid), -1)
    set_ids, sets = row_sets(moved)
    rel = Relation.from_sets(math.prod(graph.grid(node)), set_ids, sets)
    layer = Reads((graph.grid(node),), grid, (rel,), (rel,), "gather", out_channels=chans,
                  name=label)  # fmt: skip
    return int(graph.add(layer, (node,), label, chans))


def relation_node(
    graph: Any, reads: list[Read], shape: tuple[int, ...], axes: tuple[int, ...], what: str,
    label: str, merge: str | None,
) -> int:  # fmt: skip
    """The node of an operation whose elements read ``reads`` and whose units are the
    positions of its output (of ``shape``) along ``axes``: a structured add or gated product
    where ``merge`` allows one (see :func:`structured_merge`), else a ``Reads`` node."""
    grid = tuple(shape[a] for a in axes) or (1,)
    unit_index = unit_positions(shape, axes)  # one element per output unit
    chans = channels(shape, axes)
    structured = structured_merge(graph, reads, axes, grid, merge, unit_index, label)
    if structured is not None:
        layer, inputs = structured
        return int(graph.add(layer, inputs, label, chans))
    rels, locs = operand_relations(graph, reads, unit_index, shape, axes)
    layer = Reads(
        tuple(graph.grid(r.value.node) for r in reads), grid, tuple(rels), tuple(locs), what,
        out_channels=chans, name=label,
    )  # fmt: skip
    return int(graph.add(layer, tuple(r.value.node for r in reads), label, chans))


def norm_relation(units: np.ndarray, ids: np.ndarray, sets: list[np.ndarray], n: int) -> Relation:
    """The relation of a norm whose statistics read ``sets`` (``ids``: each element's set):
    every element stays in its unit (channels are collapsed: a unit whose channels span
    several positions of the tensor, as after a space-to-depth, is still one unit), which
    reads the units of every set its elements' statistics read."""
    present = units >= 0
    keys = np.unique(units[present] * len(sets) + ids[present])  # (unit, set), by unit
    unit_of, set_id = np.divmod(keys, len(sets))
    if np.array_equal(unit_of, np.arange(n)):  # one set per unit (the usual case)
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
    return Relation.from_sets(n, set_of, unique)


def attended_sets(
    kid: np.ndarray, ksets: list[np.ndarray], allowed: np.ndarray, lead: tuple[int, ...]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """What every query reads of keys or values: ``kid`` (..., S) gives each key's set of
    units in ``ksets``, ``allowed`` (..., L, S) which keys a query may attend (a masked pair
    is no route), ``lead`` the output's batch axes. Set ids of shape (*batch, L) and the
    sets."""
    batch = np.broadcast_shapes(kid.shape[:-1], allowed.shape[:-2], lead)
    kid_b = np.broadcast_to(kid, (*batch, kid.shape[-1])).reshape(-1, kid.shape[-1])
    al = np.broadcast_to(allowed, (*batch, *allowed.shape[-2:]))
    al = al.reshape(-1, *allowed.shape[-2:])
    index: dict[bytes, int] = {}
    found: list[np.ndarray] = []
    out_ids = np.empty(al.shape[:2], dtype=np.int64)
    for b in range(al.shape[0]):
        for i in range(al.shape[1]):
            key = kid_b[b].tobytes() + al[b, i].tobytes()
            if key not in index:
                cols = kid_b[b][al[b, i]]
                members = [ksets[c] for c in np.unique(cols[cols >= 0])]
                merged = np.unique(np.concatenate(members)) if members else np.zeros(0)
                index[key] = len(found)
                found.append(merged.astype(np.int64))
            out_ids[b, i] = index[key]
    set_ids, deduped = dedupe_sets(found)
    return set_ids[out_ids].reshape(*batch, al.shape[1]), deduped


def pruned(nodes: list[Node], out: int) -> tuple[list[Node], list[int]]:
    """The nodes the output depends on, the output last, re-indexed; and which old indices
    they were."""
    need = {out}
    for i in range(out, 0, -1):
        if i in need:
            need.update(nodes[i].inputs)
    keep = sorted(need | {0})
    index = {old: new for new, old in enumerate(keep)}
    nodes_kept = [
        Node(nodes[old].layer, tuple(index[j] for j in nodes[old].inputs), str(index[old]))
        if old
        else nodes[0]
        for old in keep
    ]
    return nodes_kept, keep
