"""Smoke test of the benchmark script on tiny sizes (the real run is `python benchmarks/run.py`;
speed is never asserted in unit tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.torch
def test_quick_benchmark_writes_a_table(tmp_path):
    out = tmp_path / "RESULTS.md"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "Machine: " in text
    for heading in (
        "## 1. Chain coverage",
        "## 2. DAG coverage",
        "## 3. Exact integers",
        "## 4. Log mode",
        "## 5. Empirical influence",
        "## 6. Peak memory",
        "## 7. Influence over a data set",
    ):
        assert heading in text
    # route counts agree with torch and scipy to rounding; float32 gradients to float32
    sections = text.split("\n## ")
    for section in sections:
        rows = [line.split("|") for line in section.splitlines() if line.startswith("| ")]
        diffs = [float(r[5]) for r in rows if r[5].strip() not in ("-", "max rel diff")]
        if section.startswith(("1.", "2.")):
            assert diffs and max(diffs) < 1e-12
        if section.startswith("5."):
            assert len(diffs) == 2 and max(diffs) < 1e-5
        if section.startswith("7."):  # every streamed image is counted
            counted = [r[6].split("influence counted ")[1].split()[0] for r in rows[1:]]
            cases = [r[1].split()[0] for r in rows[1:]]
            assert counted == cases and len(cases) == 4
