"""Products: MatMul, Gemm, Einsum. An output element reads, of each input-dependent operand,
the elements it is summed over (a row of the left factor, a column of the right one). With
constant weights over the features of a flat vector the node is a ``Dense`` layer; over
channels only, the identity of space."""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..._ops import Attention, Dense
from ..._ops.attention import window_labels
from ..units import Read, attended_sets, compact, fiber_sets, set_units
from ._registry import Ctx, rule
from ._units import Value, canonical_units


def _product(cx: Ctx, reads: list[Read], shape: tuple[int, ...], what: str) -> Value:
    if len(reads) == 1 and all(len(s) == 1 for s in reads[0].sets or []):
        r = reads[0]
        return Value(r.value.node, set_units(r.ids, r.sets))
    return cx.conv.relate(reads, shape, what, cx.label)


def linear(cx: Ctx, x: Value, out_shape: tuple[int, ...], features: int, bias: bool) -> Value:
    """``x @ W`` with constant weights over ``x``'s last axis."""
    units = np.asarray(x.units)
    conv = cx.conv
    if units.ndim == 2 and units.shape[0] == 1:
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
    if isinstance(a, Value) and isinstance(b, Value) and a.attn is not None:
        return [attention(cx, a.attn, b, shape)]
    reads = []
    for v, axis in ((a, -1), (b, -2)):
        if not isinstance(v, Value):
            continue
        if v.units.ndim < 2:
            raise cx.fail("a 1-D operand that depends on the input")
        ids, sets = fiber_sets(np.asarray(v.units), (v.units.ndim + axis,))
        ids = ids[..., :, None] if axis == -1 else ids[..., None, :]
        reads.append(cx.conv.read(v, np.broadcast_to(ids, shape), sets))
    found = _product(cx, reads, shape, "matrix product")
    if len(reads) == 2 and len(shape) >= 2:
        found.scores = (a, b, shape)
    return [found]


def attention(cx: Ctx, attn: tuple, v: Value, shape: tuple[int, ...]) -> Value:
    """``softmax(q @ k^T + mask) @ v``: query ``i`` reads its own row of ``q`` and, of ``k``
    and ``v``, the rows of the keys it may attend (a masked pair is no route)."""
    q, kt, _, allowed = attn
    reads = []
    qu = np.asarray(q.units)
    ids, sets = fiber_sets(qu, (qu.ndim - 1,))
    reads.append(Read(q, np.broadcast_to(ids[..., None], shape), sets))
    allowed = np.asarray(allowed)
    for val, axis in ((kt, -2), (v, -1)):
        ku = np.asarray(val.units)
        kid, ksets = fiber_sets(ku, (ku.ndim + axis,))  # (..., S): each key's units
        ids, deduped = attended_sets(kid, ksets, allowed, shape[:-2])
        reads.append(cx.conv.read(val, np.broadcast_to(ids[..., None], shape), deduped))
    windowed = _windows(cx, reads)
    if windowed is not None:
        return windowed
    return cx.conv.relate(reads, shape, "attention", cx.label)


def _windows(cx: Ctx, reads: list[Read]) -> Value | None:
    """Attention within windows of one map's grid (Swin's, shifted or not, written out with
    partitions, rolls and masks) as the structured ``Attention`` layer, whose query reads each
    key of its window once, as ``from_torch`` maps torchvision's shifted windows; None where
    the queries' keys are not the groups of such windows: attention over every token (or
    other groups) stays a relation that reads the query, the keys and the values, as
    ``from_torch`` maps ``scaled_dot_product_attention`` and ``nn.MultiheadAttention``."""
    q, k, v = reads
    node = q.value.node
    if not (k.value.node == v.value.node == node) or q.sets is None:
        return None
    grid = cx.conv.grid(node)
    n = math.prod(grid)
    if any(len(s) != 1 for s in q.sets):
        return None
    query = set_units(compact(q.ids), q.sets)
    keys: dict[int, bytes] = {}
    for r in (k, v):
        qi, ri = np.broadcast_arrays(query, compact(r.ids))
        pairs = np.unique(np.stack([qi.ravel(), ri.ravel()]), axis=1)
        for u, sid in zip(pairs[0].tolist(), pairs[1].tolist()):
            if u < 0:
                continue
            got = r.sets[sid].tobytes() if sid >= 0 and r.sets is not None else b""
            if keys.setdefault(u, got) != got:
                return None
    if len(keys) != n:
        return None
    labels = np.full(n, -1, dtype=np.int64)
    groups: dict[bytes, int] = {}
    for u, key in keys.items():
        labels[u] = groups.setdefault(key, len(groups))
    if len(groups) == 1:
        return None
    for key, g in groups.items():  # each query attends exactly its own group
        members = np.frombuffer(key, dtype=np.int64)
        if not np.array_equal(np.sort(members), np.flatnonzero(labels == g)):
            return None
    labels = labels.reshape(grid)
    window, shift = [], []
    for a in range(len(grid)):
        line = labels[(0,) * a + (slice(None),) + (0,) * (len(grid) - a - 1)]
        found = _axis_window(line)
        if found is None:
            return None
        window.append(found[0])
        shift.append(found[1])
    if min(window) < 2:
        # groups that are rows or single tokens are no windows of the map (MobileViT's
        # patch positions): the relation of queries, keys and values, as for global attention
        return None
    layer = Attention(tuple(window), tuple(shift), name=cx.label)
    want, _, _ = window_labels(tuple(grid), tuple(window), tuple(shift))
    if not _same_partition(want, labels):
        return None
    chans = cx.graph.channels_of(node)
    out = cx.graph.add(layer, (node,), cx.label, chans)
    units = np.broadcast_to(query, tuple(q.ids.shape))
    return Value(out, units)


def _axis_window(line: np.ndarray) -> tuple[int, int] | None:
    """The window and shift whose groups along one axis are ``line``'s: groups of windows
    are runs of tokens, so the candidates are the run lengths (a shifted window is cut into
    runs of ``w - s``, ``s`` and, at the far border, what is left)."""
    runs = _runs(line)
    if runs is None:
        return None
    lengths = set(runs)
    widths = sorted(lengths | {a + b for a, b in itertools.pairwise(runs)} | {line.size})
    for w in widths:
        for s in sorted({0} | {r for r in lengths if r < w}):
            want, _, _ = window_labels((line.size,), (w,), (s,))
            if _runs(want) == runs:
                return w, s
    return None


def _runs(line: np.ndarray) -> list[int] | None:
    """The lengths of the runs of equal labels (None where a label comes back later)."""
    cuts = np.flatnonzero(line[1:] != line[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    if len(set(line[starts].tolist())) != len(starts):
        return None
    return np.diff(np.concatenate([starts, [line.size]])).tolist()


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    _, ia = np.unique(a.ravel(), return_inverse=True)
    _, ib = np.unique(b.ravel(), return_inverse=True)
    pairs = np.unique(np.stack([ia.ravel(), ib.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(ia)) == len(np.unique(ib))


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
