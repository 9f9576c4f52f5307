"""The write-up's figures, rebuilt by ``rfanalysis figures``.

Each figure is a function that computes what it shows through the public API and draws it with
:mod:`rfanalysis.plotting`; :func:`build` renders the selected figures in the paper style and
writes them deterministically (same bytes for the same inputs), atomically, as PNG files named
``NN_name.png``. Nothing here is an algorithm of its own. The figures of the trained networks
(16 onward) read what ``experiments/train.py`` committed under ``experiments/results/``, so
building them needs no torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

import rfanalysis as rfa
from rfanalysis import plotting
from rfanalysis._suggest import did_you_mean

__all__ = ["FIGURES", "FigureSpec", "build", "names"]


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the write-up: file stem, one-line caption and the function drawing it."""

    name: str
    caption: str
    draw: Callable[[], Figure]

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


FIGURES: dict[str, FigureSpec] = {}


def _figure(name: str, caption: str) -> Callable[[Callable[[], Figure]], Callable[[], Figure]]:
    def register(draw: Callable[[], Figure]) -> Callable[[], Figure]:
        FIGURES[name] = FigureSpec(name, caption, draw)
        return draw

    return register


def names() -> list[str]:
    """Figure names in write-up order."""
    return list(FIGURES)


# --------------------------------------------------------------------------- figures
@_figure(
    "01_route_diagram",
    "Routes from every neuron to one top unit of a small 1-D network "
    "of 3-tap convolutions: the trinomial row 1 3 6 7 6 3 1 without padding (left); with "
    "zero padding, the routes to the border unit (right) are cut off by the padding.",
)
def route_diagram() -> Figure:
    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    plotting.plot_route_diagram(rfa.parse("conv3*3"), 7, ax=left)
    left.set_title("no padding, centre unit")
    plotting.plot_route_diagram(rfa.parse("conv3p1*3"), 7, unit=(0,), ax=right)
    right.set_title("zero padding 1, border unit")
    return fig


PADDINGS = [
    ("valid", "conv3"),
    ("zeros (same)", "conv3p1"),
    ("reflect", "conv3p1:reflect"),
    ("symmetric", "conv3p1:symmetric"),
    ("replicate", "conv3p1:replicate"),
    ("circular", "conv3p1:circular"),
    ("full", "conv3p2"),
]


@_figure(
    "02_padding_modes",
    "Coverage (routes to all output units, divided by its maximum, "
    "linear scale) of 3x3 stacks on a 48x48 input, one column per padding mode, depths 1, 4 "
    "and 16. Full padding is exactly uniform.",
)
def padding_modes() -> Figure:
    depths = (1, 4, 16)
    panels = []
    for depth in depths:
        for title, layer in PADDINGS:
            cov = rfa.coverage(f"{layer}*{depth}", (48, 48))
            panels.append((f"{title}, depth {depth}", cov / cov.max()))
    fig = Figure(figsize=(14.0, 6.6), layout="constrained")
    plotting.grid_figure(panels, ncols=len(PADDINGS), log=False, fig=fig, label="coverage / max")
    return fig


@_figure(
    "03_padding_profiles",
    "Coverage of a 64-pixel 1-D input after 4 and 32 layers of "
    "3-tap convolutions, divided by its maximum, per padding mode (symmetric, replicate, "
    "circular and full coincide at 1; valid is left out at depth 32, where its output would "
    "be empty).",
)
def padding_profiles() -> Figure:
    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, depth in zip(axes, (4, 32)):
        for i, (title, layer) in enumerate(PADDINGS):
            if title == "valid" and depth * 2 >= 64:
                continue
            cov = rfa.coverage(f"{layer}*{depth}", (64,))
            plotting.plot_profile(
                cov / cov.max(), ax=ax, log=False, label=title, mark_zeros=False, color=f"C{i}"
            )
        ax.set_title(f"depth {depth}")
        ax.set_ylabel("coverage / max")
        ax.set_ylim(0, 1.05)
    axes[0].legend(loc="lower center", ncols=2)
    return fig


