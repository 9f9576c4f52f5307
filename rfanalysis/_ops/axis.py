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
from functools import cached_property, lru_cache
from typing import Any

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

    @cached_property
    def is_identity(self) -> bool:
        """Every unit connects to the unit of its own index and nothing else (a 1x1
        convolution along this axis): applying it changes nothing."""
        whole = (0, self.n_in, 1)
        return (
            self.n_in == self.n_out
            and not self.extra_in.size
            and len(self.segments) == 1
            and self.segments[0][1].indices(self.n_in) == whole
            and self.segments[0][2].indices(self.n_out) == whole
        )

    # -- application ---------------------------------------------------------------------
    def transpose_apply(
        self, g: np.ndarray, axis: int, mode: Mode = "float", out: np.ndarray | None = None
    ) -> np.ndarray:
        """``A.T @ g`` along ``axis``: routes per output unit -> routes per input unit,
        written into ``out`` where given. The identity returns ``g`` itself (counts are never
        changed in place)."""
        if self.is_identity:
            if out is None:
                return g
            out[...] = g
            return out
        boxes = self._boxes
        if boxes is None:
            return _apply(g, axis, mode, self.n_in, self.segments, self.extra_out,
                          self.extra_in, out=out)  # fmt: skip
        out = _phases(g, axis, mode, self.n_in, boxes, out)
        if self.extra_in.size:
            _extras(g, axis, mode, out, self.extra_out, self.extra_in)
        return out

    @cached_property
    def _boxes(self) -> Boxes | None:
        """How :func:`_phases` computes the transpose, where it applies."""
        pairs = [(so, si) for _, si, so in self.segments]
        step = _common_step(pairs)
        if not step:
            return None
        boxes = _box_plan(self.n_out, self.n_in, pairs, step)
        if boxes.repeats and step > 1:
            return boxes
        if len(pairs) <= step or (step == 1 and len(pairs) < 5):
            return None  # a few slice additions are as fast
        return boxes

    @cached_property
    def repeats(self) -> bool:
        """The transpose repeats each unit (a window as wide as its stride)."""
        return self._boxes is not None and self._boxes.repeats

    def reach(self, r: np.ndarray, axis: int) -> np.ndarray:
        """``A @ r > 0`` along ``axis`` for a boolean map ``r``: the output units that read a
        True input unit."""
        if self.is_identity:
            return r
        out = _apply(
            r.astype(np.float64), axis, "float", self.n_out, self.segments, self.extra_in,
            self.extra_out, forward=True,
        )  # fmt: skip
        return out > 0

    def rows(self, a: int, b: int) -> tuple[int, int, AxisOp]:
        """The operator for input units ``a`` to ``b - 1`` alone (what ``transpose_apply``
        gives there): ``(c, d, op)`` with ``op`` reading output units ``c`` to ``d - 1``."""
        return _rows(self, a, b)


