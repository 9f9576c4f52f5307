"""Maps larger than the screen: block summaries instead of skipped pixels, the border made
visible beside the heatmap, and titles that keep out of the colourbar.

Expected values are hand-computed (block means of small arrays, the mean of a periodic
pattern) or come from an independent oracle (1-D coverage by repeated ``np.convolve``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import rfanalysis as rfa
from rfanalysis import plotting
from rfanalysis._style import figure_bytes
from rfanalysis.cli import main

# the period-4 profile of `conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*4` away from its
# border, divided by its maximum (the map of the issue): the 2-D map is its outer product
PERIOD4 = np.array([5 / 6, 1, 2 / 3, 1])
# the mean of that pattern over any 4x4 block: ((5/6 + 1 + 2/3 + 1) / 4) ** 2 = (7/8) ** 2
PERIOD4_MEAN = (7 / 8) ** 2


def _render(fig) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3] / 255.0


def _inside(rgb: np.ndarray, ax, margin: int = 2) -> np.ndarray:
    """The pixels inside an Axes (rows counted from the top of the image)."""
    x0, y0, x1, y1 = ax.bbox.extents
    top = rgb.shape[0]
    return rgb[int(top - y1) + margin : int(top - y0) - margin, int(x0) + margin : int(x1) - margin]


def _large_scale_variation(rgb: np.ndarray, tile: int = 16) -> float:
    """The largest distance of a tile's mean colour from the picture's mean colour, as a
    fraction of the distance between the colour map's ends (viridis)."""
    h, w = (rgb.shape[0] // tile) * tile, (rgb.shape[1] // tile) * tile
    tiles = rgb[:h, :w].reshape(h // tile, tile, w // tile, tile, 3).mean(axis=(1, 3))
    ends = colormaps["viridis"]([0.0, 1.0])[:, :3]
    spread = np.linalg.norm(tiles - tiles.reshape(-1, 3).mean(axis=0), axis=-1).max()
    return float(spread / np.linalg.norm(ends[1] - ends[0]))


def _coverage_1d(n: int, depth: int) -> np.ndarray:
    """Coverage of `conv3p1*depth` on n pixels: each layer's transpose sums a zero-padded
    3-window, starting from one route per output unit."""
    c = np.ones(n)
    for _ in range(depth):
        c = np.convolve(c, np.ones(3), mode="same")
    return c


# --------------------------------------------------------------------------- block summaries
def test_block_counts_by_hand():
    values = np.array([[1.0, 3.0, 5.0], [np.nan, 3.0, np.nan]])  # NaN: no route
    # 2x2 blocks: (1 + 3 + 0 + 3) / 4; the overhanging block holds 5 and a pixel without routes
    np.testing.assert_array_equal(
        plotting.block_counts(values, (2, 2), "mean", False), [[1.75, 2.5]]
    )
    # min: a block with a pixel without routes shows "no route"; max: the largest count
    np.testing.assert_array_equal(
        plotting.block_counts(values, (2, 2), "min", False), [[np.nan, np.nan]]
    )
    np.testing.assert_array_equal(plotting.block_counts(values, (2, 2), "max", False), [[3, 5]])
    # log10 counts: the log10 of the mean count, (10 + 1000 + 0 + 0) / 4 = 252.5
    exponents = np.array([[1.0, 3.0], [np.nan, np.nan]])
    (mean,) = plotting.block_counts(exponents, (2, 2), "mean", True).ravel()
    assert mean == pytest.approx(math.log10(252.5))
    # a block without any route stays without one
    empty = np.full((2, 2), np.nan)
    assert np.isnan(plotting.block_counts(empty, (2, 2), "mean", False)).all()
    assert np.isnan(plotting.block_counts(empty, (2, 2), "mean", True)).all()


def test_small_maps_keep_every_pixel():
    fig = Figure(figsize=(4, 4), dpi=100)
    image = plotting.plot_coverage(np.arange(1.0, 10.0).reshape(3, 3), ax=fig.add_subplot())
    _render(fig)
    assert image.block == (1, 1) and image.note.get_text() == ""


@pytest.mark.parametrize("dpi", [72, 100, 150, 200])
def test_a_period_4_map_at_1024_shows_no_aliasing_blocks(dpi):
    counts = np.tile(np.outer(PERIOD4, PERIOD4), (256, 256))
    assert counts.shape == (1024, 1024)
    fig = Figure(figsize=(5.0, 4.4), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    image = plotting.plot_coverage(counts, ax=ax)
    rgb = _render(fig)
    rows, cols = image.block
    # blocks are powers of two, as small as leaves every cell a device pixel
    size = ax.get_window_extent().height
    assert rows == cols == 1 << math.ceil(math.log2(1024 / size))
    assert 1024 / rows <= size < 2048 / rows
    if rows % 4 == 0:  # blocks hold whole periods: every cell is the pattern's mean
        np.testing.assert_allclose(image.block_data(image.block), PERIOD4_MEAN)
    assert image.note.get_text() == f"each cell: mean of {rows}×{cols} pixels"
    assert _large_scale_variation(_inside(rgb, ax)) < 0.02


def test_the_aliasing_check_sees_the_blocks_of_nearest_neighbour_sampling():
    # the check above is not blind: matplotlib's own sampling of the same map at the CLI's
    # resolution draws false blocks that span half the colour range
    counts = np.tile(np.outer(PERIOD4, PERIOD4), (256, 256))
    fig = Figure(figsize=(5.0, 4.4), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    plotting.plot_coverage(counts, ax=ax, downsample=None)
    assert _large_scale_variation(_inside(_render(fig), ax)) > 0.3


def test_min_blocks_and_blind_spot_overlays_keep_one_pixel_lines():
    counts = np.ones((1024, 1024))
    counts[:, 601] = 0  # one column without routes
    fig = Figure(figsize=(4.0, 4.0), dpi=100)
    left, right = fig.subplots(1, 2)
    low = plotting.plot_coverage(counts, ax=left, downsample="min", colorbar=False)
    overlay = plotting.plot_blind_spots(counts, counts == 0, ax=right, colorbar=False)
    _render(fig)
    _, cols = low.block
    assert cols > 1
    shown = low.block_data(low.block)
    # the block holding column 601 shows "no route" in every row, every other block 1
    assert shown.mask[:, 601 // cols].all() and shown.mask.sum() == shown.shape[0]
    assert overlay.block == low.block
    marked = overlay.block_data(overlay.block)[..., 3] > 0
    assert marked[:, 601 // cols].all() and marked.sum() == marked.shape[0]


def test_vector_output_follows_the_raster_resolution():
    counts = np.tile(np.outer(PERIOD4, PERIOD4), (256, 256))
    fig = Figure(figsize=(5.0, 4.4), layout="constrained")
    ax = fig.add_subplot()
    image = plotting.plot_coverage(counts, ax=ax)
    for dpi in (36, 300):
        svg = figure_bytes(fig, "svg", dpi)
        # the raster inside the SVG has dpi / 72 pixels per point of the Axes' height
        pixels = ax.bbox.height / fig.dpi * dpi
        block = 1 << math.ceil(math.log2(1024 / pixels))
        assert image.block == (block, block) and block == {36: 16, 300: 2}[dpi]
        # the note is drawn as glyph paths; the SVG keeps its text as a comment
        assert f"each cell: mean of {block}×{block} pixels".encode() in svg


def test_unsampled_vector_images_keep_every_pixel_and_say_nothing():
    # interpolation "none": PDF and SVG embed the whole map and leave scaling to the viewer
    fig = Figure(figsize=(3.0, 3.0))
    image = plotting.plot_coverage(
        np.ones((1024, 1024)), ax=fig.add_subplot(), interpolation="none"
    )
    svg = figure_bytes(fig, "svg", 72)
    assert image.block == (1, 1) and b"each cell" not in svg


def test_downsample_is_validated():
    with pytest.raises(ValueError, match=r"`downsample` must be one of 'mean', 'min', 'max'"):
        plotting.plot_coverage(np.ones((2, 2)), ax=Figure().add_subplot(), downsample="median")


# --------------------------------------------------------------------------- the border
def test_border_profile_by_hand():
    # conv3s2 on 7x8: outer(1 1 2 1 2 1 1, 1 1 2 1 2 1 1 0); row 3 and column 3 are
    # scaled by 1
    rows = np.array([1, 1, 2, 1, 2, 1, 1.0])
    cols = np.array([1, 1, 2, 1, 2, 1, 1, 0.0])
    ax = Figure().add_subplot()
    left, right, top, bottom = plotting.plot_border_profile(np.outer(rows, cols), ax=ax)
    assert left.get_xdata().tolist() == [1, 2, 3, 4]
    assert left.get_ydata().tolist() == [1, 1, 2, 1]
    np.testing.assert_array_equal(right.get_ydata(), [np.nan, 1, 1, 2])  # no route at the edge
    assert top.get_ydata().tolist() == [1, 1, 2, 1] == bottom.get_ydata().tolist()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert left.get_label() == "from the left edge (row 3)"
    assert bottom.get_label() == "from the bottom edge (column 3)"


def test_coverage_figure_labels_both_panels():
    _, (heat, profile) = plotting.coverage_figure(
        rfa.coverage("conv3p1*2", (9, 9)), label="coverage", fig=Figure(layout="constrained")
    )
    assert (heat.get_xlabel(), heat.get_ylabel()) == ("column", "row")
    assert heat.images[0].colorbar.ax.get_ylabel() == "coverage"
    assert profile.get_ylabel() == "coverage"
    assert profile.get_xlabel() == "distance from the edge (pixels)"


def test_a_1024_conv3p1_20_figure_shows_the_border(tmp_path, drawn):
    out = tmp_path / "c.png"
    result = CliRunner().invoke(main, ["coverage", "conv3p1*20", "--input", "1024", "-o", out])
    assert result.exit_code == 0, result.output
    (fig,) = drawn
    heat, profile = fig.axes[:2]
    _render(fig)
    # the heatmap: the border is a block or two of 4x4 pixels...
    assert heat.images[0].block == (4, 4)
    # ...and the profile beside it holds it: log10 coverage along row 511 from each edge,
    # against the oracle (the 2-D map is the outer product of the 1-D one)
    c = _coverage_1d(1024, 20)
    expected = np.log10(c[511] * c[:512])
    for line in profile.lines[:4]:  # the map is symmetric: all four halves agree
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
    # the border, out to where coverage reaches 99 % of the centre's, spans a third of the
    # panel's width, where the heatmap gives it 3 of its 480 pixels
    reach = int(np.argmax(c >= 0.99 * c.max())) + 1  # distance 1 is the edge pixel
    assert 10 <= reach <= 20
    (x1, _), (x2, _) = profile.transData.transform([(1, 0), (reach, 0)])
    assert (x2 - x1) / profile.bbox.width > 1 / 3
    assert (reach - 1) / 1024 * heat.bbox.width < 10


def test_long_titles_keep_out_of_the_colourbar(tmp_path, drawn):
    spec = "conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*4," + ",".join(["conv3p1:reflect"] * 8)
    out = tmp_path / "c.png"
    result = CliRunner().invoke(main, ["coverage", spec, "--input", "64", "-o", out])
    assert result.exit_code == 0, result.output
    (fig,) = drawn
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    titles = [t for t in [*fig.texts, *(ax.title for ax in fig.axes)] if t.get_text()]
    assert titles
    page = fig.bbox
    for title in titles:
        box = title.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1, title.get_text()
        for ax in fig.axes:
            if ax.title is not title:
                assert not box.overlaps(ax.get_window_extent(renderer)), title.get_text()
