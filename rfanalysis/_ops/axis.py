"""Per-axis connection operators.

Every windowed layer is separable: its connections in N-D are
the product of its connections along each axis (padding modes map each coordinate on its own).
An :class:`AxisOp` lists the connections along one axis as ``(tap, input unit, output unit)``
triples, stored as strided slices for the in-range bulk and as index arrays for the few
connections that a padding mode redirects at the borders. Applying an operator, or its
transpose, is then a handful of vectorised slice additions whatever the dtype (float64, Python
ints in object arrays, or log-space with ``logaddexp``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .base import OpError, TooSmall
from .counts import Mode

#: raised by the operator builders; the planner adds the layer's name and position
AxisError = OpError


@dataclass(frozen=True, eq=False)
class AxisOp:
    """Connections of one layer along one axis.

    Attributes
    ----------
    n_in, n_out : int
        Units along this axis before and after the layer.
    taps : int
        Number of kernel taps (1 for upsampling).
    segments : tuple of (tap, in_slice, out_slice)
        In-range connections: ``in[in_slice][j]`` feeds ``out[out_slice][j]``.
    extra_tap, extra_in, extra_out : ndarray of int
        Connections redirected by the padding mode (may repeat a pair: each counts).
    """

    n_in: int
    n_out: int
    taps: int
    segments: tuple[tuple[int, slice, slice], ...]
    extra_tap: np.ndarray
    extra_in: np.ndarray
    extra_out: np.ndarray

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All connections as arrays ``(tap, in_index, out_index)``."""
        taps, ins, outs = [self.extra_tap], [self.extra_in], [self.extra_out]
        for tap, si, so in self.segments:
            i = np.arange(self.n_in)[si]
            taps.append(np.full(i.size, tap))
            ins.append(i)
            outs.append(np.arange(self.n_out)[so])
        return np.concatenate(taps), np.concatenate(ins), np.concatenate(outs)

    def matrix(self):  # -> scipy.sparse.csr_array
        """Route-count matrix ``A`` of shape ``(n_out, n_in)``: ``A[o, i]`` routes from i to o."""
        from scipy import sparse

        _, i, o = self.edges()
        return sparse.csr_array(
            (np.ones(i.size, dtype=np.int64), (o, i)), shape=(self.n_out, self.n_in)
        )

    def max_fan_out(self) -> int:
        """The largest number of connections leaving one input unit (bounds count growth)."""
        _, i, _ = self.edges()
        return int(np.bincount(i, minlength=self.n_in).max()) if i.size else 0

    # -- application ---------------------------------------------------------------------
    def transpose_apply(self, g: np.ndarray, axis: int, mode: Mode = "float") -> np.ndarray:
        """``A.T @ g`` along ``axis``: routes per output unit -> routes per input unit."""
        return _apply(g, axis, mode, self.n_in, self.segments, self.extra_out, self.extra_in)

    def reach(self, r: np.ndarray, axis: int) -> np.ndarray:
        """``A @ r > 0`` along ``axis`` for a boolean map ``r``: the output units that read a
        True input unit."""
        out = _apply(
            r.astype(np.float64), axis, "float", self.n_out, self.segments, self.extra_in,
            self.extra_out, forward=True,
        )  # fmt: skip
        return out > 0


def _apply(g, axis, mode, n_res, segments, extra_src, extra_dst, forward=False):
    shape = list(g.shape)
    shape[axis] = n_res
    if mode == "log":
        out = np.full(shape, -np.inf)
    elif mode == "exact":
        out = np.zeros(shape, dtype=object)
    else:
        out = np.zeros(shape, dtype=np.result_type(g.dtype, np.float64))
    pre = (slice(None),) * axis
    for _, si, so in segments:
        src, dst = (si, so) if forward else (so, si)
        d = (*pre, dst)
        if mode == "log":
            out[d] = np.logaddexp(out[d], g[(*pre, src)])
        else:
            out[d] += g[(*pre, src)]
    if extra_src.size:
        values = np.take(g, extra_src, axis=axis)
        if mode == "log":
            np.logaddexp.at(out, (*pre, extra_dst), values)
        else:
            np.add.at(out, (*pre, extra_dst), values)
    return out


_EMPTY = np.zeros(0, dtype=np.intp)


