"""Layout operators: each element goes where the operator moves it (DESIGN section 9).

The operator runs on the units themselves (shifted by one, so that an element it writes,
such as constant padding, reads as -1, no unit), through ONNX's own reference kernel: what
the operator does to data, it does to units. Concatenation of several maps is a ``Cat`` where
they share a grid, else a relation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..._ops import Cat
from ..._ops.reads import Reads
from ..units import Read, channels, union_relation, varying_axes
from ._registry import Ctx, rule, shape_of
from ._units import Opaque, Value, canonical_units, is_canonical

#: input positions that carry data (the rest are shapes, indices, pads: constants)
DATA_INPUTS = {"Concat": None, "Pad": (0,), "Where": (1, 2)}


def _feeds(cx: Ctx, data: tuple[int, ...], pick: str = "units") -> list:
    feeds: list[Any] = []
    for k, x in enumerate(cx.inputs):
        if k in data and isinstance(x, Value):
            arr = x.units if pick == "units" else x.neg
            feeds.append(np.asarray(arr, dtype=np.int64) + 1)
        elif x is None:
            feeds.append(None)
        elif isinstance(x, Opaque):
            if k in data:
                feeds.append(np.zeros(x.shape, dtype=np.int64))
            else:
                cx.const(k)  # raises: a shape or index computed from the input
        else:
            feeds.append(np.asarray(x).astype(np.int64) * 0 if k in data else x)
    return feeds


def moved(cx: Ctx, data: tuple[int, ...] = (0,)) -> list:
    """Run the operator on the units of its data inputs (one node's values)."""
    values = [cx.inputs[k] for k in data if isinstance(cx.input(k), Value)]
    node = values[0].node
    feeds = _feeds(cx, data)
    if cx.op == "Pad" and len(feeds) > 2 and feeds[2] is not None:
        feeds[2] = np.zeros((), dtype=np.int64)  # a constant pad reads as no unit
    outs = cx.run(feeds)
    negs: list[Any] = [None] * len(outs)
    if len(values) == 1 and values[0].neg is not None:
        nfeeds = _feeds(cx, data, "neg")
        if cx.op == "Pad" and len(nfeeds) > 2 and nfeeds[2] is not None:
            nfeeds[2] = np.zeros((), dtype=np.int64)
        negs = [o > 1 for o in cx.run(nfeeds)]
    gate = values[0].gate
    origin, scores = values[0].origin, values[0].scores
    return [
        Value(node, np.asarray(o, dtype=np.int64) - 1, gate, g, origin, scores)
        for o, g in zip(outs, negs)
    ]


@rule(
    "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Tile", "Slice",
    "Split", "Gather", "GatherElements", "GatherND", "DepthToSpace", "SpaceToDepth",
    "Pad", "ReverseSequence", "Compress", "Trilu",
)  # fmt: skip
def layout(cx: Ctx) -> list:
    if not isinstance(cx.input(0), Value):
        # an index computed from the input: the result is data-dependent
        raise cx.fail("indices or shapes computed from the model's input are not supported")
    return moved(cx)


@rule("Identity", "Cast", "CastLike", "Dropout", "Contiguous")
def identity(cx: Ctx) -> list:
    x = cx.inputs[0]
    outs = [x]
    if cx.op == "Dropout" and len(cx.node.output) > 1:
        outs.append(Opaque(x.shape, np.bool_))
    return outs


def _grid_axes(cx: Ctx, value: Value, skip: int) -> tuple[int, ...] | None:
    """The axes along which ``value``'s tensor lays out its node's grid (None: it does not):
    for a map of the input's rank, every axis but the batch and ``skip``; else those along
    which its units vary."""
    rank = len(value.shape)
    if rank == len(cx.graph.input_grid) + 2:
        axes = tuple(a for a in range(1, rank) if a != skip)
    else:
        axes = tuple(a for a in varying_axes([value.units]) if a != skip)
    if cx.conv.grid(value.node) != tuple(value.shape[a] for a in axes):
        return None
    return axes if is_canonical(value.units, axes) else None


@rule("Concat")
def concat(cx: Ctx) -> list:
    values = [x for x in cx.inputs if isinstance(x, Value)]
    rank = len(values[0].shape)
    axis = int(cx.attr("axis")) % rank
    shapes = [shape_of(x) for x in cx.inputs]
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    out_shape_t = tuple(out_shape)
    conv = cx.conv
    if len(values) == len(cx.inputs) and rank > 2 and axis != 0:
        # a concat of maps on one grid along an axis that is no axis of the grid (channels,
        # in either layout): a Cat
        grids = [_grid_axes(cx, v, axis) for v in values]
        if grids[0] is not None and all(g == grids[0] for g in grids) and grids[0]:
            axes = grids[0]
            nodes = [conv.canonical(v, axes, cx.label) for v in values]
            if len({conv.grid(j) for j in nodes}) == 1:
                chans = int(np.prod([n for a, n in enumerate(out_shape_t)
                                     if a not in axes and a != 0]))  # fmt: skip
                node = conv.graph.add(Cat(name=cx.label), tuple(nodes), cx.label, chans)
                return [Value(node, canonical_units(out_shape_t, axes))]
    parts = []
    for k, x in enumerate(cx.inputs):
        if not isinstance(x, Value):
            continue
        filled = [
            np.asarray(x.units) if j == k else np.full(shapes[j], -1, dtype=np.int64)
            for j in range(len(cx.inputs))
        ]
        parts.append(Read(x, np.concatenate(filled, axis=axis)))
    if len({r.value.node for r in parts}) == 1:
        ids = np.max([r.ids for r in parts], axis=0)
        return [Value(parts[0].value.node, ids)]
    # the output's units are positions along the axes where an operand's own units vary
    # (the concatenation axis only where it runs along a grid, as tokens do: concatenated
    # channels stay channels), each reading what its elements read of every operand
    axes = tuple(sorted({a for v in values for a in varying_axes([v.units]) if a != 0}))
    grid = tuple(out_shape_t[a] for a in axes) or (1,)
    rels = tuple(
        union_relation(r, out_shape_t, axes, math.prod(conv.grid(r.value.node))) for r in parts
    )
    chans = channels(out_shape_t, axes)
    layer = Reads(tuple(conv.grid(r.value.node) for r in parts), grid, rels, rels, "concat",
                  out_channels=chans, name=cx.label)  # fmt: skip
    node = conv.graph.add(layer, tuple(r.value.node for r in parts), cx.label, chans)
    units = canonical_units(out_shape_t, axes) if axes else np.zeros(out_shape_t, np.int64)
    return [Value(node, units)]
