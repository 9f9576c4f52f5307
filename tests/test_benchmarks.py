"""Smoke test of the benchmark script on tiny sizes (the real run is `python benchmarks/run.py`;
speed is never asserted in unit tests)."""

from __future__ import annotations

import importlib.util
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
        "## 3. from_torch",
        "## 4. Exact integers",
        "## 5. Log mode",
        "## 6. Empirical influence",
        "## 7. Peak memory",
        "## 8. Influence over a data set",
    ):
        assert heading in text
    sections = {s.split(".")[0]: s for s in text.split("\n## ")[1:]}
    rows = {
        k: [[c.strip() for c in line.split("|")[1:-1]] for line in s.splitlines()
            if line.startswith("| ") and not line.startswith("| case |")]
        for k, s in sections.items()
    }  # fmt: skip
    # route counts agree with torch and scipy to rounding: float64 exactly (counts below
    # 2**53) or to its rounding; float32 to its rounding unless its note says it overflowed
    for key in ("1", "2"):
        torch_rows = [r for r in rows[key] if r[1].startswith("torch autograd")]
        assert {r[1] for r in torch_rows} == {"torch autograd float32", "torch autograd float64"}
        for case, method, _, _, diff, note in rows[key]:
            if method == "rfanalysis":
                continue
            if note.startswith("skipped"):
                assert diff == "-"
            elif method.endswith("float32") and "overflow" in note:
                assert diff in ("inf", "nan")
            else:
                assert float(diff) < (1e-5 if method.endswith("float32") else 1e-12), case
        # every case has a baseline: the faster torch row whose counts are right
        cases = {r[0] for r in rows[key]}
        marked = {r[0] for r in torch_rows if r[5].startswith("the faster right baseline")}
        assert marked == cases
        for case in marked:
            timed = [r for r in torch_rows if r[0] == case and r[2] != "-"]
            right = [r for r in timed if not ("overflow" in r[5] and r[1].endswith("float32"))]
            chosen = [r for r in right if r[5].startswith("the faster right baseline")]
            # the marked row is a right one and no right row is faster (times print rounded:
            # a tie may mark either)
            assert len(chosen) == 1, (case, timed)
            assert float(chosen[0][2]) <= min(float(r[2]) for r in right), (case, timed)
    # whole models, each against autograd of the same graph
    for model in ("ResNet-50", "DenseNet-121", "EfficientNet-B0", "ConvNeXt-T", "Swin-T", "ViT"):
        assert any(r[0].startswith(model) and r[1] == "rfanalysis" for r in rows["2"])
    # from_torch: a time without verification and what verification adds, per model
    # three torchvision classifiers, and YOLOv8n's P3-P5 where ultralytics is installed
    yolo = importlib.util.find_spec("ultralytics") is not None
    assert len(rows["3"]) == 3 + yolo
    assert any(r[0] == "yolov8n 320^2 P3-P5" for r in rows["3"]) == yolo
    for _, method, ms, _, _, note in rows["3"]:
        assert method == "rfa.from_torch" and float(ms) > 0 and "verification adds" in note
    # float32 gradients of the two influence backends agree to float32
    diffs = [float(r[4]) for r in rows["6"] if r[4] != "-"]
    assert len(diffs) == 2 and max(diffs) < 1e-5
    # every streamed image is counted
    counted = [r[5].split("influence counted ")[1].split()[0] for r in rows["8"]]
    cases = [r[0].split()[0] for r in rows["8"]]
    assert counted == cases and len(cases) == 4
