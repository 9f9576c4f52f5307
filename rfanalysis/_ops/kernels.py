"""Kernels shared by the operations' numpy and torch backend rules.

Arrays are channels-first, ``(batch, C, *spatial)``, as in torch. Every windowed layer reads
its windows through the per-axis operators of :mod:`.axis`: for each tap, an operator's
segments are strided slices (the in-range bulk) and its extras are index arrays (the
connections a padding mode redirects). :func:`to_cols` gathers ``(batch, C, *taps, *out)``
columns with one slice copy per tap and piece; :func:`from_cols` is its adjoint (slice
additions, ``np.add.at`` where indices can repeat). The torch helpers take the ``torch``
module as an argument: nothing here imports it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .axis import AxisOp, map_outside

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


def avg_divisor(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...], layer: Any, pads: tuple
) -> np.ndarray:
    """Divisor of every avg-pool window, shape ``out_shape``: the number of taps inside
    the padded input (padding counts, the overhang of a ``ceil_mode`` window does not).

    This is torch's ``count_include_pad=True`` rule: a window starting at ``o*s - p_before``
    ends at ``min(start + k_eff, n + p_after)``; with dilation the taps before that end count.
    """
    counts = []
    for n, m, k, s, d, (pb, pa) in zip(
        in_shape, out_shape, layer.kernel_size, layer.stride, layer.dilation, pads
    ):
        start = np.arange(m) * s - pb
        taps = start[:, None] + d * np.arange(k)[None, :]
        counts.append((taps < n + pa).sum(axis=1))
    out = counts[0].astype(np.float64)
    for c in counts[1:]:
        out = np.multiply.outer(out, c)
    return out


# --------------------------------------------------------------------------- torch helpers
def torch_fn(torch: Any, name: str, nd: int) -> Any:
    """``torch.nn.functional.<name><nd>d``."""
    return getattr(torch.nn.functional, f"{name}{nd}d")


def torch_pad(torch: Any, x: Any, pads: tuple, mode: str, value: float = 0.0) -> Any:
    """Pad the spatial axes of ``(B, C, *spatial)`` by ``(before, after)`` per axis."""
    if not any(b or a for b, a in pads):
        return x
    if mode == "symmetric":  # no torch mode: select the mirrored indices
        for axis, (b, a) in enumerate(pads):
            n = x.shape[2 + axis]
            index = map_outside(np.arange(-b, n + a), n, "symmetric")
            x = x.index_select(2 + axis, torch.as_tensor(index, device=x.device))
        return x
    flat = [v for b, a in reversed(pads) for v in (b, a)]  # F.pad: last axis first
    if mode == "zeros":
        return torch.nn.functional.pad(x, flat, mode="constant", value=value)
    return torch.nn.functional.pad(x, flat, mode=mode)


def torch_grouped(fn: Any, x: Any, w: Any, groups: int, **kw: Any) -> Any:
    """``fn`` with one weight set per trial: trials become groups of one big batch."""
    if w.shape[0] == 1:
        return fn(x, w[0], groups=groups, **kw)
    b = x.shape[0]
    y = fn(x.reshape(1, -1, *x.shape[2:]), w.flatten(0, 1), groups=b * groups, **kw)
    return y.reshape(b, -1, *y.shape[2:])


def torch_window_sum(
    torch: Any, x: Any, layer: Any, in_shape: tuple, out_shape: tuple, pads: tuple
) -> Any:
    """Sum over every pooling window (zero padding), ``(B, C, *out)``."""
    nd = x.ndim - 2
    padded = []
    for n, m, k, s, d, (pb, pa) in zip(
        in_shape, out_shape, layer.kernel_size, layer.stride, layer.dilation, pads
    ):
        over = max(0, (m - 1) * s + d * (k - 1) + 1 - (n + pb + pa))  # ceil_mode overhang
        padded.append((pb, pa + over))
    xp = torch_pad(torch, x, tuple(padded), "zeros")
    ones = torch.ones((x.shape[1], 1, *layer.kernel_size), dtype=x.dtype, device=x.device)
    y = torch_fn(torch, "conv", nd)(
        xp, ones, stride=layer.stride, dilation=layer.dilation, groups=x.shape[1]
    )
    return y[(slice(None), slice(None), *(slice(0, m) for m in out_shape))]
