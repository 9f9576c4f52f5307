"""The numpy backend: forward and backward passes of a :class:`~._net.Model`, vectorised.

Arrays are channels-first, ``(batch, C, *spatial)``, as in torch. Every spatial layer reads
its windows through the per-axis operators of :mod:`rfanalysis._axis`: for each tap, an
operator's segments are strided slices (the in-range bulk) and its extras are index arrays
(the connections a padding mode redirects). :func:`to_cols` gathers ``(batch, C, *taps,
*out)`` columns with one slice copy per tap and piece; :func:`from_cols` is its adjoint
(slice additions, ``np.add.at`` where indices can repeat). A convolution is then one matrix
product per trial and group; its input gradient is either a gather of the output gradient
through the transposed operator followed by one matrix product (stride 1, no redirected
taps: no scatter at all) or a matrix product followed by :func:`from_cols`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .._axis import AxisOp
from ._net import Merge, Model, Op, avg_divisor

Index = slice | np.ndarray


# --------------------------------------------------------------------------- gather / scatter
@dataclass(frozen=True, eq=False)
class Pieces:
    """One operator along one axis, grouped by tap, between a ``src`` side (no taps) and a
    ``dst`` side (with taps). ``by_tap[t]``: ``(src_index, dst_index)`` pairs; ``uncovered[t]``:
    dst positions that tap ``t`` reads from padding."""

    n_src: int
    n_dst: int
    taps: int
    by_tap: tuple[tuple[tuple[Index, Index], ...], ...]
    uncovered: tuple[tuple[Index, ...], ...]
    has_extras: bool


def _runs(mask: np.ndarray) -> tuple[Index, ...]:
    """The True positions of ``mask`` as a few slices (or one index array if scattered)."""
    if not mask.any():
        return ()
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    starts, stops = edges[::2], edges[1::2]
    if len(starts) > 4:
        return (np.flatnonzero(mask),)
    return tuple(slice(int(a), int(b)) for a, b in zip(starts, stops))


@lru_cache(maxsize=4096)
def pieces(op: AxisOp, swap: bool) -> Pieces:
    """Pieces of ``op``: ``src`` = its input, ``dst`` = its output (a convolution's gather),
    or, with ``swap``, the other way round (the transposed operator)."""
    n_src, n_dst = (op.n_out, op.n_in) if swap else (op.n_in, op.n_out)
    by_tap: list[list[tuple[Index, Index]]] = [[] for _ in range(op.taps)]
    covered = np.zeros((op.taps, n_dst), dtype=bool)
    for tap, si, so in op.segments:
        src, dst = (so, si) if swap else (si, so)
        by_tap[tap].append((src, dst))
        covered[tap, dst] = True
    for tap in np.unique(op.extra_tap):
        mask = op.extra_tap == tap
        i, o = op.extra_in[mask], op.extra_out[mask]
        src, dst = (o, i) if swap else (i, o)
        by_tap[int(tap)].append((src, dst))
        covered[int(tap), dst] = True
    uncovered = tuple(_runs(~covered[t]) for t in range(op.taps))
    return Pieces(
        n_src,
        n_dst,
        op.taps,
        tuple(tuple(p) for p in by_tap),
        uncovered,
        bool(op.extra_tap.size),
    )


def _index(parts: tuple[Index, ...], sizes: tuple[int, ...], lead: int) -> tuple:
    """An index for ``lead`` leading axes followed by one part per spatial axis; index
    arrays are combined as an outer product (``np.ix_``) so that no axis moves."""
    head = (slice(None),) * lead
    if all(isinstance(p, slice) for p in parts):
        return head + parts
    arrays = [np.arange(n)[p] if isinstance(p, slice) else p for p, n in zip(parts, sizes)]
    return head + np.ix_(*arrays)


def to_cols(x: np.ndarray, pcs: tuple[Pieces, ...], fill: float) -> np.ndarray:
    """``(B, C, *src)`` -> ``(B, C, *taps, *dst)``: what every tap of every dst unit reads,
    ``fill`` where it reads padding."""
    lead = x.ndim - len(pcs)
    taps = tuple(p.taps for p in pcs)
    src_sizes = tuple(p.n_src for p in pcs)
    dst_sizes = tuple(p.n_dst for p in pcs)
    cols = np.empty(x.shape[:lead] + taps + dst_sizes, dtype=x.dtype)
    head = (slice(None),) * lead
    for tap in itertools.product(*map(range, taps)):
        view = cols[head + tap]
        for axis, p in enumerate(pcs):
            for u in p.uncovered[tap[axis]]:
                view[head + (slice(None),) * axis + (u,)] = fill
        for combo in itertools.product(*(p.by_tap[t] for p, t in zip(pcs, tap))):
            src = tuple(c[0] for c in combo)
            dst = tuple(c[1] for c in combo)
            view[_index(dst, dst_sizes, lead)] = x[_index(src, src_sizes, lead)]
    return cols


def from_cols(g: np.ndarray, pcs: tuple[Pieces, ...]) -> np.ndarray:
    """Adjoint of :func:`to_cols`: ``(B, C, *taps, *dst)`` -> ``(B, C, *src)``, adding every
    column into the src unit it was read from (padding reads are dropped)."""
    lead = g.ndim - 2 * len(pcs)
    taps = tuple(p.taps for p in pcs)
    src_sizes = tuple(p.n_src for p in pcs)
    dst_sizes = tuple(p.n_dst for p in pcs)
    out = np.zeros(g.shape[:lead] + src_sizes, dtype=g.dtype)
    head = (slice(None),) * lead
    for tap in itertools.product(*map(range, taps)):
        view = g[head + tap]
        for combo in itertools.product(*(p.by_tap[t] for p, t in zip(pcs, tap))):
            src = tuple(c[0] for c in combo)
            dst = tuple(c[1] for c in combo)
            values = view[_index(dst, dst_sizes, lead)]
            if all(isinstance(s, slice) for s in src):
                out[head + src] += values  # a slice never repeats a unit
            else:
                np.add.at(out, _index(src, src_sizes, lead), values)
    return out


# --------------------------------------------------------------------------- layers
def _pcs(op: Op, swap: bool = False) -> tuple[Pieces, ...]:
    assert op.step.ops is not None
    return tuple(pieces(a, swap) for a in op.step.ops)


def _dims(op: Op) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    assert op.in_shape is not None and op.out_shape is not None
    layer = op.layer
    k = tuple(getattr(layer, "kernel_size", (1,) * len(op.in_shape)))
    return math.prod(k), math.prod(op.out_shape), op.in_shape, op.out_shape


def _conv_fwd(op: Op, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    taps, units, _, out_shape = _dims(op)
    b, g = x.shape[0], op.groups
    cols = to_cols(x, _pcs(op), 0.0).reshape(b, g, op.cin // g * taps, units)
    wm = w.reshape(w.shape[0], g, op.cout // g, op.cin // g * taps)
    return np.matmul(wm, cols).reshape(b, op.cout, *out_shape)


def _conv_bwd(op: Op, gy: np.ndarray, w: np.ndarray) -> np.ndarray:
    taps, units, in_shape, _ = _dims(op)
    b, g = gy.shape[0], op.groups
    cin_g, cout_g = op.cin // g, op.cout // g
    transposed = _pcs(op, swap=True)
    if all(s == 1 for s in op.layer.stride) and not any(p.has_extras for p in transposed):
        # gather the output gradient through the transposed operator: no scatter needed
        cols = to_cols(gy, transposed, 0.0).reshape(b, g, cout_g * taps, math.prod(in_shape))
        wb = w.reshape(w.shape[0], g, cout_g, cin_g, taps).transpose(0, 1, 3, 2, 4)
        wb = wb.reshape(w.shape[0], g, cin_g, cout_g * taps)
        return np.matmul(wb, cols).reshape(b, op.cin, *in_shape)
    wm = w.reshape(w.shape[0], g, cout_g, cin_g * taps).transpose(0, 1, 3, 2)
    gcols = np.matmul(wm, gy.reshape(b, g, cout_g, units))
    k = op.layer.kernel_size
    return from_cols(gcols.reshape(b, op.cin, *k, *op.out_shape), _pcs(op))


def _lc_w(op: Op, w: np.ndarray) -> np.ndarray:
    taps, units, _, _ = _dims(op)
    return w.reshape(w.shape[0], units, op.cout, op.cin * taps)


def _lc_fwd(op: Op, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    taps, units, _, out_shape = _dims(op)
    cols = to_cols(x, _pcs(op), 0.0).reshape(x.shape[0], op.cin * taps, units)
    wm = _lc_w(op, w)
    if wm.shape[0] == 1:
        y = np.einsum("bjm,mcj->bcm", cols, wm[0], optimize=True)
    else:
        y = np.einsum("bjm,bmcj->bcm", cols, wm, optimize=True)
    return y.reshape(x.shape[0], op.cout, *out_shape)


def _lc_bwd(op: Op, gy: np.ndarray, w: np.ndarray) -> np.ndarray:
    _, units, _, out_shape = _dims(op)
    g = gy.reshape(gy.shape[0], op.cout, units)
    wm = _lc_w(op, w)
    if wm.shape[0] == 1:
        gcols = np.einsum("bcm,mcj->bjm", g, wm[0], optimize=True)
    else:
        gcols = np.einsum("bcm,bmcj->bjm", g, wm, optimize=True)
    k = op.layer.kernel_size
    return from_cols(gcols.reshape(gy.shape[0], op.cin, *k, *out_shape), _pcs(op))


def _tconv_w(op: Op, w: np.ndarray) -> np.ndarray:
    taps = math.prod(op.layer.kernel_size)
    g = op.groups
    return w.reshape(w.shape[0], g, op.cin // g, op.cout // g * taps)


def _tconv_fwd(op: Op, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    _, _, in_shape, _ = _dims(op)
    b, g = x.shape[0], op.groups
    wt = _tconv_w(op, w).transpose(0, 1, 3, 2)
    z = np.matmul(wt, x.reshape(b, g, op.cin // g, math.prod(in_shape)))
    k = op.layer.kernel_size
    return from_cols(z.reshape(b, op.cout, *k, *in_shape), _pcs(op, swap=True))


def _tconv_bwd(op: Op, gy: np.ndarray, w: np.ndarray) -> np.ndarray:
    taps, _, in_shape, _ = _dims(op)
    b, g = gy.shape[0], op.groups
    cols = to_cols(gy, _pcs(op, swap=True), 0.0)
    cols = cols.reshape(b, g, op.cout // g * taps, math.prod(in_shape))
    return np.matmul(_tconv_w(op, w), cols).reshape(b, op.cin, *in_shape)


def _dense_fwd(op: Op, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    y = np.matmul(w, x.reshape(x.shape[0], -1, 1))
    return y.reshape(x.shape[0], 1, -1)


def _dense_bwd(op: Op, gy: np.ndarray, w: np.ndarray) -> np.ndarray:
    assert op.in_shape is not None
    gx = np.matmul(w.transpose(0, 2, 1), gy.reshape(gy.shape[0], -1, 1))
    return gx.reshape(gy.shape[0], op.cin, *op.in_shape)


def _pool_fwd(op: Op, x: np.ndarray) -> tuple[np.ndarray, Any]:
    taps, units, _, out_shape = _dims(op)
    layer = op.layer
    b, c = x.shape[:2]
    if layer.kind == "max":
        cols = to_cols(x, _pcs(op), -np.inf).reshape(b, c, taps, units)
        arg = cols.argmax(axis=2)  # the first maximum in window order, as torch picks it
        y = np.take_along_axis(cols, arg[:, :, None], axis=2)[:, :, 0]
        y[np.isneginf(y)] = 0.0  # a window lying wholly in the padding
        return y.reshape(b, c, *out_shape), arg
    cols = to_cols(x, _pcs(op), 0.0).reshape(b, c, taps, units)
    if layer.kind == "avg":
        div = avg_divisor(op.step).reshape(units)
        return (cols.sum(axis=2) / div).reshape(b, c, *out_shape), div
    p = float(layer.norm_type)
    s = (np.abs(cols) ** p).sum(axis=2)
    return (s ** (1.0 / p)).reshape(b, c, *out_shape), x


def _pool_bwd(op: Op, gy: np.ndarray, saved: Any) -> np.ndarray:
    taps, units, _, out_shape = _dims(op)
    layer = op.layer
    b, c = gy.shape[:2]
    g = gy.reshape(b, c, 1, units)
    if layer.kind == "max":
        gcols = np.zeros((b, c, taps, units), dtype=gy.dtype)
        np.put_along_axis(gcols, saved[:, :, None], g, axis=2)
    elif layer.kind == "avg":
        gcols = np.broadcast_to(g / saved, (b, c, taps, units))
    else:
        # d/dx_i (sum |x|^p)^(1/p) = sign(x_i) |x_i|^(p-1) s^(1/p - 1); 0 where s or x_i is 0
        p = float(layer.norm_type)
        cols = to_cols(saved, _pcs(op), 0.0).reshape(b, c, taps, units)
        a = np.abs(cols)
        s = (a**p).sum(axis=2, keepdims=True)
        scale = np.where(s > 0, s ** (1.0 / p - 1.0), 0.0)
        local = np.where(a > 0, np.sign(cols) * a ** (p - 1.0), 0.0)
        gcols = local * scale * g
    k = layer.kernel_size
    return from_cols(gcols.reshape(b, c, *k, *out_shape), _pcs(op))


def _up_fwd(op: Op, x: np.ndarray) -> np.ndarray:
    _, _, _, out_shape = _dims(op)
    return to_cols(x, _pcs(op), 0.0).reshape(*x.shape[:2], *out_shape)


def _up_bwd(op: Op, gy: np.ndarray) -> np.ndarray:
    ones = (1,) * (gy.ndim - 2)
    return from_cols(gy.reshape(*gy.shape[:2], *ones, *gy.shape[2:]), _pcs(op))


_WEIGHTED_FWD: dict[str, Callable] = {
    "conv": _conv_fwd,
    "lc": _lc_fwd,
    "tconv": _tconv_fwd,
    "dense": _dense_fwd,
}
_WEIGHTED_BWD: dict[str, Callable] = {
    "conv": _conv_bwd,
    "lc": _lc_bwd,
    "tconv": _tconv_bwd,
    "dense": _dense_bwd,
}


# --------------------------------------------------------------------------- network
class _Pass:
    """Forward and backward through a model for one batch of trials."""

    def __init__(self, weights: dict[int, np.ndarray], tick: Callable[[], None]) -> None:
        self.weights = weights
        self.tick = tick

    def forward(self, nodes: tuple[Op | Merge, ...], x: np.ndarray) -> tuple[np.ndarray, list]:
        tape: list = []
        for node in nodes:
            if isinstance(node, Op):
                x, saved = self._op_fwd(node, x)
            else:
                outs, tapes = [], []
                for branch in node.branches:
                    y, t = self.forward(branch, x)
                    outs.append(y)
                    tapes.append(t)
                x = sum(outs[1:], outs[0]) if node.add else np.concatenate(outs, axis=1)
                saved = (tapes, [y.shape[1] for y in outs])
            tape.append((node, saved))
            self.tick()
        return x, tape

    def backward(self, tape: list, g: np.ndarray) -> np.ndarray:
        for node, saved in reversed(tape):
            if isinstance(node, Op):
                g = self._op_bwd(node, g, saved)
            else:
                tapes, widths = saved
                if node.add:
                    parts = [self.backward(t, g) for t in tapes]
                else:
                    splits = np.cumsum(widths)[:-1]
                    parts = [self.backward(t, gg) for t, gg in zip(tapes, np.split(g, splits, 1))]
                g = sum(parts[1:], parts[0])
            self.tick()
        return g

    def _op_fwd(self, op: Op, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if op.kind == "pool":
            return _pool_fwd(op, x)
        if op.kind == "up":
            return _up_fwd(op, x), None
        y = _WEIGHTED_FWD[op.kind](op, x, self.weights[id(op)])
        if not op.relu:
            return y, None
        mask = y > 0
        y *= mask
        return y, mask

    def _op_bwd(self, op: Op, g: np.ndarray, saved: Any) -> np.ndarray:
        if op.kind == "pool":
            return _pool_bwd(op, g, saved)
        if op.kind == "up":
            return _up_bwd(op, g)
        if op.relu:
            g = g * saved
        return _WEIGHTED_BWD[op.kind](op, g, self.weights[id(op)])  # type: ignore[no-any-return]


def count_nodes(nodes: tuple[Op | Merge, ...]) -> int:
    """Forward plus backward visits of every node (the progress total of one batch)."""
    total = 0
    for node in nodes:
        total += 2
        if isinstance(node, Merge):
            total += sum(count_nodes(b) for b in node.branches)
    return total


def _columns(op: Op) -> int:
    """Elements per trial of the largest column array an op builds (forward or backward)."""
    taps, units, in_shape, _ = _dims(op)
    return max(op.cin, op.cout) * taps * max(units, math.prod(in_shape))


def batch_size(model: Model, trials: int, itemsize: int) -> int:
    """Trials per batch: enough to amortise Python overhead, few enough that the largest
    column array stays near the size of a CPU's last-level cache (8 MiB; measured with
    ``benchmarks/influence_quick.py``: larger batches were slower)."""
    largest = max((_columns(op) for op in model.ops()), default=0)
    if largest == 0:  # identity branches only: nothing to batch against
        return trials
    return max(1, min(trials, 8 * 2**20 // (largest * itemsize)))


def memory_bytes(model: Model, trials: int, itemsize: int) -> int:
    """Working memory of :func:`gradients` for one batch, roughly: two column arrays and
    every op's output, ReLU mask and max-pool indices."""
    largest = max((_columns(op) for op in model.ops()), default=0)
    kept = sum(op.cout * math.prod(op.out_shape) * (itemsize + 9) for op in model.ops())
    return batch_size(model, trials, itemsize) * (2 * largest * itemsize + kept)


def gradients(
    model: Model,
    x: np.ndarray,
    weights: dict[int, np.ndarray],
    seed: np.ndarray,
    dtype: np.dtype,
    reduce: Callable[[np.ndarray], np.ndarray],
    tick: Callable[[], None],
) -> np.ndarray:
    """Sum over trials of ``reduce(d <seed, y> / d x)`` (``reduce`` maps the
    ``(B, C_in, *input_shape)`` gradient to ``(*input_shape)``), in float64."""
    trials = x.shape[0]
    size = batch_size(model, trials, np.dtype(dtype).itemsize)
    total = np.zeros(x.shape[2:])
    shared = {k: w.astype(dtype) for k, w in weights.items() if w.shape[0] == 1}
    for start in range(0, trials, size):
        stop = min(start + size, trials)
        ws = {
            k: shared[k] if k in shared else w[start:stop].astype(dtype) for k, w in weights.items()
        }
        run = _Pass(ws, tick)
        y, tape = run.forward(model.nodes, x[start:stop].astype(dtype))
        g = np.broadcast_to(seed.astype(dtype), y.shape).copy()
        gx = run.backward(tape, g)
        total += reduce(gx)
    return total
