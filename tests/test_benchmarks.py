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
        "## 6. Peak memory",
    ):
        assert heading in text
    # every comparison row agrees with rfanalysis to rounding
    diffs = [
        line.split("|")[5].strip()
        for line in text.splitlines()
        if line.startswith("| ") and ("torch" in line or "scipy" in line)
    ]
    assert diffs and all(d == "-" or float(d) < 1e-12 for d in diffs)