@_figure(
    "04_edge_centre_ratio",
    "Coverage of the edge pixel divided by the centre pixel's, "
    "against depth, for 3-tap stacks on 65 pixels: exponential decay without padding, a "
    "bounded ratio with padding.",
)
def edge_centre_ratio() -> Figure:
    n = 65
    depths = np.arange(1, 31)
    fig = Figure(figsize=(5.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for title, layer in PADDINGS:
        logs = [rfa.coverage(f"{layer}*{d}", (n,), log=True) for d in depths]
        ratios = [10.0 ** (c[0] - c[(n - 1) // 2]) for c in logs]
        plotting.plot_depth_ratio(depths, ratios, ax=ax, label=title, marker=".")
    ax.set_ylabel("edge / centre coverage")
    ax.legend(ncols=2, fontsize=7)
    return fig


@_figure(
    "05_question_64x64_stride4",
    "The example of the question: a 64x64 kernel with stride "
    "4 sends each interior pixel to 16 x 16 = 256 windows (the question writes 265); a "
    "second such layer gives up to 256^2 = 65,536 routes in the middle, 1 in the corner, "
    "and none in the last four rows and columns, which the second layer's stride "
    "arithmetic never reads (1024x1024 input).",
)
def question_example() -> Figure:
    n = 1024
    fig = Figure(figsize=(9.6, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    one = rfa.coverage("conv64s4", (n, n))
    two = rfa.coverage("conv64s4*2", (n, n))
    plotting.plot_coverage(one, ax=axes[0], label="routes")
    axes[0].set_title(f"one layer: {one.max():.0f} in the interior")
    plotting.plot_coverage(two, ax=axes[1], label="routes")
    axes[1].set_title(f"two layers: {two.max():,.0f} at most")
    middle = (n - 1) // 2
    plotting.plot_profile(two[middle], ax=axes[2], label="two layers", mark_zeros=False)
    plotting.plot_profile(one[middle], ax=axes[2], label="one layer", mark_zeros=False)
    axes[2].set_title(f"row {middle}")
    axes[2].legend(loc="lower center")
    return fig


@_figure(
    "06_parameter_counts",
    "Parameters of the tutorial's first layer (28x28 input, 5x5 "
    "receptive fields, 20 feature maps) with shared weights, one weight set per position, "
    "and every input connected to every output; and the tutorial's dense layer of 30 units.",
)
def parameter_counts() -> Figure:
    row = rfa.geometry(rfa.zoo.get("lenet"), 28).rows[1]
    dense30 = rfa.geometry(rfa.Network([rfa.Dense(30, in_channels=1)]), 28).params
    labels = [
        "shared\n(convolution)",
        "locally\nconnected",
        "dense, same\noutput (24x24x20)",
        "dense,\n30 units",
    ]
    values = [row.params_shared, row.params_local, row.params_dense, dense30]
    if any(v is None for v in values):  # pragma: no cover - the zoo entry fixes every channel
        raise RuntimeError("lenet's parameter counts are incomplete")
    fig = Figure(figsize=(5.6, 3.6), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(
        labels,
        [float(v) for v in values if v is not None],
        color=["#1b9e77", "#7570b3", "#d95f02", "#999999"],
    )
    ax.set_yscale("log")
    ax.set_ylabel("parameters")
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8)
    ax.set_ylim(100, 1e8)
    return fig


@_figure(
    "07_analytic_vs_empirical",
    "Analytic routes beside empirical gradient maps of the "
    "centre unit, each of unit mass. Top: a linear one-channel network with all weights 1 "
    "(identical, the defining identity). Middle: He-normal weights, ReLU, 16 channels, "
    "mean |dy/dx| over 64 draws, which follows sqrt(routes) rather than routes. Bottom: "
    "one draw through a max pool on the input (each 2x2 window passes its gradient to one "
    "pixel) beside the routes of the window sums.",
)
def analytic_vs_empirical() -> Figure:
    fig = Figure(figsize=(10.0, 10.4), layout="constrained")
    subfigures: Any = fig.subfigures(3, 1)  # an array of three SubFigures
    top, middle, bottom = subfigures
    shape = (25, 25)
    linear = "conv3p1*6"
    plotting.comparison_figure(
        rfa.routes(linear, shape),
        rfa.influence(linear, shape),
        fig=top,
        titles=("routes, conv3p1 x 6", "|dy/dx|, ones weights, linear", "difference"),
    )
    deep = "conv3p1*8"
    relu = rfa.influence(
        deep, shape, weights="normal", activation="relu", channels=16, trials=64, rng=0
    )
    plotting.comparison_figure(
        rfa.theory.random_weight_influence(rfa.routes(deep, shape)),
        relu,
        fig=middle,
        titles=("sqrt(routes), conv3p1 x 8", "mean |dy/dx|, He-normal, ReLU", "difference"),
    )
    pooled = "maxpool2,conv3p1*2,maxpool2,conv3p1"
    shape2 = (32, 32)
    one_draw = rfa.influence(
        pooled, shape2, weights="normal", activation="relu", channels=8, trials=1, rng=0
    )
    plotting.comparison_figure(
        rfa.routes(pooled, shape2),
        one_draw,
        fig=bottom,
        titles=("routes (pools as window sums)", "|dy/dx|, one draw, max pools", "difference"),
    )
    return fig


@_figure(
    "08_erf_width",
    "Width (standard deviation) of the centre unit's map against the "
    "square root of depth, for 3-tap stacks on 257 pixels: routes (closed form "
    "sqrt(2n/3)) and the mean |dy/dx| of He-normal ReLU networks (16 channels, 64 draws), "
    "which is sqrt(2) wider. Both grow like sqrt(depth), while the receptive field's size "
    "grows like depth.",
)
def erf_width() -> Figure:
    depths = np.array([2, 4, 8, 16, 32, 64])
    n = 257
    analytic, empirical, size = [], [], []
    for depth in depths:
        net = f"conv3p1*{depth}"
        routes = rfa.routes(net, (n,))
        mean_abs = rfa.influence(
            net, (n,), weights="normal", activation="relu", channels=16, trials=64, rng=0
        )
        result = rfa.compare(routes, mean_abs)
        analytic.append(result.sigma_analytic[0])
        empirical.append(result.sigma_empirical[0])
        size.append(rfa.receptive_field(net, (n,)).size[0])
    fig = Figure(figsize=(8.4, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    plotting.plot_erf_radius(depths, analytic, ax=left, label="routes", marker="o")
    plotting.plot_erf_radius(depths, empirical, ax=left, label="mean |dy/dx|, ReLU", marker="s")
    left.set_ylabel("standard deviation (pixels)")
    left.legend()
    right.plot(depths, size, marker="o", label="receptive field size")
    right.plot(depths, np.array(empirical) * 2, marker="s", label="2 x ERF std")
    right.set_xscale("log", base=2)
    right.set_yscale("log", base=2)
    right.set_xlabel("depth (layers)")
    right.set_ylabel("pixels")
    right.legend()
    return fig


@_figure(
    "09_resnet50_224_vs_225",
    "Coverage of the ResNet-50 trunk (torchvision layout, "
    "without its head) at 224x224 and 225x225. At 224 every stride-2 layer drops its last "
    "padding row and column and the 1x1 shortcuts skip the last input row and column, so "
    "the map leans to the top left (mirror asymmetry 0.18); at 225 = 32 x 7 + 1 nothing "
    "is dropped and the map is symmetric.",
)
def resnet50_224_vs_225() -> Figure:
    net = rfa.zoo.get("resnet50", trunk=True)
    fig = Figure(figsize=(11.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    middle_rows = {}
    for ax, n in zip(axes[:2], (224, 225)):
        cov = rfa.coverage(net, (n, n), log=True)
        middle_rows[n] = cov[(n - 1) // 2]
        report = rfa.blind_spots(net, (n, n))
        plotting.plot_blind_spots(
            cov, report.zero_mask, ax=ax, is_log10=True, coverage_kw={"label": "routes"}
        )
        ax.set_title(
            f"{n}x{n}: asymmetry {report.asymmetry[0]:.3f}, {report.zero_count} blind pixels"
        )
    for n, row in middle_rows.items():
        axes[2].plot(np.arange(n), row - row[::-1], label=f"{n}")
    axes[2].set_title("middle row: log10 coverage minus its mirror")
    axes[2].set_xlabel("column")
    axes[2].legend(title="input")
    return fig


@_figure(
    "10_audio_front_ends",
    "1-D coverage of a one-second 16 kHz clip. The wav2vec 2.0 "
    "feature encoder (receptive field 400, stride 320) reads its input in an uneven "
    "pattern and never reads the last 240 samples: 49 frames of 400 samples, 320 apart, "
    "end at sample 15,760. A WaveNet-style causal stack (dilations 1 to 512, three "
    "times): every output reads only the past, so the last samples reach few outputs "
    "and the final one has a single route.",
)
def audio_front_ends() -> Figure:
    fig = Figure(figsize=(10.0, 5.6), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    n = 16000
    w2v = rfa.zoo.get("wav2vec2_feature_encoder")
    cov = rfa.coverage(w2v, (n,))
    for ax, window, title in (
        (a, slice(0, 1600), "first 100 ms"),
        (b, slice(n - 1600, n), "last 100 ms"),
    ):
        plotting.plot_profile(cov[window], ax=ax, log=False, label="wav2vec 2.0 encoder")
        ax.set_xticks(ax.get_xticks()[1:-1])
        ax.set_xticklabels([f"{int(t) + window.start}" for t in ax.get_xticks()])
        ax.set_title(f"wav2vec 2.0 feature encoder, {title}")
        ax.set_xlabel("sample")
    wavenet = rfa.zoo.get("wavenet")
    logs = rfa.coverage(wavenet, (n,), log=True)
    plotting.plot_profile(logs, ax=c, is_log10=True, label="WaveNet stack", mark_zeros=False)
    c.set_title("WaveNet-style causal stack, whole clip")
    c.set_xlabel("sample")
    tail = slice(n - 4000, n)
    plotting.plot_profile(logs[tail], ax=d, is_log10=True, label="WaveNet stack", mark_zeros=False)
    d.set_xticks(d.get_xticks()[1:-1])
    d.set_xticklabels([f"{int(t) + tail.start}" for t in d.get_xticks()])
    d.set_title("WaveNet-style causal stack, last 250 ms")
    d.set_xlabel("sample")
    return fig


@_figure(
    "11_stride_1d",
    "The 1-D example of the weight-sharing page (input of 5, zero padding 1, a 3-tap "
    "filter): every neuron labelled with its routes to all output units. Stride 1 gives 5 "
    "outputs and reads the inner pixels three times, the border pixels twice; stride 2 gives "
    "3 outputs and reads every other pixel twice.",
)
def stride_1d() -> Figure:
    fig = Figure(figsize=(8.0, 2.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    for ax, spec, title in ((left, "conv3p1", "stride 1"), (right, "conv3s2p1", "stride 2")):
        plotting.plot_route_diagram(spec, 5, "all", ax=ax)
        ax.set_title(f"{title}: {rfa.output_shape(spec, (5,))[0]} outputs")
    return fig


#: one stage of the networks whose shift invariance the write-up compares (circular padding
#: everywhere, so that borders play no part); each ends with a ReLU convolution and a 1x1
#: read-out, so that a non-linearity follows the last subsampling
_SHIFT_STAGES = {
    "no subsampling": "conv3p1:circular",
    "max pool": "conv3p1:circular,maxpool2",
    "average pool": "conv3p1:circular,avgpool2",
    "strided convolution": "conv3s2p1:circular",
    "blurred (BlurPool)": "conv3p1:circular,blurpool3p1:circular",
}


def _shift_network(stage: str, depth: int) -> str:
    """``depth`` copies of a stage of :data:`_SHIFT_STAGES`, then the read-out."""
    return ",".join([_SHIFT_STAGES[stage]] * depth + ["conv3p1:circular", "conv1"])


@_figure(
    "12_shift_invariance",
    "Similarity of the output for a shifted input to the output for the input itself (1: "
    "unchanged, 0: as different as for an unrelated input), against the shift, for random "
    "ReLU networks (He-normal, 16 channels, 64 draws, white-noise inputs of 64 samples, "
    "rolled) with one to three subsampling stages. Top: globally pooled "
    "features; bottom: the output map unit by unit, after moving it by the nearest whole "
    "number of output units. Grey lines: multiples of the total stride, where every "
    "network is exactly invariant.",
)
def shift_invariance_figure() -> Figure:
    fig = Figure(figsize=(11.0, 6.0), layout="constrained")
    axes = fig.subplots(2, 3, sharey="row")
    for col, depth in enumerate((1, 2, 3)):
        for i, stage in enumerate(_SHIFT_STAGES):
            net = _shift_network(stage, depth)
            result = rfa.shift_invariance(net, (64,), 2 * 2**depth, trials=64)
            for row, which in enumerate(("pooled", "map")):
                plotting.plot_shift_similarity(
                    result,
                    ax=axes[row, col],
                    which=which,
                    mark_stride=result.stride != 1,
                    label=stage,
                    color=f"C{i}",
                )
        axes[0, col].set_title(f"{depth} stage{'s' if depth > 1 else ''}: total stride {2**depth}")
    for ax in axes.flat:
        ax.set_ylabel("")
    axes[0, 0].set_ylabel("similarity, pooled features")
    axes[1, 0].set_ylabel("similarity, output map")
    for ax in axes[0]:
        ax.set_xlabel("")
    for ax in axes[1]:
        ax.set_xlabel("shift (pixels)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=5)
    return fig


@_figure(
    "13_stride_period",
    "The route side of aliasing, on 32 pixels. Left: coverage of three stride-2 3-tap "
    "layers (circular padding) repeats with the total stride 8, so a shift by a multiple "
    "of 8 keeps every pixel's weight and any other shift moves pixels to other counts. "
    "Right: the weight of each pixel in the sum of the outputs of the same windows with "
    "all weights 1 (the routes) and with the binomial weights of blurred downsampling, "
    "which are the same at every pixel.",
)
def stride_period() -> Figure:
    n = 32
    fig = Figure(figsize=(9.0, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    spec = "conv3s2p1:circular*3"
    strided = rfa.coverage(spec, (n,))
    plotting.plot_profile(strided, ax=left, log=False, label="routes", mark_zeros=False)
    (period,) = rfa.receptive_field(spec, (n,)).stride  # the total stride, 8
    for m in range(0, n + 1, period):
        left.axvline(m - 0.5, color="0.85", linewidth=0.8, zorder=0)
    left.set_ylim(0, strided.max() + 1)
    left.set_title("routes to all outputs, conv3s2p1:circular x 3")
    left.set_ylabel("routes")
    blurred = rfa.influence("blurpool3p1:circular*3", (n,), unit="all")
    plotting.plot_profile(strided / strided.mean(), ax=right, log=False, label="weights 1")
    plotting.plot_profile(
        blurred / blurred.mean(), ax=right, log=False, label="binomial (BlurPool)", color="C2"
    )
    right.set_ylim(0, strided.max() / strided.mean() + 0.2)
    right.set_title("weight of each pixel in the output sum / mean")
    right.set_ylabel("weight / mean")
    right.legend(loc="lower center")
    return fig


# --------------------------------------------------------------------------- tiling
#: the write-up's small U-Net (two levels, free channel counts) and a ResNet-like trunk
TILING_UNET = (
    "conv3p1*2,cat(id|maxpool2s2,conv3p1*2,cat(id|maxpool2s2,conv3p1*2,tconv2s2),conv3p1,"
    "tconv2s2),conv3p1,conv1"
)
TILING_TRUNK = "conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*2,conv3s2p1,res(conv3p1,conv3p1)"
#: (network, image size, tile) of figure 14
TILING_CASES = ((TILING_UNET, 96, 48), (TILING_TRUNK, 192, 112))


@_figure(
    "14_tiling_seams",
    "Seams of tiled inference: the difference between a tiled run and the whole-image run of "
    "the same random network (largest over channels), for a small U-Net (top, 96 x 96 "
    "pixels, tiles of 48) and a ResNet-like trunk (bottom, 192 x 192, tiles of 112). Tiles "
    "without overlap and tiles overlapping by 10 % with averaging leave seams along the tile "
    "edges; windows with the computed halo and alignment give the whole-image output.",
)
def tiling_seams() -> Figure:
    fig = Figure(figsize=(10.0, 6.4), layout="constrained")
    axes = fig.subplots(2, 3)
    ways = ((0.0, "no overlap"), (0.1, "10 % overlap, averaged"), (None, "computed halo"))
    for row, (net, n, tile) in zip(axes, TILING_CASES):
        model = rfa.RandomNetwork(net, rng=0)
        x = np.random.default_rng(0).standard_normal((1, 1, n, n))
        whole = model(x)
        diffs = [
            np.abs(rfa.tiled(model, x, tile, overlap=o) - whole).max(axis=(0, 1)) for o, _ in ways
        ]
        top = max(float(d.max()) for d in diffs)
        for ax, d, (_, title) in zip(row, diffs, ways):
            image = ax.imshow(d, cmap="magma", vmin=0, vmax=top, interpolation="nearest")
            top_d = float(d.max())
            size = f"{top_d:.2g}" if top_d >= 1e-12 else "below 1e-12 (rounding)"
            ax.set_title(f"{title}\nlargest difference {size}")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(image, ax=row[-1], shrink=0.8, label="|tiled - whole|")
        row[0].set_ylabel("U-Net" if net == TILING_UNET else "ResNet-like trunk")
    return fig


@_figure(
    "15_tiling_efficiency",
    "Efficiency of exact tiling (output units kept per output unit computed, both axes) "
    "against the tile size, for torchvision's ResNet-50 trunk (field 427, alignment 32) and "
    "the padded U-Net of the zoo (alignment 16). Below the smallest tile nothing is kept.",
)
def tiling_efficiency() -> Figure:
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    for net, first, color in (("unet_padded", 256, "C0"), ("resnet50:trunk", 512, "C3")):
        tiles = [t for t in range(first, 4097, 64)]
        eff = [rfa.tiling(net, t).efficiency for t in tiles]
        ax.plot(tiles, eff, color=color, label=net)
    ax.set_xlabel("tile (pixels per side)")
    ax.set_ylabel("kept / computed outputs")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    return fig


# --------------------------------------------------------------------------- trained networks
#: what ``experiments/train.py`` wrote: every number of part III and the maps it draws
TRAINED = Path(__file__).resolve().parents[1] / "experiments" / "results"


@cache
def _trained() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The committed results of the trained networks (read once; no torch needed)."""
    numbers, maps = TRAINED / "results.json", TRAINED / "maps.npz"
    if not (numbers.is_file() and maps.is_file()):
        raise FileNotFoundError(
            f"the trained-network results are missing from {TRAINED}: build the figures from "
            "a checkout of the repository (they are committed), or run experiments/train.py"
        )
    with np.load(maps) as stored:
        arrays = {name: stored[name].astype(np.float64) for name in stored.files}
    return json.loads(numbers.read_text()), arrays


def _denoiser(depth: int, padding_mode: str, residual: bool) -> str:
    """The name ``experiments/train.py`` gives one denoiser of its grid."""
    return f"denoiser_d{depth}_{padding_mode}_{'res' if residual else 'plain'}"


def _middle(values: np.ndarray, half: int) -> np.ndarray:
    """The central ``2 half + 1`` square of a map with an odd size."""
    c = (values.shape[0] - 1) // 2
    return values[c - half : c + half + 1, c - half : c + half + 1]


_DEPTHS = (5, 10, 17)
_MODES = ("zeros", "reflect", "circular")


@_figure(
    "16_trained_erf",
    "Effective receptive field of the centre unit of the plain denoisers (zero padding): "
    "mean |dy/dx| over 32 noisy 65x65 test patches, at initialisation (He-normal) and after "
    "training, beside the routes and their square root; each map divided by its maximum, "
    "logarithmic scale, central 41x41 pixels. Columns: depth 5, 10 and 17.",
)
def trained_erf() -> Figure:
    numbers, maps = _trained()
    panels = []
    for depth in _DEPTHS:
        name = _denoiser(depth, "zeros", False)
        size = numbers["config"]["erf_size"]
        routes = rfa.routes(numbers["denoisers"][name]["spec"], (size, size))
        rows = [
            ("routes", routes),
            ("sqrt(routes)", np.sqrt(routes)),
            ("|dy/dx| at init", maps[f"{name}/erf_init"]),
            ("|dy/dx| trained", maps[f"{name}/erf_trained"]),
        ]
        panels.append([(f"{title}, depth {depth}", m / m.max()) for title, m in rows])
    ordered = [panels[col][row] for row in range(4) for col in range(len(_DEPTHS))]
    fig = Figure(figsize=(8.6, 10.4), layout="constrained")
    plotting.grid_figure(
        [(title, _middle(m, 20)) for title, m in ordered],
        ncols=len(_DEPTHS),
        fig=fig,
        label="map / max",
        vmin=1e-4,
    )
    return fig


@_figure(
    "17_trained_erf_width",
    "Left: width (standard deviation of a Gaussian fitted by moments) of the centre unit's "
    "map against the square root of depth: routes, their square root, and the mean |dy/dx| "
    "of the plain and residual denoisers (zero padding) at initialisation and after training. "
    "Right: total-variation distance of the maps of the zero-padded denoisers to routes "
    "(black) and to sqrt(routes) (grey), at initialisation (open) and after training "
    "(filled); dashes: the trained reflect and circular denoisers.",
)
def trained_erf_width() -> Figure:
    numbers, _ = _trained()
    found = numbers["denoisers"]
    fig = Figure(figsize=(10.0, 3.9), layout="constrained")
    left, right = fig.subplots(1, 2)
    first = [found[_denoiser(d, "zeros", False)]["erf_trained"] for d in _DEPTHS]
    plotting.plot_erf_radius(
        _DEPTHS, [m["sigma_routes"] for m in first], ax=left, label="routes", color="k"
    )
    plotting.plot_erf_radius(
        _DEPTHS,
        [m["sigma_sqrt_routes"] for m in first],
        ax=left,
        label="sqrt(routes)",
        color="0.5",
        marker="s",
    )
    styles = (("plain", False, "C0"), ("residual", True, "C3"))
    for title, residual, color in styles:
        for when, marker in (("init", "v"), ("trained", "o")):
            widths = [
                found[_denoiser(d, "zeros", residual)][f"erf_{when}"]["sigma"] for d in _DEPTHS
            ]
            plotting.plot_erf_radius(
                _DEPTHS,
                widths,
                ax=left,
                reference=False,
                label=f"{title}, {'at init' if when == 'init' else 'trained'}",
                color=color,
                marker=marker,
                linestyle="-" if when == "trained" else ":",
                fillstyle="full" if when == "trained" else "none",
            )
    left.set_ylabel("standard deviation (pixels)")
    left.legend(fontsize=7)
    x = np.arange(len(_DEPTHS))
    for law, color in (("routes", "k"), ("sqrt_routes", "0.5")):
        for when, linestyle in (("init", ":"), ("trained", "-")):
            for residual, marker in ((False, "o"), (True, "s")):
                tv = [
                    found[_denoiser(d, "zeros", residual)][f"erf_{when}"][f"tv_{law}"]
                    for d in _DEPTHS
                ]
                right.plot(
                    x,
                    tv,
                    color=color,
                    marker=marker,
                    linestyle=linestyle,
                    fillstyle="full" if when == "trained" else "none",
                    label=f"{'residual' if residual else 'plain'}, {when}, "
                    + ("vs routes" if law == "routes" else "vs sqrt(routes)"),
                )
            # the other padding modes, trained: the same within a few hundredths
            for mode in _MODES[1:]:
                for residual in (False, True):
                    tv = [
                        found[_denoiser(d, mode, residual)]["erf_trained"][f"tv_{law}"]
                        for d in _DEPTHS
                    ]
                    right.plot(x, tv, color=color, marker="_", linestyle="none")
    right.set_xticks(x, [f"depth {d}" for d in _DEPTHS])
    right.set_ylabel("total variation to the law")
    right.set_ylim(0, 0.5)
    right.legend(fontsize=6, ncols=2, loc="upper left")
    return fig


@_figure(
    "18_border_psnr",
    "Cost of the image border for the trained denoisers: PSNR of 64x64 test crops denoised "
    "alone minus the same crops denoised inside their surroundings (same noise), by distance "
    "to the crop's border, per padding mode; solid: residual, dashed: plain. The grey line "
    "marks the half-width of the receptive field (= depth), beyond which the two runs are "
    "identical. Bottom: coverage of the same stacks along the middle row of a 64x64 input, "
    "divided by its value at the centre.",
)
def border_psnr() -> Figure:
    numbers, maps = _trained()
    crop = numbers["config"]["crop"]
    fig = Figure(figsize=(11.0, 6.0), layout="constrained")
    axes = fig.subplots(2, len(_DEPTHS), sharex=True, sharey="row")
    distance = np.arange(crop // 2)
    for col, depth in enumerate(_DEPTHS):
        top, bottom = axes[:, col]
        for i, mode in enumerate(_MODES):
            for residual, linestyle in ((True, "-"), (False, "--")):
                name = _denoiser(depth, mode, residual)
                top.plot(
                    distance,
                    maps[f"{name}/deficit_db"],
                    linestyle=linestyle,
                    color=f"C{i}",
                    marker=".",
                    label=f"{mode}, {'residual' if residual else 'plain'}",
                )
            spec = numbers["denoisers"][_denoiser(depth, mode, False)]["spec"]
            cov = rfa.coverage(spec, (crop, crop))
            row = cov[(crop - 1) // 2, : crop // 2]
            bottom.plot(distance, row / row[-1], color=f"C{i}", marker=".", label=mode)
        for ax in (top, bottom):
            ax.axvline(depth, color="0.6", linewidth=0.8, zorder=0)
        top.axhline(0, color="0.85", linewidth=0.8, zorder=0)
        top.set_title(f"depth {depth} (field {2 * depth + 1})")
        bottom.set_xlabel("distance to the border (pixels)")
    axes[0, 0].set_ylabel("PSNR lost at the border (dB)")
    axes[1, 0].set_ylabel("coverage / centre")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    axes[0, 0].set_xlim(-0.5, 24)
    return fig


@_figure(
    "19_occlusion",
    "The face / non-face classifier (25x25 inputs, two stride-2 layers, global average "
    "pooling). Top: routes from each 5x5 square to the face logit (coverage summed over the "
    "square, indexed by its top-left pixel), and the mean absolute change of the true "
    "class's logit margin when that square is set to the image's mean, over the 60 test "
    "images, the faces and the non-faces. Bottom: coverage of the trunk and the mean "
    "|d logit / dx| over the test images at initialisation and after training. Each map "
    "divided by its maximum, linear scale.",
)
def occlusion() -> Figure:
    numbers, maps = _trained()
    found = numbers["classifier"]
    size, square = numbers["config"]["face_size"], numbers["config"]["occluder"]
    coverage = rfa.coverage(found["spec"], (size, size))
    windows = np.lib.stride_tricks.sliding_window_view(coverage, (square, square))
    panels = [
        ("routes from the square", windows.sum(axis=(-2, -1))),
        ("occlusion, all", maps["classifier/occlusion"]),
        ("occlusion, faces", maps["classifier/occlusion_faces"]),
        ("occlusion, non-faces", maps["classifier/occlusion_nonfaces"]),
        ("coverage", coverage),
        ("|d logit/dx| at init", maps["classifier/erf_init"]),
        ("|d logit/dx| trained", maps["classifier/erf_trained"]),
    ]
    fig = Figure(figsize=(11.0, 5.6), layout="constrained")
    plotting.grid_figure(
        [(title, m / m.max()) for title, m in panels],
        ncols=4,
        log=False,
        fig=fig,
        label="map / max",
    )
    return fig


# --------------------------------------------------------------------------- building
def build(
    out: str | Path = "figures",
    only: Iterable[str] | None = None,
    progress: Callable[[Iterable[FigureSpec]], Iterator[FigureSpec]] | None = None,
) -> list[Path]:
    """Render figures into ``out`` and return the written paths.

    Parameters
    ----------
    out : path
        Output folder (created if missing).
    only : iterable of str, optional
        Figure names to build (default: all, in order).
    progress : callable, optional
        Wraps the iterable of figures (e.g. a progress bar).
    """
    selected = list(FIGURES.values()) if only is None else [_lookup(n) for n in only]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    items: Iterable[FigureSpec] = progress(selected) if progress else selected
    for spec in items:
        with plotting.paper_style():
            written.append(plotting.save_figure(spec.draw(), folder / spec.filename))
    return written


def _lookup(name: str) -> FigureSpec:
    if name not in FIGURES:
        hint = did_you_mean(name, FIGURES)
        raise ValueError(f"unknown figure {name!r}{hint} (known: {', '.join(FIGURES)})")
    return FIGURES[name]
