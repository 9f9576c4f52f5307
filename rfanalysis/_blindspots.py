"""Blind spots: pixels no output sees, padding the stride arithmetic uses unevenly, the mirror
asymmetry this leaves in the coverage map, and nearby input sizes without these problems.

A windowed layer (convolution, locally connected layer or pool) with kernel ``k``, stride
``s``, dilation ``d`` and padding ``(p_before, p_after)`` on an axis of ``n`` units has
``m = floor((n + p_before + p_after - d (k - 1) - 1) / s) + 1`` windows (torch's ceil rule for
``ceil_mode`` pools); window ``o`` reads padded positions ``o s + t d`` (``0 <= t < k``). The
last window ends at padded position ``(m - 1) s + d (k - 1)``, so the padding the windows
actually use is::

    before = p_before
    after  = (m - 1) s + d (k - 1) + 1 - p_before - n      (effective trailing padding)

and ``dropped = n + p_before + p_after - ((m - 1) s + d (k - 1) + 1)`` units at the end of the
padded input are never read (``min(n, max(0, -after))`` of them input units, the rest padding).
A layer pads *unevenly* on an axis when ``after != before``: the stride arithmetic left the
last window short (torch's symmetric padding on an even input to a stride-2 layer), TF's
``"same"`` rule put the odd pixel at the end, the padding was given asymmetrically, or a
``ceil_mode`` pool's last window runs past the input. Transposed convolutions, upsampling and
dense layers are not windowed and are not checked here; what they do shows in the coverage map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from ._engine import CountOverflowError, coverage
from ._geometry import geometry
from ._graph import Network
from ._ops.base import fmt_shape
from ._plan import Plan, axis_network, plan

#: the smallest search distance; the default is ``max(MIN_SEARCH, 4 * jump)`` per axis
MIN_SEARCH = 64

_NOUNS = {
    1: (("position", "positions"),),
    2: (("row", "rows"), ("column", "columns")),
    3: (("slice", "slices"), ("row", "rows"), ("column", "columns")),
}
_SIDES = {
    1: ("start/end",),
    2: ("top/bottom", "left/right"),
    3: ("front/back", "top/bottom", "left/right"),
}


def _nouns(ndim: int) -> tuple[tuple[str, str], ...]:
    return _NOUNS.get(ndim) or tuple((f"axis-{a} index", f"axis-{a} indices") for a in range(ndim))


def _joined_nouns(axes: Sequence[int], ndim: int) -> tuple[str, str]:
    """``(0, 1)`` in 2-D -> ``("row and column", "rows and columns")``."""
    nouns = _nouns(ndim)
    return _join([nouns[a][0] for a in axes]), _join([nouns[a][1] for a in axes])


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --------------------------------------------------------------------------- result types
@dataclass(frozen=True)
class UnevenPadding:
    """One windowed layer and axis whose windows use the padding unevenly.

    Attributes
    ----------
    path, layer : str
        Position in the network (``"5.body.2"``) and the layer's label (``"conv3s2p1"``).
    axis : int
        Spatial axis (0 = rows in 2-D).
    input_size, output_size : int
        Units along this axis before and after the layer.
    kernel_size, stride, dilation : int
    padding : (int, int)
        Resolved padding ``(before, after)``.
    effective_padding : (int, int)
        Padding the windows use: ``(before, end of the last window - before - n)``; the second
        value is negative when input units are dropped, larger than ``after`` when a
        ``ceil_mode`` window runs past the padded input.
    dropped : int
        Units at the end of the padded input that no window reads.
    dropped_input : int
        How many of them are input units (the rest is padding).
    size_dependent : bool
        False for a stride-1 layer: its padding and windows are the same at every input size,
        so no input size evens them out (the size search ignores such layers).
    """

    path: str
    layer: str
    axis: int
    input_size: int
    output_size: int
    kernel_size: int
    stride: int
    dilation: int
    padding: tuple[int, int]
    effective_padding: tuple[int, int]
    dropped: int
    dropped_input: int
    size_dependent: bool

    @property
    def where(self) -> str:
        """``"layer 5.body.2 (conv3s2p1)"``."""
        return f"layer {self.path} ({self.layer})"

    def _key(self) -> tuple:
        return (
            self.path,
            self.input_size,
            self.output_size,
            self.padding,
            self.effective_padding,
            self.dropped,
            self.dropped_input,
        )

    def _describe(self, axes: Sequence[int], ndim: int) -> str:
        one, many = _joined_nouns(axes, ndim)
        (pb, pa), (eb, ea) = self.padding, self.effective_padding
        text = (
            f"{self.where}, {many}: input {self.input_size} -> {self.output_size}, "
            f"padding {pb}+{pa}, effective {eb}+{ea if ea >= 0 else f'({ea})'}"
        )
        inp, pad = self.dropped_input, self.dropped - self.dropped_input
        counts = [(q, what) for q, what in ((inp, "input"), (pad, "padding")) if q]
        parts = [
            f"{what} {one}"
            if q == 1 and len(counts) == 1
            else f"{q} {what} {one if q == 1 else many}"
            for q, what in counts
        ]
        if parts:
            text += f"; the last {' and '.join(parts)} never read"
        elif ea > pa:
            text += f"; the last window runs {ea - pa} past the padded input"
        if not self.size_dependent:
            text += " (at every input size)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "layer": self.layer,
            "axis": self.axis,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "dilation": self.dilation,
            "padding": list(self.padding),
            "effective_padding": list(self.effective_padding),
            "dropped": self.dropped,
            "dropped_input": self.dropped_input,
            "size_dependent": self.size_dependent,
        }


@dataclass(frozen=True)
class SizeSearch:
    """The nearest clean input sizes along one axis (see :func:`blind_spots`).

    ``below`` / ``above`` are the nearest sizes strictly below / above ``size``, within
    ``limit`` of it, that are clean along this axis; None where there is none in that range.
    """

    axis: int
    size: int
    below: int | None
    above: int | None
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "size": self.size,
            "below": self.below,
            "above": self.above,
            "limit": self.limit,
        }


@dataclass(frozen=True, eq=False)
class BlindSpotReport:
    """What :func:`blind_spots` found. Prints as a short text; :meth:`to_dict` gives plain data.

    Attributes
    ----------
    network : str
    input_shape : tuple of int
    zero_mask : ndarray of bool, shape ``input_shape``
        True where the pixel has no route to any output unit (read-only).
    zero_lines : tuple of tuple of int
        Per axis, the indices whose whole hyperplane (row, column, ...) has zero coverage.
    zero_description : str
        ``"none"`` or e.g. ``"28 of 64 pixels (43.75%): last 2 rows and columns (6-7)"``.
    uneven : tuple of UnevenPadding
        Every windowed layer and axis with uneven padding, in data-flow order.
    asymmetry : tuple of float
        Per axis, ``sum|C - flip(C)| / (2 sum C)`` for the coverage map ``C`` mirrored along
        that axis: 0 for a mirror-symmetric map, at most 1 (the total-variation distance
        between the normalised map and its mirror image).
    sizes : tuple of SizeSearch
        Per axis, the nearest clean sizes below and above.
    nearest_below, nearest_above : tuple of int or None
        The per-axis sizes combined into input shapes, confirmed clean as a whole; None where an
        axis has no clean size in range or the combination is not clean (``notes`` says why).
    notes : tuple of str
    """

    network: str
    input_shape: tuple[int, ...]
    zero_mask: np.ndarray
    zero_lines: tuple[tuple[int, ...], ...]
    zero_description: str
    uneven: tuple[UnevenPadding, ...]
    asymmetry: tuple[float, ...]
    sizes: tuple[SizeSearch, ...]
    nearest_below: tuple[int, ...] | None
    nearest_above: tuple[int, ...] | None
    notes: tuple[str, ...] = ()

    @property
    def zero_count(self) -> int:
        """Number of pixels with zero coverage."""
        return int(np.count_nonzero(self.zero_mask))

    @property
    def zero_fraction(self) -> float:
        """Fraction of the input's pixels with zero coverage."""
        return self.zero_count / self.zero_mask.size

    @property
    def zero_pixels(self) -> np.ndarray:
        """Coordinates of the zero-coverage pixels, shape ``(zero_count, ndim)``, in C order."""
        return np.argwhere(self.zero_mask)

    @property
    def clean(self) -> bool:
        """No zero-coverage pixel and no uneven padding that some input size could avoid."""
        return self.zero_count == 0 and not any(u.size_dependent for u in self.uneven)

    def __str__(self) -> str:
        ndim = len(self.input_shape)
        out = [f"blind spots of {self.network} at input {_fmt(self.input_shape)}"]
        out.append(f"zero coverage: {self.zero_description}")
        groups: dict[tuple, tuple[UnevenPadding, list[int]]] = {}
        for u in self.uneven:
            groups.setdefault(u._key(), (u, []))[1].append(u.axis)
        layers = len({u.path for u in self.uneven})
        out.append(
            f"uneven padding: {layers} layer{'s' if layers > 1 else ''}"
            if layers
            else "uneven padding: none"
        )
        shown = list(groups.values())
        for u, axes in shown[:12]:
            out.append("  " + u._describe(axes, ndim))
        if len(shown) > 12:
            out.append(f"  ... and {len(shown) - 12} more (to_dict() lists all)")
        sides = _SIDES.get(ndim) or tuple(f"axis {a}" for a in range(ndim))
        out.append(
            "asymmetry (0 = mirror-symmetric): "
            + ", ".join(f"{side} {value:.4g}" for side, value in zip(sides, self.asymmetry))
        )
        if self.clean:
            out.append("input size: clean (no blind pixel, no uneven padding a size could avoid)")
        elif self.sizes:
            out.append("nearest clean input sizes: " + self._sizes_text())
        out.extend(self.notes)
        return "\n".join(out)

    def _sizes_text(self) -> str:
        ndim = len(self.input_shape)

        def side(value: int | None, where: str, limit: int) -> str:
            return f"{value} {where}" if value is not None else f"none within {limit} {where}"

        texts = [
            f"{side(s.below, 'below', s.limit)}, {side(s.above, 'above', s.limit)}"
            for s in self.sizes
        ]
        if ndim == 1:
            return texts[0]
        if len({(s.size, t) for s, t in zip(self.sizes, texts)}) == 1:
            return f"{texts[0]} ({_joined_nouns(range(ndim), ndim)[1]})"
        nouns = _nouns(ndim)
        return "; ".join(f"{nouns[s.axis][1]} {t}" for s, t in zip(self.sizes, texts))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(str(self))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable). ``zero_coverage.lines`` (per axis) and
        ``zero_coverage.pixels`` (coordinates on no listed line) together give every
        zero-coverage pixel."""
        return {
            "network": self.network,
            "input_shape": list(self.input_shape),
            "clean": self.clean,
            "zero_coverage": {
                "count": self.zero_count,
                "fraction": self.zero_fraction,
                "description": self.zero_description,
                "lines": [list(lines) for lines in self.zero_lines],
                "pixels": _off_line(self.zero_mask, self.zero_lines).tolist(),
            },
            "uneven_padding": [u.to_dict() for u in self.uneven],
            "asymmetry": list(self.asymmetry),
            "sizes": [s.to_dict() for s in self.sizes],
            "nearest_below": None if self.nearest_below is None else list(self.nearest_below),
            "nearest_above": None if self.nearest_above is None else list(self.nearest_above),
            "notes": list(self.notes),
        }


def _fmt(shape: Sequence[int]) -> str:
    return fmt_shape(tuple(shape))


# --------------------------------------------------------------------------- analysis
def _uneven(p: Plan) -> list[UnevenPadding]:
    """Every windowed layer and axis of a plan whose windows use the padding unevenly."""
    return [
        UnevenPadding(path=step.path, layer=step.layer.label, **found)
        for step in p.ops
        for found in step.layer.uneven(step)
    ]


def _coverage(net: Network, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Zero mask (exact) and the coverage map scaled to a maximum of 1 (finite at any depth)."""
    try:
        counts = coverage(net, shape)
    except CountOverflowError:
        log10 = coverage(net, shape, log=True)
        zero = np.isneginf(log10)
        if zero.all():  # pragma: no cover - overflow needs some huge count
            return zero, np.zeros(shape)
        return zero, np.power(10.0, log10 - log10.max())
    zero = counts == 0
    peak = counts.max()
    if peak > 0:
        counts /= peak  # the engine's own array: scaled in place, no second map
    return zero, counts


