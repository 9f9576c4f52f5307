"""Plots of route counts, coverage and their comparisons.

Every ``plot_*(data, *, ax=None, **kwargs)`` function draws on one Axes (the current one by
default) and returns its main artist; keyword arguments go to that artist and override the
defaults. Figure builders (``comparison_figure``, ``grid_figure``) compose them and return
``(fig, axes)``. No plot function calls ``show()`` or ``savefig`` or changes rcParams: a paper
style belongs to whoever makes the figure, who can draw inside ``paper_style()`` and write the
file with ``save_figure`` (the same bytes for the same figure, written atomically).

Count maps use a logarithmic colour scale by default, since counts span many decades. Pixels
with no route are masked and drawn in a separate colour (``zero_color``), noted under the
colourbar. The functions that take count maps also take log10 counts (``is_log10=True``,
``-inf`` where there is no route), which stay finite at any depth; their scale is linear in the
exponent and labelled ``10^k``.

Heatmaps and profiles
    plot_coverage (a map larger than the screen is drawn in block means: BlockImage,
    block_counts), add_colorbar, plot_profile, plot_border_profile (the border on a log
    distance axis), plot_blind_spots
Sweeps
    plot_depth_ratio (edge/centre ratio against depth), plot_erf_radius (radius against
    sqrt(depth)), plot_shift_similarity (a ShiftInvariance measurement against the shift)
Figure builders
    coverage_figure (a heatmap beside its border profile),
    comparison_figure (analytic vs empirical with a difference or ratio panel),
    grid_figure (several maps on one colour scale, e.g. one per padding mode)
Diagrams
    plot_route_diagram (a small 1-D network as neurons labelled with their route counts)
Files
    paper_style (the write-up's rcParams, scoped), save_figure (deterministic PNG/PDF/SVG)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colors, rcParams, ticker
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure, SubFigure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox, TransformedBbox

from ._engine import as_float_counts
from ._sources import network as _network
from ._style import paper_style, save_figure

__all__ = [
    "ZERO_COLOR",
    "BlockImage",
    "add_colorbar",
    "as_float_counts",
    "block_counts",
    "comparison_figure",
    "coverage_figure",
    "grid_figure",
    "paper_style",
    "plot_blind_spots",
    "plot_border_profile",
    "plot_coverage",
    "plot_depth_ratio",
    "plot_erf_radius",
    "plot_profile",
    "plot_route_diagram",
    "plot_shift_similarity",
    "save_figure",
]

#: colour of pixels with no route (masked in every count map)
ZERO_COLOR = "#c8c8c8"
#: colour of values below a shared scale (an empirical map's tail under the analytic minimum)
UNDER_COLOR = "#e7298a"

#: largest map (units per layer) that :func:`plot_route_diagram` draws
MAX_DIAGRAM_UNITS = 64


# --------------------------------------------------------------------------- input handling
def _axes(ax: Axes | None) -> Axes:
    return plt.gca() if ax is None else ax


def _counts(data: Any, name: str, ndims: tuple[int, ...], is_log10: bool = False) -> np.ndarray:
    """Validate a count map (or log10 count map) and return it as float64."""
    arr = np.asarray(data, dtype=np.float64) if is_log10 else as_float_counts(data)
    if arr.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        hint = {1: "; use plot_profile for 1-D maps", 2: "; use plot_coverage for 2-D maps"}
        other = next((hint[n] for n in hint if n not in ndims and arr.ndim == n), "")
        raise ValueError(f"`{name}` must be {want}, got shape {arr.shape}{other}")
    if arr.size == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {arr.shape}")
    if is_log10:
        if np.isnan(arr).any() or np.isposinf(arr).any():
            raise ValueError(f"`{name}` log10 counts must not be NaN or +inf")
    else:
        if not np.isfinite(arr).all():
            raise ValueError(
                f"`{name}` must be finite counts (found NaN or inf); "
                "pass log10 counts with is_log10=True for counts beyond float64"
            )
        if (arr < 0).any():
            raise ValueError(f"`{name}` must be non-negative counts, got minimum {arr.min():g}")
    return arr


def _from_log10(data: np.ndarray, name: str) -> np.ndarray:
    """log10 counts as counts, for a linear scale."""
    if data.max() > 307:
        raise ValueError(
            f"`{name}` holds counts up to 1e{data.max():.0f}, beyond float64; "
            "use a logarithmic scale (log=True)"
        )
    return np.power(10.0, data)


def _pow10(value: float, _pos: Any = None) -> str:
    """Tick label of an exponent axis: ``10^k``, ``m×10^k`` or a plain number."""
    k = math.floor(value + 1e-9)
    m = 10.0 ** (value - k)
    if abs(m - round(m)) > 1e-6:
        return f"$10^{{{value:.3g}}}$"
    m = round(m)
    if -2 <= k <= 3:
        return f"{m * 10.0**k:g}"
    return f"$10^{{{k}}}$" if m == 1 else f"${m}\\times10^{{{k}}}$"


def _exponent_locator(lo: float, hi: float) -> ticker.Locator:
    """Integer exponents over three decades or more; below that, mantissas 1, 2, 5; under one
    decade, mantissas 1 to 9 (the ticks :func:`_plain_log_ticks` gives a log axis)."""
    if hi - lo >= 3:
        return ticker.MaxNLocator(integer=True)
    for mantissas in ((1, 2, 5) if hi - lo >= 1 else (), range(1, 10)):
        ticks = [
            k + math.log10(m)
            for k in range(math.floor(lo), math.ceil(hi) + 1)
            for m in mantissas
            if lo - 1e-9 <= k + math.log10(m) <= hi + 1e-9
        ]
        if len(ticks) >= 2:
            return ticker.FixedLocator(ticks)
    return ticker.MaxNLocator()


def _plain_log_ticks(axis: Any, lo: float, hi: float) -> None:
    """On a log axis spanning under three decades, label 1, 2, 5 x 10^k (every m x 10^k under
    one decade) as plain numbers."""
    if 0 < lo and hi / lo < 1e3:
        subs = (1.0, 2.0, 5.0) if hi / lo >= 10 else tuple(float(m) for m in range(1, 10))
        axis.set_major_locator(ticker.LogLocator(subs=subs))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())


def _limits(values: list[np.ndarray], positive: bool) -> tuple[float, float] | None:
    """(min, max) over the finite (and, for a log scale, positive) values, or None."""
    finite = [v[np.isfinite(v) & (v > 0 if positive else True)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return None
    return float(min(v.min() for v in finite)), float(max(v.max() for v in finite))


class _Scale:
    """How a count map is displayed: the values to draw (zeros masked as NaN), which pixels
    have no route, and the default norm."""

    def __init__(self, data: np.ndarray, name: str, log: bool, is_log10: bool) -> None:
        self.exponent = is_log10 and log
        if is_log10 and not log:
            data = _from_log10(data, name)
        self.zero = np.isneginf(data) if self.exponent else data == 0
        self.values = np.where(self.zero, np.nan, data)
        self.log = log and not is_log10

    def norm(self, limits: tuple[float, float] | None, **kwargs: Any) -> colors.Normalize:
        """Default norm for ``limits``; ``vmin``/``vmax`` in ``kwargs`` override them."""
        if self.log:
            lo, hi = limits or (1.0, 10.0)
            if hi <= lo:  # a flat map: one decade around its value
                lo, hi = lo / math.sqrt(10), hi * math.sqrt(10)
            return colors.LogNorm(kwargs.get("vmin", lo), kwargs.get("vmax", hi))
        lo, hi = limits or (0.0, 1.0)
        if not self.exponent:
            lo = 0.0
        if hi <= lo:
            lo, hi = (lo - 0.5, hi + 0.5) if self.exponent else (0.0, 1.0)
        return colors.Normalize(kwargs.get("vmin", lo), kwargs.get("vmax", hi))

    def limits(self) -> tuple[float, float] | None:
        return _limits([self.values], positive=self.log)


def _with_bad(cmap: Any, bad: Any) -> colors.Colormap:
    cmap = plt.get_cmap(cmap) if not isinstance(cmap, colors.Colormap) else cmap
    return cmap if bad is None else cmap.with_extremes(bad=bad)


def _image_opts(scale: _Scale, limits: Any, zero_color: Any, kwargs: dict[str, Any]) -> dict:
    opts: dict[str, Any] = {"interpolation": "nearest", "origin": "upper"}
    opts["cmap"] = _with_bad(kwargs.pop("cmap", "viridis"), zero_color)
    if "norm" not in kwargs:
        opts["norm"] = scale.norm(limits, **kwargs)
        kwargs.pop("vmin", None)
        kwargs.pop("vmax", None)
    opts.update(kwargs)
    return opts


# --------------------------------------------------------------------------- block images
#: what one drawn cell of a map larger than the screen shows: the mean, least or largest count
#: of the block of pixels it stands for
DOWNSAMPLE = ("mean", "min", "max")


def _power_of_two(ratio: float) -> int:
    """The smallest power of two >= ``ratio`` (1 for ratios up to 1)."""
    return 1 if not ratio > 1 else 1 << math.ceil(math.log2(ratio) - 1e-9)


def _blocks(values: np.ndarray, block: tuple[int, int], pad: float) -> np.ndarray:
    """``values`` of shape (H, W, *rest) cut into ``block`` = (rows, cols) blocks: shape
    (ceil(H / rows), ceil(W / cols), rows * cols, *rest), the last blocks padded with
    ``pad``."""
    (h, w), rest = values.shape[:2], values.shape[2:]
    rows, cols = block
    hb, wb = -(-h // rows), -(-w // cols)
    widths = [(0, hb * rows - h), (0, wb * cols - w)] + [(0, 0)] * len(rest)
    padded = np.pad(values, widths, constant_values=pad)
    split = np.moveaxis(padded.reshape(hb, rows, wb, cols, *rest), 2, 1)
    return split.reshape(hb, wb, rows * cols, *rest)


def block_counts(
    values: np.ndarray, block: tuple[int, int], how: str, exponent: bool
) -> np.ndarray:
    """A count map summarised over blocks of ``block`` = (rows, cols) pixels.

    ``values`` holds counts (or their log10 with ``exponent``), NaN where there is no route.
    ``how="mean"`` is the mean count over the block's pixels (no route counting 0; for
    log10 counts the log10 of the mean count), ``"min"`` and ``"max"`` the least and the
    largest count (``"min"`` is "no route" when any pixel has none). Blocks at the bottom and
    right edges that overhang the map summarise the pixels they hold. NaN: no route in the
    block (``"min"``: somewhere in the block).

    >>> block_counts(np.array([[1.0, 3.0, 5.0], [np.nan, 3.0, np.nan]]), (2, 2), "mean", False)
    array([[1.75, 2.5 ]])
    """
    none = np.isnan(values)
    if how == "mean":
        size = _blocks(np.ones(values.shape), block, 0.0).sum(axis=2)
        if exponent:  # log10 of the mean count, scaled by each block's largest count
            v = _blocks(np.where(none, -np.inf, values), block, -np.inf)
            top = v.max(axis=2)
            ref = np.where(np.isfinite(top), top, 0.0)
            total = np.power(10.0, v - ref[..., None]).sum(axis=2)
            with np.errstate(divide="ignore"):
                mean = ref + np.log10(total / size)
            return np.where(np.isfinite(top), mean, np.nan)
        mean = _blocks(np.where(none, 0.0, values), block, 0.0).sum(axis=2) / size
        return np.where(mean > 0, mean, np.nan)
    marked = np.where(none, -np.inf, values)
    if how == "min":
        least = _blocks(marked, block, np.inf).min(axis=2)
        return np.where(np.isfinite(least), least, np.nan)
    most = _blocks(marked, block, -np.inf).max(axis=2)
    return np.where(np.isfinite(most), most, np.nan)


def _block_nanmean(values: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """Mean over each block of its defined (non-NaN) values; NaN where there are none."""
    defined = ~np.isnan(values)
    total = _blocks(np.where(defined, values, 0.0), block, 0.0).sum(axis=2)
    count = _blocks(defined.astype(float), block, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


class BlockImage(AxesImage):
    """An image of a map that may have more pixels than the screen: each drawn cell
    summarises a block of map pixels, so that no pixel is skipped.

    Matplotlib draws an image larger than its Axes by nearest-neighbour sampling, which shows
    one pixel in k and turns a periodic map (a stride's checkerboard) into large false blocks
    that move with the resolution. At every draw this image measures its size on the
    renderer (PNG pixels, or the raster resolution inside PDF and SVG) and, where the map has
    more pixels than that along an axis, draws blocks of ``block`` map pixels instead, summarised
    by ``how``. The block sides are powers of two, so that the periodic patterns of
    power-of-two strides average out instead of beating with the block size.

    ``get_array()`` stays the whole map; :meth:`block_data` gives what a block size draws.

    Attributes
    ----------
    how : {"mean", "min", "max"} or None
        What a cell shows; None draws every pixel (matplotlib's own resampling).
    block : (int, int)
        Map rows and columns per drawn cell at the last draw; (1, 1) before any draw, or
        when every pixel has a screen pixel of its own.
    note : Annotation or None
        Text under the Axes, ``"each cell: mean of 4×4 pixels"``, shown while a block is
        larger than one pixel (it follows the block at every draw).
    """

    def __init__(
        self,
        ax: Axes,
        reduce: Any,
        how: str | None,
        **kwargs: Any,
    ) -> None:
        self._drawing_blocks = False
        super().__init__(ax, **kwargs)
        self._reduce = reduce
        self.how = how
        self.block = (1, 1)
        self.note: Annotation | None = None
        self._cache: dict[tuple[int, int], Any] = {}
        self._size = (1, 1)

    def set_data(self, A: Any) -> None:
        super().set_data(A)
        self._size = np.shape(A)[:2]
        self._cache = {}

    def block_for(self, renderer: Any) -> tuple[int, int]:
        """(rows, cols) of map pixels per cell on ``renderer``: per axis the smallest power
        of two that leaves at least one device pixel per cell."""
        if self.how is None:
            return (1, 1)
        if renderer.option_scale_image() and super().get_interpolation() == "none":
            return (1, 1)  # PDF and SVG embed the whole map unsampled; the viewer scales it
        box = self.get_window_extent(renderer)
        scale = renderer.get_image_magnification()  # raster pixels per point in PDF and SVG
        h, w = self._size
        return (
            _power_of_two(h / max(abs(box.height) * scale, 1.0)),
            _power_of_two(w / max(abs(box.width) * scale, 1.0)),
        )

    def block_data(self, block: tuple[int, int]) -> Any:
        """The map as drawn with ``block`` = (rows, cols) pixels per cell: a masked array
        (masked where a cell has no value) of shape (ceil(H / rows), ceil(W / cols))."""
        if tuple(block) == (1, 1):
            return self.get_array()
        key = (int(block[0]), int(block[1]))
        if key not in self._cache:
            self._cache = {key: np.ma.masked_invalid(self._reduce(key))}
        return self._cache[key]

    def _block_extent(self, block: tuple[int, int]) -> tuple[float, float, float, float]:
        """The extent of the block grid: the map's, stretched at the far end by the
        overhang of the last blocks (which the Axes clips)."""
        h, w = self._size
        x0, x1, y0, y1 = self.get_extent()
        rows, cols = block
        x1 = x0 + (x1 - x0) * (-(-w // cols) * cols) / w
        if self.origin == "upper":  # row 0 is at y1
            y0 = y1 + (y0 - y1) * (-(-h // rows) * rows) / h
        else:
            y1 = y0 + (y1 - y0) * (-(-h // rows) * rows) / h
        return x0, x1, y0, y1

    def make_image(self, renderer: Any, magnification: float = 1.0, unsampled: bool = False):
        self.block = (1, 1) if unsampled else self.block_for(renderer)
        if self.block == (1, 1):
            return super().make_image(renderer, magnification, unsampled)
        x0, x1, y0, y1 = self._block_extent(self.block)
        bbox = Bbox([[x0, y0], [x1, y1]])
        figure: Any = self.get_figure(root=True)
        clip = (self.get_clip_box() or self.axes.bbox) if self.get_clip_on() else figure.bbox
        self._drawing_blocks = True
        try:
            # AxesImage.make_image with the block data in place of the whole map
            return self._make_image(  # type: ignore[attr-defined]
                self.block_data(self.block),
                bbox,
                TransformedBbox(bbox, self.get_transform()),
                clip,
                magnification,
                unsampled=False,
            )
        finally:
            self._drawing_blocks = False

    def get_interpolation(self) -> str:
        # Cells of 1 to 2 screen pixels, copied by nearest neighbour, come out 1 or 2 pixels
        # wide: a pattern left in the block data beats with that rhythm. Matplotlib's
        # anti-aliasing filter (a Hanning window at these scales) spreads each cell instead.
        if self._drawing_blocks and super().get_interpolation() == "nearest":
            return "antialiased"
        return super().get_interpolation()


class _BlockNote(Annotation):
    """Says what a cell of a :class:`BlockImage` shows. Its text follows the image's block
    on whatever renderer asks (layout, tight bounding box, drawing), so the space kept for
    it is the space it takes."""

    def __init__(self, image: BlockImage, **kwargs: Any) -> None:
        ax = image.axes

        def below_x_axis(renderer: Any) -> Bbox:
            parts = [ax.bbox]
            axis = ax.xaxis.get_tightbbox(renderer)
            if axis is not None and axis.width > 0:
                parts.append(axis)
            return Bbox.union(parts)

        super().__init__(
            "",
            xy=(1.0, 0.0),
            xycoords=below_x_axis,
            xytext=(0, -2),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize="x-small",
            color="0.3",
            annotation_clip=False,
            **kwargs,
        )
        self.image = image

    def _follow(self, renderer: Any) -> None:
        rows, cols = self.image.block_for(renderer)
        text = f"each cell: {self.image.how} of {rows}×{cols} pixels"
        # an empty text draws nothing and takes no space in a layout or a tight bounding box
        self.set_text("" if (rows, cols) == (1, 1) else text)

    def draw(self, renderer: Any) -> None:
        self._follow(renderer)
        super().draw(renderer)

    def get_window_extent(self, renderer: Any = None, dpi: Any = None) -> Bbox:
        if renderer is not None:
            self._follow(renderer)
        return super().get_window_extent(renderer)  # Annotation takes no dpi

    def get_tightbbox(self, renderer: Any = None) -> Bbox | None:
        if renderer is not None:
            self._follow(renderer)
        return super().get_tightbbox(renderer)


def _show(
    ax: Axes, data: np.ndarray, reduce: Any, how: str | None, opts: dict[str, Any], note: bool
) -> BlockImage:
    """``ax.imshow(data, **opts)`` as a :class:`BlockImage`, with its note under the Axes."""
    opts = dict(opts)
    aspect = opts.pop("aspect", None)
    alpha = opts.pop("alpha", None)
    image = BlockImage(ax, reduce, how, **opts)
    if aspect is None and not (
        image.is_transform_set() and not image.get_transform().contains_branch(ax.transData)
    ):
        aspect = rcParams["image.aspect"]
    if aspect is not None:
        ax.set_aspect(aspect)
    image.set_data(data)
    image.set_alpha(alpha)
    image.autoscale_None()  # limits of a norm given without them, as imshow does
    if image.get_clip_path() is None:
        image.set_clip_path(ax.patch)
    image.set_extent(image.get_extent())
    ax.add_image(image)
    if note and how is not None:
        image.note = _BlockNote(image)
        ax.add_artist(image.note)
        image.note.set_clip_on(False)
    return image


# --------------------------------------------------------------------------- heatmaps
def plot_coverage(
    counts: Any,
    *,
    ax: Axes | None = None,
    log: bool = True,
    is_log10: bool = False,
    colorbar: bool = True,
    label: str | None = "routes",
    zero_color: Any = ZERO_COLOR,
    downsample: str | None = "mean",
    xlabel: str | None = "column",
    ylabel: str | None = "row",
    **kwargs: Any,
) -> BlockImage:
    """Heatmap of a 2-D count map (coverage or routes to one unit).

    Parameters
    ----------
    counts : array_like of shape (H, W)
        Non-negative route counts (float64 or exact Python ints), or log10 counts with
        ``is_log10=True``.
    ax : Axes, optional
        Axes to draw on (default: the current Axes).
    log : bool
        Logarithmic colour scale (default): ``LogNorm`` from the smallest non-zero count to
        the largest. With ``log=False`` the scale is linear from 0.
    is_log10 : bool
        ``counts`` holds log10 counts (``-inf`` where there is no route); the colour scale is
        linear in the exponent and the colourbar reads ``10^k``.
    colorbar : bool
        Add a colourbar (see :func:`add_colorbar`) labelled ``label``.
    label : str or None
        Colourbar label.
    zero_color : colour or None
        Colour of pixels with no route, which are masked (None: the colour map's own "bad"
        colour). The colourbar notes it when such pixels exist.
    downsample : {"mean", "min", "max"} or None
        What a drawn cell shows where the map has more pixels than the Axes has screen
        pixels (see :class:`BlockImage`): the mean count of its block of pixels (default),
        the least (a block with a pixel without routes shows "no route", which keeps thin
        blind spots visible) or the largest. A note under the Axes says so
        (``image.note``). None leaves it to matplotlib, which skips pixels.
    xlabel, ylabel : str or None
        Axis labels (None: leave the Axes' own).
    **kwargs
        Passed to :class:`~matplotlib.image.AxesImage` as for
        :meth:`~matplotlib.axes.Axes.imshow`; ``cmap``, ``norm``, ``vmin``, ``vmax``,
        ``interpolation`` and ``aspect`` override the defaults.

    Returns
    -------
    BlockImage
        An :class:`~matplotlib.image.AxesImage` whose array is the count map (exponents for
        ``is_log10``) with zero-route pixels masked; ``block_data(image.block)`` is what the
        last draw showed.

    Notes
    -----
    The border effects of a deep stack are a few pixels wide: on a map of 1024 pixels they
    take two or three screen pixels of a heatmap, however honest. :func:`coverage_figure`
    sets the map beside :func:`plot_border_profile`, which gives the border half its width.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> ax = Figure().add_subplot()
    >>> image = plot_coverage(rfa.coverage("conv3", (4, 4)), ax=ax)  # outer(1 2 2 1, 1 2 2 1)
    >>> image.norm.vmin, image.norm.vmax, ax.get_xlabel(), ax.get_ylabel()
    (1.0, 4.0, 'column', 'row')
    """
    data = _counts(counts, "counts", (2,), is_log10)
    if downsample is not None and downsample not in DOWNSAMPLE:
        raise ValueError(
            f"`downsample` must be one of {', '.join(map(repr, DOWNSAMPLE))} or None, "
            f"got {downsample!r}"
        )
    ax = _axes(ax)
    scale = _Scale(data, "counts", log, is_log10)
    opts = _image_opts(scale, scale.limits(), zero_color, kwargs)
    values = scale.values

    def reduce(block: tuple[int, int]) -> np.ndarray:
        assert downsample is not None
        return block_counts(values, block, downsample, scale.exponent)

    image = _show(ax, values, reduce, downsample, opts, note=True)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if colorbar:
        add_colorbar(
            image,
            label=label,
            is_log10=scale.exponent,
            zero_label="no route" if scale.zero.any() else None,
        )
    return image


def add_colorbar(
    mappable: Any,
    *,
    ax: Axes | Sequence[Axes] | None = None,
    label: str | None = None,
    is_log10: bool = False,
    zero_label: str | None = None,
    **kwargs: Any,
) -> Colorbar:
    """Colourbar for a count map, with an optional swatch for zero-route pixels.

    Parameters
    ----------
    mappable : ScalarMappable
        Usually the image returned by :func:`plot_coverage`.
    ax : Axes or sequence of Axes, optional
        Axes to take the space from (default: the mappable's Axes).
    label : str, optional
    is_log10 : bool
        The mappable shows log10 counts: ticks are labelled ``10^k``.
    zero_label : str, optional
        Text of a swatch, in the colour map's "bad" colour, drawn under the colourbar
        (e.g. ``"no route"``).
    **kwargs
        Passed to :meth:`~matplotlib.figure.Figure.colorbar`.

    Returns
    -------
    Colorbar
    """
    owner = mappable.axes if ax is None else ax
    first = owner if isinstance(owner, Axes) else next(iter(owner))
    opts: dict[str, Any] = {"ax": owner}
    if is_log10:
        lo, hi = mappable.norm.vmin, mappable.norm.vmax
        opts.update(format=ticker.FuncFormatter(_pow10), ticks=_exponent_locator(lo, hi))
    opts.update(kwargs)
    cbar = first.figure.colorbar(mappable, **opts)
    norm = mappable.norm
    if isinstance(norm, colors.LogNorm) and not {"ticks", "format"} & set(kwargs):
        if norm.vmin is not None and norm.vmax is not None:
            _plain_log_ticks(cbar.long_axis, norm.vmin, norm.vmax)
    if label:
        cbar.set_label(label)
    if zero_label:
        _swatch(cbar, zero_label, mappable.cmap.get_bad(), 0)
    return cbar


def _swatch(cbar: Colorbar, text: str, color: Any, row: int) -> None:
    """A labelled colour box under a vertical colourbar (right of a horizontal one)."""
    vertical = cbar.orientation == "vertical"
    cbar.ax.annotate(
        text,
        xy=(0.5, 0.0) if vertical else (1.0, 0.5),
        xycoords="axes fraction",
        xytext=(0, -5 - 15 * row) if vertical else (6, -15 * row),
        textcoords="offset points",
        ha="center" if vertical else "left",
        va="top" if vertical else "center",
        fontsize="small",
        bbox={
            "boxstyle": "square,pad=0.25",
            "facecolor": color,
            "edgecolor": "0.4",
            "linewidth": 0.5,
        },
    )


def plot_blind_spots(
    counts: Any,
    mask: Any,
    *,
    ax: Axes | None = None,
    color: Any = "#d62728",
    label: str = "blind spot",
    legend: bool = True,
    log: bool = True,
    is_log10: bool = False,
    colorbar: bool = True,
    coverage_kw: dict[str, Any] | None = None,
    **kwargs: Any,
) -> AxesImage:
    """A coverage map with the pixels of ``mask`` painted over it.

    Parameters
    ----------
    counts : array_like of shape (H, W)
        The coverage map (as for :func:`plot_coverage`).
    mask : array_like of bool, shape (H, W)
        Pixels to mark (e.g. the zero-coverage pixels of a blind-spot report).
    ax : Axes, optional
    color : colour
        Colour of the marked pixels.
    label, legend : str, bool
        A key ``"<label> (<n> pixels)"``: a swatch under the colourbar, or without one a
        legend to the right of the Axes.
    log, is_log10, colorbar : bool
        As for :func:`plot_coverage`.
    coverage_kw : dict, optional
        Passed to :func:`plot_coverage` for the map underneath.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.imshow` for the overlay.

    Returns
    -------
    BlockImage
        The overlay: an RGBA image, ``color`` where ``mask`` is true, transparent elsewhere.
        Drawn in blocks (a map larger than the screen), a block is marked when any of its
        pixels is.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> cov = rfa.coverage("conv3s2", (7, 8))  # the last column is never read
    >>> ax = Figure().add_subplot()
    >>> overlay = plot_blind_spots(cov, cov == 0, ax=ax)
    >>> int(overlay.get_array()[..., 3].astype(bool).sum())  # 7 pixels marked
    7
    """
    data = _counts(counts, "counts", (2,), is_log10)
    marks = np.asarray(mask)
    if marks.dtype != bool:
        raise TypeError(f"`mask` must be a boolean array, got dtype {marks.dtype}")
    if marks.shape != data.shape:
        raise ValueError(
            f"`mask` must have the shape of `counts` {data.shape}, got shape {marks.shape}"
        )
    ax = _axes(ax)
    base = plot_coverage(
        data, ax=ax, log=log, is_log10=is_log10, colorbar=False, **(coverage_kw or {})
    )
    rgba = np.zeros((*marks.shape, 4))
    rgba[marks] = colors.to_rgba(color)
    opts: dict[str, Any] = {
        "interpolation": "nearest",
        "origin": base.origin,
        "extent": base.get_extent(),
        "zorder": base.get_zorder() + 1,
    }
    opts.update(kwargs)
    # a block with one marked pixel is marked: a blind spot one pixel wide stays visible
    overlay = _show(
        ax, rgba, lambda block: _blocks(rgba, block, 0.0).max(axis=2), "max", opts, note=False
    )
    n = int(marks.sum())
    key = f"{label} ({n} pixel{'s' * (n != 1)})"
    if colorbar:
        scale = _Scale(data, "counts", log, is_log10)
        unmarked_zero = bool((scale.zero & ~marks).any())
        cbar = add_colorbar(
            base,
            label="routes",
            is_log10=scale.exponent,
            zero_label="no route" if unmarked_zero else None,
        )
        if legend:
            _swatch(cbar, key, color, int(unmarked_zero))
    elif legend:
        ax.legend(
            handles=[Patch(color=color, label=key)],
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            frameon=False,
            fontsize="small",
        )
    return overlay


# --------------------------------------------------------------------------- profiles
def _gaussian(mean: float, sigma: float, x: np.ndarray, log10_total: float) -> np.ndarray:
    """log10 of ``total * N(x; mean, sigma)``."""
    z = (x - mean) / sigma
    return log10_total - 0.5 * z**2 / math.log(10) - math.log10(sigma * math.sqrt(2 * math.pi))


def _log10_sum(exponents: np.ndarray) -> float:
    finite = exponents[np.isfinite(exponents)]
    if not finite.size:
        return -math.inf
    peak = finite.max()
    return float(peak + np.log10(np.power(10.0, finite - peak).sum()))


def plot_profile(
    counts: Any,
    *,
    ax: Axes | None = None,
    log: bool = True,
    is_log10: bool = False,
    overlay: Any = None,
    overlay_label: str | None = None,
    overlay_kw: dict[str, Any] | None = None,
    mark_zeros: bool = True,
    legend: bool | None = None,
    **kwargs: Any,
) -> Line2D:
    """Route counts of a 1-D map against the input position, with an optional theory curve.

    Parameters
    ----------
    counts : array_like of shape (N,)
        Non-negative counts, or log10 counts with ``is_log10=True``.
    ax : Axes, optional
    log : bool
        Logarithmic y axis (default).
    is_log10 : bool
        ``counts`` holds log10 counts; the y axis shows the exponent, labelled ``10^k``.
    overlay : ndarray of shape (N,) or tuple (mean, sigma), optional
        A theoretical profile drawn as a dashed line: an array in the units of ``counts``
        (e.g. a multinomial row), or the ``(mean, sigma)`` of a Gaussian, scaled to the total
        of ``counts`` and drawn as a smooth curve (the central-limit shape of deep stacks).
        Only a tuple is read as ``(mean, sigma)``.
    overlay_label : str, optional
        Legend text of the overlay (default ``"multinomial row"`` or ``"Gaussian limit"``).
    overlay_kw : dict, optional
        Passed to :meth:`~matplotlib.axes.Axes.plot` for the overlay.
    mark_zeros : bool
        Mark positions with no route (invisible on a log axis) with ``x`` under the curve.
    legend : bool, optional
        Draw a legend (default: when there is an overlay or a zero mark).
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.plot` for the profile.

    Returns
    -------
    Line2D
        The profile; its y data is ``counts`` (for ``is_log10``, the exponents, with NaN
        where there is no route).

    Notes
    -----
    For a stack of L layers of kernel k the route counts of one unit are a row of the
    multinomial coefficients of ``(1 + x + ... + x^(k-1))^L``; by the central limit theorem
    they approach ``k^L N(x; mean, sigma^2)`` with ``sigma^2 = L (k^2 - 1) / 12``.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> ax = Figure().add_subplot()
    >>> line = plot_profile(rfa.routes("conv2*4", (5,)), ax=ax, overlay=(2.0, 1.0))
    >>> line.get_ydata().tolist()
    [1.0, 4.0, 6.0, 4.0, 1.0]
    """
    data = _counts(counts, "counts", (1,), is_log10)
    exponent = is_log10 and log
    if is_log10 and not log:
        data = _from_log10(data, "counts")
    zero = np.isneginf(data) if exponent else data == 0
    ys = np.where(zero, np.nan, data) if exponent else data
    curve = None
    if overlay is not None:
        curve = _overlay(overlay, data, exponent, is_log10 and not exponent)
    ax = _axes(ax)
    positions = np.arange(data.size)
    opts: dict[str, Any] = {"drawstyle": "steps-mid", "label": "routes"}
    if overlay is not None:  # a fixed pair of colours keeps profile and overlay apart
        opts["color"] = "C0"
    opts.update(kwargs)  # otherwise the colour cycle tells several profiles on one Axes apart
    (line,) = ax.plot(positions, ys, **opts)
    shown = [curve is not None]
    if curve is not None:
        xs, values, default_label = curve
        kw: dict[str, Any] = {"linestyle": "--", "color": "C1", "label": default_label}
        if overlay_label is not None:
            kw["label"] = overlay_label
        kw.update(overlay_kw or {})
        ax.plot(xs, values, **kw)
    if mark_zeros and zero.any():
        shown.append(True)
        ax.plot(
            positions[zero],
            np.zeros(int(zero.sum())),
            linestyle="none",
            marker="x",
            color="0.35",
            label="no route",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )
    if exponent:
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(_pow10))
        finite = ys[np.isfinite(ys)]
        if finite.size:
            ax.yaxis.set_major_locator(_exponent_locator(finite.min(), finite.max()))
            if curve is not None:
                ax.set_ylim(bottom=finite.min() - 0.3)
    elif log and (data > 0).any():
        ax.set_yscale("log")
        lo, hi = float(data[data > 0].min()), float(data.max())
        _plain_log_ticks(ax.yaxis, lo, hi)
        if curve is not None:  # a Gaussian tail must not stretch the axis over many decades
            ax.set_ylim(bottom=lo / 2)
    ax.set_xlabel("input position")
    ax.set_ylabel("routes")
    if legend if legend is not None else any(shown):
        ax.legend(fontsize="small")
    return line


def _overlay(
    overlay: Any, data: np.ndarray, exponent: bool, linear_from_log10: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    """(x, y, default label) of a theory overlay, in the display units of the profile."""
    if isinstance(overlay, tuple) and len(overlay) == 2:
        mean, sigma = (float(v) for v in overlay)
        if not (math.isfinite(mean) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(
                f"`overlay` (mean, sigma) must be finite with sigma > 0, got {overlay!r}"
            )
        xs = np.linspace(-0.5, data.size - 0.5, 20 * data.size + 1)
        total = _log10_sum(data) if exponent else math.log10(max(float(data.sum()), 1e-300))
        values = _gaussian(mean, sigma, xs, total)
        return xs, values if exponent else np.power(10.0, values), "Gaussian limit"
    curve = _counts(overlay, "overlay", (1,), exponent or linear_from_log10)
    if curve.shape != data.shape:
        raise ValueError(
            f"`overlay` must have the shape of `counts` {data.shape}, got shape {curve.shape}"
        )
    if linear_from_log10:
        curve = _from_log10(curve, "overlay")
    if exponent:
        curve = np.where(np.isneginf(curve), np.nan, curve)
    return np.arange(data.size), curve, "multinomial row"


def plot_border_profile(
    counts: Any,
    *,
    ax: Axes | None = None,
    log: bool = True,
    is_log10: bool = False,
    **kwargs: Any,
) -> list[Line2D]:
    """Counts along the central row and column of a 2-D map against the distance from each
    edge, on a logarithmic distance axis.

    Border effects span a few pixels (about the depth of the stack) whatever the map's size:
    on a heatmap of a large map they are a line or two of screen pixels, here they take half
    the width. The four halves (from the left, right, top and bottom edges to the centre)
    coincide for a symmetric map and show any asymmetry otherwise.

    Parameters
    ----------
    counts : array_like of shape (H, W)
        Non-negative counts, or log10 counts with ``is_log10=True``.
    ax : Axes, optional
    log : bool
        Logarithmic y axis (default).
    is_log10 : bool
        ``counts`` holds log10 counts; the y axis shows the exponent, labelled ``10^k``.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.plot` for every line (``color`` and
        ``linestyle`` override the defaults that tell the four apart).

    Returns
    -------
    list of Line2D
        From the left and right edges along row ``(H - 1) // 2``, and from the top and bottom
        edges along column ``(W - 1) // 2``. x data: distance 1 (the edge pixel) to the
        centre; y data: the counts (exponents for ``is_log10``), NaN where there is no route.

    Examples
    --------
    >>> ax = Figure().add_subplot()
    >>> left, right, top, bottom = plot_border_profile([[4, 6, 4], [6, 9, 6], [4, 6, 4]], ax=ax)
    >>> left.get_xdata().tolist(), left.get_ydata().tolist()
    ([1, 2], [6.0, 9.0])
    """
    scale = _Scale(_counts(counts, "counts", (2,), is_log10), "counts", log, is_log10)
    values, exponent = scale.values, scale.exponent
    h, w = values.shape
    row, col = (h - 1) // 2, (w - 1) // 2
    halves = [
        (f"from the left edge (row {row})", values[row, : (w + 1) // 2]),
        (f"from the right edge (row {row})", values[row, ::-1][: (w + 1) // 2]),
        (f"from the top edge (column {col})", values[: (h + 1) // 2, col]),
        (f"from the bottom edge (column {col})", values[::-1, col][: (h + 1) // 2]),
    ]
    ax = _axes(ax)
    lines = []
    for i, ((name, half), style) in enumerate(zip(halves, ("-", "--", ":", "-."))):
        opts: dict[str, Any] = {
            "linestyle": style,
            "color": f"C{i}",
            "label": name,
            "linewidth": 1.0,
        }
        opts.update(kwargs)
        (line,) = ax.plot(np.arange(1, half.size + 1), half, **opts)
        lines.append(line)
    ax.set_xscale("log")
    ax.set_xlim(1, max(2, (max(h, w) + 1) // 2))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    finite = values[np.isfinite(values)]
    if exponent:
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(_pow10))
        if finite.size:
            ax.yaxis.set_major_locator(_exponent_locator(finite.min(), finite.max()))
    elif log and finite.size:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis, float(finite.min()), float(finite.max()))
    ax.set_xlabel("distance from the edge (pixels)")
    ax.set_ylabel("routes")
    ax.legend(fontsize="x-small")
    return lines


# --------------------------------------------------------------------------- sweeps
def _series(x: Any, y: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    for arr, name in zip((xs, ys), names):
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"`{name}` must be a non-empty 1-D sequence, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"`{name}` must be finite, got {arr.tolist()}")
    if xs.shape != ys.shape:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same length, got {xs.size} and {ys.size}"
        )
    return xs, ys


def plot_depth_ratio(depths: Any, ratios: Any, *, ax: Axes | None = None, **kwargs: Any) -> Line2D:
    """Edge/centre route ratio against depth, on a logarithmic y axis.

    Parameters
    ----------
    depths : array_like of shape (n,)
        Number of layers.
    ratios : array_like of shape (n,)
        Positive ratios (e.g. edge coverage over centre coverage). A straight line on this
        axis is exponential decay (``valid`` padding); a level line is a bounded ratio.
    ax : Axes, optional
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.plot` (``label`` names the series).

    Returns
    -------
    Line2D

    Examples
    --------
    >>> ax = Figure().add_subplot()
    >>> line = plot_depth_ratio([1, 2, 3], [1 / 2, 1 / 4, 1 / 8], ax=ax, label="conv2")
    >>> ax.get_yscale()
    'log'
    """
    xs, ys = _series(depths, ratios, ("depths", "ratios"))
    if (ys <= 0).any():
        raise ValueError(
            f"`ratios` must be positive for a logarithmic axis, got minimum {ys.min():g}"
        )
    ax = _axes(ax)
    opts: dict[str, Any] = {"marker": "o", "markersize": 4}
    opts.update(kwargs)
    (line,) = ax.plot(xs, ys, **opts)
    ax.set_yscale("log")
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("edge / centre routes")
    return line


def plot_erf_radius(
    depths: Any,
    radii: Any,
    *,
    ax: Axes | None = None,
    reference: bool = True,
    **kwargs: Any,
) -> Line2D:
    """Effective receptive-field radius against the square root of depth.

    Parameters
    ----------
    depths : array_like of shape (n,)
        Number of layers (>= 0).
    radii : array_like of shape (n,)
        Radius at each depth (e.g. the sigma of a fitted Gaussian, or the 95 %-mass radius).
    ax : Axes, optional
    reference : bool
        Also draw the least-squares line through the origin, ``r = c sqrt(L)``, with
        ``c = sum(r_i sqrt(L_i)) / sum(L_i)``, dashed.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.plot` for the data.

    Returns
    -------
    Line2D
        x data ``sqrt(depths)``, y data ``radii``.

    Notes
    -----
    The effective receptive field of a deep stack grows like ``sqrt(L)`` while the
    theoretical field grows like ``L`` (Luo, Li, Urtasun & Zemel, "Understanding the
    Effective Receptive Field in Deep Convolutional Neural Networks", NeurIPS 2016).

    Examples
    --------
    >>> ax = Figure().add_subplot()
    >>> line = plot_erf_radius([1, 4, 9], [0.5, 1.0, 1.5], ax=ax)
    >>> line.get_xdata().tolist()
    [1.0, 2.0, 3.0]
    """
    xs, ys = _series(depths, radii, ("depths", "radii"))
    if (xs < 0).any():
        raise ValueError(f"`depths` must be >= 0, got minimum {xs.min():g}")
    ax = _axes(ax)
    roots = np.sqrt(xs)
    opts: dict[str, Any] = {"marker": "o", "markersize": 4, "linestyle": "none"}
    opts.update(kwargs)
    (line,) = ax.plot(roots, ys, **opts)
    if reference and xs.sum() > 0:
        c = float((ys * roots).sum() / xs.sum())
        grid = np.array([0.0, roots.max()])
        ax.plot(grid, c * grid, linestyle="--", color="0.5", label=f"{c:.3g} √depth")
    ax.set_xlabel("√depth (layers)")
    ax.set_ylabel("ERF radius (pixels)")
    return line


def plot_shift_similarity(
    result: Any,
    *,
    ax: Axes | None = None,
    which: str = "pooled",
    mark_stride: bool = True,
    **kwargs: Any,
) -> Line2D:
    """Similarity of a network's output to the output for a shifted input, against the shift.

    Parameters
    ----------
    result : ShiftInvariance
        What :func:`rfanalysis.shift_invariance` returned.
    ax : Axes, optional
    which : {"pooled", "map"}
        The globally pooled features, or the output map unit by unit.
    mark_stride : bool
        Draw light vertical lines at the multiples of the network's total stride.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.plot` (``label`` names the series).

    Returns
    -------
    Line2D
        x data the shifts (sorted), y data the similarities.

    Notes
    -----
    A network with circular padding whose maps divide evenly is exactly invariant to shifts
    by multiples of its total stride (the marked lines), and its similarity repeats with
    that period.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> r = rfa.shift_invariance("conv3p1:circular,maxpool2,conv1", 8, channels=2, trials=2)
    >>> ax = Figure().add_subplot()
    >>> plot_shift_similarity(r, ax=ax).get_xdata().tolist()
    [0, 1, 2, 3, 4]
    """
    from ._empirical import ShiftInvariance

    if not isinstance(result, ShiftInvariance):
        raise TypeError(
            f"`result` must be what rfanalysis.shift_invariance returns, got "
            f"{type(result).__name__}"
        )
    if which not in ("pooled", "map"):
        raise ValueError(f"`which` must be 'pooled' or 'map', got {which!r}")
    values = result.similarity if which == "pooled" else result.map_similarity
    if values is None:
        raise ValueError(
            f"{result.network} has no output map along axis {result.axis} (its output has no "
            "spatial layout there); plot which='pooled'"
        )
    order = np.argsort(result.shifts, kind="stable")
    xs = np.asarray(result.shifts)[order]
    ax = _axes(ax)
    opts: dict[str, Any] = {"marker": "o", "markersize": 4}
    opts.update(kwargs)
    (line,) = ax.plot(xs, np.asarray(values)[order], **opts)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    s = result.stride if mark_stride and result.stride else 0
    marked = {
        float(np.asarray(ln.get_xdata())[0])
        for ln in ax.lines
        if ln.get_label() == "_stride multiple"
    }
    for m in range(-(-int(xs.min()) // s), int(xs.max()) // s + 1) if s else ():
        if m * s not in marked:  # several series on one Axes share the lines
            ax.axvline(m * s, color="0.88", linewidth=0.8, zorder=0, label="_stride multiple")
    ax.set_xlabel(f"shift (pixels along axis {result.axis})")
    ax.set_ylabel("similarity to the unshifted " + ("features" if which == "pooled" else "map"))
    return line


# --------------------------------------------------------------------------- figure builders
def _new_figure(fig: Figure | SubFigure | None, figsize: Any) -> Figure | SubFigure:
    if fig is not None:
        return fig
    return plt.figure(figsize=figsize, layout="constrained")


def _unit_mass(data: np.ndarray, name: str) -> np.ndarray:
    total = data.sum()
    if total <= 0:
        raise ValueError(f"`{name}` must have a positive total to be normalised, got {total:g}")
    return data / total


def comparison_figure(
    analytic: Any,
    empirical: Any,
    *,
    panel: str = "difference",
    log: bool = True,
    titles: Sequence[str] | None = None,
    fig: Figure | SubFigure | None = None,
    figsize: Any = None,
    cmap: Any = "viridis",
) -> tuple[Figure | SubFigure, np.ndarray]:
    """Analytic and empirical maps side by side, each of unit mass, with a third panel.

    Parameters
    ----------
    analytic, empirical : array_like of shape (H, W) or (N,)
        Non-negative maps of the same shape (route counts; mean ``|dy/dx|``). Each is divided
        by its total before plotting.
    panel : {"difference", "ratio"}
        ``empirical - analytic`` on a symmetric diverging scale, or ``empirical / analytic``
        on a logarithmic scale centred on 1 (undefined where the analytic map is 0).
    log : bool
        Logarithmic scale for the two maps (one shared scale).
    titles : sequence of 3 str, optional
    fig : Figure or SubFigure, optional
        Draw into this figure (default: a new one with constrained layout).
    figsize : (float, float), optional
    cmap : colour map for the two maps.

    Returns
    -------
    fig : Figure or SubFigure
    axes : ndarray of Axes
        2-D maps: shape (3,), the analytic map, the empirical map, the third panel.
        1-D maps: shape (2,), both profiles on one Axes, the third panel below.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> counts = rfa.routes("conv3*3", (9, 9))
    >>> fig, axes = comparison_figure(counts, counts + 1.0, fig=Figure(layout="constrained"))
    >>> [ax.get_title() for ax in axes]
    ['analytic (routes)', 'empirical', 'empirical − analytic']
    """
    a = _counts(analytic, "analytic", (1, 2))
    e = _counts(empirical, "empirical", (1, 2))
    if a.shape != e.shape:
        raise ValueError(
            f"`analytic` and `empirical` must have the same shape, got {a.shape} and {e.shape}"
        )
    if panel not in ("difference", "ratio"):
        raise ValueError(f"`panel` must be 'difference' or 'ratio', got {panel!r}")
    if titles is not None and len(titles) != 3:
        raise ValueError(f"`titles` must hold 3 titles, got {len(titles)}")
    a, e = _unit_mass(a, "analytic"), _unit_mass(e, "empirical")
    with np.errstate(divide="ignore", invalid="ignore"):
        third = e - a if panel == "difference" else np.where(a > 0, e / a, np.nan)
    names = titles or (
        "analytic (routes)",
        "empirical",
        "empirical − analytic" if panel == "difference" else "empirical / analytic",
    )
    third_label = "difference of unit-mass maps" if panel == "difference" else "ratio"
    fig = _new_figure(fig, figsize or ((11, 3.4) if a.ndim == 2 else (6.4, 5.2)))
    if a.ndim == 1:
        axes = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
        plot_profile(a, ax=axes[0], log=log, label="analytic", mark_zeros=False)
        plot_profile(e, ax=axes[0], log=log, label="empirical", color="C1", mark_zeros=False)
        axes[0].legend(fontsize="small")
        axes[0].set_ylabel("share of total")
        axes[0].set_xlabel("")
        axes[1].plot(np.arange(a.size), third, drawstyle="steps-mid", color="C2")
        axes[1].axhline(0.0 if panel == "difference" else 1.0, color="0.5", linewidth=0.8)
        if panel == "ratio":
            axes[1].set_yscale("log")
            limits = _limits([third], positive=True)
            if limits is not None:
                _plain_log_ticks(axes[1].yaxis, min(limits[0], 1.0), max(limits[1], 1.0))
        axes[1].set_xlabel("input position")
        axes[1].set_ylabel(third_label)
        axes[0].set_title(f"{names[0]} and {names[1]}")
        axes[1].set_title(names[2])
        return fig, np.asarray(axes)
    axes = fig.subplots(1, 3)
    scale = _Scale(a, "analytic", log, False)
    limits = _limits([a], positive=log) or _limits([e], positive=log)
    if limits is not None:
        limits = (limits[0], max(limits[1], float(e.max())))
    norm = scale.norm(limits)
    # the shared scale starts at the analytic map's smallest share: empirical shares below it
    # are drawn in a colour of their own, and the colour bar's arrow says so
    # (not those equal to it but for the rounding of the two maps' totals)
    below = limits is not None and bool(((e > 0) & (e < limits[0] * (1 - 1e-9))).any())
    if below and limits is not None:
        e = np.where((e > 0) & (e >= limits[0] * (1 - 1e-9)), np.maximum(e, limits[0]), e)
    shown = cmap
    if below:
        shown = plt.get_cmap(cmap) if not isinstance(cmap, colors.Colormap) else cmap
        shown = shown.with_extremes(under=UNDER_COLOR)
    images = [
        plot_coverage(
            m, ax=ax, log=log, colorbar=False, norm=norm, cmap=shown, xlabel=None, ylabel=None
        )
        for m, ax in zip((a, e), axes)
    ]
    zero = bool((a == 0).any() or (e == 0).any())
    add_colorbar(
        images[0],
        ax=list(axes[:2]),
        label="share of total" + (" (arrow: below the scale)" if below else ""),
        zero_label="zero" if zero else None,
        extend="min" if below else "neither",
    )
    if panel == "difference":
        reach = float(np.abs(third).max()) or 1.0
        third_norm: colors.Normalize = colors.Normalize(-reach, reach)
    else:
        ratios = third[np.isfinite(third) & (third > 0)]
        reach = float(np.exp(np.abs(np.log(ratios)).max())) if ratios.size else 2.0
        reach = max(reach, 1.01)
        third_norm = colors.LogNorm(1 / reach, reach)
    diverging = _with_bad("RdBu_r", ZERO_COLOR)
    image = _show(
        axes[2],
        third,
        lambda block: _block_nanmean(third, block),
        "mean",
        {"cmap": diverging, "norm": third_norm, "interpolation": "nearest"},
        note=True,
    )
    undefined = panel == "ratio" and bool(np.isnan(third).any() | (third == 0).any())
    add_colorbar(
        image, ax=axes[2], label=third_label, zero_label="undefined" if undefined else None
    )
    for ax, title in zip(axes, names):
        ax.set_title(title)
    return fig, np.asarray(axes)


def coverage_figure(
    counts: Any,
    *,
    log: bool = True,
    is_log10: bool = False,
    label: str | None = "routes",
    fig: Figure | SubFigure | None = None,
    figsize: Any = None,
    **kwargs: Any,
) -> tuple[Figure | SubFigure, np.ndarray]:
    """A 2-D count map as a heatmap beside its border profile.

    The heatmap (:func:`plot_coverage`) shows the whole map, in blocks of pixels where it
    is larger than the screen; :func:`plot_border_profile` shows the few pixels at each edge
    where the counts fall, which a heatmap of a large map cannot.

    Parameters
    ----------
    counts : array_like of shape (H, W)
        Non-negative counts, or log10 counts with ``is_log10=True``.
    log, is_log10 : bool
        As for :func:`plot_coverage` (the profile's y axis follows the colour scale).
    label : str or None
        What the counts are: the colourbar's label and the profile's y label.
    fig : Figure or SubFigure, optional
        Draw into this figure (default: a new one with constrained layout).
    figsize : (float, float), optional
    **kwargs
        Passed to :func:`plot_coverage` (e.g. ``cmap``, ``downsample``).

    Returns
    -------
    fig : Figure or SubFigure
    axes : ndarray of Axes, shape (2,)
        The heatmap and the border profile.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> fig, axes = coverage_figure(rfa.coverage("conv3p1*4", (64, 64)), fig=Figure())
    >>> [ax.get_xlabel() for ax in axes]
    ['column', 'distance from the edge (pixels)']
    """
    data = _counts(counts, "counts", (2,), is_log10)
    fig = _new_figure(fig, figsize or (9.0, 4.0))
    axes = fig.subplots(1, 2, width_ratios=(1.3, 1.0))
    plot_coverage(data, ax=axes[0], log=log, is_log10=is_log10, label=label, **kwargs)
    plot_border_profile(data, ax=axes[1], log=log, is_log10=is_log10)
    # the profile's scale on the right, away from the colourbar it would repeat
    axes[1].yaxis.tick_right()
    axes[1].yaxis.set_label_position("right")
    if label:
        axes[1].set_ylabel(label)
    axes[1].set_title("central row and column, from each edge", fontsize="medium")
    return fig, np.asarray(axes)


def grid_figure(
    panels: Sequence[tuple[str, Any]],
    *,
    ncols: int | None = None,
    log: bool = True,
    is_log10: bool = False,
    label: str | None = "routes",
    fig: Figure | SubFigure | None = None,
    figsize: Any = None,
    **kwargs: Any,
) -> tuple[Figure | SubFigure, np.ndarray]:
    """Several 2-D count maps on one shared colour scale, one titled panel each.

    Parameters
    ----------
    panels : sequence of (str, array_like of shape (H, W))
        Titles and maps, e.g. one coverage map per padding mode.
    ncols : int, optional
        Panels per row (default: up to 4).
    log, is_log10 : bool
        As for :func:`plot_coverage`; the limits span all maps.
    label : str or None
        Label of the one colourbar.
    fig : Figure or SubFigure, optional
    figsize : (float, float), optional
    **kwargs
        Passed to :func:`plot_coverage` for every panel (e.g. ``cmap``).

    Returns
    -------
    fig : Figure or SubFigure
    axes : ndarray of Axes, shape (nrows, ncols)
        Cells beyond the last panel are switched off.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> maps = [(m, rfa.coverage(f"conv3p1:{m}*2", (8, 8))) for m in ("zeros", "reflect")]
    >>> fig, axes = grid_figure(maps, fig=Figure(layout="constrained"))
    >>> axes.shape, axes[0, 0].images[0].norm.vmax == axes[0, 1].images[0].norm.vmax
    ((1, 2), True)
    """
    if isinstance(panels, (str, bytes)) or not isinstance(panels, Sequence) or not panels:
        raise ValueError("`panels` must be a non-empty sequence of (title, map) pairs")
    maps = []
    for item in panels:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"`panels` items must be (title, map) pairs, got {item!r:.60}")
        maps.append((str(item[0]), _counts(item[1], "panels", (2,), is_log10)))
    if ncols is not None and (isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1):
        raise ValueError(f"`ncols` must be a positive integer, got {ncols!r}")
    cols = min(len(maps), ncols or 4)
    rows = -(-len(maps) // cols)
    scales = [_Scale(m, "panels", log, is_log10) for _, m in maps]
    limits = _limits([s.values for s in scales], positive=scales[0].log)
    norm = scales[0].norm(limits, **kwargs)
    kwargs.pop("vmin", None)
    kwargs.pop("vmax", None)
    fig = _new_figure(fig, figsize or (2.6 * cols + 0.9, 2.5 * rows + 0.4))
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    images = []
    for ax, (title, data) in zip(axes.flat, maps):
        images.append(
            plot_coverage(
                data,
                ax=ax,
                log=log,
                is_log10=is_log10,
                colorbar=False,
                norm=norm,
                **{"xlabel": None, "ylabel": None, **kwargs},
            )
        )
        ax.set_title(title)
    for ax in axes.flat[len(maps) :]:
        ax.set_axis_off()
    zero = any(s.zero.any() for s in scales)
    add_colorbar(
        images[0],
        ax=list(axes.flat),
        label=label,
        is_log10=scales[0].exponent,
        zero_label="no route" if zero else None,
    )
    return fig, axes


# --------------------------------------------------------------------------- route diagram
def _diagram_input(net: Any, input_length: Any) -> tuple[Any, int]:
    """Validate the network and input of :func:`plot_route_diagram`."""
    network = _network(net)
    if network.ndim not in (None, 1):
        raise ValueError(
            f"`net` must be a 1-D network for a route diagram, got a {network.ndim}-D one"
        )
    n = input_length
    if isinstance(n, (tuple, list)) and len(n) == 1:
        n = n[0]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"`input_length` must be an integer, got {input_length!r}")
    return network, int(n)


def plot_route_diagram(
    net: Any,
    input_length: int,
    unit: Any = "center",
    *,
    ax: Axes | None = None,
    labels: bool = True,
    **kwargs: Any,
) -> PathCollection:
    """A small 1-D network drawn as neurons, each labelled with its routes to one top unit
    (or to all of them).

    Layers are rows of circles (the input at the bottom, the last layer at the top), placed at
    the centre of their receptive field in input coordinates, and joined by their kernel taps.
    Next to each neuron is the number of routes from it to the chosen unit of the last layer;
    for a stack of 2-tap kernels these are the rows of Pascal's triangle. Edges on a route to
    that unit are dark, the others light. Padded positions are hollow grey circles: a tap
    reading zero padding is a dotted line, and a tap that a padding mode redirects is drawn to
    its padded position, with a dotted arc to the pixel it copies.

    Parameters
    ----------
    net : Network, layer, sequence of layers, or spec string
        A 1-D chain of convolution, locally connected, pooling, transposed convolution or
        upsampling layers, with at most 64 units per layer.
    input_length : int
        Number of input units.
    unit : "center", "all" or int
        Unit of the last layer the routes lead to; ``"all"`` counts the routes to every unit
        of the last layer (the labels of the input row are then its coverage).
    ax : Axes, optional
    labels : bool
        Write the route count beside each neuron.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.scatter` for the neurons.

    Returns
    -------
    PathCollection
        The neurons (not the padded positions), layer by layer from the input; its label
        texts are in ``ax.texts`` in the same order.

    Notes
    -----
    The count beside neuron ``j`` of layer ``l`` is ``rfanalysis.routes`` of the layers above
    ``l`` for an input the size of layer ``l``'s map (exact integers): the routes from ``j``
    to the top unit (``rfanalysis.coverage`` for ``unit="all"``). Edges are the layers' tap
    connections as the route engine uses them.

    Examples
    --------
    >>> ax = Figure().add_subplot()
    >>> neurons = plot_route_diagram("conv2*3", 4, ax=ax)
    >>> [t.get_text() for t in ax.texts[:4]]  # routes from the input: Pascal's row 3
    ['1', '3', '3', '1']
    >>> ax = Figure().add_subplot()
    >>> neurons = plot_route_diagram("conv3s2p1", 5, "all", ax=ax)
    >>> [t.get_text() for t in ax.texts[:5]]  # stride 2 reads every other pixel twice
    ['1', '2', '1', '2', '1']
    """
    import rfanalysis as rfa

    network, n = _diagram_input(net, input_length)
    layers = rfa.connections(network, (n,))
    sizes = [n] + [c.n_out for c in layers]
    widest = max(sizes)
    if widest > MAX_DIAGRAM_UNITS:
        raise ValueError(
            f"`input_length` {n} gives a map of {widest} units; a route diagram draws at most "
            f"{MAX_DIAGRAM_UNITS} units per layer (use plot_profile for larger maps)"
        )
    top: int | None
    if isinstance(unit, str):
        if unit not in ("center", "all"):
            raise ValueError(f"`unit` must be 'center', 'all' or an index, got {unit!r}")
        top = (sizes[-1] - 1) // 2 if unit == "center" else None
    else:
        (top,) = unit if isinstance(unit, (tuple, list)) else (unit,)
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)):
            raise TypeError(f"`unit` must be 'center' or an integer, got {unit!r}")
        if not -sizes[-1] <= top < sizes[-1]:
            raise ValueError(
                f"`unit` {unit!r} is out of range: the last layer has {sizes[-1]} units"
            )
        top = int(top) % sizes[-1]
    # routes from every unit of layer l to the top unit (or to all top units: coverage) are
    # those of the layers above it
    counts = [
        rfa.routes(rfa.Network(network.layers[level:]), (sizes[level],), (top,), exact=True)
        if top is not None
        else rfa.coverage(rfa.Network(network.layers[level:]), (sizes[level],), exact=True)
        for level in range(len(layers))
    ]
    last = np.zeros(sizes[-1], dtype=object)
    last[slice(None) if top is None else top] = 1
    counts.append(last)

    rows = rfa.geometry(network, (n,)).rows
    starts = [float(r.start[0]) for r in rows]
    jumps = [float(r.jump[0]) for r in rows]

    def x(level: int, index: Any) -> Any:
        return starts[level] + np.asarray(index) * jumps[level]

    ax = _axes(ax)
    on: list[Any] = []
    off: list[Any] = []
    dotted: list[Any] = []
    copies: list[Any] = []
    pads: list[tuple[float, int]] = []
    for level, c in enumerate(layers, start=1):
        y0, y1 = level - 1, level
        reach = np.asarray([counts[level][o] > 0 for o in c.out], dtype=bool)
        outside = (c.position < 0) | (c.position >= c.n_in)
        routed = c.source >= 0
        moved = routed & (c.position != c.source)  # a padding mode redirects the tap
        for q, i, hit in zip(c.position[moved], c.source[moved], reach[moved]):
            copies.append(((x(y0, q), y0), (x(y0, i), y0), hit))
        for q, o in zip(c.position[~routed], c.out[~routed]):
            dotted.append([(x(y0, q), y0), (x(level, o), y1)])
        padded = set(c.position[outside].tolist())
        pad = rows[level].padding
        if pad is not None and pad[0] is not None:  # a windowed layer: its padding
            before, after = pad[0]
            padded |= {*range(-before, 0), *range(c.n_in, c.n_in + after)}
        pads += [(float(x(y0, q)), y0) for q in padded]
        for a, o, hit in zip(c.position[routed], c.out[routed], reach[routed]):
            (on if hit else off).append([(x(y0, a), y0), (x(level, o), y1)])

    line_styles: tuple[tuple[str, list[Any], dict[str, Any]], ...] = (
        ("off route", off, {"colors": "0.82", "linewidths": 0.7, "zorder": 1}),
        ("on route", on, {"colors": "0.15", "linewidths": 1.1, "zorder": 2}),
        ("reads zero padding", dotted, {"colors": "0.6", "linewidths": 0.7, "linestyles": ":"}),
    )
    for name, segments, style in line_styles:
        if segments:
            ax.add_collection(LineCollection(segments, label=name, **style))
    for start, end, hit in copies:  # padded position -> the pixel the padding mode copies
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-",
                connectionstyle="arc3,rad=0.45",
                linestyle=":",
                color="0.15" if hit else "0.7",
                linewidth=0.9,
                shrinkA=4,
                shrinkB=4,
                zorder=1,
            )
        )
    if pads:
        px, py = zip(*sorted(set(pads)))
        ax.scatter(
            px,
            py,
            s=90,
            facecolors="none",
            edgecolors="0.6",
            linestyles="--",
            zorder=3,
            label="padding",
        )

    xs = np.concatenate([x(level, np.arange(n)) for level, n in enumerate(sizes)])
    ys = np.concatenate([np.full(n, level) for level, n in enumerate(sizes)])
    values = [c for row in counts for c in row.tolist()]
    reached = np.asarray([c > 0 for c in values])
    face = np.where(reached, "#cfe3f3", "white").astype(object)
    for t in range(sizes[-1]) if top is None else (top,):
        face[len(face) - sizes[-1] + t] = "#f4a259"
    opts: dict[str, Any] = {
        "s": 90,
        "c": list(face),
        "edgecolors": np.where(reached, "0.15", "0.6").tolist(),
        "linewidths": 0.9,
        "zorder": 3,
        "label": "neurons",
    }
    opts.update(kwargs)
    neurons = ax.scatter(xs, ys, **opts)
    if labels:
        for xv, yv, c, hit in zip(xs, ys, values, reached):
            ax.annotate(
                str(c),
                (xv, yv),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize="small",
                color="0.1" if hit else "0.6",
                bbox={"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none"},
                zorder=4,
            )

    names = ["input", *(f"{c.index} {c.layer}" for c in layers)]
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    left = min([xs.min(), *(q for q, _ in pads)])
    right = max([xs.max(), *(q for q, _ in pads)])
    ax.set_xlim(left - 0.6, right + 0.9)
    ax.set_ylim(-0.5, len(sizes) - 0.4)
    return neurons
