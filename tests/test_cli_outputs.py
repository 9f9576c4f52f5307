"""Every output format of `coverage` and `routes` in every number mode: the whole matrix.

Each cell either writes what it says, checked against counts computed by hand, or exits 2 with
one line ``Error: ...`` and leaves no file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rfanalysis as rfa
from rfanalysis.cli import main

from .cli_checks import assert_one_line_error, assert_script_refuses, run_script

# conv3p1 on 3x3: every pixel is read by the output units whose 3x3 window holds it;
# corner 2 x 2 = 4, edge 2 x 3 = 6, centre 3 x 3 = 9
COVERAGE = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]])
# routes to unit (0, 0): its window covers rows and columns -1..1, one route per pixel
ROUTES_00 = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]])
COMMANDS = {
    "coverage": (["coverage", "conv3p1", "--input", "3"], COVERAGE),
    "routes": (["routes", "conv3p1", "--input", "3", "--unit", "0,0"], ROUTES_00),
}
OUTPUTS = [None, ".npy", ".csv", ".json", ".png", ".svg", ".pdf"]
MODES = {
    "default": [],
    "log": ["--log"],
    "linear": ["--linear"],
    "exact": ["--exact"],
    "exact-log": ["--exact", "--log"],
}
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".svg": b"<?xml", ".pdf": b"%PDF-"}


def refusal(suffix: str | None, mode: str) -> str | None:
    """The error a cell must give, or None where it must succeed."""
    if mode == "exact-log":
        return "--exact and --log are exclusive"
    if mode == "exact" and suffix == ".npy":
        return "which .npy cannot hold without pickling; write .csv or .json instead"
    if mode == "exact" and suffix in MAGIC:
        return f"not to an image ({suffix}), whose colours need no exact integers"
    return None


def log10(counts: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log10(counts.astype(float))


def read_back(path: Path) -> tuple[np.ndarray, list]:
    """A written data file as float64 (-inf for "no route") and its values as parsed."""
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
        return values, values.tolist()
    if path.suffix == ".csv":
        rows = [line.split(",") for line in path.read_text().splitlines()]
        return np.array([[float(v) for v in row] for row in rows]), rows
    payload = json.loads(path.read_text())
    values = payload["values"]
    return np.array([[-math.inf if v is None else v for v in row] for row in values]), values


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("suffix", OUTPUTS, ids=lambda s: s or "summary")
@pytest.mark.parametrize("command", COMMANDS)
def test_output_matrix(tmp_path, monkeypatch, drawn, command, suffix, mode):
    monkeypatch.chdir(tmp_path)
    args, counts = COMMANDS[command]
    out = None if suffix is None else tmp_path / f"out{suffix}"
    result = CliRunner().invoke(main, [*args, *MODES[mode], *(["-o", str(out)] if out else [])])
    message = refusal(suffix, mode)
    if message is not None:
        assert_one_line_error(result, message, tmp_path)
        return
    assert result.exit_code == 0, result.output
    log = mode == "log"
    if suffix is None:
        if log:
            top, low = math.log10(counts.max()), math.log10(counts[counts > 0].min())
            assert f"log10 counts: max {top:.6g}, min non-zero {low:.6g}" in result.output
        else:
            assert str(counts) in result.output  # the whole map, as integers
            assert f"max {counts.max()};" in result.output
        return
    assert list(tmp_path.iterdir()) == [out]
    if suffix in MAGIC:
        assert out.read_bytes().startswith(MAGIC[suffix])
        image = drawn[0].axes[0].images[0]
        if mode == "linear":  # counts on a linear scale, zero-route pixels masked
            np.testing.assert_array_equal(image.get_array().filled(0), counts)
        else:  # log10 counts on a linear scale of the exponent
            shown = np.ma.filled(image.get_array(), -np.inf)
            np.testing.assert_allclose(shown, log10(counts))
        return
    values, parsed = read_back(out)
    if log:
        np.testing.assert_allclose(values, log10(counts))
    else:
        np.testing.assert_array_equal(values, counts)
        if suffix != ".npy":  # data files hold integers where the counts are integers
            assert all(isinstance(v, int) or v.isdigit() for row in parsed for v in row)
    if suffix == ".json":
        payload = json.loads(out.read_text())
        kind = {"log": "log10 routes (null: no route)", "exact": "routes (exact integers)"}
        assert payload["values_are"] == kind.get(mode, "routes")
        assert payload["shape"] == [3, 3] and payload["what"] == command


def test_exact_summary_and_json_beyond_the_float64_range(tmp_path):
    # 1100 2-tap layers on 1101 pixels (1-D): one output unit; its routes are Pascal's row
    # 1100, whose middle entry C(1100, 550) has 330 digits, beyond float64
    spec = tmp_path / "pascal.json"
    rfa.save(rfa.Network([rfa.Conv((2,))] * 1100), spec)
    args = ["routes", str(spec), "--input", "1101", "--exact"]
    summary = CliRunner().invoke(main, args)
    assert summary.exit_code == 0, summary.output
    middle = math.comb(1100, 550)
    assert len(str(middle)) == 330
    digits = str((middle + 5 * 10**323) // 10**324)  # rounded to 6 significant digits
    assert len(digits) == 6
    # the centre is the maximum; the corner C(1100, 0) = 1, so centre/corner is the centre
    assert f"max {digits[0]}.{digits[1:]}e+329;" in summary.output
    assert f"centre/corner {digits[0]}.{digits[1:]}e+329" in summary.output
    out = tmp_path / "r.json"
    assert CliRunner().invoke(main, [*args, "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["values"] == [math.comb(1100, i) for i in range(1101)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--linear"], "exceed the float64 range (about 1.8e308); use --log for log10 counts or "),
        (["--linear", "-o", "OUT.csv"], "use --log for log10 counts or --exact for exact"),
        (["-o", "OUT.npy"], "use --log for log10 counts, or --exact with .csv or .json"),
        (["--linear", "-o", "OUT.png"], "draw them on the default logarithmic scale"),
    ],
)
def test_overflow_advice_names_the_cli_options(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["coverage", "conv3p1*800", "--input", "9", *args])
    assert_one_line_error(result, message, tmp_path)
    assert "log=True" not in result.output and "exact=True" not in result.output


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["coverage", "conv3p1", "--input", "3", "--exact", "-o", "c.json"], "json"),
        (["routes", "conv3p1", "--input", "3", "--unit", "0,0", "--log", "-o", "r.csv"], "csv"),
        (["coverage", "conv3p1", "--input", "3", "--exact", "-o", "c.png"], "refused"),
        (["coverage", "conv3p1*800", "--input", "9"], "overflow"),
    ],
)
def test_installed_console_script(tmp_path, args, check):
    """The same through the installed `rfanalysis` script, as a user runs it."""
    done = run_script(*args, cwd=tmp_path)
    if check in ("refused", "overflow"):
        assert_script_refuses(done, "--exact" if check == "refused" else "use --log", tmp_path)
        return
    assert done.returncode == 0, done.stderr
    values, _ = read_back(tmp_path / args[-1])
    expected = COVERAGE if check == "json" else log10(ROUTES_00)
    np.testing.assert_allclose(values, expected)