def _asymmetry(scaled: np.ndarray) -> tuple[float, ...]:
    total = float(scaled.sum())
    if total == 0.0:  # the zero map is its own mirror image
        return (0.0,) * scaled.ndim
    out = []
    for a in range(scaled.ndim):
        # sum |C - flip(C)| counts each mirrored pair twice: the first half against the
        # mirrored second half, doubled (the middle line of an odd axis is its own mirror)
        n, half = scaled.shape[a], scaled.shape[a] // 2
        head: list[Any] = [slice(None)] * scaled.ndim
        tail: list[Any] = [slice(None)] * scaled.ndim
        head[a], tail[a] = slice(0, half), slice(n - 1, n - 1 - half, -1)
        first = scaled[tuple(head)] - scaled[tuple(tail)]
        np.abs(first, out=first)
        out.append(float(first.sum()) / total)
    return tuple(out)


def _zero_lines(mask: np.ndarray) -> tuple[tuple[int, ...], ...]:
    lines = []
    for a in range(mask.ndim):
        others = tuple(b for b in range(mask.ndim) if b != a)
        full = mask.all(axis=others) if others else mask
        lines.append(tuple(int(i) for i in np.flatnonzero(full)))
    return tuple(lines)


def _off_line(mask: np.ndarray, lines: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Coordinates of the True pixels of ``mask`` on none of the listed lines, ``(K, ndim)``."""
    on_line = np.zeros_like(mask)
    for axis, idx in enumerate(lines):
        index: list[Any] = [slice(None)] * mask.ndim
        index[axis] = list(idx)
        on_line[tuple(index)] = True
    return np.argwhere(mask & ~on_line)


def _describe_indices(idx: Sequence[int], n: int, one: str, many: str) -> str:
    """``[5, 6, 7]`` of 8 -> ``"last 3 rows (5-7)"``; ``[1, 3, 5, 7]`` -> ``"every 2nd row
    from 1 to 7 (4 rows)"``; ``[2, 5]`` -> ``"rows 2 and 5"``."""
    k = len(idx)
    if k == n:
        return f"all {many}"
    runs: list[list[int]] = []
    for i in idx:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    if len(runs) == 1:
        a, b = runs[0]
        span = f"({a})" if a == b else f"({a}-{b})"
        if a == 0:
            return f"first {one} {span}" if k == 1 else f"first {k} {many} {span}"
        if b == n - 1:
            return f"last {one} {span}" if k == 1 else f"last {k} {many} {span}"
        return f"{one} {a}" if k == 1 else f"{many} {a}-{b}"
    steps = {b - a for a, b in pairwise(idx)}
    if k >= 3 and len(steps) == 1:
        return f"every {_ordinal(steps.pop())} {one} from {idx[0]} to {idx[-1]} ({k} {many})"
    if len(runs) <= 4:
        return f"{many} " + _join([str(a) if a == b else f"{a}-{b}" for a, b in runs])
    return f"{k} {many} between {idx[0]} and {idx[-1]}"


def _describe_zeros(mask: np.ndarray, lines: tuple[tuple[int, ...], ...]) -> str:
    count = int(np.count_nonzero(mask))
    if count == 0:
        return "none"
    head = f"{count} of {mask.size} pixels ({count / mask.size:.2%})"
    if count == mask.size:
        return f"{head}: every pixel"
    ndim, shape = mask.ndim, mask.shape
    nouns = _nouns(ndim)
    parts = []
    if ndim > 1 and lines[0] and len(set(lines)) == 1 and len(set(shape)) == 1:
        parts.append(_describe_indices(lines[0], shape[0], *_joined_nouns(range(ndim), ndim)))
    else:
        parts += [
            _describe_indices(idx, n, *nouns[a])
            for a, (idx, n) in enumerate(zip(lines, shape))
            if idx
        ]
    rest = _off_line(mask, lines)
    if len(rest):
        what = f"{len(rest)} {'more ' if parts else ''}pixel{'s' if len(rest) > 1 else ''}"
        coords = [str(tuple(int(v) for v in c)) if ndim > 1 else str(int(c[0])) for c in rest]
        if len(rest) <= 6:
            parts.append(f"{what}: {', '.join(coords)}")
        else:
            lo, hi = rest.min(axis=0), rest.max(axis=0)
            box = ", ".join(f"{nouns[a][1]} {lo[a]}-{hi[a]}" for a in range(ndim))
            parts.append(f"{what} within {box}")
    return f"{head}: {'; '.join(parts)}"


# --------------------------------------------------------------------------- size search
def _clean_1d(net1: Network, n: int) -> bool:
    try:
        p1 = plan(net1, (n,))
    except ValueError:  # too small, or branches that no longer line up
        return False
    if any(u.size_dependent for u in _uneven(p1)):
        return False
    zero, _ = _coverage(net1, (n,))
    return not zero.any()


def _period(net: Network) -> tuple[int, int] | None:
    """``(jump, threshold)`` where whether an input size is clean repeats with the jump above
    the threshold, or None where that is not known to hold.

    In a network of windowed layers (convolutions, locally connected layers and pools that
    pad with zeros) joined by sums, products and concatenations, every layer's output size is
    ``floor((n + c) / s) + 1``, so sizes ``n`` and ``n + J`` (``J``: the product of the
    strides, the output's jump) leave every layer the same remainder: the same dropped units
    and the same padding use at both ends. Far from the ends the coverage map is periodic with
    period ``J``. So once ``n`` leaves an interior between the two borders (more than twice
    the receptive field and a few jumps), ``n`` and ``n + J`` are clean alike, and a search
    among sizes of hundreds of millions can check small sizes with the same remainder.
    """
    from ._ops import Add, Cat, Conv, LocallyConnected, Mul, Pool

    windows = (Conv, LocallyConnected, Pool)
    for node in net.nodes[1:]:
        layer = node.layer
        if isinstance(layer, (Add, Cat, Mul)):  # (a gate's own branch is checked as it comes)
            continue
        if not isinstance(layer, windows) or getattr(layer, "padding_mode", "zeros") != "zeros":
            return None
    rows = geometry(net).rows
    jumps = [r.jump[0] for r in rows if r.jump[0] is not None]
    sizes = [r.rf_size[0] for r in rows]
    if not jumps or not all(isinstance(v, int) for v in sizes):
        return None  # a global field: no border to leave
    jump = max(jumps)
    if jump != int(jump):  # pragma: no cover - windows have integer strides
        return None
    jump = int(jump)
    return jump, 2 * max(sizes) + 4 * jump


def _reduce(n: int, period: tuple[int, int] | None) -> int:
    """The size in ``[threshold, threshold + jump)`` that is clean exactly when ``n`` is."""
    if period is None:
        return n
    jump, threshold = period
    return n if n < threshold + jump else threshold + (n - threshold) % jump


def _default_limit(net1: Network, n: int) -> int:
    """Clean sizes of k stride-2 stages recur every 2**k (the jump): search four jumps."""
    jumps = [r.jump[0] for r in geometry(net1, (n,)).rows if r.jump[0] is not None]
    return max(MIN_SEARCH, 4 * math.ceil(max(jumps)))


def _search(net1: Network, n: int, limit: int | None) -> tuple[int | None, int | None, int]:
    if limit is None:
        limit = _default_limit(net1, n)
    period = _period(net1)
    known: dict[int, bool] = {}

    def clean(c: int) -> bool:
        r = _reduce(c, period)
        if r not in known:
            known[r] = _clean_1d(net1, r)
        return known[r]

    below = next((c for c in range(n - 1, max(n - limit, 1) - 1, -1) if clean(c)), None)
    above = next((c for c in range(n + 1, n + limit + 1) if clean(c)), None)
    return below, above, limit


def _has_block(p: Plan) -> bool:
    return not p.is_chain


# --------------------------------------------------------------------------- entry point
def _validate(input_shape: Any, max_distance: Any) -> None:
    if input_shape is None:
        raise ValueError("`input_shape` is required")
    if max_distance is not None:
        if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)):
            raise TypeError(f"`max_distance` must be an integer or None, got {max_distance!r}")
        if max_distance < 1:
            raise ValueError(f"`max_distance` must be >= 1, got {max_distance!r}")


