"""Turn a traced torch model into a network graph, operation by operation.

The model is run once, through ``torch.fx``'s interpreter, on a random input of batch 1.
Beside every tensor that depends on the input, the converter keeps a :class:`Value`: the
graph node whose units the tensor's elements belong to, and for every element which unit
(``units``, an array of the tensor's shape; -1 where an element is a constant). Operations
then fall into three kinds:

* **layout** (permute, view, reshape, flatten, transpose, slicing, chunk, pad, roll, repeat,
  expand, pixel shuffle, channel shuffle, concatenation along a non-channel axis, ...): the
  same operation applied to ``units`` says where every element went; no node is made;
* **structured layers** (convolutions, pools, interpolation, dense layers, global pooling,
  norms over space): the input is first brought to the layer's grid (its spatial axes; a
  :class:`~rfanalysis._ops.reads.Reads` node where elements moved), then the layer is a node;
* **relations** (pointwise products and sums of several tensors, reductions, softmax,
  normalisations, matrix products, attention): each output element reads sets of units of
  each operand; the output's units are the positions along the axes where what they read
  varies, and the relation becomes a structured merge where it is one (an add, a gated
  product) and a ``Reads`` node otherwise. An operation of one operand whose every element
  reads a single unit (a norm over channels, a per-token linear layer) is an identity of
  units and makes no node.

Context "local" is decided where the relation is made: the gate side of a product, the
statistics of a norm over space and reads that span every unit of an operand (global
attention, token mixing, global means) only modulate.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._graph import Node
from .._ops import (
    AdaptivePool,
    Add,
    Cat,
    Conv,
    ConvTranspose,
    Dense,
    GlobalPool,
    Interpolate,
    Layer,
    Mul,
    Pool,
    SpatialNorm,
    Upsample,
)
from .._ops.reads import Reads, Relation

#: an additive constant at or below this masks a softmax input (exp(-25) ~ 1e-11)
MASK_BELOW = -25.0


class Unmapped(ValueError):
    """No rule for an operation (the caller turns it into the one-line error)."""


class NeedsValues(Exception):
    """The shape run (meta tensors) reached an operation whose conversion reads the values of
    tensors computed from the input; the model is then converted running for real."""


class ConversionError(Exception):
    """A user-facing error raised while the interpreter runs (fx decorates exceptions that
    pass through it; ``text`` keeps the one line)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


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


