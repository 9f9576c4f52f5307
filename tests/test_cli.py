"""The command-line interface, through click's CliRunner."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

import rfanalysis as rfa
from rfanalysis.cli import main

from .cli_checks import assert_one_line_error


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_coverage_summary_prints_small_maps(run):
    result = run("coverage", "conv3p1", "--input", "5")
    assert result.exit_code == 0
    assert "centre 9; corner 4; centre/corner 2.25" in result.output
    assert "[[4 6 6 6 4]" in result.output


def test_coverage_data_files(run, tmp_path):
    npy, csv, js = tmp_path / "c.npy", tmp_path / "c.csv", tmp_path / "c.json"
    assert run("coverage", "conv3p1*2", "--input", "6,7", "-o", npy).exit_code == 0
    np.testing.assert_array_equal(np.load(npy), rfa.coverage("conv3p1*2", (6, 7)))
    assert run("coverage", "conv2*70", "--input", "71", "--exact", "-o", csv).exit_code == 0
    # one output unit; row 0 of its 71x71 routes is C(70, 0) times Pascal's row 70
    first = csv.read_text().splitlines()[0].split(",")
    assert [int(v) for v in first] == [math.comb(70, i) for i in range(71)]
    assert run("coverage", "conv3d2", "--input", "5", "--log", "-o", js).exit_code == 0
    payload = json.loads(js.read_text())
    assert payload["values_are"].startswith("log10") and payload["values"][0][1] is None


def test_routes_unit_and_images(run, tmp_path):
    png = tmp_path / "r.png"
    result = run("routes", "conv3p1*4", "--input", "16", "--unit", "0,3", "-o", png)
    assert result.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = run("routes", "conv2*4", "--input", "5", "--unit", "0,0")
    # conv2*4 on 5x5 has one output unit; its routes are the outer product of 1 4 6 4 1
    assert summary.exit_code == 0 and "[ 6 24 36 24  6]" in summary.output
    for suffix in ("svg", "pdf"):
        out = tmp_path / f"c.{suffix}"
        assert run("coverage", "lenet", "--input", "28", "-o", out).exit_code == 0
        assert out.stat().st_size > 1000


def test_images_are_byte_for_byte_reproducible(run, tmp_path):
    for suffix in ("png", "svg", "pdf"):
        a, b = tmp_path / f"a.{suffix}", tmp_path / f"b.{suffix}"
        run("coverage", "conv3p1:reflect*3,conv3s2p1", "--input", "24", "-o", a)
        run("coverage", "conv3p1:reflect*3,conv3s2p1", "--input", "24", "-o", b)
        assert a.read_bytes() == b.read_bytes()


def test_geometry_formats(run, tmp_path):
    # conv1: 20 filters of 5x5 + 1 bias = 520 shared; one set per 24x24 position: 299,520
    table = run("geometry", "lenet", "--input", "28")
    assert table.exit_code == 0 and " 520 " in table.output and " 299,520 " in table.output
    data = json.loads(run("geometry", "conv3p1*10", "--format", "json").output)
    assert data["receptive_field"]["size"] == [21, 21]
    assert run("geometry", "conv3", "--format", "csv").output.startswith("index,layer")
    assert run("geometry", "conv3", "--format", "markdown").output.startswith("| # |")


def test_spec_files_and_zoo(run, tmp_path):
    path = tmp_path / "net.toml"
    rfa.save(rfa.parse("conv3p1*3"), path)
    # three 3-tap layers: 1 + 3 (3 - 1) = 7, effective padding 3
    assert "receptive field 7, jump 1, effective padding 3" in run("geometry", path).output
    listing = run("zoo")
    assert listing.exit_code == 0 and "lenet" in listing.output
    assert "Nielsen" in run("zoo", "lenet").output


def test_zoo_trunk_spec(run):
    # ResNet-50 at 225: every stride-2 layer sees an odd size (225 -> 113 -> 57 -> 29 -> 15 ->
    # 8) and reads both ends, so the trunk is clean; the whole network is not, because its
    # head's 7x7 average pool, exact on 224's 7x7 map, drops a row and column of the 8x8 map
    trunk = run("blindspots", "resnet50:trunk", "--input", "225", "--format", "json")
    whole = run("blindspots", "resnet50", "--input", "225", "--format", "json")
    assert trunk.exit_code == 0 and whole.exit_code == 0
    assert json.loads(trunk.output)["uneven_padding"] == []
    dropped = [
        (u["layer"], u["axis"], u["input_size"], u["dropped_input"])
        for u in json.loads(whole.output)["uneven_padding"]
    ]
    assert dropped == [("avgpool: avgpool7", 0, 8, 1), ("avgpool: avgpool7", 1, 8, 1)]
    assert "resnet50:trunk" in run("geometry", "resnet50:trunk").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["coverage", "conv3,,", "--input", "8"], "cannot parse spec 'conv3,,'"),
        (["coverage", "conv9", "--input", "4"], "layer 1 (conv9): output size 0 for input 4"),
        (["coverage", "conv3", "--input", "abc"], "expected integers like 224"),
        (["coverage", "conv3", "--input", "0"], "sizes must be >= 1"),
        (["coverage", "conv3"], "Missing option '--input'"),
        (["coverage", "conv3", "--input", "8", "-o", "OUT.gif"], "unsupported file type '.gif'"),
        (["coverage", "conv3", "--input", "1000000"], "of memory"),
        (
            ["coverage", "conv3p1*800", "--input", "9", "--linear", "-o", "OUT.npy"],
            "exceed the float64 range",
        ),
        (["coverage", "conv3", "--input", "8", "--exact", "-o", "OUT.npy"], "write .csv or .json"),
        (["routes", "conv3", "--input", "8", "--unit", "9,9"], "out of range on axis 0"),
        (["routes", "conv3", "--input", "8", "--unit", "x"], "expected 'center' or ROW,COL"),
        (["geometry", "lenet", "--format", "yaml"], "Invalid value for '--format'"),
        (["geometry", "lenett"], "did you mean 'lenet'"),
        (["geometry", "missing.json"], "No such file or directory"),
        (["zoo", "resnet9000"], "unknown zoo network 'resnet9000'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_file(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(CliRunner().invoke(main, args), message, tmp_path)


def test_heatmap_has_title_colourbar_and_log_scale_by_default(run, tmp_path, drawn):
    from matplotlib import colors

    out = tmp_path / "c.png"
    assert run("coverage", "lenet", "--input", "28", "-o", out).exit_code == 0
    (fig,) = drawn
    ax, profile, cbar_ax = fig.axes  # the heatmap, its border profile, the colourbar
    assert fig.get_suptitle() == "coverage of lenet\ninput 28x28"
    assert cbar_ax.get_ylabel() == "routes to all output units"
    assert profile.get_ylabel() == "routes to all output units"
    image = ax.images[0]
    # log scale: the image holds log10 coverage on a linear norm of the exponent
    np.testing.assert_allclose(image.get_array(), np.log10(rfa.coverage(rfa.zoo.get("lenet"), 28)))
    assert type(image.norm) is colors.Normalize
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("column", "row")


def test_heatmap_linear_scale_and_routes_title(run, tmp_path, drawn):
    from matplotlib import colors

    out = tmp_path / "r.svg"
    args = ("routes", "conv3*2", "--input", "8", "--unit", "0,1", "--linear", "-o", out)
    assert run(*args).exit_code == 0
    ax = drawn[0].axes[0]
    assert drawn[0].get_suptitle() == "routes to unit (0, 1) of conv3*2\ninput 8x8"
    image = ax.images[0]
    assert type(image.norm) is colors.Normalize and image.norm.vmin == 0.0
    # zero-route pixels are masked; the others are the counts themselves
    counts = rfa.routes("conv3*2", (8, 8), unit=(0, 1))
    np.testing.assert_array_equal(image.get_array().filled(0), counts)
    assert image.norm.vmax == counts.max()


def test_one_dimensional_maps_are_profiles_and_3d_maps_central_slices(run, tmp_path, drawn):
    spec = tmp_path / "net.json"
    rfa.save(rfa.Network([rfa.Conv((2,))] * 4, name="pascal"), spec)
    assert run("routes", spec, "--input", "5", "-o", tmp_path / "p.pdf").exit_code == 0
    ax = drawn[0].axes[0]
    # log10 of Pascal's row 4: 1 4 6 4 1
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.log10([1, 4, 6, 4, 1]))
    assert drawn[0].get_suptitle() == "routes to the centre unit of pascal\ninput 5"
    assert run("coverage", "conv3p1", "--input", "5,4,3", "-o", tmp_path / "s.png").exit_code == 0
    ax = drawn[1].axes[0]
    assert drawn[1].get_suptitle().endswith("central slice: index 2 of 5 along axis 0")
    assert ax.images[0].get_array().shape == (4, 3)
    # compare draws both maps' middle slice of a 3-D input
    args = ("compare", "conv3p1", "--input", "5,4,3", "--trials", "1", "--channels", "1")
    assert run(*args, "-o", tmp_path / "c.png").exit_code == 0
    fig = drawn[2]
    assert fig.get_suptitle().endswith(" (central slice 2 along axis 0)")
    assert [im.get_array().shape for a in fig.axes for im in a.images] == [(4, 3)] * 3


def test_dpi_sets_png_resolution(run, tmp_path):
    import struct

    widths = []
    for dpi in (50, 100):
        out = tmp_path / f"d{dpi}.png"
        assert run("coverage", "conv3", "--input", "9", "--dpi", dpi, "-o", out).exit_code == 0
        widths.append(struct.unpack(">I", out.read_bytes()[16:20])[0])  # IHDR width
    assert widths[1] / widths[0] == pytest.approx(2, abs=0.01)  # up to a tight box's rounding


def test_images_carry_no_dates_or_versions(run, tmp_path):
    for suffix, banned in (("png", b"Software"), ("pdf", b"CreationDate"), ("svg", b"<dc:date>")):
        out = tmp_path / f"m.{suffix}"
        assert run("coverage", "conv3", "--input", "9", "-o", out).exit_code == 0
        data = out.read_bytes()
        assert banned not in data and b"Matplotlib v" not in data


def test_compare_prints_metrics_and_writes_figure_and_json(run, tmp_path):
    # ones weights, no activation: the gradient is the route count, so the maps agree
    same = run(
        "compare",
        "conv3p1*3",
        "--input",
        "9",
        "--weights",
        "ones",
        "--activation",
        "none",
        "--channels",
        "1",
        "--trials",
        "1",
    )
    assert same.exit_code == 0
    assert re.search(r"^total variation +0\.0000$", same.output, re.M), same.output
    png, js = tmp_path / "c.png", tmp_path / "c.json"
    assert (
        run(
            "compare", "conv3p1*4", "--input", "17", "--trials", "4", "--channels", "4", "-o", png
        ).exit_code
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        run(
            "compare",
            "conv3p1*4",
            "--input",
            "17",
            "--trials",
            "4",
            "--channels",
            "4",
            "--unit",
            "all",
            "-o",
            js,
        ).exit_code
        == 0
    )
    payload = json.loads(js.read_text())
    assert payload["unit"] == "all" and payload["trials"] == 4
    assert 0 < payload["metrics"]["total_variation"] < 1
    printed = json.loads(
        run("compare", "conv2*3", "--input", "8", "--format", "json", "--trials", "2").output
    )
    assert printed["metrics"]["shape"] == [8, 8]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "conv3", "--input", "8", "--trials", "0"], "0 is not in the range x>=1"),
        (
            ["compare", "conv3", "--input", "8", "--weights", "zeros"],
            "Invalid value for '--weights'",
        ),
        (
            ["compare", "conv3", "--input", "8", "-o", "OUT.npy"],
            "compare writes a figure (.png .svg .pdf) or its numbers (.json)",
        ),
        (["compare", "conv9", "--input", "4"], "layer 1 (conv9): output size 0"),
        (
            ["compare", "conv3p1*150", "--input", "9", "--weights", "ones", "--trials", "1"],
            "gradients overflowed float64 (or became NaN); use fewer --channels or --weights "
            "normal",
        ),
    ],
)
def test_compare_bad_input(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(CliRunner().invoke(main, args), message, tmp_path)


def test_shift_prints_a_table_and_writes_json_and_figure(run, tmp_path):
    # stride 1 with circular padding: unchanged by every shift, the map moves with the input
    table = run("shift", "conv3p1:circular*2", "--input", "8", "--shifts", "2", "--trials", "2")
    assert table.exit_code == 0
    rows = table.output.splitlines()[-3:]
    assert [r.split() for r in rows] == [[str(d), "1.0000", "1.0000", str(d)] for d in range(3)]
    args = ("shift", "conv3p1,maxpool2,conv3p1", "--input", "8", "--trials", "3")
    js, png = tmp_path / "s.json", tmp_path / "s.png"
    assert run(*args, "--channels", "2", "--seed", "5", "-o", js).exit_code == 0
    expected = rfa.shift_invariance("conv3p1,maxpool2,conv3p1", 8, channels=2, trials=3, rng=5)
    assert json.loads(js.read_text()) == json.loads(json.dumps(expected.to_dict()))
    printed = run(*args, "--shifts", "0,3", "--mode", "crop", "--format", "json")
    assert json.loads(printed.output)["shifts"] == [0, 3]
    assert json.loads(printed.output)["mode"] == "crop"
    assert run(*args, "--axis", "0", "-o", png).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "1"], "`trials` must be >= 2, got 1"),
        (["-o", "OUT.csv"], "shift writes a figure (.png .svg .pdf) or its numbers (.json)"),
        (["--shifts", "1.5"], "Invalid value for '--shifts': expected the largest shift"),
        (["--shifts", "-3"], "`shifts` as one number is the largest shift"),
        (["--axis", "2"], "`axis` must lie in [-2, 2) for a 2-D input, got 2"),
        (["--mode", "wrap"], "Invalid value for '--mode'"),
        (["--input", "3", "-o", "OUT.json"], "layer 2 (maxpool2): output size 0"),
    ],
)
def test_shift_bad_input(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    base = ["shift", "conv3,maxpool2", "--input", "8"]
    assert_one_line_error(CliRunner().invoke(main, base + args), message, tmp_path)


def test_shift_overflow_is_one_line(tmp_path, monkeypatch):
    # 3 x 3 x 64 = 576 per ones-weight layer: past float64's range by layer 112
    monkeypatch.chdir(tmp_path)
    args = ["shift", "conv3p1:circular*160", "--input", "8", "--weights", "ones"]
    args += ["--activation", "none", "--channels", "64", "--trials", "2", "--shifts", "1"]
    result = CliRunner().invoke(main, [*args, "-o", "OUT.json"])
    assert_one_line_error(
        result,
        "shift_invariance: the outputs overflowed (or became NaN); use fewer --channels or "
        "--weights normal",
        tmp_path,
    )


def test_compare_says_which_law_fits(run, tmp_path, drawn):
    # random zero-mean weights: mean |dy/dx| follows sqrt(routes) (theory.random_weight_influence)
    args = ("compare", "conv3p1*6", "--input", "25", "--trials", "8", "--channels", "8")
    text = run(*args)
    assert text.exit_code == 0
    assert "closer law: sqrt(routes), the law of independent zero-mean weights" in text.output
    metrics = json.loads(run(*args, "--format", "json").output)["metrics"]
    assert metrics["closer_law"] == "sqrt(routes)"
    assert metrics["sqrt_routes"]["total_variation"] < metrics["total_variation"]
    # all-ones weights, no activation: the gradient is the routes themselves
    ones = ("--weights", "ones", "--activation", "none", "--channels", "1", "--trials", "1")
    exact = run("compare", "conv3p1*3", "--input", "9", *ones)
    assert "closer law: routes (the law of a linear network with all weights 1)" in exact.output
    # the figure says both; --unit all compares coverage
    out = tmp_path / "c.png"
    result = run("compare", "conv3p1*3", "--input", "9", *ones, "--unit", "all", "-o", out)
    assert result.exit_code == 0
    title = drawn[0].get_suptitle()
    assert title.startswith("coverage of conv3p1*3\ninput 9x9\n")
    assert re.search(
        r"\ntotal variation 0\.000 against routes, 0\.(?!000)\d{3} against √routes$", title
    )
