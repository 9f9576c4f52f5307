"""Plot functions: the returned artist and its data, defaults and overrides, bad input, and
figure-equality checks. Expected values are hand-computed (derivations in comments) or come
from closed forms (binomial coefficients), never from the plotting code itself."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
from matplotlib import colors
from matplotlib import pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

import rfanalysis as rfa
from rfanalysis import plotting
from rfanalysis._style import PAPER_RC, figure_bytes, paper_style

# conv3s2 (valid) along 7 units reads 0-2, 2-4, 4-6: coverage 1 1 2 1 2 1 1; along 8 units the
# same three windows leave the last unit unread: 1 1 2 1 2 1 1 0. The 2-D map is the outer
# product: values 1, 2, 4 and a zero column.
ROWS = np.array([1, 1, 2, 1, 2, 1, 1.0])
COLS = np.array([1, 1, 2, 1, 2, 1, 1, 0.0])
STRIDED = np.outer(ROWS, COLS)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _labels(ax):
    return [t.get_text() for t in ax.texts]


def _collection(ax, label):
    return next(c for c in ax.collections if c.get_label() == label)


def _rgba(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _tick_labels(cbar):
    """Labels of the colourbar ticks inside its range."""
    cbar.ax.figure.canvas.draw()
    lo, hi = cbar.norm.vmin, cbar.norm.vmax
    axis = cbar.long_axis
    return [
        label.get_text()
        for loc, label in zip(axis.get_majorticklocs(), axis.get_ticklabels())
        if lo - 1e-12 <= loc <= hi + 1e-12
    ]


# --------------------------------------------------------------------------- heatmaps
def test_strided_map_matches_the_hand_computed_coverage():
    # the fixture map above is what the engine computes; the plots below rely on it
    np.testing.assert_array_equal(rfa.coverage("conv3s2", (7, 8)), STRIDED)


def test_plot_coverage_log_scale_masks_zero_and_adds_colourbar(ax):
    image = plotting.plot_coverage(STRIDED, ax=ax)
    assert isinstance(image, AxesImage)
    data = image.get_array()
    assert data.mask[:, 7].all() and not data.mask[:, :7].any()
    np.testing.assert_array_equal(data[:, :7], STRIDED[:, :7])
    assert isinstance(image.norm, colors.LogNorm)
    assert (image.norm.vmin, image.norm.vmax) == (1.0, 4.0)
    assert image.cmap.get_bad() == pytest.approx(colors.to_rgba(plotting.ZERO_COLOR))
    cbar = image.colorbar
    assert isinstance(cbar, Colorbar) and cbar.ax.get_ylabel() == "routes"
    assert "no route" in [t.get_text() for t in cbar.ax.texts]


def test_plot_coverage_without_zero_has_no_zero_swatch(ax):
    image = plotting.plot_coverage(STRIDED[:, :7], ax=ax)
    assert len(image.colorbar.ax.texts) == 0


def test_plot_coverage_linear_scale_starts_at_zero(ax):
    image = plotting.plot_coverage(STRIDED, ax=ax, log=False, colorbar=False)
    assert type(image.norm) is colors.Normalize
    assert (image.norm.vmin, image.norm.vmax) == (0.0, 4.0)
    assert image.colorbar is None


def test_plot_coverage_of_log10_counts_is_linear_in_the_exponent(ax):
    with np.errstate(divide="ignore"):
        exponents = np.log10(STRIDED)
    image = plotting.plot_coverage(exponents, ax=ax, is_log10=True)
    data = image.get_array()
    assert data.mask[:, 7].all()
    np.testing.assert_allclose(data[:, :7], np.log10(STRIDED[:, :7]))
    assert type(image.norm) is colors.Normalize
    assert image.norm.vmin == 0.0 and image.norm.vmax == pytest.approx(math.log10(4))
    # a range under one decade (1..4) gets a tick at every integer mantissa, as plain numbers
    assert _tick_labels(image.colorbar) == ["1", "2", "3", "4"]


def test_log10_counts_beyond_float64_keep_exponent_labels(ax):
    # exponents 400..420 cannot be shown as floats; ticks are labelled 10^k (step of 5 here)
    image = plotting.plot_coverage(np.linspace(400, 420, 12).reshape(3, 4), ax=ax, is_log10=True)
    labels = _tick_labels(image.colorbar)
    assert "$10^{400}$" in labels and "$10^{420}$" in labels
    with pytest.raises(ValueError, match=r"beyond float64; use a logarithmic scale"):
        plotting.plot_coverage(np.full((2, 2), 400.0), ax=ax, is_log10=True, log=False)


def test_plot_coverage_accepts_exact_integers(ax):
    exact = rfa.coverage("conv3s2", (7, 8), exact=True)
    image = plotting.plot_coverage(exact, ax=ax, colorbar=False)
    np.testing.assert_array_equal(image.get_array()[:, :7], STRIDED[:, :7])
    huge = np.array([[10**400, 1]], dtype=object)
    with pytest.raises(ValueError, match="exceed the float64 range"):
        plotting.plot_coverage(huge, ax=ax)


def test_plot_coverage_kwargs_override_defaults(ax):
    image = plotting.plot_coverage(
        STRIDED, ax=ax, cmap="magma", vmin=2.0, interpolation="bilinear", colorbar=False
    )
    assert image.cmap.name.startswith("magma")
    assert isinstance(image.norm, colors.LogNorm) and image.norm.vmin == 2.0
    assert image.norm.vmax == 4.0
    assert image.get_interpolation() == "bilinear"
    norm = colors.Normalize(0, 10)
    assert plotting.plot_coverage(STRIDED, ax=ax, norm=norm, colorbar=False).norm is norm


def test_flat_map_gets_a_usable_scale(ax):
    # circular padding: every pixel has 3 x 3 = 9 routes per unit, 9 in all for one layer
    flat = rfa.coverage("conv3p1:circular", (6, 6))
    assert (flat == 9).all()
    image = plotting.plot_coverage(flat, ax=ax)
    assert image.norm.vmin < 9 < image.norm.vmax
    ax.figure.canvas.draw()


def test_plot_coverage_draws_on_the_current_axes_by_default(ax):
    plt.sca(ax)
    image = plotting.plot_coverage(STRIDED, colorbar=False)
    assert image.axes is ax


@pytest.mark.parametrize(
    ("counts", "kwargs", "error", "match"),
    [
        (np.ones(5), {}, ValueError, r"`counts` must be 2-D, got shape \(5,\); use plot_profile"),
        (np.ones((2, 2, 2)), {}, ValueError, r"must be 2-D, got shape \(2, 2, 2\)"),
        (np.zeros((0, 3)), {}, ValueError, "must not be empty"),
        (-np.ones((2, 2)), {}, ValueError, "must be non-negative counts, got minimum -1"),
        (np.full((2, 2), np.nan), {}, ValueError, "must be finite counts"),
        (np.full((2, 2), np.inf), {}, ValueError, "pass log10 counts with is_log10=True"),
        (np.full((2, 2), np.nan), {"is_log10": True}, ValueError, r"must not be NaN or \+inf"),
        (np.array([["a", "b"]]), {}, TypeError, "counts must be numbers"),
    ],
)
def test_plot_coverage_rejects_bad_counts(ax, counts, kwargs, error, match):
    with pytest.raises(error, match=match):
        plotting.plot_coverage(counts, ax=ax, **kwargs)


def test_add_colorbar_labels_and_plain_ticks(ax):
    image = plotting.plot_coverage(STRIDED, ax=ax, colorbar=False)
    cbar = plotting.add_colorbar(image, label="coverage", zero_label="none")
    assert isinstance(cbar, Colorbar) and cbar.ax.get_ylabel() == "coverage"
    assert [t.get_text() for t in cbar.ax.texts] == ["none"]
    # LogNorm over 1..4, under one decade: a plain tick at every integer mantissa
    assert _tick_labels(cbar) == ["1", "2", "3", "4"]


def test_plot_blind_spots_marks_the_mask(ax):
    mask = STRIDED == 0
    overlay = plotting.plot_blind_spots(STRIDED, mask, ax=ax)
    assert isinstance(overlay, AxesImage)
    rgba = overlay.get_array()
    assert rgba.shape == (7, 8, 4)
    np.testing.assert_array_equal(rgba[..., 3] > 0, mask)
    assert tuple(rgba[0, 7]) == pytest.approx(colors.to_rgba("#d62728"))
    base = ax.images[0]
    assert overlay.get_extent() == base.get_extent() and overlay.zorder > base.zorder
    # every zero pixel is marked: the key names the 7 marked pixels and no "no route" swatch
    texts = [t.get_text() for t in base.colorbar.ax.texts]
    assert texts == ["blind spot (7 pixels)"]


def test_plot_blind_spots_without_colourbar_uses_a_legend(ax):
    mask = np.zeros(STRIDED.shape, dtype=bool)
    mask[0, 0] = True
    plotting.plot_blind_spots(STRIDED, mask, ax=ax, colorbar=False, color="blue", alpha=0.5)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["blind spot (1 pixel)"]
    assert ax.images[1].get_alpha() == 0.5


def test_plot_blind_spots_rejects_bad_masks(ax):
    with pytest.raises(ValueError, match=r"`mask` must have the shape of `counts` \(7, 8\)"):
        plotting.plot_blind_spots(STRIDED, np.zeros((7, 7), dtype=bool), ax=ax)
    with pytest.raises(TypeError, match="`mask` must be a boolean array, got dtype float64"):
        plotting.plot_blind_spots(STRIDED, np.zeros(STRIDED.shape), ax=ax)


# --------------------------------------------------------------------------- profiles
PASCAL4 = [1.0, 4.0, 6.0, 4.0, 1.0]  # binomial coefficients C(4, j)


def test_plot_profile_line_data_and_log_axis(ax):
    line = plotting.plot_profile(np.array(PASCAL4), ax=ax)
    assert isinstance(line, Line2D)
    assert line.get_xdata().tolist() == [0, 1, 2, 3, 4]
    assert line.get_ydata().tolist() == PASCAL4
    assert ax.get_yscale() == "log"
    assert ax.get_legend() is None  # nothing to explain: one curve, no zeros
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("input position", "routes")


def test_plot_profile_gaussian_overlay_has_the_profile_mass(ax):
    plotting.plot_profile(np.array(PASCAL4), ax=ax, overlay=(2.0, 1.0))
    curve = ax.lines[1]
    assert curve.get_label() == "Gaussian limit" and curve.get_linestyle() == "--"
    xs, ys = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    # total 16, sigma 1: the peak at x = 2 is 16 / sqrt(2 pi)
    peak = ys[np.argmin(np.abs(xs - 2.0))]
    assert peak == pytest.approx(16 / math.sqrt(2 * math.pi))
    assert xs.min() == -0.5 and xs.max() == 4.5
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["routes", "Gaussian limit"]


def test_plot_profile_array_overlay_and_overrides(ax):
    row = np.array([1.0, 3, 3, 1])
    line = plotting.plot_profile(
        row,
        ax=ax,
        overlay=row / 2,
        overlay_label="half",
        overlay_kw={"color": "k"},
        color="red",
        drawstyle="default",
        legend=False,
    )
    assert line.get_color() == "red" and line.get_drawstyle() == "default"
    overlay = ax.lines[1]
    assert overlay.get_ydata().tolist() == [0.5, 1.5, 1.5, 0.5]
    assert overlay.get_label() == "half" and overlay.get_color() == "k"
    assert ax.get_legend() is None


def test_plot_profile_marks_positions_without_routes(ax):
    # conv3s2 along 8 units: 1 1 2 1 2 1 1 0
    line = plotting.plot_profile(COLS, ax=ax)
    assert line.get_ydata().tolist() == COLS.tolist()
    marks = next(line for line in ax.lines if line.get_label() == "no route")
    assert marks.get_xdata().tolist() == [7]


def test_plot_profile_log10_counts(ax):
    exponents = np.array([-np.inf, 0.0, 300.0, 600.0])
    line = plotting.plot_profile(exponents, ax=ax, is_log10=True, mark_zeros=False)
    ys = line.get_ydata()
    assert np.isnan(ys[0]) and ys[1:].tolist() == [0.0, 300.0, 600.0]
    assert ax.get_yscale() == "linear"
    # the exponent axis reads as counts: 10^k, m x 10^k, or a plain number for small counts
    label = ax.yaxis.get_major_formatter()
    assert label(300.0) == "$10^{300}$"
    assert label(5 + math.log10(2)) == "$2\\times10^{5}$"
    assert label(1 + math.log10(5)) == "50"
    # log10 input on a linear axis: back to counts when they fit in float64
    fig, other = plt.subplots()
    try:
        line = plotting.plot_profile(np.array([0.0, 1.0, 2.0]), ax=other, is_log10=True, log=False)
        assert line.get_ydata().tolist() == [1.0, 10.0, 100.0]
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("counts", "kwargs", "match"),
    [
        (np.ones((2, 2)), {}, r"`counts` must be 1-D, got shape \(2, 2\); use plot_coverage"),
        (np.ones(3), {"overlay": np.ones(4)}, r"`overlay` must have the shape of `counts` \(3,\)"),
        (np.ones(3), {"overlay": (1.0, 0.0)}, r"must be finite with sigma > 0, got \(1.0, 0.0\)"),
        (np.ones(3), {"overlay": -np.ones(3)}, "`overlay` must be non-negative"),
        (-np.ones(3), {}, "`counts` must be non-negative"),
    ],
)
def test_plot_profile_rejects_bad_input(ax, counts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.plot_profile(counts, ax=ax, **kwargs)


# --------------------------------------------------------------------------- sweeps
def test_plot_depth_ratio(ax):
    # a 2-tap valid stack of depth L on L + 1 pixels: edge/centre = 1 / C(L, L // 2)
    depths = [1, 2, 3, 4]
    ratios = [1 / math.comb(d, d // 2) for d in depths]
    line = plotting.plot_depth_ratio(depths, ratios, ax=ax, label="valid", marker="s")
    assert isinstance(line, Line2D)
    assert line.get_xdata().tolist() == depths and line.get_ydata().tolist() == ratios
    assert ax.get_yscale() == "log"
    assert line.get_label() == "valid" and line.get_marker() == "s"


@pytest.mark.parametrize(
    ("depths", "ratios", "match"),
    [
        ([1, 2], [0.5, 0.0], "`ratios` must be positive for a logarithmic axis, got minimum 0"),
        ([1, 2, 3], [0.5, 0.25], "must have the same length, got 3 and 2"),
        ([[1, 2]], [[0.5, 0.2]], r"`depths` must be a non-empty 1-D sequence, got shape \(1, 2\)"),
        ([1, np.nan], [0.5, 0.2], "`depths` must be finite"),
    ],
)
def test_plot_depth_ratio_rejects_bad_input(ax, depths, ratios, match):
    with pytest.raises(ValueError, match=match):
        plotting.plot_depth_ratio(depths, ratios, ax=ax)


def test_plot_erf_radius_against_sqrt_depth(ax):
    line = plotting.plot_erf_radius([1, 4, 9], [0.5, 1.0, 1.5], ax=ax)
    assert line.get_xdata().tolist() == [1.0, 2.0, 3.0]
    assert line.get_ydata().tolist() == [0.5, 1.0, 1.5]
    # least squares through the origin: c = (0.5*1 + 1*2 + 1.5*3) / (1 + 4 + 9) = 7/14 = 0.5
    reference = ax.lines[1]
    assert reference.get_xdata().tolist() == [0.0, 3.0]
    assert reference.get_ydata().tolist() == pytest.approx([0.0, 1.5])
    assert reference.get_label() == "0.5 √depth"
    with pytest.raises(ValueError, match="`depths` must be >= 0, got minimum -1"):
        plotting.plot_erf_radius([-1, 4], [1.0, 1.0], ax=ax)


def test_plot_erf_radius_without_reference(ax):
    plotting.plot_erf_radius([1, 4], [1.0, 2.0], ax=ax, reference=False, color="k")
    assert len(ax.lines) == 1 and ax.lines[0].get_color() == "k"


# --------------------------------------------------------------------------- builders
def test_comparison_figure_normalises_and_shares_the_scale():
    # analytic: conv2*2 routes on 3x3 = outer(1 2 1, 1 2 1), total 16; empirical: ones, total 9
    analytic = np.outer([1.0, 2, 1], [1.0, 2, 1])
    empirical = np.ones((3, 3))
    fig, axes = plotting.comparison_figure(analytic, empirical)
    try:
        assert axes.shape == (3,)
        a_img, e_img, d_img = (ax.images[0] for ax in axes)
        np.testing.assert_allclose(a_img.get_array(), analytic / 16)
        np.testing.assert_allclose(e_img.get_array(), empirical / 9)
        assert a_img.norm is e_img.norm and isinstance(a_img.norm, colors.LogNorm)
        assert (a_img.norm.vmin, a_img.norm.vmax) == pytest.approx((1 / 16, 4 / 16))
        np.testing.assert_allclose(d_img.get_array(), 1 / 9 - analytic / 16)
        # the largest |difference| is at the centre: 4/16 - 1/9 = 5/36; the scale is symmetric
        assert (d_img.norm.vmin, d_img.norm.vmax) == pytest.approx((-5 / 36, 5 / 36))
        assert [ax.get_title() for ax in axes] == [
            "analytic (routes)",
            "empirical",
            "empirical − analytic",
        ]
    finally:
        plt.close(fig)


def test_comparison_figure_marks_empirical_shares_below_the_scale():
    # analytic shares 1/16 .. 4/16; the empirical corner holds 1e-6 of its total, far below
    analytic = np.outer([1.0, 2, 1], [1.0, 2, 1])
    empirical = analytic.copy()
    empirical[0, 0] = 16e-6
    fig, axes = plotting.comparison_figure(analytic, empirical)
    try:
        e_img = axes[1].images[0]
        assert e_img.norm.vmin == pytest.approx(1 / 16)
        under = colors.to_rgba(plotting.UNDER_COLOR)
        assert e_img.cmap.get_under() == pytest.approx(under)
        rgba = e_img.to_rgba(e_img.get_array())
        assert rgba[0, 0] == pytest.approx(under)  # the corner, in the colour of its own
        assert rgba[0, 1] != pytest.approx(under)
        labels = [c.get_ylabel() for c in fig.axes if c not in axes]
        assert "share of total (arrow: below the scale)" in labels
    finally:
        plt.close(fig)
    # no empirical share below the scale: no arrow, no colour of its own
    fig, axes = plotting.comparison_figure(analytic, np.ones((3, 3)))
    try:
        assert "below" not in "".join(c.get_ylabel() for c in fig.axes)
    finally:
        plt.close(fig)


def test_comparison_figure_ratio_panel():
    analytic = np.array([[0.0, 1.0], [1.0, 2.0]])  # total 4
    empirical = np.array([[1.0, 1.0], [1.0, 1.0]])  # total 4
    fig, axes = plotting.comparison_figure(
        analytic, empirical, panel="ratio", titles=("a", "e", "r")
    )
    try:
        ratio = axes[2].images[0]
        # e/a after normalising: undefined where a = 0, then 1, 1, 1/2; limits 1/2 .. 2
        values = ratio.get_array()
        assert np.isnan(values[0, 0]) or np.ma.is_masked(values[0, 0])
        np.testing.assert_allclose(np.asarray(values)[[0, 1, 1], [1, 0, 1]], [1.0, 1.0, 0.5])
        assert (ratio.norm.vmin, ratio.norm.vmax) == pytest.approx((0.5, 2.0))
        assert "undefined" in [t.get_text() for t in ratio.colorbar.ax.texts]
        assert [ax.get_title() for ax in axes] == ["a", "e", "r"]
    finally:
        plt.close(fig)


def test_comparison_figure_of_profiles():
    analytic = np.array(PASCAL4)  # total 16
    empirical = np.ones(5)  # total 5
    fig = Figure(layout="constrained")
    same, axes = plotting.comparison_figure(analytic, empirical, fig=fig)
    assert same is fig and axes.shape == (2,)
    top, bottom = axes
    assert top.lines[0].get_ydata().tolist() == pytest.approx([x / 16 for x in PASCAL4])
    assert top.lines[1].get_ydata().tolist() == pytest.approx([0.2] * 5)
    assert bottom.lines[0].get_ydata().tolist() == pytest.approx([0.2 - x / 16 for x in PASCAL4])


@pytest.mark.parametrize(
    ("analytic", "empirical", "kwargs", "match"),
    [
        (np.ones((2, 2)), np.ones((2, 3)), {}, r"same shape, got \(2, 2\) and \(2, 3\)"),
        (np.ones((2, 2)), np.ones((2, 2)), {"panel": "log"}, "'difference' or 'ratio', got 'log'"),
        (np.zeros((2, 2)), np.ones((2, 2)), {}, "`analytic` must have a positive total"),
        (np.ones((2, 2)), -np.ones((2, 2)), {}, "`empirical` must be non-negative"),
        (np.ones((2, 2, 2)), np.ones((2, 2, 2)), {}, "`analytic` must be 1-D or 2-D"),
        (np.ones((2, 2)), np.ones((2, 2)), {"titles": ("a",)}, "must hold 3 titles, got 1"),
    ],
)
def test_comparison_figure_rejects_bad_input(analytic, empirical, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.comparison_figure(analytic, empirical, **kwargs)


def test_grid_figure_shares_one_colour_scale():
    # conv3p1 (zeros) on 3x3: corner 4, edge 6, centre 9; valid conv3 on 3x3: all ones
    same = rfa.coverage("conv3p1", (3, 3))
    valid = rfa.coverage("conv3", (3, 3))
    np.testing.assert_array_equal(same, [[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    fig, axes = plotting.grid_figure([("same", same), ("valid", valid), ("x", same)], ncols=2)
    try:
        assert axes.shape == (2, 2)
        images = [ax.images[0] for ax in axes.flat[:3]]
        assert all(isinstance(i.norm, colors.LogNorm) for i in images)
        assert {(i.norm.vmin, i.norm.vmax) for i in images} == {(1.0, 9.0)}
        np.testing.assert_array_equal(images[1].get_array(), valid)
        assert [ax.get_title() for ax in axes.flat[:3]] == ["same", "valid", "x"]
        assert not axes[1, 1].axison
        colourbars = {i.colorbar for i in images} - {None}
        assert len(colourbars) == 1
    finally:
        plt.close(fig)


def test_grid_figure_passes_kwargs_and_limits():
    maps = [("a", STRIDED), ("b", 2 * STRIDED)]
    fig, axes = plotting.grid_figure(maps, cmap="magma", vmax=100.0, log=False)
    try:
        norms = {(ax.images[0].norm.vmin, ax.images[0].norm.vmax) for ax in axes.flat}
        assert norms == {(0.0, 100.0)}
        assert axes[0, 0].images[0].cmap.name.startswith("magma")
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("panels", "kwargs", "match"),
    [
        ([], {}, "non-empty sequence of"),
        ("abc", {}, "non-empty sequence of"),
        ([("a", np.ones((2, 2)), 3)], {}, "items must be .title, map. pairs"),
        ([("a", np.ones(4))], {}, r"`panels` must be 2-D, got shape \(4,\)"),
        ([("a", np.ones((2, 2)))], {"ncols": 0}, "`ncols` must be a positive integer, got 0"),
    ],
)
def test_grid_figure_rejects_bad_input(panels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plotting.grid_figure(panels, **kwargs)


# --------------------------------------------------------------------------- route diagram
def test_route_diagram_of_a_two_tap_stack_is_pascals_triangle(ax):
    neurons = plotting.plot_route_diagram("conv2*5", 6, ax=ax)
    assert isinstance(neurons, PathCollection)
    # layer k (0 = input) has 6 - k neurons; neuron j of layer k reaches the top unit along
    # C(5 - k, j) routes (choose which of the 5 - k remaining layers step right)
    expected = [str(math.comb(5 - k, j)) for k in range(6) for j in range(6 - k)]
    assert _labels(ax) == expected
    assert _labels(ax)[:6] == [str(int(v)) for v in rfa.routes("conv2*5", (6,))]
    # neuron j of layer k sits at the centre of its field: x = j + k/2, y = k
    offsets = neurons.get_offsets()
    assert offsets.tolist() == [[j + k / 2, k] for k in range(6) for j in range(6 - k)]
    # every edge of a valid stack whose field is the whole input lies on a route:
    # 2 taps x (5 + 4 + 3 + 2 + 1) outputs = 30 edges
    on = _collection(ax, "on route")
    assert isinstance(on, LineCollection) and len(on.get_segments()) == 30
    assert not [c for c in ax.collections if c.get_label() == "off route"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["input"] + [
        f"{i} conv2" for i in range(1, 6)
    ]


def test_route_diagram_with_zero_padding(ax):
    # conv3p1*2 on 5 units, top unit 0. Layer 2's unit 0 reads layer-1 positions -1 (zero
    # padding), 0, 1: layer 1 counts 1 1 0 0 0. Layer 1's unit 0 reads -1, 0, 1 and unit 1
    # reads 0, 1, 2, each with one route: input counts 2 2 1 0 0.
    plotting.plot_route_diagram("conv3p1*2", 5, unit=0, ax=ax)
    assert _labels(ax) == "2 2 1 0 0 1 1 0 0 0 1 0 0 0 0".split()
    assert _labels(ax)[:5] == [str(int(v)) for v in rfa.routes("conv3p1*2", (5,), unit=(0,))]
    # edges on a route: 2 real taps of the top unit, then 2 + 3 taps of layer-1 units 0 and 1
    assert len(_collection(ax, "on route").get_segments()) == 7
    # taps reading zero padding: units 0 and 4 of each layer, one each: 4 dotted lines
    assert len(_collection(ax, "reads zero padding").get_segments()) == 4
    # padded positions -1 and 5 under each of the two layers, hollow
    pads = _collection(ax, "padding")
    assert sorted(map(tuple, pads.get_offsets().tolist())) == [
        (-1.0, 0.0),
        (-1.0, 1.0),
        (5.0, 0.0),
        (5.0, 1.0),
    ]
    assert pads.get_facecolor().size == 0  # hollow


def test_route_diagram_with_reflect_padding(ax):
    # conv3p1:reflect*2 on 6 units, top unit 0. Its taps read layer-1 positions -1 (= 1 by
    # reflection), 0, 1: layer 1 counts 1 2 0 0 0 0. Input: layer-1 unit 0 reads -1 (= 1), 0, 1
    # -> pixel 0 once, pixel 1 twice; unit 1 (2 routes) reads 0, 1, 2 -> 2 each.
    # Input counts 1 + 2, 2 + 2, 2 = 3 4 2 0 0 0.
    plotting.plot_route_diagram("conv3p1:reflect*2", 6, unit=0, ax=ax)
    labels = _labels(ax)
    assert labels[:6] == ["3", "4", "2", "0", "0", "0"]
    assert labels[6:12] == ["1", "2", "0", "0", "0", "0"]
    assert labels[:6] == [str(int(v)) for v in rfa.routes("conv3p1:reflect*2", (6,), unit=(0,))]
    assert not [c for c in ax.collections if c.get_label() == "reads zero padding"]
    # redirected taps (2 per layer) are drawn to the padded position with an arc to the pixel
    assert len(ax.patches) == 4


def test_route_diagram_with_stride_and_dilation(ax):
    # conv3s2 then conv3 on 11 units: layer 1 has 5 units centred on input 1, 3, 5, 7, 9; the
    # top (centre of 3) reads layer-1 units 1, 2, 3, which read inputs 2-4, 4-6, 6-8
    neurons = plotting.plot_route_diagram("conv3s2,conv3", 11, ax=ax)
    assert _labels(ax)[:11] == ["0", "0", "1", "1", "2", "1", "2", "1", "1", "0", "0"]
    assert neurons.get_offsets()[11:16, 0].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
    ax.clear()
    # conv2d2 then conv2 on 6: layer-1 unit o reads o and o + 2; the top (unit 1 of 3) reads
    # layer-1 units 1 and 2, hence inputs 1, 3 and 2, 4
    plotting.plot_route_diagram("conv2d2,conv2", 6, ax=ax)
    assert _labels(ax)[:6] == ["0", "1", "1", "1", "1", "0"]


def test_route_diagram_kwargs_and_labels_switch(ax):
    neurons = plotting.plot_route_diagram("conv2*2", 3, ax=ax, labels=False, s=200)
    assert len(ax.texts) == 0 and neurons.get_sizes().tolist() == [200]


@pytest.mark.parametrize(
    ("net", "n", "kwargs", "error", "match"),
    [
        ("conv3x3", 8, {}, ValueError, "must be a 1-D network for a route diagram, got a 2-D"),
        ("res(conv3p1)", 8, {}, ValueError, r"layer 1 \(res\(conv3p1\)\): a route diagram"),
        ("conv3,fc2", 8, {}, ValueError, r"layer 2 \(fc2\).*dense layers are not supported"),
        ("conv3", 65, {}, ValueError, "a map of 65 units; a route diagram draws at most 64"),
        ("conv3", 8.0, {}, TypeError, "`input_length` must be an integer, got 8.0"),
        ("conv3", 8, {"unit": 6}, ValueError, "out of range"),
        ("conv9", 4, {}, ValueError, r"layer 1 \(conv9\): output size 0 for input 4"),
    ],
)
def test_route_diagram_rejects_bad_input(ax, net, n, kwargs, error, match):
    with pytest.raises(error, match=match):
        plotting.plot_route_diagram(net, n, ax=ax, **kwargs)


def test_route_diagram_accepts_layers_and_one_tuple_sizes(ax):
    net = rfa.Network([rfa.Conv((2,))] * 3)
    plotting.plot_route_diagram(net, (4,), unit=-1, ax=ax)
    # top layer has 1 unit: unit -1 is unit 0; input counts are Pascal's row 3
    assert _labels(ax)[:4] == ["1", "3", "3", "1"]


# --------------------------------------------------------------------------- figure equality
def test_log_counts_and_log10_counts_draw_the_same_pixels():
    """Counts on a LogNorm and their log10 on a linear norm are the same picture."""
    counts = np.outer([1.0, 10, 100, 10], [1.0, 10, 100])
    pictures = []
    for data, is_log10 in ((counts, False), (np.log10(counts), True)):
        fig = Figure(figsize=(3, 3), dpi=50)
        plotting.plot_coverage(data, ax=fig.add_subplot(), is_log10=is_log10, colorbar=False)
        pictures.append(_rgba(fig))
    np.testing.assert_array_equal(pictures[0], pictures[1])


def test_rendering_is_byte_for_byte_reproducible():
    outputs = {}
    for fmt in ("png", "pdf", "svg"):
        renders = []
        for _ in range(2):
            with paper_style():
                fig = Figure(figsize=(4, 3), layout="constrained")
                plotting.plot_route_diagram("conv3p1:reflect*2", 6, unit=0, ax=fig.add_subplot())
                renders.append(figure_bytes(fig, fmt, dpi=80))
        assert renders[0] == renders[1]
        outputs[fmt] = renders[0]
    assert b"Matplotlib" not in outputs["png"] and b"Software" not in outputs["png"]
    assert b"CreationDate" not in outputs["pdf"] and b"Matplotlib" not in outputs["pdf"]
    assert b"<dc:date>" not in outputs["svg"] and b"Matplotlib v" not in outputs["svg"]


def test_paper_style_is_scoped():
    before = matplotlib.rcParams["font.size"]
    with paper_style():
        assert matplotlib.rcParams["font.size"] == PAPER_RC["font.size"]
    assert matplotlib.rcParams["font.size"] == before
    with pytest.raises(ValueError, match="`fmt` must be one of png, pdf, svg, got 'gif'"):
        figure_bytes(Figure(), "gif")


def test_save_figure_writes_the_deterministic_bytes_and_nothing_on_error(tmp_path):
    with plotting.paper_style():
        fig = Figure(figsize=(3, 2))
        plotting.plot_profile([1, 4, 6, 4, 1], ax=fig.add_subplot())
        path = plotting.save_figure(fig, tmp_path / "p.svg", dpi=60)
        assert path == tmp_path / "p.svg"
        assert path.read_bytes() == figure_bytes(fig, "svg", dpi=60)
        with pytest.raises(ValueError, match="`fmt` must be one of png, pdf, svg, got 'gif'"):
            plotting.save_figure(fig, tmp_path / "p.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.svg"]


def test_route_diagram_to_all_units_labels_the_coverage(ax):
    # conv3s2p1 on 5 units: outputs read -1..1, 1..3, 3..5, so pixels 1 and 3 are read twice
    neurons = plotting.plot_route_diagram("conv3s2p1", 5, "all", ax=ax)
    assert _labels(ax) == "1 2 1 2 1 1 1 1".split()
    # every top unit is a target: no edge is off route, and all three are highlighted
    assert not [c for c in ax.collections if c.get_label() == "off route"]
    assert len({tuple(c) for c in neurons.get_facecolors()[-3:]}) == 1
    assert tuple(neurons.get_facecolors()[-1]) != tuple(neurons.get_facecolors()[0])
    with pytest.raises(ValueError, match="`unit` must be 'center', 'all' or an index"):
        plotting.plot_route_diagram("conv3", 5, "every", ax=ax)


def test_plot_shift_similarity(ax):
    r = rfa.ShiftInvariance(
        "net", (8,), 0, "circular", 2, (2, 0, 1), (1.0, 1.0, 0.5), (1.0, 1.0, 0.25), (1, 0, 0),
        4, {},
    )  # fmt: skip
    line = plotting.plot_shift_similarity(r, ax=ax, label="a", color="C3")
    assert line.get_xdata().tolist() == [0, 1, 2] and line.get_ydata().tolist() == [1, 0.5, 1]
    assert line.get_label() == "a" and line.get_color() == "C3"
    plotting.plot_shift_similarity(r, ax=ax, which="map")
    assert ax.lines[-1].get_ydata().tolist() == [1, 0.25, 1]
    # multiples of the stride (0 and 2) are marked once, however many series are drawn
    marks = [ln.get_xdata()[0] for ln in ax.lines if ln.get_label() == "_stride multiple"]
    assert sorted(marks) == [0, 2]
    flat = rfa.ShiftInvariance("fc", (8,), 0, "circular", 1, (0,), (1.0,), None, None, 2, {})
    with pytest.raises(ValueError, match="fc has no output map along axis 0"):
        plotting.plot_shift_similarity(flat, ax=ax, which="map")
    with pytest.raises(ValueError, match="`which` must be 'pooled' or 'map', got 'both'"):
        plotting.plot_shift_similarity(r, ax=ax, which="both")
    with pytest.raises(TypeError, match=r"`result` must be what rfanalysis\.shift_invariance"):
        plotting.plot_shift_similarity([1.0, 0.5], ax=ax)
    # integer ticks; no stride lines when asked not to draw them
    assert all(float(t).is_integer() for t in ax.get_xticks())
    fresh = Figure().add_subplot()
    plotting.plot_shift_similarity(r, ax=fresh, mark_stride=False)
    assert len(fresh.lines) == 1


def test_plot_coverage_labels_rows_and_columns(ax):
    plotting.plot_coverage(STRIDED, ax=ax, colorbar=False)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("column", "row")
    plotting.plot_coverage(STRIDED, ax=ax, colorbar=False, xlabel="x", ylabel=None)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "row")  # None leaves the Axes' own