def _make(n_in, n_out, taps, segments, extra) -> AxisOp:
    if extra:
        t, i, o = (np.concatenate(x).astype(np.intp) for x in zip(*extra))
    else:
        t = i = o = _EMPTY
    for arr in (t, i, o):
        arr.flags.writeable = False
    return AxisOp(n_in, n_out, taps, tuple(segments), t, i, o)


# --------------------------------------------------------------------------- padding modes
#: largest padding each mode allows, as a function of the input length (torch / TF rules)
PAD_LIMITS = {
    "reflect": (lambda n: n - 1, "reflect padding must be smaller than the input (pad < n)"),
    "symmetric": (lambda n: n, "symmetric padding must not exceed the input (pad <= n)"),
    "circular": (lambda n: n, "circular padding must not exceed the input (pad <= n)"),
}


def map_outside(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map positions outside ``[0, n)`` to the input unit the padding mode reads.

    ``reflect``: ``c b | a b c d | c b``; ``symmetric``: ``b a | a b c d | d c``;
    ``replicate``: ``a a | a b c d | d d``; ``circular``: ``c d | a b c d | a b``.
    Positions must lie within the padding limits of :data:`PAD_LIMITS`.
    """
    if mode == "reflect":
        return np.where(i < 0, -i, np.where(i >= n, 2 * (n - 1) - i, i))
    if mode == "symmetric":
        return np.where(i < 0, -1 - i, np.where(i >= n, 2 * n - 1 - i, i))
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        return np.mod(i, n)
    raise AxisError(f"unknown padding mode {mode!r}")  # pragma: no cover - validated earlier


# --------------------------------------------------------------------------- builders
def resolve_padding(padding, n: int, k_eff: int, s: int) -> tuple[int, int]:
    """Resolve a padding word or pair for an input of ``n`` units.

    ``"same"``: total ``max(k_eff - s, 0)`` if ``n % s == 0`` else ``max(k_eff - n % s, 0)``,
    leading ``total // 2`` (TF's rule; for stride 1 it is torch's: the odd pixel at the end).
    ``"full"``: ``k_eff - 1`` on both sides. ``"valid"``: none.
    """
    if padding == "valid":
        return (0, 0)
    if padding == "full":
        return (k_eff - 1, k_eff - 1)
    if padding == "same":
        total = max(k_eff - s, 0) if n % s == 0 else max(k_eff - n % s, 0)
        return (total // 2, total - total // 2)
    return padding  # already a (before, after) pair


def window_length(n: int, k: int, s: int, d: int, pb: int, pa: int, ceil_mode: bool) -> int:
    """Output length of a convolution or pool (torch's rule, with its ceil_mode correction)."""
    span = n + pb + pa - d * (k - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // s + 1
    m = -(-span // s) + 1
    if (m - 1) * s >= n + pb:  # the last window must start inside the input or left padding
        m -= 1
    return m


@lru_cache(maxsize=4096)
def window_op(
    n: int, k: int, s: int, d: int, pb: int, pa: int, mode: str = "zeros", ceil_mode: bool = False
) -> AxisOp:
    """Operator of a convolution, locally connected layer or pool along one axis.

    Output ``o``, tap ``t`` reads padded position ``o*s + t*d``, i.e. input ``o*s + t*d - pb``.
    Only the few outputs whose tap reads padding need index arrays; the bulk is slices.
    """
    if mode in PAD_LIMITS:
        limit, rule = PAD_LIMITS[mode]
        if max(pb, pa) > limit(n):
            raise TooSmall(f"{rule}; got padding {max(pb, pa)} for input {n}")
    m = window_length(n, k, s, d, pb, pa, ceil_mode)
    if m <= 0:
        raise TooSmall(
            f"output size 0 for input {n} (kernel {k}, dilation {d}, padding {pb}+{pa}); "
            "the input is too small for this stack"
        )
    segments, extra = [], []
    for t in range(k):
        off = t * d - pb  # input index = o*s + off
        o_lo = (-off + s - 1) // s if off < 0 else 0  # first o with o*s + off >= 0
        o_hi = min(m - 1, (n - 1 - off) // s)  # last o with o*s + off <= n - 1
        if o_lo <= o_hi:
            start = o_lo * s + off
            segments.append((t, slice(start, o_hi * s + off + 1, s), slice(o_lo, o_hi + 1)))
        if mode != "zeros":
            if o_lo <= o_hi:
                outside = np.concatenate([np.arange(0, o_lo), np.arange(o_hi + 1, m)])
            else:
                outside = np.arange(m)
            if outside.size:
                i = map_outside(outside * s + off, n, mode)
                extra.append((np.full(i.size, t), i, outside))
    return _make(n, m, k, segments, extra)


def transposed_length(n: int, k: int, s: int, d: int, pb: int, pa: int, output_padding: int) -> int:
    """Output length of a transposed convolution (torch's rule, with a per-side crop)."""
    return (n - 1) * s - pb - pa + d * (k - 1) + output_padding + 1


def upsample_length(n: int, scale: int | float) -> int:
    """Output length of nearest upsampling: ``floor(n * scale)``."""
    return math.floor(n * scale)


@lru_cache(maxsize=4096)
def transposed_op(n: int, k: int, s: int, d: int, pb: int, pa: int, output_padding: int) -> AxisOp:
    """Operator of a transposed convolution: input ``i``, tap ``t`` writes output
    ``i*s + t*d - pb`` (torch's ``ConvTranspose``)."""
    m = transposed_length(n, k, s, d, pb, pa, output_padding)
    if m <= 0:
        raise AxisError(
            f"output size {m} for input {n} (kernel {k}, stride {s}, cropping {pb}+{pa}); "
            "the crop removes the whole output"
        )
    segments = []
    for t in range(k):
        off = t * d - pb  # output index = i*s + off
        i_lo = (-off + s - 1) // s if off < 0 else 0
        i_hi = min(n - 1, (m - 1 - off) // s)
        if i_lo <= i_hi:
            segments.append(
                (t, slice(i_lo, i_hi + 1), slice(i_lo * s + off, i_hi * s + off + 1, s))
            )
    return _make(n, m, k, segments, [])


@lru_cache(maxsize=4096)
def upsample_op(n: int, scale: int | float) -> AxisOp:
    """Nearest-neighbour upsampling as torch computes it.

    Output ``j`` of ``floor(n * scale)`` reads ``min(floor(j * float32(1 / scale)), n - 1)``
    in float32 arithmetic (torch's ``nearest`` kernel; factors 1 and 2 are exact there). For
    most integer factors this is ``j // scale``; where float32 rounding makes torch differ,
    the operator follows torch so that maps agree with it unit for unit.
    """
    m = upsample_length(n, scale)
    if m <= 0:
        raise TooSmall(f"output size 0 for input {n} (scale factor {scale})")
    j = np.arange(m)
    if scale in (1, 2):
        src = j // int(scale)
    else:
        src = np.minimum(
            np.floor(j.astype(np.float32) * np.float32(1.0 / scale)).astype(np.intp), n - 1
        )
    if isinstance(scale, int) and np.array_equal(src, j // scale):
        segments = [(0, slice(0, n), slice(r, m, scale)) for r in range(scale)]
        return _make(n, m, 1, segments, [])
    return _make(n, m, 1, [], [(np.zeros(m, dtype=np.intp), src, j)])


@lru_cache(maxsize=4096)
def adaptive_op(n: int, m: int) -> AxisOp:
    """Operator of adaptive pooling from ``n`` to ``m`` units (torch's windows): output ``i``
    reads inputs ``floor(i n / m)`` to ``ceil((i + 1) n / m) - 1``."""
    if m <= 0:
        raise AxisError(f"adaptive pooling to {m} units")
    starts = [i * n // m for i in range(m)]
    ends = [-(-(i + 1) * n // m) for i in range(m)]
    taps = max(e - s for s, e in zip(starts, ends))
    t: list[int] = []
    i: list[int] = []
    o: list[int] = []
    for out, (s, e) in enumerate(zip(starts, ends)):
        t.extend(range(e - s))
        i.extend(range(s, e))
        o.extend([out] * (e - s))
    extra = [(np.asarray(t), np.asarray(i), np.asarray(o))]
    return _make(n, m, taps, [], extra)


@lru_cache(maxsize=4096)
def weighted_op(n: int, m: int, pairs: tuple[tuple[int, int], ...]) -> AxisOp:
    """An operator from explicit ``(output, input)`` connections (one tap each)."""
    if not pairs:
        return _make(n, m, 1, [], [])
    o, i = (np.asarray(x, dtype=np.intp) for x in zip(*pairs))
    return _make(n, m, 1, [], [(np.zeros(o.size, dtype=np.intp), i, o)])