def _dedupe_sets(rows: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
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
    ``_dedupe_sets([np.unique(r[r >= 0]) for r in rows])`` gives them: identical sets share
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
    set_ids, sets = _dedupe_sets(rows)
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
def _is_tensor(torch: Any, x: Any) -> bool:
    return isinstance(x, torch.Tensor)


class Converter:
    """Builds the graph while an fx interpreter runs the model (see the module docstring).

    ``rules`` (a :class:`Rules`) maps modules and functions to what they do; ``graph`` is
    shared with nested converters of submodules traced on their own.
    """

    def __init__(self, torch: Any, rules: Any, graph: Graph, name: str) -> None:
        self.torch = torch
        self.rules = rules
        self.graph = graph
        self.name = name

    # -- node factories -------------------------------------------------------------------
    def canonical(self, value: Value, axes: tuple[int, ...], label: str) -> int:
        """A node whose grid is ``value``'s tensor along ``axes`` (the other axes being
        channels): ``value.node`` itself where the elements are its units in order, else a
        new ``Reads`` node that gathers them."""
        torch = self.torch
        shape = tuple(value.units.shape)
        grid = tuple(shape[a] for a in axes) or (1,)
        node = value.node
        channels = _channels(shape, axes)
        if self.grid(node) == grid:
            if is_canonical(torch, value.units, axes):
                if self.graph.channels_of(node) == channels:
                    return node
                # the same units with other channels (a chunk or split of the channels)
                n = math.prod(grid)
                rel = Relation.from_sets(n, np.arange(n), [np.asarray([u]) for u in range(n)])
                layer = Reads((grid,), grid, (rel,), (rel,), "channels", out_channels=channels,
                              name=label)  # fmt: skip
                return self.graph.add(layer, (node,), label, channels)
        # every position of the new grid reads the units of its channels
        other = tuple(a for a in range(len(shape)) if a not in axes)
        small = compact(value.np())  # repeated channels read the same units
        small = np.broadcast_to(small, [shape[a] if a in axes else n
                                        for a, n in enumerate(small.shape)])  # fmt: skip
        moved = np.transpose(small, tuple(axes) + other).reshape(math.prod(grid), -1)
        set_ids, sets = row_sets(moved)
        rel = Relation.from_sets(math.prod(self.grid(node)), set_ids, sets)
        layer = Reads((self.grid(node),), grid, (rel,), (rel,), "gather", out_channels=channels,
                      name=label)  # fmt: skip
        return self.graph.add(layer, (node,), label, channels)

    def grid(self, node: int) -> tuple[int, ...]:
        return self.graph.grid(node)

    def structured(
        self, value: Value, layers: list[Layer], real: Any, label: str, axes: Any = None
    ) -> Value:
        """Structured layers applied to ``value`` on its spatial axes (default ``2..``); the
        result's units are the last layer's grid."""
        if axes is None:
            axes = tuple(range(2, value.units.ndim))
        present = np.zeros(0, dtype=np.int64)
        if math.prod(self.grid(value.node)) == 1:
            present = np.unique(compact(value.np()))
            present = present[present >= 0]
        if present.size == 1:
            # every element is one unit (a pooled gate's channels laid out as positions, as
            # ECA's 1-D convolution over channels does): whatever the layer mixes, its
            # output is that unit
            return Value(value.node, self.torch.full(tuple(real.shape), float(present[0]),
                                                     dtype=self.torch.float64))  # fmt: skip
        node = self.canonical(value, axes, label)
        channels = self.graph.channels_of(node)
        for k, layer in enumerate(layers):
            if k == len(layers) - 1:
                channels = _channels(tuple(real.shape), axes)
            elif getattr(layer, "out_channels", None):
                channels = layer.out_channels  # type: ignore[attr-defined]
            node = self.graph.add(layer, (node,), label, channels)
        grid = tuple(real.shape[a] for a in axes) or (1,)
        if self.grid(node) != grid:
            got = "x".join(map(str, self.grid(node)))
            raise ValueError(
                f"from_torch: {label!r} maps to {','.join(x.spec() for x in layers) or 'nothing'} "
                f"with output {got}, but the model gives {'x'.join(map(str, grid))}; map it with "
                "overrides= to layers that give the model's shape"
            )
        return Value(node, canonical_units(self.torch, tuple(real.shape), axes))

    def read(self, value: Value, ids: np.ndarray, sets: list[np.ndarray]) -> Read:
        """What elements read of ``value``: sets of its units by id. A read of the whole map
        (of more than one unit) only modulates: context "local" drops it."""
        read = Read(value, ids, sets)
        n_units = math.prod(self.grid(value.node))
        read.local = None if read.covers(n_units) and n_units > 1 else "same"
        return read

    def relate(
        self,
        reads: list[Read],
        real: Any,
        what: str,
        label: str,
        merge: str | None = None,
        force: tuple[int, ...] = (),
    ) -> Value:
        """The output of an operation whose elements read sets of units of the operands.

        The output's units are its positions along the axes where what the elements read
        varies (and the ``force`` axes); a single operand read unit for unit keeps its node.
        In context "local" a unit reads what its elements read (a norm's elements themselves,
        which may be several units where channels hold positions). ``merge`` ("add" or
        "mul") lets several operands become a structured add or gated product where every
        operand is the output's grid or a single broadcast unit.
        """
        shape = tuple(real.shape)
        reads = [r for r in reads if r.value is not None]
        arrays = [r.ids for r in reads]
        axes = tuple(sorted(set(varying_axes(arrays)) | set(force))) if arrays else force
        if len(reads) == 1 and reads[0].sets is None and reads[0].local == "same" and not force:
            r = reads[0]
            return Value(r.value.node, as_units(self.torch, r.ids))
        grid = tuple(shape[a] for a in axes) or (1,)
        n_out = math.prod(grid)
        # one element per output unit: index 0 along the other axes
        unit_index = np.zeros(1, dtype=np.int64)
        for a, n in enumerate(shape):  # row-major flat index, axis by axis
            step = np.arange(n) if a in axes else np.zeros(1, dtype=np.int64)
            unit_index = (unit_index[:, None] * n + step[None, :]).ravel()
        structured = self._structured_merge(reads, axes, grid, merge, unit_index, label)
        if structured is not None:
            layer, inputs = structured
            node = self.graph.add(layer, inputs, label, _channels(shape, axes))
        else:
            rels: list[Relation] = []
            locs: list[Relation | None] = []
            for r in reads:
                n_in = math.prod(self.grid(r.value.node))
                rel = relation_for(r, unit_index, n_out, n_in)
                rels.append(rel)
                if r.local == "same":
                    locs.append(rel)
                elif r.local is None:
                    locs.append(None)
                else:
                    locs.append(union_relation(r.local, shape, axes, n_in))
            layer = Reads(
                tuple(self.grid(r.value.node) for r in reads), grid, tuple(rels), tuple(locs),
                what, out_channels=_channels(shape, axes), name=label,
            )  # fmt: skip
            node = self.graph.add(
                layer, tuple(r.value.node for r in reads), label, _channels(shape, axes)
            )
        return Value(node, canonical_units(self.torch, shape, axes) if axes else
                     self.torch.zeros(shape, dtype=self.torch.float64))  # fmt: skip

    def _structured_merge(self, reads, axes, grid, merge, unit_index, label):
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
            own = _channels(tuple(r.value.units.shape), axes)
            if self.graph.channels_of(r.value.node) != own:
                return None
            if own != _channels(tuple(r.ids.shape), axes) and not (merge == "mul" and own == 1):
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


def _channels(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """Elements per unit: the product of the non-grid axes but the batch."""
    return max(1, math.prod(n for a, n in enumerate(shape) if a not in axes and a != 0))


# --------------------------------------------------------------------------- the rule table
#: torch.nn modules that keep every position's value at its position (channels may mix)
IDENTITY_MODULES = (
    "BatchNorm1d BatchNorm2d BatchNorm3d SyncBatchNorm LazyBatchNorm1d LazyBatchNorm2d "
    "LazyBatchNorm3d Identity Dropout Dropout1d Dropout2d Dropout3d AlphaDropout "
    "FeatureAlphaDropout ReLU ReLU6 LeakyReLU PReLU RReLU ELU SELU CELU GELU SiLU Mish "
    "Tanh Hardtanh Hardswish Softplus Softsign Tanhshrink Threshold LogSigmoid Hardshrink "
    "Softshrink LocalResponseNorm"
).split()
GATE_MODULES = ("Sigmoid", "Hardsigmoid")
#: torch.nn modules that only move elements: run on the units themselves
LAYOUT_MODULES = (
    "Flatten Unflatten PixelShuffle PixelUnshuffle ChannelShuffle ReflectionPad1d "
    "ReflectionPad2d ReflectionPad3d ReplicationPad1d ReplicationPad2d ReplicationPad3d "
    "CircularPad1d CircularPad2d CircularPad3d"
).split()
CONSTANT_PAD_MODULES = "ZeroPad1d ZeroPad2d ZeroPad3d ConstantPad1d ConstantPad2d ConstantPad3d"

#: functions and Tensor methods of one tensor that keep positions (pointwise)
POINTWISE = (
    "relu relu_ relu6 leaky_relu leaky_relu_ elu elu_ selu celu gelu silu mish hardswish "
    "hardtanh hardtanh_ softplus softsign tanhshrink threshold logsigmoid tanh tanh_ "
    "dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout batch_norm "
    "local_response_norm clamp clamp_ clip clip_ abs abs_ exp exp_ sqrt sqrt_ rsqrt square neg "
    "neg_ contiguous clone float double half bfloat16 to type_as type log log_ sin cos erf "
    "pow pow_ reciprocal sign floor ceil round stochastic_depth drop_path requires_grad_ "
    "add add_ sub sub_ mul mul_ div div_ truediv floordiv mod remainder masked_fill "
    "masked_fill_ nan_to_num cumsum_ sigmoid sigmoid_ hardsigmoid rsub iadd imul isub "
    "itruediv pos gelu_ addcmul addcdiv lerp softplus_ exp2 expm1 log1p log2 erfc"
).split()
GATES = ("sigmoid", "sigmoid_", "hardsigmoid")
#: methods whose second tensor is only a shape (or dtype) to follow
_SHAPE_ONLY = ("expand_as", "view_as", "reshape_as")
#: functions and methods that only move elements (applied to the units)
LAYOUT = (
    "view reshape flatten unflatten permute transpose t movedim moveaxis swapaxes "
    "squeeze unsqueeze expand expand_as repeat tile roll flip chunk split tensor_split "
    "unbind narrow select getitem pixel_shuffle pixel_unshuffle channel_shuffle "
    "native_channel_shuffle view_as reshape_as unfold gather index_select take_along_dim "
    "diagonal rot90 repeat_interleave split_with_sizes contiguous"
).split()
#: operations whose result carries no gradient (comparisons, indices, rounding to classes)
NO_GRADIENT = (
    "gt lt ge le eq ne isnan isinf isfinite argmax argmin argsort logical_and logical_or "
    "logical_not logical_xor bitwise_and bitwise_or bitwise_not any all nonzero zeros_like "
    "ones_like empty_like full_like randn_like rand_like sort_indices"
).split()
#: functions of torchvision that only move elements (fx leaves there)
LAYOUT_FUNCTIONS = ("_patch_merging_pad",)
#: reductions over axes: (name, keepdim default)
REDUCTIONS = "mean sum amax amin max min var std logsumexp prod norm nansum nanmean median"


#: Tensor operator methods that mean their operation with the operands swapped
_REFLECTED = {"radd": "add", "rmul": "mul", "rsub": "rsub", "rtruediv": "div", "rdiv": "div"}


def _name(target: Any) -> str:
    """A function's or method's name: ``Tensor.__add__`` -> ``add``, ``__getitem__`` ->
    ``getitem``; a property getter (``.T``, ``.real``) -> ``__get__``."""
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    if name.startswith("__") and name.endswith("__") and name != "__get__":
        core = name[2:-2]
        return _REFLECTED.get(core, core)
    return name


def _dims(dim: Any, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(sorted(d % ndim for d in dim))


_NONE = object()


class Rules:
    """What every module, function and Tensor method does to units (see the module
    docstring). One instance per model; ``overrides`` and ``unknown`` as in ``from_torch``."""

    def __init__(
        self,
        torch: Any,
        overrides: dict,
        unknown: str,
        describe: Callable,
        prefix: str = "",
        owner: tuple[str, type] | None = None,
    ) -> None:
        self.torch = torch
        self.F = torch.nn.functional
        self.overrides = overrides
        self.unknown = unknown
        # (fx node, module or None, owner, whether the identity would fit) -> one-line message
        self.describe = describe
        self.prefix = prefix  # of node names, inside a module recorded on its own
        self.owner = owner  # that module: (path, type)
        nn = torch.nn
        self.conv_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
        self.tconv_types = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
        self.maxpool_types = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
        self.avgpool_types = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
        self.lppool_types = tuple(
            c for c in (getattr(nn, f"LPPool{d}d", None) for d in (1, 2, 3)) if c is not None
        )

    # -- entry ----------------------------------------------------------------------------
    def apply(self, run: Any, n: Any, out: Any) -> Any:
        module = run.module.get_submodule(n.target) if n.op == "call_module" else None
        label = self.label(n)
        override = self.override(n, module)
        if override is not _NONE:
            return self.apply_layers(run, n, out, override, label)
        try:
            if module is not None and not _builtin(self.torch, module):
                return self.nested(run, n, module, out, label)
            if module is not None:
                try:
                    return self.module_rule(run, n, module, out, label)
                except Unmapped:
                    # a torch.nn module without a rule of its own (a transformer layer, an
                    # RNN): what it computes, recorded as it runs
                    if type(module).forward is self.torch.nn.Module.forward:
                        raise
                    return self.nested(run, n, module, out, label)
            return self.function_rule(run, n, out, label)
        except Unmapped:
            pass
        try:
            value: Value | None = self.first_value(run, n)
        except Unmapped:
            value = None
        keeps = (
            value is not None
            and _is_tensor(self.torch, out)
            and _broadcasts(value.units.shape, out.shape)
        )
        if self.unknown == "identity" and keeps:
            assert value is not None
            return Value(value.node, value.units.expand(out.shape), value.gate)
        raise ValueError(self.describe(n, module, self.owner, keeps))

    def label(self, n: Any) -> str:
        return self.prefix + (n.target if n.op == "call_module" else n.name)

    def nested(self, run: Any, n: Any, module: Any, out: Any, label: str) -> Any:
        """A module without a built-in rule (one fx could not trace, or a library's subclass
        of a torch layer with its own forward): record it as it runs and convert that."""
        torch = self.torch
        args, kwargs = self.real_args(run, n)
        if run.shapes_only:
            raise NeedsValues(label)  # recording runs the module's own Python on values
        srcs = list(n.args)
        tracked = {id(a) for a, s in zip(args, srcs) if isinstance(run.vals.get(s), Value)}
        if not tracked or (
            kwargs and any(isinstance(run.vals.get(v), Value) for v in n.kwargs.values())
        ):
            raise Unmapped
        bound = module if not kwargs else _Bound(torch, module, kwargs)
        try:
            (root, graph), _ = record(torch, bound, tuple(args), tracked)
        except Exception as exc:  # the module's own error, as it ran
            raise ValueError(
                f"from_torch: running module {label!r} ({type(module).__name__}) failed "
                f"({type(exc).__name__}: {first_line(exc)})"
            ) from None
        inner = Rules(torch, self.overrides, self.unknown, self.describe, f"{label}.",
                      (label, type(module)))  # fmt: skip
        values = [run.vals.get(s) if isinstance(run.vals.get(s), Value) else None for s in srcs]
        sub = Converter(torch, inner, run.conv.graph, run.conv.name)
        return run_graph(torch, root, sub, values, list(args), graph).result

    # -- overrides ------------------------------------------------------------------------
    def override(self, n: Any, module: Any) -> Any:
        for key, value in self.overrides.items():
            if isinstance(key, str):
                hit = key == n.target if n.op != "call_function" else False
            elif isinstance(key, type):
                hit = module is not None and isinstance(module, key)
            else:
                hit = n.op == "call_function" and key is n.target
            if hit:
                if callable(value) and not isinstance(value, Layer) and not _is_network(value):
                    value = value(module if module is not None else n)
                return _as_layers(value, key)
        return _NONE

    def apply_layers(self, run: Any, n: Any, out: Any, layers: list[Layer], label: str) -> Any:
        value = self.first_value(run, n)
        if not layers:  # keeps every position in place
            if _is_tensor(self.torch, out) and _broadcasts(value.units.shape, out.shape):
                return Value(value.node, value.units.expand(out.shape), value.gate)
            raise ValueError(
                f"from_torch: the override None for {label!r} keeps positions in place, but it "
                f"maps {tuple(value.units.shape)} to {tuple(getattr(out, 'shape', ()))}"
            )
        nd = value.units.ndim - 2
        named = [x if x.name else _named(x.expand(nd), label) for x in layers]
        return run.conv.structured(value, named, out, label)

    # -- helpers --------------------------------------------------------------------------
    def values(self, run: Any, args: Any) -> list[Value]:
        found: list[Value] = []

        def visit(a: Any) -> Any:
            v = run.vals.get(a)
            if isinstance(v, Value):
                found.append(v)
            return a

        self.torch.fx.node.map_arg(args, visit)
        return found

    def first_value(self, run: Any, n: Any) -> Value:
        found = self.values(run, (n.args, n.kwargs))
        if not found:
            raise Unmapped
        return found[0]

    def real_args(self, run: Any, n: Any) -> tuple[Any, dict]:
        return run.fetch_args_kwargs_from_env(n)

    def call(self, n: Any, args: Any, kwargs: dict) -> Any:
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        return n.target(*args, **kwargs)

    # -- modules --------------------------------------------------------------------------
    def module_rule(self, run: Any, n: Any, m: Any, out: Any, label: str) -> Any:
        nn = self.torch.nn
        kind = type(m).__name__
        value = self.first_value(run, n)
        nd = value.units.ndim - 2
        layer: Layer
        if isinstance(m, self.conv_types):
            layer = Conv(
                tuple(m.kernel_size),
                tuple(m.stride),
                m.padding if isinstance(m.padding, str) else tuple(m.padding),
                tuple(m.dilation),
                m.padding_mode,
                in_channels=m.in_channels,
                out_channels=m.out_channels,
                groups=m.groups,
                bias=m.bias is not None,
                name=label,
            )
            return run.conv.structured(value, [layer], out, label)
        if isinstance(m, self.tconv_types):
            return run.conv.structured(value, [self.tconv(m, value, out, label)], out, label)
        if isinstance(m, self.maxpool_types):
            if m.return_indices:
                raise Unmapped
            layer = self.pool("max", nd, m.kernel_size, m.stride, m.padding, m.dilation,
                              m.ceil_mode, label)  # fmt: skip
            return run.conv.structured(value, [layer], out, label)
        if isinstance(m, self.avgpool_types):
            layer = self.pool("avg", nd, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, label)
            return run.conv.structured(value, [layer], out, label)
        if self.lppool_types and isinstance(m, self.lppool_types):
            layer = self.pool("lp", nd, m.kernel_size, m.stride, 0, 1, m.ceil_mode, label,
                              float(m.norm_type))  # fmt: skip
            return run.conv.structured(value, [layer], out, label)
        if kind.startswith(("AdaptiveAvgPool", "AdaptiveMaxPool")):
            if "Max" in kind and m.return_indices:
                raise Unmapped
            layer = self.adaptive("avg" if "Avg" in kind else "max", value, m.output_size, label)
            return run.conv.structured(value, [layer], out, label)
        if isinstance(m, nn.Upsample):
            layer = self.interpolate(value, out, m.size, m.scale_factor, m.mode,
                                     m.align_corners, m.recompute_scale_factor, label)  # fmt: skip
            return run.conv.structured(value, [layer], out, label)
        if isinstance(m, nn.Linear):
            return self.linear(run, value, out, m.out_features, m.bias is not None, label)
        if isinstance(m, nn.LayerNorm):
            return self.layer_norm(run, value, out, len(m.normalized_shape), label)
        if isinstance(m, nn.GroupNorm):
            layer = SpatialNorm("group", groups=m.num_groups, name=label)
            return run.conv.structured(value, [layer], out, label)
        if kind.startswith("InstanceNorm"):
            return run.conv.structured(value, [SpatialNorm("instance", name=label)], out, label)
        if isinstance(m, nn.MultiheadAttention):
            return self.multihead(run, n, m, out, label)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax, nn.Softmin)):
            return self.softmax(value, out, m.dim if m.dim is not None else -1, label, run)
        if kind in GATE_MODULES:
            return Value(value.node, value.units, gate=True)
        if kind in IDENTITY_MODULES:
            return Value(value.node, value.units, value.gate, value.neg)
        if kind in CONSTANT_PAD_MODULES.split():
            pad = m.padding if isinstance(m.padding, (tuple, list)) else (m.padding,) * (2 * nd)
            return Value(value.node, self.F.pad(value.units, tuple(pad), value=-1.0))
        if kind == "Unfold":
            return self.unfold(run, value, m)
        if kind == "Fold":
            a = {"output_size": m.output_size, "kernel_size": m.kernel_size,
                 "dilation": m.dilation, "padding": m.padding, "stride": m.stride}  # fmt: skip
            return self.fold(run, value, out, a, label)
        if kind in LAYOUT_MODULES:
            units = m(value.units)
            return Value(value.node, units)
        raise Unmapped

    def tconv(self, m: Any, value: Value, out: Any, label: str) -> Layer:
        op = _output_padding(value, out, m.kernel_size, m.stride, m.padding, m.dilation)
        return ConvTranspose(
            tuple(m.kernel_size), tuple(m.stride), tuple(m.padding), op,
            tuple(m.dilation), in_channels=m.in_channels, out_channels=m.out_channels,
            groups=m.groups, bias=m.bias is not None, name=label,
        )  # fmt: skip

    def pool(self, kind, nd, k, s, p, d, ceil_mode, name, norm_type=2.0) -> Pool:
        k = _tuple(k, nd)
        s = k if s is None or (isinstance(s, (tuple, list)) and not s) else _tuple(s, nd)
        return Pool(k, s, _tuple(p, nd), _tuple(d, nd), kind=kind, ceil_mode=bool(ceil_mode),
                    norm_type=norm_type, name=name)  # fmt: skip

    def adaptive(self, kind: str, value: Value, output_size: Any, name: str) -> Layer:
        """A global pool to one unit; a fixed pool where the sizes divide; else adaptive."""
        spatial = tuple(value.units.shape[2:])
        sizes = _tuple(output_size, len(spatial))
        sizes = tuple(n if m is None else m for n, m in zip(spatial, sizes))
        if all(m == 1 for m in sizes):
            return GlobalPool(kind, name=name)
        if all(n % m == 0 for n, m in zip(spatial, sizes)):
            k = tuple(n // m for n, m in zip(spatial, sizes))
            return Pool(k, k, kind=kind, name=name)
        return AdaptivePool(sizes, kind=kind, name=name)

    def interpolate(self, value, out, size, scale, mode, align_corners, recompute, name):
        if mode not in ("nearest", "nearest-exact", "linear", "bilinear", "trilinear",
                        "bicubic", "area"):  # fmt: skip
            raise Unmapped
        nd = value.units.ndim - 2
        linear = mode in ("linear", "bilinear", "trilinear", "bicubic")
        corners = bool(align_corners) if linear else False
        if mode == "nearest":  # nearest upsampling by whole factors: Upsample
            ins, outs = value.units.shape[2:], out.shape[2:]
            factors = _tuple(scale, nd) if scale is not None else None
            if factors is None and all(m % n == 0 for n, m in zip(ins, outs)):
                factors = tuple(m // n for n, m in zip(ins, outs))
            if factors is not None and all(float(f).is_integer() for f in factors):
                return Upsample(tuple(int(f) for f in factors), name=name)
        if scale is not None and not recompute and mode != "area":
            return Interpolate(None, tuple(float(f) for f in _tuple(scale, nd)), mode, corners,
                               name=name)  # fmt: skip
        return Interpolate(tuple(out.shape[2:]), None, mode, corners, name=name)

    # -- functions and methods ------------------------------------------------------------
    def function_rule(self, run: Any, n: Any, out: Any, label: str) -> Any:
        torch, F = self.torch, self.F
        name = _name(n.target)
        target = n.target
        args, kwargs = self.real_args(run, n)
        values = self.values(run, (n.args, n.kwargs))
        value = values[0]
        if n.op == "call_function" and target is getattr:
            # .real, .T: the elements (or a view of them); .shape, .dtype: not a map
            return self.layout(run, n, out) if _is_tensor(torch, out) else None
        if not _holds_tensor(torch, out):
            return None  # sizes, counts, shapes: not maps
        if name in ("detach", "detach_") or name in NO_GRADIENT:
            return None  # no gradient flows back through it: a constant
        # structured layers written as functions
        if n.op == "call_function" and target in self.conv_functions():
            return self.conv_function(run, n, value, out, args, kwargs, label)
        pool = self.pool_function(n, value, args, kwargs, label)
        if pool is not None:
            return run.conv.structured(value, [pool], out, label)
        if n.op == "call_function" and target is F.interpolate:
            a = _bind(("input", "size", "scale_factor", "mode", "align_corners",
                       "recompute_scale_factor", "antialias"), args, kwargs)  # fmt: skip
            if a.get("antialias"):
                raise Unmapped
            layer = self.interpolate(value, out, a.get("size"), a.get("scale_factor"),
                                     a.get("mode", "nearest"), a.get("align_corners"),
                                     a.get("recompute_scale_factor"), label)  # fmt: skip
            return run.conv.structured(value, [layer], out, label)
        if n.op == "call_function" and target is F.linear:
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            if any(run.vals.get(a) is not None for a in n.all_input_nodes[1:]):
                return self.matmul(run, n, out, label)  # weights that depend on the input
            return self.linear(run, value, out, weight.shape[0], True, label)
        if n.op == "call_function" and target in (F.layer_norm,):
            shape = args[1] if len(args) > 1 else kwargs["normalized_shape"]
            return self.layer_norm(run, value, out, len(_tuple(shape, 1)), label)
        if n.op == "call_function" and target in (F.group_norm,):
            groups = args[1] if len(args) > 1 else kwargs["num_groups"]
            layer = SpatialNorm("group", groups=groups, name=label)
            return run.conv.structured(value, [layer], out, label)
        if n.op == "call_function" and target in (F.instance_norm,):
            return run.conv.structured(value, [SpatialNorm("instance", name=label)], out, label)
        if name == "scaled_dot_product_attention":
            return self.sdpa(run, n, out, args, kwargs, label)
        if name in ("softmax", "log_softmax", "softmin", "_softmax"):
            dim = _bind(("input", "dim"), args, kwargs).get("dim", -1)
            return self.softmax(value, out, dim, label, run)
        if name in ("matmul", "bmm", "mm", "baddbmm", "addmm"):
            return self.matmul(run, n, out, label)
        if name == "einsum":
            return self.einsum(run, n, out, args, label)
        if name in REDUCTIONS.split() or name in ("adaptive_avg_pool1d",):
            return self.reduction(run, n, value, out, args, kwargs, label)
        if name in ("cat", "concat", "concatenate", "stack", "hstack", "vstack"):
            return self.concat(run, n, values, out, args, kwargs, label)
        if name in ("pad",):
            return self.pad(n, value, args, kwargs)
        if name == "where":
            return self.where(run, n, out, args, kwargs, label)
        if name in ("shifted_window_attention",):
            return self.swin_attention(run, n, value, out, args, kwargs, label)
        if name in ("glu",):
            return self.glu(run, value, out, args, kwargs, label)
        if name == "fold" and n.op == "call_function" and target is F.fold:
            a = _bind(("input", "output_size", "kernel_size", "dilation", "padding", "stride"),
                      args, kwargs)  # fmt: skip
            return self.fold(run, value, out, a, label)
        if name in ("unfold",) and n.op == "call_function" and target is F.unfold:
            return self.unfold(run, value, lambda u: F.unfold(u, *args[1:], **kwargs))
        if name in ("normalize",):
            dim = _bind(("input", "p", "dim"), args, kwargs).get("dim", 1)
            return self.norm_over(run, value, out, (int(dim) % value.units.ndim,), label)
        if name in LAYOUT or name in LAYOUT_FUNCTIONS or name in ("getitem", "__get__"):
            return self.layout(run, n, out)
        if name in ("type_as", "to") and len(values) > 1:
            # x.type_as(y), x.to(y): y gives a dtype and a device, no routes
            first = run.vals.get(n.args[0])
            return first if isinstance(first, Value) else None
        if name in POINTWISE or name in GATES or name in ("maximum", "minimum", "fmax", "fmin"):
            if len(values) > 1:
                return self.elementwise(run, n, values, out, name, label)
            return self.pointwise(run, n, value, out, name, args, kwargs)
        raise Unmapped

    def conv_functions(self) -> tuple:
        F = self.F
        return (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d,
                F.conv_transpose3d)  # fmt: skip

    def conv_function(self, run, n, value, out, args, kwargs, label) -> Value:
        if any(run.vals.get(a) is not None for a in n.all_input_nodes[1:]):
            raise Unmapped  # weights that depend on the input
        transposed = "transpose" in _name(n.target)
        names = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups",
                 "dilation") if transposed else ("input", "weight", "bias", "stride", "padding",
                 "dilation", "groups")  # fmt: skip
        a = _bind(names, args, kwargs)
        w = a["weight"]
        nd = w.ndim - 2
        k = tuple(w.shape[2:])
        groups = int(a.get("groups", 1))
        if transposed:
            stride, padding = _tuple(a.get("stride", 1), nd), _tuple(a.get("padding", 0), nd)
            dilation = _tuple(a.get("dilation", 1), nd)
            op = _output_padding(value, out, k, stride, padding, dilation)
            layer: Layer = ConvTranspose(
                k, stride, padding, op, dilation, in_channels=w.shape[0],
                out_channels=w.shape[1] * groups, groups=groups,
                bias=a.get("bias") is not None, name=label,
            )  # fmt: skip
        else:
            pad = a.get("padding", 0)
            layer = Conv(
                k, _tuple(a.get("stride", 1), nd), pad if isinstance(pad, str) else _tuple(pad, nd),
                _tuple(a.get("dilation", 1), nd), in_channels=w.shape[1] * groups,
                out_channels=w.shape[0], groups=groups, bias=a.get("bias") is not None, name=label,
            )  # fmt: skip
        return run.conv.structured(value, [layer], out, label)

    def pool_function(self, n: Any, value: Value, args: Any, kwargs: dict, label: str) -> Any:
        if n.op != "call_function":
            return None
        F = self.F
        nd = value.units.ndim - 2
        signatures = {
            "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                         "return_indices"),
            "avg_pool": ("input", "kernel_size", "stride", "padding", "ceil_mode"),
            "lp_pool": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
            "adaptive_avg_pool": ("input", "output_size"),
            "adaptive_max_pool": ("input", "output_size", "return_indices"),
        }  # fmt: skip
        for base, params in signatures.items():
            if not any(n.target is getattr(F, f"{base}{d}d", None) for d in (1, 2, 3)):
                continue
            a = _bind(params, args, kwargs)
            if a.get("return_indices"):
                raise Unmapped
            if base.startswith("adaptive"):
                kind = "avg" if "avg" in base else "max"
                return self.adaptive(kind, value, a["output_size"], label)
            ceil = a.get("ceil_mode", False)
            if base == "lp_pool":
                norm = float(a["norm_type"])
                k, stride = a["kernel_size"], a.get("stride")
                return self.pool("lp", nd, k, stride, 0, 1, ceil, label, norm)
            kind = base.split("_")[0]
            pad, dil = a.get("padding", 0), a.get("dilation", 1)
            return self.pool(kind, nd, a["kernel_size"], a.get("stride"), pad, dil, ceil, label)
        return None

    # -- layout ---------------------------------------------------------------------------
    def layout(self, run: Any, n: Any, out: Any) -> Any:
        """Run the operation on the units (constants read as -1)."""
        torch = self.torch
        values = self.values(run, (n.args, n.kwargs))
        shape_only = _name(n.target) in _SHAPE_ONLY
        first = n.args[0] if n.args else None
        if shape_only:
            if not isinstance(run.vals.get(first), Value):
                return None  # a constant given the shape of a map is still a constant
            values = values[:1]
        nodes = {v.node for v in values}
        if len(nodes) > 1:
            raise Unmapped  # elements of different nodes in one layout: a concat handles it
        node = values[0].node

        def units(x: Any, dense: bool = False) -> Any:
            v = run.vals.get(x)
            if isinstance(v, Value) and (not shape_only or x is first):
                # shifted, so that a zero the operation writes (its own padding, as in
                # torchvision's _patch_merging_pad) is a constant, -1, after
                shifted = shifted_units(torch, v.units, 1)
                return shifted.contiguous() if dense else shifted
            return run.env[x]

        def dense(x: Any) -> Any:
            return units(x, True)

        map_arg = torch.fx.node.map_arg
        try:  # on the units as they are broadcast, where the operation allows it
            moved = self.call(n, map_arg(n.args, units), map_arg(n.kwargs, units))
        except RuntimeError:  # a view of a broadcast tensor: as the model's own layout
            moved = self.call(n, map_arg(n.args, dense), map_arg(n.kwargs, dense))
        moved = _shifted(torch, moved, -1)
        neg = None
        if values[0].neg is not None and len(values) == 1:

            def negs(x: Any) -> Any:
                v = run.vals.get(x)
                return v.neg.double() if isinstance(v, Value) else run.env[x]

            neg = self.call(n, torch.fx.node.map_arg(n.args, negs),
                            torch.fx.node.map_arg(n.kwargs, negs))  # fmt: skip
        return _wrap(torch, moved, node, values[0].gate, neg)

    def fold(self, run: Any, value: Value, out: Any, a: dict, label: str) -> Value:
        """col2im (``F.fold``, ``nn.Fold``): an output element reads every column entry that
        folds onto it (found by unfolding the output positions)."""
        torch, F = self.torch, self.F
        if value.units.ndim != 3:
            raise Unmapped
        size = tuple(out.shape[2:])
        where = torch.arange(math.prod(size), dtype=torch.float64).reshape(1, 1, *size) + 1.0
        kw = {k: a[k] for k in ("dilation", "padding", "stride") if k in a}
        pos = (F.unfold(where, a["kernel_size"], **kw) - 1.0)[0].numpy().astype(np.int64)
        units = value.np()[0]  # (C * K, L)
        k = pos.shape[0]
        channels = units.shape[0] // k
        per = units.reshape(channels, k, -1)
        c = np.repeat(np.arange(channels), pos.size)  # the channel of every column entry
        lands = np.tile(pos.ravel(), channels)  # the output position it folds onto
        element = c * math.prod(size) + lands
        keep = (lands >= 0) & (per.ravel() >= 0)
        order = np.argsort(element[keep], kind="stable")
        elems, found = element[keep][order], per.ravel()[keep][order]
        bounds = np.searchsorted(elems, np.arange(channels * math.prod(size) + 1))
        rows = [np.unique(found[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1)]
        ids, sets = _dedupe_sets(rows)
        read = Read(value, ids.reshape(1, channels, *size), sets)
        return run.conv.relate([read], out, "fold", label)

    def unfold(self, run: Any, value: Value, fn: Callable) -> Value:
        """im2col (``F.unfold``, ``nn.Unfold``): run on the units shifted by one, so that the
        zero padding it adds reads as -1 (no unit)."""
        return Value(value.node, fn(value.units + 1.0) - 1.0)

    def pad(self, n: Any, value: Value, args: Any, kwargs: dict) -> Value:
        a = _bind(("input", "pad", "mode", "value"), args, kwargs)
        mode = a.get("mode", "constant") or "constant"
        if mode == "constant":
            units = self.F.pad(value.units, a["pad"], mode="constant", value=-1.0)
        else:
            units = self.F.pad(value.units, a["pad"], mode=mode)
        return Value(value.node, units)

    def concat(self, run, n, values, out, args, kwargs, label) -> Any:
        torch = self.torch
        tensors = list(args[0] if args else kwargs["tensors"])
        dim = _bind(("tensors", "dim"), args, kwargs).get("dim", 0)
        srcs = list(n.args[0] if n.args else n.kwargs["tensors"])
        name = _name(n.target)
        if name == "stack":
            fn = torch.stack
        elif name in ("hstack", "vstack"):
            raise Unmapped
        else:
            fn = torch.cat
        vals = [run.vals.get(s) for s in srcs]
        if (
            name != "stack"
            and dim % out.ndim == 1
            and out.ndim > 2
            and all(isinstance(v, Value) for v in vals)
        ):
            nodes = [run.conv.canonical(v, tuple(range(2, out.ndim)), label) for v in vals]
            grids = {run.conv.grid(j) for j in nodes}
            if len(grids) == 1:  # a channel concat of maps on one grid
                node = run.conv.graph.add(Cat(name=label), tuple(nodes), label, out.shape[1])
                return Value(
                    node, canonical_units(torch, tuple(out.shape), tuple(range(2, out.ndim)))
                )

        def filled(k: int) -> list[Any]:
            return [
                v.units if (isinstance(v, Value) and j == k) else
                torch.full(tuple(t.shape), -1.0, dtype=torch.float64)
                for j, (v, t) in enumerate(zip(vals, tensors))
            ]  # fmt: skip

        reads = [
            Read(v, fn(filled(k), dim).detach().numpy().astype(np.int64))
            for k, v in enumerate(vals)
            if isinstance(v, Value)
        ]
        if len({r.value.node for r in reads}) == 1:
            ids = np.max([r.ids for r in reads], axis=0)  # each element from one operand
            return Value(reads[0].value.node, as_units(torch, ids))
        return run.conv.relate(reads, out, "concat", label)

    def where(self, run, n, out, args, kwargs, label) -> Any:
        torch = self.torch
        cond, x, y = (n.args + tuple(n.kwargs.values()))[:3]
        vx, vy = run.vals.get(x), run.vals.get(y)
        c = run.env[cond] if not isinstance(cond, (bool, int, float)) else cond
        if isinstance(c, torch.Tensor):
            c = c.expand(out.shape)
        reads = []
        for v, keep in ((vx, c), (vy, ~c if isinstance(c, torch.Tensor) else not c)):
            if isinstance(v, Value):
                ids = torch.where(keep, v.units.expand(out.shape), torch.tensor(-1.0))
                reads.append(Read(v, ids.numpy().astype(np.int64)))
        if not reads:
            return None
        if len(reads) == 1 or len({r.value.node for r in reads}) == 1:
            ids = np.max([r.ids for r in reads], axis=0)
            return Value(reads[0].value.node, as_units(torch, ids))
        return run.conv.relate(reads, out, "where", label, merge="add")

    # -- pointwise ------------------------------------------------------------------------
    def pointwise(self, run, n, value, out, name, args, kwargs) -> Any:
        torch = self.torch
        if not _is_tensor(torch, out):
            return None
        units = value.units.expand(out.shape) if value.units.shape != out.shape else value.units
        gate = name in GATES or value.gate
        neg = value.neg
        if neg is not None:
            neg = neg.expand(out.shape)
        consts = [
            run.env[a]
            for a in n.all_input_nodes
            if a not in run.vals and _is_tensor(torch, run.env.get(a))
        ]
        if name in ("add", "add_", "iadd"):
            for c in consts:  # an additive mask: its entries push softmax inputs to zero
                if c.numel() and bool((c <= MASK_BELOW).any()):
                    low = torch.broadcast_to(c <= MASK_BELOW, out.shape)
                    neg = low if neg is None else neg | low
        if name in ("masked_fill", "masked_fill_"):
            mask = args[1].expand(out.shape)
            fill = args[2]
            fill = float(fill) if not _is_tensor(torch, fill) else float(fill.max())
            if fill <= MASK_BELOW:
                neg = mask if neg is None else neg | mask
            else:
                units = torch.where(mask, torch.tensor(-1.0, dtype=torch.float64), units)
        if name in ("mul", "mul_", "imul") and any(c.numel() and not bool(c.any()) for c in consts):
            return None  # multiplied by zero: a constant
        return Value(value.node, units, gate, neg)

    def elementwise(self, run, n, values, out, name, label) -> Value:
        """Several operands that depend on the input: routes through each add up."""
        srcs = [a for a in n.all_input_nodes if isinstance(run.vals.get(a), Value)]
        vals = [run.vals[a] for a in srcs]
        product = name in ("mul", "mul_", "imul", "div", "div_", "truediv", "itruediv")
        reads = []
        counts = [len(np.unique(compact(v.np()))) for v in vals]
        for k, v in enumerate(vals):
            ids = np.broadcast_to(v.np(), tuple(out.shape))
            gate = product and (
                v.gate or (counts[k] == 1 and max(counts) > 1) or (k > 0 and "div" in name)
            )
            reads.append(Read(v, ids, local=None if gate else "same"))
        if product and all(r.local is None for r in reads):
            for r in reads:
                r.local = "same"  # no factor carries the map: all do
        return run.conv.relate(reads, out, name, label, merge="mul" if product else "add")

    # -- reductions, softmax, norms -------------------------------------------------------
    def reduction(self, run, n, value, out, args, kwargs, label) -> Any:
        torch = self.torch
        name = _name(n.target)
        a = _bind(("input", "dim", "keepdim"), args, kwargs)
        if name == "norm":
            a = _bind(("input", "p", "dim", "keepdim"), args, kwargs)
        if name in ("max", "min", "median") and not isinstance(a.get("dim"), int):
            if len(args) > 1 and _is_tensor(torch, args[1]):  # torch.max(a, b): elementwise
                return self.pointwise(run, n, value, out, name, args, kwargs)
        ndim = value.units.ndim
        dims = _dims(a.get("dim"), ndim)
        keep = bool(a.get("keepdim", False))
        result = out[0] if isinstance(out, (tuple, list)) else out
        spatial = tuple(range(2, ndim))
        if (
            ndim > 2 and dims == spatial and name in ("mean", "sum", "amax", "max")
            and self._is_canonical(run, value, spatial)
        ):  # fmt: skip
            layer = GlobalPool("max" if "max" in name else "avg", name=label)
            channels = run.conv.graph.channels_of(value.node)
            node = run.conv.graph.add(layer, (value.node,), label, channels)
            found = Value(node, torch.zeros(tuple(result.shape), dtype=torch.float64))
        else:
            ids, sets = fiber_sets(value.np(), dims)
            if keep:
                ids = np.expand_dims(ids, dims)
            ids = np.broadcast_to(ids, tuple(result.shape))
            read = run.conv.read(value, ids, sets)
            found = run.conv.relate([read], result, name, label)
        if isinstance(out, (tuple, list)):
            return (found, *([None] * (len(out) - 1)))
        return found

    def _is_canonical(self, run: Any, value: Value, axes: tuple[int, ...]) -> bool:
        shape = tuple(value.units.shape)
        grid = tuple(shape[a] for a in axes)
        if run.conv.grid(value.node) != grid:
            return False
        return is_canonical(self.torch, value.units, axes)

    def softmax(self, value: Value, out: Any, dim: Any, label: str, run: Any) -> Value:
        dim = int(dim) % value.units.ndim
        units = value.np()
        if value.neg is not None:
            units = np.where(value.neg.numpy(), -1, units)
        ids, sets = fiber_sets(units, (dim,))
        ids = np.broadcast_to(np.expand_dims(ids, dim), units.shape).copy()
        if value.neg is not None:
            ids[value.neg.numpy()] = -1  # a masked entry is a constant
        read = run.conv.read(value, ids, sets)
        found = run.conv.relate([read], out, "softmax", label)
        found.gate = True
        return found

    def layer_norm(self, run, value, out, k, label) -> Value:
        """Statistics over the last ``k`` axes (see :meth:`norm_over`)."""
        ndim = value.units.ndim
        return self.norm_over(run, value, out, tuple(range(ndim - k, ndim)), label)

    def norm_over(self, run, value, out, dims, label) -> Value:
        """A normalisation whose statistics span ``dims``: over channels only, the identity of
        space; over space too, every unit reads the units its statistics read (locally
        itself)."""
        units = value.np()
        ndim = units.ndim
        spatial = tuple(range(2, ndim))
        if ndim > 2 and dims == (1, *spatial) and self._is_canonical(run, value, spatial):
            # over channels and space of a (B, C, *grid) map: GroupNorm(1, C)'s statistics
            return run.conv.structured(value, [SpatialNorm("layer", name=label)], out, label)
        ids, sets = fiber_sets(units, dims)
        ids = np.broadcast_to(np.expand_dims(ids, dims), units.shape)
        if all(len(s) == 1 for s in sets):
            return Value(value.node, value.units)
        # every element stays in its unit (channels are collapsed: a unit whose channels
        # span several positions of the tensor, as after a space-to-depth, is still one
        # unit), which reads the units of every set its elements' statistics read
        graph = run.conv.graph
        grid = graph.grid(value.node)
        n = math.prod(grid)
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
            set_of, unique = _dedupe_sets(rows)
        rel = Relation.from_sets(n, set_of, unique)
        own = Relation.from_sets(n, np.arange(n), [np.asarray([u]) for u in range(n)])
        channels = graph.channels_of(value.node)
        layer = Reads((grid,), grid, (rel,), (own,), "layer norm", out_channels=channels,
                      name=label)  # fmt: skip
        node = graph.add(layer, (value.node,), label, channels)
        return Value(node, value.units)

    # -- products -------------------------------------------------------------------------
    def linear(self, run, value, out, out_features, bias, label) -> Value:
        torch = self.torch
        units = value.np()
        if units.ndim == 2:
            # a flattened map into a dense layer: every output feature reads every unit
            present = np.unique(units[units >= 0])
            node = value.node
            if present.size != math.prod(run.conv.grid(node)):
                node = run.conv.canonical(value, (1,), label)
            layer = Dense(out_features, bias=bias, name=label)
            node = run.conv.graph.add(layer, (node,), label, 1)
            return Value(node, canonical_units(torch, tuple(out.shape), (1,)))
        last = units.ndim - 1
        ids, sets = fiber_sets(units, (last,))
        ids = np.broadcast_to(np.expand_dims(ids, last), tuple(out.shape))
        if all(len(s) == 1 for s in sets):  # over channels: the identity of space
            return Value(value.node, as_units(torch, set_units(ids, sets)))
        read = run.conv.read(value, ids, sets)
        # the last axis holds tokens (one element per unit along it: token mixing), and the
        # outputs along it are new tokens; or it holds the channels of several units (a
        # unit repeats along it, as after a space-to-depth), and the outputs are channels
        fibres = np.sort(units.reshape(-1, units.shape[last]), axis=1)
        repeats = ((fibres[:, 1:] == fibres[:, :-1]) & (fibres[:, 1:] >= 0)).any()
        force = () if repeats else (last,)
        what = "linear over channels of several units" if repeats else "linear over tokens"
        return run.conv.relate([read], out, what, label, force=force)

    def matmul(self, run, n, out, label) -> Any:
        """``a @ b``: an output element reads row ``i`` of ``a`` and column ``j`` of ``b``."""
        name = _name(n.target)
        srcs = list(n.args[:2]) if name not in ("baddbmm", "addmm") else list(n.args[1:3])
        if name == "linear":
            srcs = list(n.args[:2])
        va, vb = (run.vals.get(s) for s in srcs)
        shape = tuple(out.shape)
        reads = []
        for v, axis in ((va, -1), (vb, -2)):
            if not isinstance(v, Value):
                continue
            units = v.np()
            if units.ndim < 2:
                raise Unmapped
            if name == "linear" and v is vb:
                axis = -1  # F.linear(x, w): w is (out, in)
            ids, sets = fiber_sets(units, (units.ndim + axis,))
            if axis == -1 and v is va:
                ids = ids[..., :, None]
            else:
                ids = ids[..., None, :]
            ids = np.broadcast_to(ids, shape)
            reads.append(run.conv.read(v, ids, sets))
        return self.product(run, reads, out, "matrix product", label)

    def product(self, run: Any, reads: list[Read], out: Any, what: str, label: str) -> Value:
        """A product's output from what it reads of each operand: one operand read unit by
        unit (a product over channels only) keeps that operand's units; else a relation."""
        if len(reads) == 1 and all(len(s) == 1 for s in reads[0].sets or []):
            r = reads[0]
            return Value(r.value.node, as_units(self.torch, set_units(r.ids, r.sets)))
        return run.conv.relate(reads, out, what, label)

    def einsum(self, run, n, out, args, label) -> Value:
        """``einsum(eq, *operands)``: an output element reads, of each operand, the elements
        that agree with it on the shared letters (every value of a summed letter)."""
        eq = args[0].replace(" ", "")
        operands = n.args[1:]
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = tuple(operands[0])
        if "..." in eq or "->" not in eq:
            raise Unmapped
        ins, result = eq.split("->")
        letters = ins.split(",")
        shape = tuple(out.shape)
        reads = []
        for src, lets in zip(operands, letters):
            v = run.vals.get(src)
            if not isinstance(v, Value):
                continue
            if len(set(lets)) != len(lets) or len(lets) != v.units.ndim:
                raise Unmapped
            summed = tuple(a for a, c in enumerate(lets) if c not in result)
            ids, sets = fiber_sets(v.np(), summed)
            kept = [c for c in lets if c in result]
            ids = np.transpose(ids, [kept.index(c) for c in result if c in kept])
            view = [shape[a] if c in kept else 1 for a, c in enumerate(result)]
            ids = np.broadcast_to(ids.reshape(view), shape)
            reads.append(run.conv.read(v, ids, sets))
        return self.product(run, reads, out, "einsum", label)

    def glu(self, run, value, out, args, kwargs, label) -> Value:
        dim = _bind(("input", "dim"), args, kwargs).get("dim", -1)
        a, b = value.units.chunk(2, dim=dim)
        reads = [
            Read(value, a.numpy().astype(np.int64)),
            Read(value, b.numpy().astype(np.int64), local=None),
        ]
        return run.conv.relate(reads, out, "glu", label, merge="mul")

    # -- attention ------------------------------------------------------------------------
    def attention_reads(self, run, q, k, v, allowed, out_shape) -> list[Read]:
        """Reads of attention: query ``i`` reads its own row of ``q`` and, of ``k`` and
        ``v``, the rows of the keys it may attend (``allowed``: (..., L, S) booleans)."""
        reads = []
        qu = q.np()
        ids, sets = fiber_sets(qu, (qu.ndim - 1,))
        ids = np.broadcast_to(ids[..., None], out_shape)
        reads.append(Read(q, ids, sets))
        for val in (k, v):
            ku = val.np()
            kid, ksets = fiber_sets(ku, (ku.ndim - 1,))  # (..., S)
            batch = np.broadcast_shapes(kid.shape[:-1], allowed.shape[:-2], out_shape[:-2])
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
            set_ids, deduped = _dedupe_sets(found)
            ids = set_ids[out_ids].reshape(*batch, al.shape[1])
            ids = np.broadcast_to(ids[..., None], out_shape)
            read = run.conv.read(val, ids, deduped)
            reads.append(read)
        return reads

    def sdpa(self, run, n, out, args, kwargs, label) -> Value:
        a = _bind(("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"),
                  args, kwargs)  # fmt: skip
        srcs = _bind(("query", "key", "value"), tuple(n.args), dict(n.kwargs))
        q, k, v = (run.vals.get(srcs[x]) for x in ("query", "key", "value"))
        if not all(isinstance(x, Value) for x in (q, k, v)):
            raise Unmapped
        L, S = a["query"].shape[-2], a["key"].shape[-2]
        allowed = np.ones((L, S), dtype=bool)
        mask = a.get("attn_mask")
        if mask is not None:
            m = mask.detach().cpu().numpy()
            allowed = m if m.dtype == bool else m > MASK_BELOW
        if a.get("is_causal"):
            allowed = allowed & np.tril(np.ones((L, S), dtype=bool))
        reads = self.attention_reads(run, q, k, v, allowed, tuple(out.shape))
        return run.conv.relate(reads, out, "attention", label)

    def multihead(self, run, n, m, out, label) -> Any:
        torch = self.torch
        args, kwargs = self.real_args(run, n)
        a = _bind(("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
                   "average_attn_weights", "is_causal"), args, kwargs)  # fmt: skip
        srcs = _bind(("query", "key", "value"), tuple(n.args), dict(n.kwargs))
        vals = [run.vals.get(srcs[x]) for x in ("query", "key", "value")]
        if not all(isinstance(x, Value) for x in vals):
            raise Unmapped
        first = not m.batch_first  # (L, N, E): move the batch first, then back
        moved = [Value(x.node, x.units.transpose(0, 1) if first else x.units) for x in vals]
        L, S = moved[0].units.shape[1], moved[1].units.shape[1]
        allowed = np.ones((L, S), dtype=bool)
        mask = a.get("attn_mask")
        if mask is not None:
            mk = mask.detach().cpu().numpy()
            allowed = ~mk if mk.dtype == bool else mk > MASK_BELOW  # True: masked out
        if a.get("key_padding_mask") is not None:
            kp = a["key_padding_mask"].detach().cpu().numpy()
            kp = ~kp if kp.dtype == bool else kp > MASK_BELOW
            allowed = allowed & kp[:, None, :]
        result = out[0]
        shape = tuple(result.transpose(0, 1).shape if first else result.shape)
        reads = self.attention_reads(run, moved[0], moved[1], moved[2], allowed, shape)
        fake = torch.zeros(shape)
        found = run.conv.relate(reads, fake, "attention", label)
        if first:
            found = Value(found.node, found.units.transpose(0, 1))
        return (found, None)

    def swin_attention(self, run, n, value, out, args, kwargs, label) -> Value:
        """torchvision's ``shifted_window_attention`` (its input is ``(B, H, W, C)``)."""
        from .._ops import Attention

        a = _bind(("input", "qkv_weight", "proj_weight", "relative_position_bias",
                   "window_size", "num_heads", "shift_size"), args, kwargs)  # fmt: skip
        layer = Attention(tuple(a["window_size"]), tuple(a["shift_size"]), name=label)
        return run.conv.structured(value, [layer], out, label, axes=(1, 2))


# --------------------------------------------------------------------------- helpers
def _output_padding(value: Value, out: Any, k: Any, s: Any, p: Any, d: Any) -> tuple[int, ...]:
    """A transposed convolution's output padding as torch resolved it (an ``output_size``
    argument sets it per call): the output size beyond ``(n - 1) s - 2 p + d (k - 1) + 1``."""
    return tuple(
        out.shape[2 + a] - ((value.units.shape[2 + a] - 1) * sa - 2 * pa + da * (ka - 1) + 1)
        for a, (ka, sa, pa, da) in enumerate(zip(k, s, p, d))
    )


def _builtin(torch: Any, module: Any) -> bool:
    """A torch.nn layer as torch defines it (not a subclass with its own forward)."""
    return type(module).__module__.startswith(("torch.nn.", "torch.ao.nn."))


class _Bound:
    """A module called with fixed keyword arguments."""

    def __init__(self, torch: Any, module: Any, kwargs: dict) -> None:
        self.module, self.kwargs = module, kwargs

    def __call__(self, *args: Any) -> Any:
        return self.module(*args, **self.kwargs)


def _bind(names: tuple[str, ...], args: Any, kwargs: dict) -> dict[str, Any]:
    """Positional and keyword arguments by name."""
    out = dict(zip(names, args))
    out.update(kwargs)
    return out


def _tuple(value: Any, nd: int) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value) if len(value) == nd else tuple(value) * nd
    return (value,) * nd


def _broadcasts(a: Any, b: Any) -> bool:
    try:
        return tuple(np.broadcast_shapes(tuple(a), tuple(b))) == tuple(b)
    except ValueError:
        return False


def _holds_tensor(torch: Any, x: Any) -> bool:
    """A tensor, or a container with one (not a torch.Size or a tuple of numbers)."""
    if isinstance(x, torch.Tensor):
        return True
    if isinstance(x, (tuple, list)) and not isinstance(x, torch.Size):
        return any(_holds_tensor(torch, v) for v in x)
    return False


def _shifted(torch: Any, moved: Any, by: int) -> Any:
    if isinstance(moved, torch.Tensor):
        return shifted_units(torch, moved, by)
    if isinstance(moved, (tuple, list)):
        return type(moved)(_shifted(torch, m, by) for m in moved)
    return moved


def _wrap(torch: Any, moved: Any, node: int, gate: bool, neg: Any) -> Any:
    if isinstance(moved, torch.Tensor):
        return Value(node, moved.to(torch.float64), gate, None if neg is None else neg > 0.5)
    if isinstance(moved, (tuple, list)):
        negs = neg if isinstance(neg, (tuple, list)) else [None] * len(moved)
        return type(moved)(_wrap(torch, m, node, gate, g) for m, g in zip(moved, negs))
    return None


def _is_network(value: Any) -> bool:
    from .._graph import Network

    return isinstance(value, Network)


def _as_layers(value: Any, key: Any) -> list[Layer]:
    from .._graph import Network

    if value is None:
        return []
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, Network):
        return list(value.layers)
    if isinstance(value, (list, tuple)) and all(isinstance(v, Layer) for v in value):
        return list(value)
    raise TypeError(
        f"`overrides` value for {key!r} must be a layer, a list of layers, a Network, None, "
        f"or a callable returning one; got {value!r}"
    )


def _named(layer: Layer, name: str) -> Layer:
    from dataclasses import replace

    try:
        return replace(layer, name=name)  # type: ignore[type-var]
    except (TypeError, ValueError):
        return layer


# --------------------------------------------------------------------------- interpreter
def run_graph(
    torch: Any,
    gm: Any,
    conv: Converter,
    inputs: list[Any],
    real: list[Any],
    graph: Any = None,
    shapes_only: bool = False,
) -> Any:
    """Run ``gm`` on ``real`` inputs, converting as it goes; ``inputs`` are the Values of the
    placeholders (None for constants). Returns the interpreter: ``vals`` (the Value of every
    traced node that depends on the input), ``env`` (every real tensor) and ``result``.

    With ``shapes_only`` the input is a meta tensor (a shape without values): every operation
    on tensors computed from it runs on meta tensors (parameters and constants taken to the
    meta device for the call; a layer that keeps shapes, such as an activation or an
    eval-mode batch norm, not run at all), so the model's arithmetic costs nothing, while
    constants (masks, index buffers) are computed for real. The conversion reads units,
    shapes and constants, never the values computed from the input, except where an
    operation reads a tensor computed from the input that is no map (a comparison, an index,
    a detached copy) or runs a module's own Python on values: there :class:`NeedsValues` is
    raised.
    """
    fx = torch.fx
    meta = torch.device("meta")
    on_meta: dict[int, Any] = {}  # id(tensor) -> the tensor on the meta device
    keeps_shape = tuple(
        getattr(torch.nn, k) for k in (*IDENTITY_MODULES, *GATE_MODULES) if hasattr(torch.nn, k)
    )

    def has_meta(x: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return x.device == meta
        if isinstance(x, (list, tuple)):
            return any(has_meta(v) for v in x)
        if isinstance(x, dict):
            return any(has_meta(v) for v in x.values())
        return False

    def to_meta(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x if x.device == meta else x.to(meta)
        if isinstance(x, (list, tuple)) and not isinstance(x, torch.Size):
            return type(x)(to_meta(v) for v in x)
        if isinstance(x, dict):
            return {k: to_meta(v) for k, v in x.items()}
        return x

    class Run(fx.Interpreter):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(gm, garbage_collect_values=False, graph=graph)
            self.conv = conv
            self.vals: dict[Any, Any] = {}
            self.placeholders = iter(inputs)
            self.result: Any = None
            self.shapes_only = shapes_only
            self.derived: set[Any] = set()  # nodes computed from the input that are no map

        def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
            if self.shapes_only and has_meta((args, kwargs)):
                args, kwargs = to_meta(args), to_meta(kwargs)
            return super().call_function(target, args, kwargs)

        def call_method(self, target: Any, args: Any, kwargs: Any) -> Any:
            if self.shapes_only and has_meta((args, kwargs)):
                args, kwargs = to_meta(args), to_meta(kwargs)
            return super().call_method(target, args, kwargs)

        def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
            if not (self.shapes_only and has_meta((args, kwargs))):
                return super().call_module(target, args, kwargs)
            module = self.fetch_attr(target)
            if type(module) in keeps_shape and len(args) == 1 and not kwargs:
                return args[0]
            # the module's parameters and buffers on the meta device for the call
            swapped = []
            try:
                for m in module.modules():
                    for store in (m._parameters, m._buffers):
                        for k, t in list(store.items()):
                            if isinstance(t, torch.Tensor) and t.device != meta:
                                swapped.append((store, k, t))
                                if id(t) not in on_meta:
                                    on_meta[id(t)] = t.detach().to(meta)
                                store[k] = on_meta[id(t)]
                return module(*to_meta(args), **to_meta(kwargs))
            finally:
                for store, k, t in swapped:
                    store[k] = t

        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if n.op == "placeholder":
                v = next(self.placeholders, None)
                if v is not None:
                    self.vals[n] = v
            elif n.op == "output":
                self.result = fx.node.map_arg(n.args[0], lambda a: self.vals.get(a))
            elif n.op == "get_attr":
                pass
            elif any(a in self.vals for a in n.all_input_nodes):
                if self.derived and any(a in self.derived for a in n.all_input_nodes):
                    # its rule would read values computed from the input: run for real
                    raise NeedsValues(n.name)
                got = self.getitem(n, out)
                if got is _NONE:
                    try:
                        got = conv.rules.apply(self, n, out)
                    except ValueError as exc:
                        raise ConversionError(" ".join(str(exc).split())) from None
                if got is not None:
                    self.vals[n] = got
            if self.shapes_only and n not in self.vals and has_meta(out):
                self.derived.add(n)
            return out

        def getitem(self, n: Any, out: Any) -> Any:
            """An element of a container of values (chunks, a module's tuple output)."""
            if n.op == "call_function" and n.target is operator.getitem:
                src = self.vals.get(n.args[0])
                if isinstance(src, (tuple, list)):
                    return src[n.args[1]]
            return _NONE

    run = Run()
    try:
        with torch.no_grad():
            run.run(*real)
    except ConversionError as exc:
        raise ValueError(exc.text) from None
    return run


# --------------------------------------------------------------------------- eager recording
def record(torch: Any, module: Any, args: tuple, tracked: set[int]) -> Any:
    """Run ``module(*args)`` eagerly and record, as an fx graph, every torch function call
    that reads a tensor depending on the input (``tracked``: the ids of the arguments that
    do). Python control flow runs on concrete values, so modules that ``torch.fx`` cannot
    trace (data-dependent shapes, padding computed from sizes) are recorded as they run.
    Tensors that do not depend on the input become constants of the graph."""
    fx = torch.fx
    graph = fx.Graph()
    root = torch.nn.Module()
    nodes: dict[int, tuple[Any, Any]] = {}  # id(tensor) -> (tensor kept alive, fx node)
    live: set[int] = set()

    for k, a in enumerate(args):
        node = graph.placeholder(f"arg{k}")
        if isinstance(a, torch.Tensor):
            nodes[id(a)] = (a, node)
            if id(a) in tracked:
                live.add(id(a))

    def as_node(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if id(x) not in nodes:  # a parameter, buffer or new tensor: a constant
                name = f"_const{len(nodes)}"
                root.register_buffer(name, x.detach(), persistent=False)
                nodes[id(x)] = (x, graph.get_attr(name))
            return nodes[id(x)][1]
        if isinstance(x, (list, tuple)) and not isinstance(x, torch.Size):
            return type(x)(as_node(v) for v in x)
        if isinstance(x, dict):
            return {k: as_node(v) for k, v in x.items()}
        return x

    def depends(x: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return id(x) in live
        if isinstance(x, (list, tuple)):
            return any(depends(v) for v in x)
        if isinstance(x, dict):
            return any(depends(v) for v in x.values())
        return False

    class Mode(torch.overrides.TorchFunctionMode):  # type: ignore[misc]
        def __torch_function__(self, func, types, a=(), kw=None):  # type: ignore[no-untyped-def]
            kw = kw or {}
            out = func(*a, **kw)
            if depends((a, kw)):
                node = graph.call_function(_recordable(func), as_node(a), as_node(kw))
                if isinstance(out, torch.Tensor):
                    nodes[id(out)] = (out, node)
                    live.add(id(out))
                elif isinstance(out, (list, tuple)) and not isinstance(out, torch.Size):
                    for i, t in enumerate(out):
                        if isinstance(t, torch.Tensor):
                            nodes[id(t)] = (t, graph.call_function(operator.getitem, (node, i)))
                            live.add(id(t))
            return out

    with Mode(), torch.no_grad():
        result = module(*args)
    graph.output(as_node(result))
    return (root, graph), result


def _recordable(func: Any) -> Any:
    """``func``, or a plain function calling it where fx needs a name it lacks (a slot
    wrapper such as ``Tensor.__getitem__``)."""
    if getattr(func, "__module__", None) is not None:
        return func

    def call(*a: Any, **k: Any) -> Any:
        return func(*a, **k)

    call.__name__ = call.__qualname__ = getattr(func, "__name__", "call")
    call.__module__ = "torch.Tensor"  # how errors name it: torch.Tensor.__gt__
    return call
