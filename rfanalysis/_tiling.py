"""Tiled inference without seams: exact halos, alignment and windows (DESIGN section 11).

Everything here is a pure function of the network's plan; nothing runs a model.

Per spatial axis the network is planned as its 1-D axis network (every windowed layer acts on
each axis separately), and every output unit ``o`` gets the interval ``[lo(o), hi(o)]`` of
input pixels its value depends on in a whole-image run of length ``N``: windows follow their
taps (padding modes redirect taps at the image border, zero padding reads nothing),
transposed convolutions and interpolation follow their connections, merges take the union of
their operands. A window ``[a, a + L)`` whose origin ``a`` is a multiple of the alignment ``A``
(every map of the network then moves by whole units) computes, for each output unit whose
interval lies inside it, the unit's whole-image value: its computation reads no padding that
the whole run does not read, because a padded read at a tile edge stands for a unit of the
whole map that depends on pixels outside the window. Away from the image borders the
intervals repeat with period ``A`` (``m = A / jump`` output units), which gives the regular
interior window; at the borders the whole-image intervals decide, so the network's own padding
applies there exactly as in the whole run.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ._geometry import fields
from ._graph import Network
from ._ops.base import GLOBAL, Field, OpError, ReadsWholeMap, fmt_shape
from ._ops.merges import Merge, Mul
from ._ops.windows import LocallyConnected
from ._plan import (
    DEFAULT_NDIM,
    Plan,
    _plan_cached,
    axis_network,
    network_of,
    plan,
    positive_size,
)
from ._table import text as table_text

CONTEXTS = ("global", "local")

#: an empty interval (a unit that reads only zero padding, or a constant)
_EMPTY_LO = np.iinfo(np.int64).max // 4
_EMPTY_HI = -_EMPTY_LO


class TilingWarning(UserWarning):
    """Tiles were run on a network that is not exact (``context="local"``): units near tile
    edges differ from a whole-image run wherever layers read the whole map."""


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class AxisTiling:
    """The tiling of one spatial axis (see :class:`Tiling`)."""

    halo: tuple[int, int]
    alignment: int
    step: int
    core: int
    window: int
    window_units: int
    jump: Fraction

    @property
    def efficiency(self) -> float:
        """Kept output units per computed output unit of an interior window."""
        return self.core / self.window_units


@dataclass(frozen=True, eq=False)
class Tiling:
    """How to cut an image into windows whose stitched outputs equal a whole-image run.

    Per spatial axis (tuples): ``halo`` ``(before, after)`` input pixels around the span of a
    window's kept units, ``alignment`` (window origins are multiples of it), ``step`` (input
    pixels between window origins), ``core`` (output units kept per window), ``window`` (the
    input size of an interior window, at most ``tile``) and ``efficiency`` (kept / computed
    output units). ``exact`` says whether kept units equal the whole-image run; when not,
    ``global_layers`` names the layers that read beyond any halo and the halo is the one of
    the local field (context ``"local"``).
    """

    network: str
    tile: tuple[int, ...]
    context: str
    exact: bool
    global_layers: tuple[str, ...]
    axes: tuple[AxisTiling, ...]
    _source: Any = field(repr=False, compare=False)

    # -- per-axis views -------------------------------------------------------------------
    @property
    def halo(self) -> tuple[tuple[int, int], ...]:
        return tuple(a.halo for a in self.axes)

    @property
    def alignment(self) -> tuple[int, ...]:
        return tuple(a.alignment for a in self.axes)

    @property
    def step(self) -> tuple[int, ...]:
        return tuple(a.step for a in self.axes)

    @property
    def core(self) -> tuple[int, ...]:
        return tuple(a.core for a in self.axes)

    @property
    def window(self) -> tuple[int, ...]:
        return tuple(a.window for a in self.axes)

    @property
    def efficiency(self) -> float:
        """Kept / computed output units of an interior window (all axes)."""
        return math.prod(a.efficiency for a in self.axes)

    @property
    def output_jump(self) -> tuple[Fraction, ...]:
        """Input pixels per output unit (a fraction where the output is finer)."""
        return tuple(a.jump for a in self.axes)

    # -- windows --------------------------------------------------------------------------
    def windows(self, image_shape: Any) -> list[tuple[tuple[slice, ...], ...]]:
        """The windows that cover an image of ``image_shape`` (spatial axes).

        Returns
        -------
        list of ``(in_slices, out_slices, keep_slices)``
            Tuples of one ``slice`` per spatial axis: run the model on ``x[..., *in_slices]``,
            take ``tile_output[..., *keep_slices]`` and write it to
            ``whole_output[..., *out_slices]``. The ``out_slices`` cover the whole output
            exactly once, row-major over the windows.

        Notes
        -----
        Along each axis, the first window starts at pixel 0 and the last ends at the last
        pixel: the network's own padding applies there, so they keep every unit whose field
        they hold. Between them, interior windows keep ``core`` units each, ``step`` pixels
        apart. A window the model cannot run at its size is moved inward, never cut.

        Examples
        --------
        Two 3x3 convolutions (unit ``o`` reads pixels ``o - 2 .. o + 2``), tiles of 16 pixels
        and an image of 30: the first window keeps units 0-13, an interior one 14-25 (pixels
        12-27), the last 26-29 (pixels 24-29).

        >>> for w in tiling("conv3p1*2", (16,)).windows((30,)):
        ...     print([(s.start, s.stop) for (s,) in w])
        [(0, 16), (0, 14), (0, 14)]
        [(12, 28), (14, 26), (2, 14)]
        [(24, 30), (26, 30), (2, 6)]
        """
        shape = _image_shape(image_shape, len(self.axes))
        per_axis = [self._source.axis_windows(ax, n) for ax, n in enumerate(shape)]
        out = []
        for combo in _product(per_axis):
            out.append(tuple(tuple(w[i] for w in combo) for i in range(3)))  # type: ignore[misc]
        return out

    def map_overlap_args(self, image_shape: Any) -> dict[str, Any]:
        """The arguments of ``dask.array.map_overlap`` that run these windows, one per block.

        Returns a dict: ``chunks`` (input chunk sizes per spatial axis; a chunk is the span a
        window keeps, so chunk boundaries fall on the windows' spans), ``depth`` (per axis
        ``(before, after)``: the largest reach of a window beyond its chunk, the halo for
        interior windows), ``out_chunks`` (output chunk sizes per axis), ``boundary="none"``
        and ``trim=False`` (each block's function crops its own window's kept units), and
        ``windows`` (per axis, the windows in chunk order). Dask needs every depth to be at
        most the smallest chunk; ``fits`` says whether it is.
        """
        shape = _image_shape(image_shape, len(self.axes))
        chunks, depth, out_chunks, per_axis = [], [], [], []
        for ax, n in enumerate(shape):
            wins = self._source.axis_windows(ax, n)
            whole = self._source.whole(ax, n)
            bounds = [0]
            for (prev_in, _, _), (cur_in, cur_out, _) in itertools.pairwise(wins):
                start = _span_start(whole, cur_out.start, self.axes[ax].jump)
                bounds.append(min(max(start, bounds[-1] + 1, cur_in.start), prev_in.stop))
            bounds.append(n)
            before = max(b - w[0].start for b, w in zip(bounds, wins))
            after = max(w[0].stop - b for b, w in zip(bounds[1:], wins))
            chunks.append(tuple(b - a for a, b in itertools.pairwise(bounds)))
            depth.append((max(before, 0), max(after, 0)))
            out_chunks.append(tuple(w[1].stop - w[1].start for w in wins))
            per_axis.append(wins)
        fits = all(max(d) <= min(c) for d, c in zip(depth, chunks))
        return {
            "chunks": tuple(chunks),
            "depth": tuple(depth),
            "out_chunks": tuple(out_chunks),
            "boundary": "none",
            "trim": False,
            "windows": tuple(per_axis),
            "fits": fits,
        }

    def output_shape(self, image_shape: Any) -> tuple[int, ...]:
        """The spatial shape of the whole-image output."""
        shape = _image_shape(image_shape, len(self.axes))
        return tuple(self._source.whole(ax, n).n_out for ax, n in enumerate(shape))

    # -- output ---------------------------------------------------------------------------
    def summary(self) -> str:
        if self.exact:
            return "exact: every kept unit equals the whole-image output"
        return (
            "not exact: " + "; ".join(self.global_layers) + " (halo of the local field; "
            "units near tile edges differ from the whole-image output)"
        )

    def table(self, image_shape: Any = None) -> str:
        """The printed table; with ``image_shape``, also the number of windows it takes."""
        rows = [
            [
                str(i),
                f"{a.halo[0]}+{a.halo[1]}",
                str(a.alignment),
                str(a.step),
                str(a.core),
                str(a.window),
                f"{a.efficiency:.1%}",
            ]
            for i, a in enumerate(self.axes)
        ]
        header = ["axis", "halo", "align", "step", "core", "window", "efficiency"]
        tile = fmt_shape(self.tile)
        lines = [
            f"{self.network}, tile {tile}" + (", context local" if self.context == "local" else ""),
            table_text(header, rows, left=1),
            f"efficiency {self.efficiency:.1%}; {self.summary()}",
        ]
        if image_shape is not None:
            shape = _image_shape(image_shape, len(self.axes))
            n = len(self.windows(shape))
            lines.append(
                f"image {fmt_shape(shape)}: {n:,} window{'s' if n != 1 else ''}, output "
                f"{fmt_shape(self.output_shape(shape))}"
            )
        lines.append(
            "halo: input pixels before+after the span a window keeps; align: window origins "
            "are multiples of it; step: input pixels between origins; core: output units kept "
            "per window; window: input size of an interior window."
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(str(self))

    def to_dict(self, image_shape: Any = None) -> dict[str, Any]:
        """Plain data (ints, floats, strings, lists); with ``image_shape``, the windows'
        count and the output shape too."""
        out: dict[str, Any] = {
            "network": self.network,
            "tile": list(self.tile),
            "context": self.context,
            "exact": self.exact,
            "global_layers": list(self.global_layers),
            "halo": [list(h) for h in self.halo],
            "alignment": list(self.alignment),
            "step": list(self.step),
            "core": list(self.core),
            "window": list(self.window),
            "efficiency": self.efficiency,
            "axis_efficiency": [a.efficiency for a in self.axes],
            "output_jump": [float(j) if j.denominator != 1 else int(j) for j in self.output_jump],
        }
        if image_shape is not None:
            shape = _image_shape(image_shape, len(self.axes))
            out["image_shape"] = list(shape)
            out["windows"] = len(self.windows(shape))
            out["output_shape"] = list(self.output_shape(shape))
        return out


def _product(per_axis: list[list[Any]]) -> list[tuple[Any, ...]]:
    return list(itertools.product(*per_axis))


# --------------------------------------------------------------------------- validation
def sizes(value: Any, what: str, ndim: int | None) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"`{what}` must not be empty")
        items = list(value)
    else:
        items = [value] * (ndim or 1)
    out = [positive_size(v, what) for v in items]
    if ndim is not None and len(out) != ndim:
        raise ValueError(f"`{what}` has {len(out)} axes; the tiling has {ndim}: got {value!r}")
    return tuple(out)


def _image_shape(value: Any, ndim: int) -> tuple[int, ...]:
    return sizes(value, "image_shape", ndim)


# --------------------------------------------------------------------------- 1-D analysis
def _intervals(p: Plan, context: str) -> tuple[np.ndarray, np.ndarray]:
    """Per output unit of a 1-D plan, the first and last input pixel it depends on."""
    n = p.steps[0].out_shape[0]  # type: ignore[index]
    lo: list[np.ndarray] = [np.arange(n, dtype=np.int64)]
    hi: list[np.ndarray] = [np.arange(n, dtype=np.int64)]
    for step in p.ops:
        layer = step.layer
        assert step.out_shape is not None
        m = step.out_shape[0]
        ins = list(step.inputs)
        if isinstance(layer, Merge):
            keep = list(range(len(ins)))
            if context == "local" and isinstance(layer, Mul):
                gates = layer.gate_inputs(step)
                keep = [i for i in keep if i not in gates]
            a = np.full(m, _EMPTY_LO)
            b = np.full(m, _EMPTY_HI)
            for i in keep:
                a = np.minimum(a, np.broadcast_to(lo[ins[i]], (m,)))
                b = np.maximum(b, np.broadcast_to(hi[ins[i]], (m,)))
        elif hasattr(layer, "connections"):
            out, _tap, _pos, src = layer.connections(step, 0)
            ok = src >= 0
            a = np.full(m, _EMPTY_LO)
            b = np.full(m, _EMPTY_HI)
            np.minimum.at(a, out[ok], lo[ins[0]][src[ok]])
            np.maximum.at(b, out[ok], hi[ins[0]][src[ok]])
        else:  # any other operation: its support rule, one input unit at a time
            reach = layer.local_reach if context == "local" else layer.reach
            a = np.full(m, _EMPTY_LO)
            b = np.full(m, _EMPTY_HI)
            shapes = [tuple(s or ()) for s in step.in_shapes]
            for k, j in enumerate(ins):
                for u in range(shapes[k][0]):
                    probe = tuple(np.zeros(s, dtype=np.bool_) for s in shapes)
                    probe[k][u] = True
                    hit = np.asarray(reach(step, probe), dtype=bool).reshape(m)
                    a[hit] = np.minimum(a[hit], lo[j][u])
                    b[hit] = np.maximum(b[hit], hi[j][u])
        lo.append(a)
        hi.append(b)
    return lo[-1], hi[-1]


def _global_reason(step: Any) -> str | None:
    """Why an operation's units are not the same in every window (None: they are)."""
    layer = step.layer
    if isinstance(layer, Merge):
        if step.out_shape is not None and any(
            s is not None and math.prod(s) == 1 < math.prod(step.out_shape) for s in step.in_shapes
        ):
            return "broadcasts an operand of one unit over the map"
        return None
    if isinstance(layer, ReadsWholeMap):
        return "reads the whole map"
    if isinstance(layer, LocallyConnected):
        return "has weights that depend on the position"
    if layer.op_name == "apool":
        return "adaptive pooling: its windows depend on the map's size"
    if layer.op_name == "interp" and (layer.size is not None or layer.align_corners):
        return "interpolation whose grid depends on the map's size"
    if layer.op_name == "attn":
        if layer.window_size is None:
            return "global attention reads the whole map"
        if _attention_window(step) is None:
            return "shifted-window attention: its mask depends on where the map ends"
        return None
    if not hasattr(layer, "connections"):
        return f"operation {layer.op_name!r} is not a window of fixed size"
    return None


