"""Reductions over any axes, softmax, and normalisations.

A reduction over the axes of a map's grid is a global pool; over other axes each output
element reads the units of its fibre (a relation, or the identity of space where every fibre
is one unit: a reduction over channels). Softmax reads its fibre (masked entries excepted)
and is a gate. A norm's unit reads itself and every unit its statistics read."""

from __future__ import annotations

import numpy as np

from ..._ops import GlobalPool, SpatialNorm
from ..units import fiber_sets, set_units
from ._registry import Ctx, rule
from ._units import Opaque, Value, is_canonical

REDUCE = (
    "ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum "
    "ReduceLogSumExp ReduceSumSquare"
).split()


def _axes(cx: Ctx, rank: int) -> tuple[int, ...]:
    axes = cx.attr("axes")
    if axes is None and len(cx.node.input) > 1 and cx.node.input[1]:
        axes = cx.const(1)
    if axes is None or len(axes) == 0:
        if cx.attr("noop_with_empty_axes", 0):
            return ()
        return tuple(range(rank))
    return tuple(sorted(int(a) % rank for a in np.asarray(axes).ravel()))


def grid_axes(cx: Ctx, value: Value, axes: tuple[int, ...]) -> bool:
    """Whether ``axes`` are exactly the grid of ``value``'s node, laid out in order."""
    grid = tuple(value.shape[a] for a in axes)
    return cx.conv.grid(value.node) == grid and is_canonical(value.units, axes)


@rule(*REDUCE)
def reduce(cx: Ctx) -> list:
    x = cx.inputs[0]
    rank = len(x.shape)
    dims = _axes(cx, rank)
    keep = bool(cx.attr("keepdims", 1))
    out_shape = tuple(1 if a in dims else n for a, n in enumerate(x.shape) if keep or a not in dims)
    if not dims:
        return [x]
    if (
        rank > 2 and dims and 0 not in dims and grid_axes(cx, x, dims)
        and cx.op in ("ReduceMean", "ReduceSum", "ReduceMax")
    ):  # fmt: skip
        kind = "max" if cx.op == "ReduceMax" else "avg"
        chans = cx.graph.channels_of(x.node)
        node = cx.graph.add(GlobalPool(kind, name=cx.label), (x.node,), cx.label, chans)
        return [Value(node, np.zeros(out_shape, dtype=np.int64))]
    ids, sets = fiber_sets(x.units, dims)
    if keep:
        ids = np.expand_dims(ids, dims)
    ids = np.broadcast_to(ids, out_shape)
    if all(len(s) == 1 for s in sets):
        # over channels only: every element stays its unit, a function of the same tensor
        # (the norm of F.normalize divides the tensor it was taken of)
        return [Value(x.node, set_units(ids, sets), origin=x.origin)]
    read = cx.conv.read(x, ids, sets)
    return [cx.conv.relate([read], out_shape, cx.op.lower(), cx.label)]


@rule("Softmax", "LogSoftmax", "Hardmax")
def softmax(cx: Ctx) -> list:
    x = cx.inputs[0]
    if cx.op == "Hardmax":
        return [Opaque(x.shape, np.float32)]
    rank = len(x.shape)
    axis = int(cx.attr("axis", -1)) % rank
    units = np.asarray(x.units)
    if x.neg is not None:
        units = np.where(x.neg, -1, units)
    ids, sets = fiber_sets(units, (axis,))
    ids = np.broadcast_to(np.expand_dims(ids, axis), units.shape).copy()
    if x.neg is not None:
        ids[np.broadcast_to(x.neg, units.shape)] = -1  # a masked entry is a constant
    read = cx.conv.read(x, ids, sets)
    found = cx.conv.relate([read], x.shape, "softmax", cx.label)
    found.gate = True
    if x.scores is not None and axis == rank - 1 and x.shape == x.scores[2]:
        allowed = np.ones(x.shape, dtype=bool)
        if x.neg is not None:
            allowed = ~np.broadcast_to(x.neg, x.shape)
        found.attn = (*x.scores, allowed)
    return [found]


def _norm(cx: Ctx, x: Value, dims: tuple[int, ...]) -> Value:
    rank = len(x.shape)
    spatial = tuple(range(2, rank))
    if rank > 2 and grid_axes(cx, x, spatial):
        if dims == (1, *spatial):
            layer = SpatialNorm("layer", name=cx.label)
            return cx.conv.structured(x, [layer], x.shape, cx.label)
        if dims == spatial:
            layer = SpatialNorm("instance", name=cx.label)
            return cx.conv.structured(x, [layer], x.shape, cx.label)
    return cx.conv.norm_over(x, dims, cx.label)


@rule("LayerNormalization")
def layer_norm(cx: Ctx) -> list:
    x = cx.inputs[0]
    rank = len(x.shape)
    axis = int(cx.attr("axis", -1)) % rank
    out = [_norm(cx, x, tuple(range(axis, rank)))]
    return out + [None] * (len(cx.node.output) - 1)


@rule("InstanceNormalization")
def instance_norm(cx: Ctx) -> list:
    x = cx.inputs[0]
    return [_norm(cx, x, tuple(range(2, len(x.shape))))]


@rule("GroupNormalization")
def group_norm(cx: Ctx) -> list:
    x = cx.inputs[0]
    rank = len(x.shape)
    spatial = tuple(range(2, rank))
    if rank > 2 and grid_axes(cx, x, spatial):
        layer = SpatialNorm("group", groups=int(cx.attr("num_groups")), name=cx.label)
        return [cx.conv.structured(x, [layer], x.shape, cx.label)]
    return [cx.conv.norm_over(x, tuple(range(1, rank)), cx.label)]


@rule("LpNormalization", "MeanVarianceNormalization")
def other_norms(cx: Ctx) -> list:
    x = cx.inputs[0]
    rank = len(x.shape)
    if cx.op == "LpNormalization":
        dims: tuple[int, ...] = (int(cx.attr("axis", -1)) % rank,)
    else:
        dims = tuple(sorted(int(a) % rank for a in cx.attr("axes", [0, 2, 3])))
    return [_norm(cx, x, dims)]