@lru_cache(maxsize=4096)
def _rows(op: AxisOp, a: int, b: int) -> tuple[int, int, AxisOp]:
    kept = []
    for tap, si, so in op.segments:
        i0, i1, istep = si.indices(op.n_in)
        o0, _, ostep = so.indices(op.n_out)
        first = max(0, -(-(a - i0) // istep))  # first element with input index >= a
        last = min(len(range(i0, i1, istep)), -(-(b - i0) // istep))  # past the last < b
        if first < last:
            kept.append((tap, i0 + first * istep, istep, last - first, o0 + first * ostep, ostep))
    extra = (op.extra_in >= a) & (op.extra_in < b)
    reads = [o + np.arange(k) * st for *_, k, o, st in kept] + [op.extra_out[extra]]
    everything = np.concatenate(reads) if reads else np.zeros(0, dtype=np.intp)
    if everything.size == 0:
        return 0, 0, _make(b - a, 0, op.taps, [], [])
    c, d = int(everything.min()), int(everything.max()) + 1
    segments = [(t, _run(i - a, k, ist), _run(o - c, k, ost)) for t, i, ist, k, o, ost in kept]
    extras = []
    if extra.any():
        extras.append((op.extra_tap[extra], op.extra_in[extra] - a, op.extra_out[extra] - c))
    return c, d, _make(b - a, d - c, op.taps, segments, extras)


def _run(start: int, count: int, step: int) -> slice:
    """The slice of ``count`` indices from ``start`` by ``step``."""
    return slice(start, start + (count - 1) * step + 1, step)


def _apply(g, axis, mode, n_res, segments, extra_src, extra_dst, forward=False, out=None):
    shape = list(g.shape)
    shape[axis] = n_res
    pre = (slice(None),) * axis
    if out is None:
        out = _empty(shape, mode, g.dtype)
    else:
        out[...] = _zero(mode)
    for _, si, so in segments:
        src, dst = (si, so) if forward else (so, si)
        _accumulate(out, (*pre, dst), g[(*pre, src)], mode)
    if extra_src.size:
        _extras(g, axis, mode, out, extra_src, extra_dst)
    return out


def _extras(g, axis, mode, out, extra_src, extra_dst):
    """The connections a padding mode redirects: ``out[extra_dst] += g[extra_src]``."""
    pre = (slice(None),) * axis
    values = np.take(g, extra_src, axis=axis)
    if mode == "log":
        np.logaddexp.at(out, (*pre, extra_dst), values)
    else:
        np.add.at(out, (*pre, extra_dst), values)


def _zero(mode: Mode) -> float:
    return -np.inf if mode == "log" else 0


def _empty(shape, mode, dtype):
    """Zero counts: -inf in log mode, Python ints 0 when exact."""
    if mode == "log":
        return np.full(shape, -np.inf)
    if mode == "exact":
        return np.zeros(shape, dtype=object)
    return np.zeros(shape, dtype=np.result_type(dtype, np.float64))


def _accumulate(out, index, values, mode):
    """``out[index] += values`` in the number system of ``mode``."""
    if mode == "log":
        out[index] = np.logaddexp(out[index], values)
    else:
        out[index] += values


def _common_step(pairs) -> int:
    """The step of every destination slice when they all share one and every source slice is
    contiguous (the transpose of a window: each tap reads a run of the map and adds it to
    every ``step``-th unit), else 0."""
    if any((src.step or 1) != 1 for src, _ in pairs):
        return 0
    steps = {dst.step or 1 for _, dst in pairs}
    return steps.pop() if len(steps) == 1 else 0


@dataclass(frozen=True)
class Boxes:
    """How :func:`_phases` computes a window's transpose: the stride; for each residue of
    the result's index modulo the stride, its number of units, the first offset of the taps
    landing on it, their number where the offsets are consecutive (else 0) and the offsets;
    and the zeros to pad the map with before and after."""

    step: int
    residues: tuple[tuple[int, int, int, tuple[int, ...]], ...]
    low: int
    high: int

    @property
    def repeats(self) -> bool:
        """Every result unit ``q * step + r`` takes map unit ``q`` alone (the transpose of a
        window as wide as its stride, e.g. a patch embedding): the map repeated."""
        return (
            self.low == 0
            and len(self.residues) == self.step
            and all(found == (0,) for *_, found in self.residues)
        )


def _box_plan(n_g: int, n_res: int, pairs, step: int) -> Boxes:
    offsets: dict[int, list[int]] = {}
    for src, dst in pairs:
        start = dst.start or 0
        offsets.setdefault(start % step, []).append((src.start or 0) - start // step)
    residues = []
    low = high = 0
    for r in range(min(step, n_res)):
        length = len(range(r, n_res, step))
        found = tuple(sorted(offsets.get(r, [])))
        if found:
            low = max(low, -found[0])
            high = max(high, found[-1] + length - n_g)
        box = found == tuple(range(found[0], found[0] + len(found))) if found else False
        residues.append((length, found[0] if found else 0, len(found) if box else 0, found))
    return Boxes(step, tuple(residues), low, high)


def _halves(w: int) -> tuple[int, int]:
    """Widths whose boxes make a box of width ``w`` (powers of two first, so that boxes of
    neighbouring widths share them)."""
    a = 1 << (w.bit_length() - 1)
    return (a // 2, a // 2) if a == w else (a, w - a)


def _phases(g, axis, mode, n_res, plan: Boxes, out=None):
    """The transpose of a window with contiguous taps (a stride-``s`` convolution or pool),
    residue by residue of the result's index modulo ``s``: unit ``q * s + r`` sums the map
    at ``q + c`` over the offsets ``c`` of the taps landing on residue ``r``, which are
    consecutive (a box). The map is padded with zeros, so that a tap clipped at a border
    reads zeros; box sums of the widths needed are built by doubling (widths 3 and 4 share
    the sums of pairs), and the last addition of each residue writes into the result: a
    7-tap, stride-2 transpose costs three additions at the map's resolution instead of seven
    read-modify-writes of the result. The sums are those of the taps, in another order."""
    n_g = g.shape[axis]
    zero = _zero(mode)
    dtype = object if mode == "exact" else np.float64
    if plan.repeats and n_g * plan.step <= n_res:  # (a ceil-mode window may be cut short)
        return _repeat(g, axis, n_res, plan.step, zero, dtype, out)
    if out is None:
        shape = list(g.shape)
        shape[axis] = n_res
        out = np.empty(shape, dtype=dtype)
    low = plan.low
    n_p = low + n_g + plan.high
    if low or plan.high:
        pshape = list(g.shape)
        pshape[axis] = n_p
        padded = np.empty(pshape, dtype=dtype)
        _take(padded, axis, low, low + n_g)[...] = g
        _take(padded, axis, 0, low)[...] = zero
        _take(padded, axis, low + n_g, n_p)[...] = zero
    else:  # every tap reads inside the map (a block inside a larger result)
        padded = g
    add = np.logaddexp if mode == "log" else np.add
    boxes = {1: padded}  # width -> sums of that many consecutive units (length n_p - w + 1)

    def box(w: int) -> np.ndarray:
        return _box(boxes, w, axis, add)

    pre = (slice(None),) * axis
    for r, (length, first, width, found) in enumerate(plan.residues):
        view = out[(*pre, slice(r, None, plan.step))]
        start = low + first
        if not found:
            view[...] = zero
        elif width == 0:  # not a box: tap by tap
            view[...] = _take(padded, axis, start, start + length)
            for c in found[1:]:
                add(view, _take(padded, axis, low + c, low + c + length), out=view)
        elif width == 1:
            view[...] = _take(padded, axis, start, start + length)
        else:
            a, b = _halves(width)
            add(_take(box(a), axis, start, start + length),
                _take(box(b), axis, start + a, start + a + length), out=view)  # fmt: skip
    return out


def _repeat(g, axis, n_res, step, zero, dtype, out=None):
    """Each unit of ``g`` repeated ``step`` times along ``axis``, zeros past them up to
    ``n_res`` units (into ``out`` where given): one copy of the result. Along the last axis
    ``np.repeat`` writes it; along an outer axis each run of rows is one broadcast copy."""
    n = g.shape[axis] * step
    if out is None:
        if axis == g.ndim - 1 and n == n_res:
            return np.repeat(g, step, axis=axis).astype(dtype, copy=False)
        shape = list(g.shape)
        shape[axis] = n_res
        out = np.empty(shape, dtype=dtype)
    head = _take(out, axis, 0, n)
    if axis == g.ndim - 1:
        head[...] = np.repeat(g, step, axis=axis)
    else:
        st = head.strides
        runs = np.lib.stride_tricks.as_strided(
            head,
            shape=(*g.shape[:axis], g.shape[axis], step, *g.shape[axis + 1 :]),
            strides=(*st[:axis], st[axis] * step, st[axis], *st[axis + 1 :]),
            writeable=True,
        )  # a view of ``head`` in which unit q * step + j is runs[q, j]
        runs[...] = np.expand_dims(g, axis + 1)
    _take(out, axis, n, n_res)[...] = zero
    return out


def _box(boxes: dict[int, np.ndarray], w: int, axis: int, add: Any) -> np.ndarray:
    """Sums of ``w`` consecutive units along ``axis`` of ``boxes[1]``, from (and kept in)
    ``boxes``. A module function: a closure calling itself would hold its arrays in a
    reference cycle until the garbage collector runs."""
    if w not in boxes:
        a, b = _halves(w)
        n = boxes[1].shape[axis] - w + 1
        boxes[w] = add(
            _take(_box(boxes, a, axis, add), axis, 0, n),
            _take(_box(boxes, b, axis, add), axis, a, a + n),
        )
    return boxes[w]


def _take(a: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    return a[(slice(None),) * axis + (slice(lo, hi),)]


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
    """Output length of a convolution or pool: torch's rule, with its ceil_mode correction.

    ``span`` is the padded input less one effective kernel; a negative span has no window in
    floor mode, but in ceil mode it is rounded up like any other, so a window larger than the
    input still gives one unit where torch gives one (HF EfficientNet's ``AvgPool2d(1280,
    ceil_mode=True)`` on a 7x7 map). A last window that would start in the trailing padding is
    dropped, as torch drops it. Zero or less: no output.

    >>> window_length(7, 1280, 1280, 1, 0, 0, True), window_length(7, 1280, 1280, 1, 0, 0, False)
    (1, 0)
    >>> window_length(5, 2, 2, 1, 1, 1, True)  # 4 windows would end with one in the padding
    3
    """
    span = n + pb + pa - d * (k - 1) - 1
    if not ceil_mode:
        return max(0, span // s + 1)
    m = -(-span // s) + 1
    if (m - 1) * s >= n + pb:  # the last window must start inside the input or left padding
        m -= 1
    return max(0, m)


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


def adaptive_bounds(n: int, m: int) -> tuple[list[int], list[int]]:
    """Torch's adaptive windows from ``n`` to ``m`` units: output ``i`` reads inputs
    ``floor(i n / m)`` to ``ceil((i + 1) n / m) - 1`` (starts, and ends past the last)."""
    return [i * n // m for i in range(m)], [-(-(i + 1) * n // m) for i in range(m)]


@lru_cache(maxsize=4096)
def adaptive_op(n: int, m: int) -> AxisOp:
    """Operator of adaptive pooling from ``n`` to ``m`` units (:func:`adaptive_bounds`)."""
    if m <= 0:
        raise AxisError(f"adaptive pooling to {m} units")
    starts, ends = adaptive_bounds(n, m)
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