def _attention_window(step: Any) -> tuple[int, ...] | None:
    """The window of unshifted windowed attention (its partition starts at the map's first
    unit, so windows whose origins are multiples of it see the same partition)."""
    layer = step.layer
    if layer.op_name != "attn" or layer.window_size is None or any(layer.shift_size):
        return None
    return tuple(layer.window_size)


class _Source:
    """The network behind a :class:`Tiling`: 1-D plans per axis and length, cached."""

    def __init__(self, network: Network, ndim: int, context: str, tile: tuple[int, ...]):
        self.network = network
        self.ndim = ndim
        self.context = context
        self.tile = tile
        self.axis_nets = []
        for axis in range(ndim):
            try:
                self.axis_nets.append(axis_network(network, axis))
            except NotImplementedError as exc:
                raise ValueError(f"cannot tile {network.display_name!r}: {exc}") from None
        self._plans: dict[tuple[int, int], Plan | None] = {}
        self._whole: dict[tuple[int, int], _Whole] = {}
        self.axes: tuple[AxisTiling, ...] = ()  # the interior windows, once computed

    def plan1(self, axis: int, n: int) -> Plan | None:
        key = (axis, n)
        if key not in self._plans:
            try:
                self._plans[key] = _plan_cached(self.axis_nets[axis], (n,), 1)
            except (OpError, ValueError):
                self._plans[key] = None
        return self._plans[key]

    def accepts(self, axis: int, n: int) -> bool:
        return self.plan1(axis, n) is not None

    def whole(self, axis: int, n: int) -> _Whole:
        key = (axis, n)
        if key not in self._whole:
            p = self.plan1(axis, n)
            if p is None:
                raise ValueError(
                    f"the network cannot run an image of size {n} along axis {axis}: "
                    f"{_why(self.axis_nets[axis], n)}"
                )
            self._whole[key] = _Whole(p, self.context)
        return self._whole[key]

    # -- the regular interior window --------------------------------------------------------
    def interior(self, axis: int, alignment: int, jump: Fraction, rf: int) -> AxisTiling:
        tile = self.tile[axis]
        m = int(alignment / jump)
        margin = alignment * (rf // alignment + 2)
        n_probe = self._accepted_at_least(axis, 2 * margin + tile + rf + 4 * alignment)
        w = self.whole(axis, n_probe)
        # first unit of a block (a multiple of m) whose field lies clear of the border
        candidates = np.nonzero((w.lo >= margin) & (np.arange(w.n_out) % m == 0))[0]
        if candidates.size == 0:  # pragma: no cover - the probe is larger than the field
            raise ValueError(f"axis {axis}: no interior unit found")
        o_s = int(candidates[0])
        a = int(w.lo[o_s]) // alignment * alignment
        off = Fraction(a) / jump
        assert off.denominator == 1

        def need(c: int, limit: int = tile) -> int | None:
            return self._need(axis, w, o_s, a, o_s - int(off), c, limit)

        if need(m) is None:
            smallest = need(m, 1 << 40)
            raise ValueError(
                f"`tile` {tile} along axis {axis} is smaller than the receptive field needs: "
                f"the smallest tile that keeps one output step is {smallest}"
            )
        lo_c, hi_c = 1, max(1, tile // max(1, int(m * jump)) + 1)  # blocks of m units
        while hi_c * m > w.n_out - o_s:
            hi_c -= 1
        # largest number of blocks whose window fits in the tile (need is monotone)
        best = 1
        while lo_c <= hi_c:
            mid = (lo_c + hi_c) // 2
            if need(mid * m) is not None:
                best, lo_c = mid, mid + 1
            else:
                hi_c = mid - 1
        core = best * m
        length = need(core)
        assert length is not None
        step = int(core * jump)
        units = self.plan1(axis, length).output_shape[0]  # type: ignore[union-attr,index]
        before = _span_start(w, o_s, jump) - a
        before = min(max(before, 0), length - step)
        return AxisTiling(
            (before, length - step - before), alignment, step, core, length, units, jump
        )

    def _need(
        self, axis: int, w: _Whole, o_s: int, a: int, k_s: int, c: int, limit: int
    ) -> int | None:
        """The smallest runnable window from ``a`` (at most ``limit``) that holds the fields
        of whole-image units ``o_s .. o_s + c - 1`` and computes them (window units
        ``k_s .. k_s + c - 1``); None if there is none."""
        length = int(w.hi[o_s : o_s + c].max()) + 1 - a
        while length <= limit:
            p = self.plan1(axis, length)
            if p is not None and p.output_shape[0] >= k_s + c:  # type: ignore[index]
                return length
            length += 1
        return None

    def _accepted_at_least(self, axis: int, n: int) -> int:
        for k in range(n, 4 * n + 64):
            if self.accepts(axis, k):
                return k
        raise ValueError(
            f"the network accepts no input near {n} along axis {axis}: "
            f"{_why(self.axis_nets[axis], n)}"
        )

    # -- windows of an image ---------------------------------------------------------------
    def axis_windows(self, axis: int, n: int) -> list[tuple[slice, slice, slice]]:
        """Windows along one axis: one from the first pixel and one to the last (the
        network's own padding applies there, so they keep every unit whose field they hold),
        and interior windows ``step`` apart between them."""
        t: AxisTiling = self.axes[axis]
        w = self.whole(axis, n)
        whole = (slice(0, n), slice(0, w.n_out), slice(0, w.n_out))
        if n <= t.window or (n <= self.tile[axis] and self.accepts(axis, n)):
            return [whole]
        A, m = t.alignment, int(t.alignment / t.jump)
        # the first window: as long as an interior one, from the border
        first = self._border(axis, w, 0, t.window)
        o1 = int(np.argmin(_inside(w, 0, first))) if not _inside(w, 0, first).all() else w.n_out
        o1 = o1 // m * m
        # the last window: ends at the border, its origin moved inward to a runnable size
        a_end = max(0, -(-(n - t.window) // A) * A)
        while a_end > 0 and not self._runnable_end(axis, w, a_end):
            a_end -= A
        ok = _inside(w, a_end, n - a_end)
        o2 = w.n_out - int(np.argmin(ok[::-1])) if not ok.all() else 0
        if a_end == 0 and o2 == 0:  # the last window is the whole image
            return [whole]
        # the last window keeps fewer units rather than leave a short interior block
        o2 = min(o1 + -(-max(o2 - o1, 0) // t.core) * t.core, w.n_out)
        out = [(0, first, 0, o1)] if o1 > 0 else []
        for start in range(o1, o2, t.core):
            stop = min(start + t.core, o2)
            lo, hi = w.lo[start:stop], w.hi[start:stop]
            filled = lo <= hi
            low = int(lo[filled].min()) if filled.any() else int(start * t.jump)
            end = int(hi[filled].max()) + 1 if filled.any() else low + 1
            a = max(0, low) // A * A
            found = self._fit(axis, w, a, max(end - a, 1), start, stop, t.window)
            if found is None:
                raise ValueError(
                    f"no runnable window keeps output units {start}..{stop - 1} of an image of "
                    f"{n} along axis {axis}"
                )
            out.append((found[0], found[1], start, stop))
        last = max(o1, o2)
        if last < w.n_out:  # the last window: as short as its units allow, then runnable
            lo = w.lo[last:][w.lo[last:] <= w.hi[last:]]
            a_end = max(0, int(lo.min()) if lo.size else a_end) // A * A
            while a_end > 0 and not self._runnable_end(axis, w, a_end):
                a_end -= A
        out.append((a_end, n - a_end, last, w.n_out))
        result = []
        for a, length, start, stop in out:
            if start >= stop:
                continue
            if not self._valid(axis, w, a, length, start, stop, t.jump):  # pragma: no cover
                raise ValueError(
                    f"internal error: window {a}..{a + length} does not hold output units "
                    f"{start}..{stop - 1} along axis {axis}"
                )
            off = int(Fraction(a) / t.jump)
            result.append(
                (slice(a, a + length), slice(start, stop), slice(start - off, stop - off))
            )
        return result

    def _border(self, axis: int, w: _Whole, a: int, length: int) -> int:
        """A runnable length near ``length`` for a window from pixel 0."""
        for k in range(length, 0, -1):
            if self._valid_size(axis, w, 0, k):
                return k
        raise ValueError(f"no runnable window starts at the border along axis {axis}")

    def _runnable_end(self, axis: int, w: _Whole, a: int) -> bool:
        return self._valid_size(axis, w, a, w.n - a)

    def _valid_size(self, axis: int, w: _Whole, a: int, length: int) -> bool:
        p = self.plan1(axis, length)
        return p is not None and _same_structure(w, p, a, a + length == w.n)

    def _fit(
        self, axis: int, w: _Whole, a: int, need: int, start: int, stop: int, window: int
    ) -> tuple[int, int] | None:
        """A runnable window ``(origin, length)`` from ``a`` that holds units start..stop-1:
        the interior window's length where it fits, else one that ends at the border (moved
        inward, origin by the alignment, until the model accepts its size)."""
        t = self.axes[axis]
        n = w.n
        first = [window] if a + window <= n and window >= need else []
        for length in itertools.chain(first, range(need, n - a + 1)):
            if length > max(window, self.tile[axis]) and a + length < n:
                break
            if self._valid(axis, w, a, length, start, stop, t.jump):
                return a, length
        while a >= 0:  # a window ending at the image border, moved inward
            if self._valid(axis, w, a, n - a, start, stop, t.jump):
                return a, n - a
            a -= t.alignment
        return None

    def _valid(
        self, axis: int, w: _Whole, a: int, length: int, start: int, stop: int, jump: Fraction
    ) -> bool:
        if a + length > w.n:
            return False
        p = self.plan1(axis, length)
        if p is None:
            return False
        off = Fraction(a) / jump
        if off.denominator != 1:
            return False
        if stop - int(off) > p.output_shape[0] or start - int(off) < 0:  # type: ignore[index]
            return False
        lo, hi = w.lo[start:stop], w.hi[start:stop]
        filled = lo <= hi
        if (lo[filled] < a).any() or (hi[filled] >= a + length).any():
            return False
        return _same_structure(w, p, a, a + length == w.n)


class _Whole:
    """A 1-D whole-image plan with every output unit's input interval."""

    def __init__(self, p: Plan, context: str):
        self.plan = p
        self.n = p.input_shape[0]  # type: ignore[index]
        self.n_out = p.output_shape[0]  # type: ignore[index]
        self.lo, self.hi = _intervals(p, context)
        per_step, _ = fields(p, "local")
        self.jumps = [f[0].jump if isinstance(f[0], Field) else None for f in per_step]
        self.starts = [f[0].start if isinstance(f[0], Field) else None for f in per_step]


def _inside(w: _Whole, a: int, length: int) -> np.ndarray:
    """Which whole-image output units depend only on pixels ``a .. a + length - 1``."""
    return ((w.lo >= a) & (w.hi < a + length)) | (w.lo > w.hi)


def _same_structure(w: _Whole, p: Plan, a: int, at_end: bool) -> bool:
    """Every map of the window's plan sits on the whole plan's grid: the same padding, and
    unit ``k`` of a map is unit ``k + a / jump`` of the whole map (the same units up to the
    border for a window that ends there)."""
    for sw, st in zip(w.plan.ops, p.ops):
        if getattr(sw.data, "pads", None) != getattr(st.data, "pads", None):
            return False
    for sw, st, j in zip(w.plan.steps, p.steps, w.jumps):
        if j is None or sw.out_shape is None or st.out_shape is None:
            continue
        off = Fraction(a) / j
        if off.denominator != 1:
            return False
        total = int(off) + st.out_shape[0]
        if total > sw.out_shape[0] or (at_end and total != sw.out_shape[0]):
            return False
    return True


def _span_start(w: _Whole, o: int, jump: Fraction) -> int:
    """First input pixel of the span unit ``o`` keeps: its centre minus half a jump."""
    c0 = w.starts[-1]
    if c0 is None:
        return int(w.lo[o])
    return math.ceil(c0 + o * jump - jump / 2)


def _why(net1: Network, n: int) -> str:
    try:
        _plan_cached(net1, (n,), 1)
    except (OpError, ValueError) as exc:
        return str(exc)
    return "it does"  # pragma: no cover


def _lcm_of_numerators(jumps: list[Any]) -> int:
    out = 1
    for j in jumps:
        if j is not None:
            out = math.lcm(out, Fraction(j).numerator)
    return out


# --------------------------------------------------------------------------- entry point
def tiling(net: Any, tile: Any, *, input_shape: Any = None, context: str | None = None) -> Tiling:
    """Halo, alignment and windows for running ``net`` tile by tile without seams.

    Parameters
    ----------
    net : Network, spec, zoo name, spec file or torch.nn.Module
        A torch module is traced at ``input_shape`` (default: the tile).
    tile : int or tuple of int
        The largest input window, in pixels per spatial axis, that can be run at once.
    input_shape : int or tuple of int, optional
        The size at which to trace a torch module.
    context : {None, "global", "local"}
        None: exact where the network allows it, else the halo of the local field with
        ``exact=False``; "local": the local field's halo (gates, norm statistics and global
        attention dropped), no exactness claim where such layers exist; "global": refuse a
        network whose layers read the whole map.

    Returns
    -------
    Tiling
        Per axis ``halo``, ``alignment``, ``step``, ``core``, ``window``; ``efficiency``,
        ``exact`` and ``global_layers``; :meth:`Tiling.windows` lists the windows of an image.

    Notes
    -----
    ``alignment`` is the least common multiple of the cumulative strides (jumps) of every map
    of the network (the numerators, where upsampling makes them fractions): shifting the input
    by it moves every map by whole units, so a window's maps lie on the whole image's grid.
    ``core`` is a multiple of ``alignment / output jump``, so that consecutive windows are
    ``step = core * output jump`` pixels apart. The span a window keeps starts half a jump
    before the centre of its first kept unit (rounded up); ``halo[0]`` is the distance from
    the window's origin to it, ``halo[1]`` the rest of the window after the span. Dependence
    intervals are exact per unit (padding modes, dilation, output phases of transposed
    convolutions), so the halo is the smallest that holds every kept unit's field.

    Examples
    --------
    >>> t = tiling("conv3p1*4", 64)
    >>> t.halo[0], t.alignment[0], t.step[0], t.core[0]
    ((4, 4), 1, 56, 56)
    >>> t.exact
    True
    """
    if context is not None and context not in CONTEXTS:
        raise ValueError(f"`context` must be None, 'global' or 'local'; got {context!r}")
    ndim_hint = len(tile) if isinstance(tile, (tuple, list)) else None
    tile_t = sizes(tile, "tile", ndim_hint)
    if input_shape is not None:
        p = plan(net, input_shape)
    else:  # sizes are the windows' business: plan the network's structure only
        network = network_of(net)
        ndim = network.ndim or ndim_hint or DEFAULT_NDIM
        p = _plan_cached(network, None, ndim)
    if p.flat:
        raise ValueError(
            f"{p.network.display_name!r}: the output has no spatial layout (a dense layer); "
            "tiling needs a map"
        )
    if len(tile_t) == 1 and p.ndim > 1 and not isinstance(tile, (tuple, list)):
        tile_t = tile_t * p.ndim
    if len(tile_t) != p.ndim:
        raise ValueError(f"`tile` has {len(tile_t)} axes; the network has {p.ndim}: got {tile!r}")
    reasons = [(s.where, r) for s in p.ops if (r := _global_reason(s)) is not None]
    named = tuple(f"{where} {why}" for where, why in reasons)
    if reasons and context == "global":
        raise ValueError(
            f"{named[0]}: its units depend on the whole image, so no halo makes tiles exact; "
            "use context='local' for the halo of the local field"
        )
    used = "local" if reasons else "global"
    source = _Source(p.network, p.ndim, used, tile_t)
    per_step, _ = fields(p, "local")
    axes = []
    for axis in range(p.ndim):
        jumps = [f[axis].jump for f in per_step if isinstance(f[axis], Field)]
        for step in p.ops:  # attention windows stay on the whole image's partition
            window = _attention_window(step)
            field_in = per_step[step.inputs[0]][axis]
            if window is not None and isinstance(field_in, Field):
                jumps.append(window[axis] * field_in.jump)
        out_field = per_step[-1][axis]
        if not isinstance(out_field, Field) or out_field is GLOBAL:
            raise ValueError(
                f"{p.network.display_name!r}: the output's field along axis {axis} is the "
                "whole input; there is nothing to tile"
            )
        rf = max(math.ceil(f[axis].rf) for f in per_step if isinstance(f[axis], Field))
        alignment = _lcm_of_numerators(jumps)
        axes.append(source.interior(axis, alignment, out_field.jump, rf))
    source.axes = tuple(axes)
    return Tiling(
        p.network.display_name,
        tile_t,
        context or ("local" if reasons else "global"),
        not reasons,
        named,
        tuple(axes),
        source,
    )


# --------------------------------------------------------------------------- naive tiling
def overlap_windows(
    image_shape: tuple[int, ...], tile: tuple[int, ...], overlap: float, jump: tuple[Fraction, ...]
) -> list[tuple[tuple[slice, ...], tuple[int, ...]]]:
    """The common practice, for comparison: windows of ``tile`` pixels overlapping by the
    fraction ``overlap`` (the last moved inward to end at the border), each placed at output
    offset ``origin / jump`` rounded down. Returns ``(in_slices, out_offset)`` pairs."""
    per_axis = []
    for n, t, j in zip(image_shape, tile, jump):
        t = min(t, n)
        stride = max(1, round(t * (1 - overlap)))
        origins = list(range(0, max(n - t, 0) + 1, stride))
        if origins[-1] + t < n:
            origins.append(n - t)
        per_axis.append([(slice(a, a + t), math.floor(Fraction(a) / j)) for a in origins])
    return [
        (tuple(s for s, _ in combo), tuple(o for _, o in combo)) for combo in _product(per_axis)
    ]
