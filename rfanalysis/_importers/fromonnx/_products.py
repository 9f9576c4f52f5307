"""Products: MatMul, Gemm, Einsum. An output element reads, of each input-dependent operand,
the elements it is summed over (a row of the left factor, a column of the right one). With
constant weights over the features of a flat vector the node is a ``Dense`` layer; over
channels only, the identity of space."""

from __future__ import annotations

import math

import numpy as np

from ..._ops import Dense
from ._registry import Ctx, rule
from ._units import Read, Value, canonical_units, fiber_sets, set_units


def _product(cx: Ctx, reads: list[Read], shape: tuple[int, ...], what: str) -> Value:
    if len(reads) == 1 and all(len(s) == 1 for s in reads[0].sets or []):
        r = reads[0]
        return Value(r.value.node, set_units(r.ids, r.sets))
    return cx.conv.relate(reads, shape, what, cx.label)


def linear(cx: Ctx, x: Value, out_shape: tuple[int, ...], features: int, bias: bool) -> Value:
    """``x @ W`` with constant weights over ``x``'s last axis."""
    units = np.asarray(x.units)
    conv = cx.conv
    if units.ndim == 2:
        present = np.unique(units[units >= 0])
        node = x.node
        if present.size != math.prod(conv.grid(node)):
            node = conv.canonical(x, (1,), cx.label)
        node = conv.graph.add(Dense(features, bias=bias, name=cx.label), (node,), cx.label, 1)
        return Value(node, canonical_units(out_shape, (1,)))
    last = units.ndim - 1
    ids, sets = fiber_sets(units, (last,))
    ids = np.broadcast_to(np.expand_dims(ids, last), out_shape)
    if all(len(s) == 1 for s in sets):  # over channels: the identity of space
        return Value(x.node, set_units(ids, sets))
    read = conv.read(x, ids, sets)
    fibres = np.sort(units.reshape(-1, units.shape[last]), axis=1)
    repeats = ((fibres[:, 1:] == fibres[:, :-1]) & (fibres[:, 1:] >= 0)).any()
    force = () if repeats else (last,)
    return conv.relate([read], out_shape, "linear", cx.label, force=force)


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return tuple(out)


@rule("MatMul")
def matmul(cx: Ctx) -> list:
    a, b = cx.inputs[:2]
    sa = a.shape if isinstance(a, Value) else np.shape(a)
    sb = b.shape if isinstance(b, Value) else np.shape(b)
    shape = _matmul_shape(tuple(sa), tuple(sb))
    if isinstance(a, Value) and not isinstance(b, Value) and len(sb) == 2:
        return [linear(cx, a, shape, sb[1], False)]
    reads = []
    for v, axis in ((a, -1), (b, -2)):
        if not isinstance(v, Value):
            continue
        if v.units.ndim < 2:
            raise cx.fail("a 1-D operand that depends on the input")
        ids, sets = fiber_sets(np.asarray(v.units), (v.units.ndim + axis,))
        ids = ids[..., :, None] if axis == -1 else ids[..., None, :]
        reads.append(cx.conv.read(v, np.broadcast_to(ids, shape), sets))
    return [_product(cx, reads, shape, "matrix product")]


@rule("Gemm")
def gemm(cx: Ctx) -> list:
    a, b = cx.inputs[:2]
    ta, tb = int(cx.attr("transA", 0)), int(cx.attr("transB", 0))
    if isinstance(a, Value) and not isinstance(b, Value):
        w = np.asarray(b)
        features = w.shape[0] if tb else w.shape[1]
        rows = a.shape[1] if ta else a.shape[0]
        x = a if not ta else Value(a.node, np.asarray(a.units).T)
        return [linear(cx, x, (rows, features), features, cx.input(2) is not None)]
    raise cx.fail("a product of two tensors that depend on the input; write it as MatMul")


@rule("Einsum")
def einsum(cx: Ctx) -> list:
    eq = cx.attr("equation")
    eq = (eq.decode() if isinstance(eq, bytes) else eq).replace(" ", "")
    if "..." in eq or "->" not in eq:
        raise cx.fail(f"equation {eq!r} (write it with '->' and without '...')")
    ins, result = eq.split("->")
    letters = ins.split(",")
    sizes: dict[str, int] = {}
    for x, lets in zip(cx.inputs, letters):
        for c, n in zip(lets, x.shape if isinstance(x, Value) else np.shape(x)):
            sizes[c] = max(sizes.get(c, 1), n)
    shape = tuple(sizes[c] for c in result)
    reads = []
    for v, lets in zip(cx.inputs, letters):
        if not isinstance(v, Value):
            continue
        if len(set(lets)) != len(lets) or len(lets) != v.units.ndim:
            raise cx.fail(f"equation {eq!r} repeats a letter of one operand")
        summed = tuple(a for a, c in enumerate(lets) if c not in result)
        ids, sets = fiber_sets(np.asarray(v.units), summed)
        kept = [c for c in lets if c in result]
        ids = np.transpose(ids, [kept.index(c) for c in result if c in kept])
        view = [shape[a] if c in kept else 1 for a, c in enumerate(result)]
        ids = np.broadcast_to(ids.reshape(view), shape)
        reads.append(cx.conv.read(v, ids, sets))
    return [_product(cx, reads, shape, "einsum")]