def blind_spots(net: Any, input_shape: Any, *, max_distance: int | None = None) -> BlindSpotReport:
    """Zero-coverage pixels, uneven padding, mirror asymmetry and nearby clean input sizes.

    Parameters
    ----------
    net : any model :func:`rfanalysis.routes` takes
    input_shape : int or tuple of int
        As in :func:`rfanalysis.coverage`.
    max_distance : int, optional
        How far from each axis's size to search for clean sizes. Default:
        ``max(64, 4 * J)`` with ``J`` the largest jump (product of strides) along that axis.

    Returns
    -------
    BlindSpotReport
        Zero-coverage pixels (mask, full lines per axis, a short description), every windowed
        layer and axis with uneven padding (named ``"layer 5.body.2 (conv3s2p1)"``), the
        asymmetry of the coverage map per axis, and the nearest clean input sizes per axis.

    Raises
    ------
    ValueError, TypeError
        For an invalid network, input shape or ``max_distance``.

    Notes
    -----
    Uneven padding is defined in the module docstring: a windowed layer pads unevenly on an
    axis when its windows use ``p_before`` units of padding before the input and a different
    number after it, ``(m - 1) s + d (k - 1) + 1 - p_before - n``.

    Asymmetry along axis ``a`` is ``sum|C - flip_a(C)| / (2 sum C)`` for the coverage map ``C``:
    the total-variation distance between ``C / sum C`` and its mirror image, 0 for a
    mirror-symmetric map (and for an all-zero map), 1 when map and mirror do not overlap.

    A size is *clean* along axis ``a`` when no windowed layer of stride > 1 pads unevenly along
    ``a`` (stride-1 layers pad the same at every size and are left out) and the 1-D network
    acting along ``a`` (every layer except Dense acts on each axis separately) covers every
    position. Sizes are tried outwards from the given one, each first by shape arithmetic and
    only then by coverage. For a chain the coverage map is the outer product of the per-axis
    maps, so per-axis clean sizes combine into a clean shape; with residual or concat blocks
    the combined shapes are checked in full, since branches with gaps on different axes can
    leave isolated zero pixels.

    Examples
    --------
    >>> report = blind_spots("conv3s2p1", (8,))
    >>> report.uneven[0].dropped, report.uneven[0].effective_padding
    (1, (1, 0))
    >>> report.sizes[0].below, report.sizes[0].above
    (7, 9)
    >>> blind_spots("conv3s3", 8).zero_description
    '28 of 64 pixels (43.75%): last 2 rows and columns (6-7)'
    """
    _validate(input_shape, max_distance)
    p = plan(net, input_shape)
    shape = p.input_shape
    assert shape is not None
    zero, scaled = _coverage(p.network, shape)
    zero.flags.writeable = False
    lines = _zero_lines(zero)

    notes: list[str] = []
    try:
        axis_nets = [axis_network(p.network, axis) for axis in range(len(shape))]
    except NotImplementedError as exc:  # e.g. a traced read that mixes axes (YOLO's heads)
        axis_nets = []
        notes.append(f"nearest clean input sizes not searched: {exc}, and the search runs one "
                     "axis at a time")  # fmt: skip
    searched: dict[tuple[Network, int], tuple[int | None, int | None, int]] = {}
    sizes = []
    for axis, net1 in enumerate(axis_nets):
        n = shape[axis]
        if (net1, n) not in searched:  # square inputs to isotropic networks: search once
            searched[net1, n] = _search(net1, n, max_distance)
        below, above, limit = searched[net1, n]
        sizes.append(SizeSearch(axis, n, below, above, limit))

    combined: list[tuple[int, ...] | None] = []
    for where in ("below", "above"):
        if not sizes:
            combined.append(None)
            continue
        values = [getattr(s, where) for s in sizes]
        if any(v is None for v in values):
            combined.append(None)
            continue
        candidate = tuple(values)
        if len(shape) > 1 and _has_block(p):
            # each axis reduced by its own period (strides may differ between axes)
            small = tuple(
                _reduce(c, _period(axis_network(p.network, a))) for a, c in enumerate(candidate)
            )
            missed = int(np.count_nonzero(_coverage(p.network, small)[0]))
            if missed:
                many = f"{missed} zero-coverage pixel{'s' if missed > 1 else ''}"
                notes.append(
                    f"the nearest clean sizes {where} on each axis combine into "
                    f"{_fmt(candidate)}, which still has "
                    f"{many if small == candidate else 'zero-coverage pixels'} "
                    "(branches leave gaps on different axes)"
                )
                combined.append(None)
                continue
        combined.append(candidate)

    return BlindSpotReport(
        network=p.network.display_name,
        input_shape=shape,
        zero_mask=zero,
        zero_lines=lines,
        zero_description=_describe_zeros(zero, lines),
        uneven=tuple(_uneven(p)),
        asymmetry=_asymmetry(scaled),
        sizes=tuple(sizes),
        nearest_below=combined[0],
        nearest_above=combined[1],
        notes=tuple(notes),
    )
