"""Speed and memory of rfanalysis against what a user would otherwise use.

    python benchmarks/run.py                 # full run (minutes); writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick         # tiny sizes: a smoke test of the script itself
    python benchmarks/run.py --output FILE   # write the table elsewhere
    python benchmarks/run.py --only stream   # one section (printed; written only to --output)

Every number comes from this one process run: medians over repeats (warm: the plan cache of
rfanalysis is filled by the first call, which is reported separately as "cold"). Alternatives:
torch autograd of the single-channel, ones-weight network (pools as window sums, gates and
global terms as sums: DESIGN.md section 9), whose input gradient is the route count, and
repeated convolution with scipy. Autograd is timed in float32, what a user runs, and in
float64: float32 rounds counts beyond 2**24 and overflows past 3.4e38 (after ~40 3x3 layers,
or through the global terms of a model with gates), float64 rounds beyond 2**53. Ratios are
against the faster of the two whose counts are still right (finite, within 1e-4 of
rfanalysis's); the table shows every row and says where a dtype fails. Whole models are
torchvision's, traced with ``rfa.from_torch``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import math
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rfanalysis as rfa  # noqa: E402
from rfanalysis._memory import available_bytes, format_bytes  # noqa: E402

RESNET50 = "resnet50"
#: a float32 gradient counts as right within this relative difference (float32 rounds each
#: sum to about 6e-8; a few hundred sums deep that stays far below this)
FLOAT32_TOLERANCE = 1e-4
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Row:
    case: str
    method: str
    ms: float | None
    ratio: float | None = None  # method time / rfanalysis time
    max_rel_diff: float | None = None
    note: str = ""


@dataclass
class Section:
    title: str
    target: str
    rows: list[Row] = field(default_factory=list)
    verdict: str = ""


def timed(repeat: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Median wall time in ms over ``repeat`` calls of ``fn(*args, **kwargs)``, and the last
    result."""
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), result


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


def time_torch(
    sec: Section,
    case: str,
    net: Any,
    shape: tuple[int, ...],
    repeat: int,
    ms: float,
    ours: np.ndarray,
    dtypes: tuple[str, ...] = ("float32", "float64"),
) -> Row | None:
    """Time torch autograd of the ones-weight network in each dtype (forward and backward
    only: the graph is built and run once before the clock starts) and add a row for each,
    with the ratio to rfanalysis's time; return the faster row whose counts are right (None
    if none is), marked in its note."""
    import torch

    from tests.oracles import torch_net

    rows = []
    for dtype in dtypes:
        f = torch_net(net, shape, dtype=dtype)

        def coverage(f: Any = f, dtype: str = dtype) -> np.ndarray:
            x = torch.zeros((1, 1, *shape), dtype=getattr(torch, dtype), requires_grad=True)
            f(x).sum().backward()
            return x.grad[0, 0].double().numpy()

        coverage()  # index tensors of the oracle, torch's allocator and kernels
        tms, theirs = timed(repeat, coverage)
        time.sleep(0.3)  # let torch's worker threads stop spinning before anything is timed
        diff = rel_diff(theirs, ours)
        rows.append(Row(case, f"torch autograd {dtype}", tms, tms / ms, diff,
                        dtype_note(dtype, ours, theirs)))  # fmt: skip
    sec.rows += rows
    right = [r for r in rows if right_counts(r)]
    if not right:
        return None
    best = min(right, key=lambda r: r.ms or math.inf)
    best.note = "; ".join(filter(None, ["the faster right baseline", best.note]))
    return best


def right_counts(row: Row) -> bool:
    """Whether a torch row's counts are right: finite and within rounding of rfanalysis's."""
    limit = FLOAT32_TOLERANCE if row.method.endswith("float32") else 1e-12
    return row.max_rel_diff is not None and row.max_rel_diff <= limit


def dtype_note(dtype: str, ours: np.ndarray, theirs: np.ndarray) -> str:
    """What a dtype does to these counts: overflow, or the integers it can no longer hold."""
    largest = float(np.max(ours))
    if not np.isfinite(theirs).all():
        return f"counts overflow {dtype} (largest {largest:.2g}; {dtype} ends at " + (
            "3.4e38)" if dtype == "float32" else "1.8e308)"
        )
    exact = 2**24 if dtype == "float32" else 2**53
    if largest > exact:
        power = "2^24" if dtype == "float32" else "2^53"
        return f"counts beyond {power} lose integer exactness in {dtype} (largest {largest:.2g})"
    return ""


def scipy_chain_coverage(n: int, depth: int, module: str = "ndimage") -> np.ndarray:
    """What a user would write: correlate a ones map with the kernel, depth times, with
    ``scipy.ndimage.correlate`` (the faster) or ``scipy.signal.correlate2d``."""
    from scipy import ndimage, signal

    kernel = np.ones((3, 3))
    c = np.ones((n, n))
    for _ in range(depth):
        if module == "ndimage":
            c = ndimage.correlate(c, kernel, mode="constant")
        else:
            c = signal.correlate2d(c, kernel, mode="same")
    return c


def torch_activation_bytes(shape: tuple[int, ...], depth: int, itemsize: int = 8) -> int:
    # autograd keeps one activation (and its gradient) per layer
    return 2 * itemsize * math.prod(shape) * depth


def time_coverage(
    sec: Section, case: str, net: Any, shape: tuple[int, ...], quick: bool
) -> tuple[float, np.ndarray]:
    """Time rfanalysis's coverage cold (empty plan cache) and warm, add its row to ``sec``,
    and return the warm median (ms) and the map."""
    rfa._plan._plan_cached.cache_clear()
    cold, _ = timed(1, rfa.coverage, net, shape)
    ms, ours = timed(3 if quick else 7, rfa.coverage, net, shape)
    sec.rows.append(Row(case, "rfanalysis", ms, 1.0, note=f"cold first call {cold:.1f} ms"))
    return ms, ours


# --------------------------------------------------------------------------- sections
def chain_section(quick: bool) -> Section:
    sec = Section(
        "1. Chain coverage: 3x3 conv, padding 1, stride 1 (rfanalysis vs torch "
        "autograd in float32 and float64 vs scipy.ndimage.correlate and scipy.signal.correlate2d)",
        "<= 5 ms at 1024^2 x 64 and >= 1000x faster than the faster torch autograd whose "
        "counts are right there",
    )
    sizes = [32, 64] if quick else [224, 1024, 4096]
    depths = [4, 16] if quick else [16, 64]
    key: tuple[float, Row | None] | None = None  # the target case: our time, the baseline
    for n in sizes:
        for depth in depths:
            net = rfa.parse(f"conv3p1*{depth}")
            shape = (n, n)
            case = f"{n}^2 x {depth}"
            ms, ours = time_coverage(sec, case, net, shape, quick)
            largest = float(ours.max())
            dtypes = []
            for dtype, itemsize in (("float32", 4), ("float64", 8)):
                need = torch_activation_bytes(shape, depth, itemsize)
                if dtype == "float32" and largest > FLOAT32_MAX and n >= 1024:
                    # a minute of autograd to show an overflow that the counts already show
                    sec.rows.append(
                        Row(
                            case,
                            f"torch autograd {dtype}",
                            None,
                            note=f"skipped: counts reach {largest:.2g}, past float32's range "
                            "(3.4e38)",
                        )
                    )
                elif need > 0.5 * available_bytes():
                    sec.rows.append(
                        Row(
                            case,
                            f"torch autograd {dtype}",
                            None,
                            note=f"skipped: needs ~{format_bytes(need)} of activations",
                        )
                    )
                else:
                    dtypes.append(dtype)
            repeat = 1 if n >= 1024 else 3
            base = (
                time_torch(sec, case, net, shape, repeat, ms, ours, tuple(dtypes))
                if dtypes
                else None
            )
            if case == "1024^2 x 64":
                key = (ms, base)
            for module in ("ndimage", "signal"):
                sms, theirs = timed(1 if n >= 1024 else 3, scipy_chain_coverage, n, depth, module)
                sec.rows.append(Row(case, f"scipy.{module}", sms, sms / ms, rel_diff(theirs, ours)))
    if key is not None:
        ours, base = key
        ok = ours <= 5 and base is not None and (base.ratio or 0) >= 1000
        versus = (
            "no torch autograd with right counts"
            if base is None
            else f"{base.ratio:.0f}x faster than the faster right torch autograd "
            f"({base.method.split()[-1]})"
        )
        sec.verdict = f"{'met' if ok else 'NOT met'}: {ours:.2f} ms, {versus}"
    return sec


#: whole models: torchvision's, traced by from_torch to the map before their global pool
#: (name, label, output, builder kwargs for an input size n, sizes, quick sizes)
MODELS: list[tuple[str, str, str, Callable[[int], dict], tuple[int, ...], tuple[int, ...]]] = [
    ("resnet50", "ResNet-50 trunk", "layer4", lambda n: {}, (224, 1024), (64, 128)),
    ("densenet121", "DenseNet-121", "features", lambda n: {}, (224, 1024), (64,)),
    ("efficientnet_b0", "EfficientNet-B0 (SE gates)", "features", lambda n: {}, (224, 1024),
     (64,)),
    ("convnext_tiny", "ConvNeXt-T", "features", lambda n: {}, (224, 1024), (64,)),
    # windows of 7 tokens after a 4x4 patch embedding: 896 = 4 * 7 * 32 tiles every stage
    ("swin_t", "Swin-T (shifted windows)", "features", lambda n: {}, (224, 896), (64,)),
    # 16x16 patches; the position embedding is made for the image size
    ("vit_b_16", "ViT-B/16 (global attention)", "encoder", lambda n: {"image_size": n},
     (224, 1024), (64,)),
]  # fmt: skip
#: whole models whose coverage at 1024^2 must beat autograd 10x
DAG_TARGETS = ("resnet50", "densenet121", "efficientnet_b0", "convnext_tiny")


def torchvision() -> Any:
    # torchvision's C++ operators are missing from the CPU torch build: the import helper
    # puts empty stand-ins for its fake/autograd kernel registrations in sys.modules first
    from tests.real_models import torchvision as import_torchvision

    return import_torchvision()


def dag_section(quick: bool) -> Section:
    sec = Section(
        "2. DAG coverage: whole torchvision models through the graph engine (rfa.from_torch, "
        "the map before the global pool; torch autograd of the same single-channel "
        "ones-weight graph)",
        ">= 10x faster than the faster right torch autograd at 1024^2 for "
        + ", ".join(m[1] for m in MODELS if m[0] in DAG_TARGETS),
    )
    from tests.real_models import build

    tv = torchvision()
    ratios = {}
    for name, label, output, kwargs, sizes, quick_sizes in MODELS:
        for n in quick_sizes if quick else sizes:
            shape = (n, n)
            extra = kwargs(n)
            model = build(lambda name=name, extra=extra: tv.models.get_model(name, **extra))
            net = rfa.from_torch(model, shape, output=output, verify=False)
            del model
            case = f"{label} {n}^2"
            ms, ours = time_coverage(sec, case, net, shape, quick)
            peak = peak_memory(rfa.coverage, net, shape)
            sec.rows[-1].note += (
                f"; {len(net.nodes) - 1} nodes; peak {format_bytes(peak)} (result alone "
                f"{format_bytes(8 * n * n)})"
            )
            base = time_torch(sec, case, net, shape, 1 if quick else 3, ms, ours)
            if n == 1024:
                ratios[name] = base.ratio if base is not None else None
    if not quick:
        missed = [n for n in DAG_TARGETS if (ratios.get(n) or 0) < 10]
        sec.verdict = (
            ("met" if not missed else "NOT met")
            + ": "
            + ", ".join(
                f"{name} {ratios[name]:.1f}x" if ratios.get(name) else f"{name} not measured"
                for name in DAG_TARGETS
            )
        )
    return sec


def from_torch_section(quick: bool) -> Section:
    """``from_torch`` of every torchvision classification model at its input size and of
    ultralytics' YOLO detectors at 640 (their P3, P4 and P5 maps, one capture), cold (a model
    built for the call; construction not counted), without verification; then the time
    verification adds (one forward pass of the module, one forward and backward pass of its
    trace per map)."""
    sec = Section(
        "3. from_torch: every torchvision classification model at its input size and the "
        "YOLO detectors at 640 (verify=False, model construction not counted; verification "
        "timed beside it)",
        "<= 2 s per model with verify=False",
    )
    from rfanalysis._importers.fromtorch import api as _fx
    from tests.real_models import build

    tv = torchvision()
    names = tv.models.list_models(module=tv.models)
    if quick:
        names = [n for n in names if n in ("resnet18", "mobilenet_v3_small", "squeezenet1_0")]
    cases: list[tuple[str, Callable[[], Any], int, Any]] = [
        (name, lambda name=name: tv.models.get_model(name), 299 if name == "inception_v3"
         else 224, None)
        for name in names
    ]  # fmt: skip
    if importlib.util.find_spec("ultralytics") is not None:
        from ultralytics.nn.tasks import DetectionModel, PoseModel, SegmentationModel

        yolos = ["yolov8n.yaml"] if quick else [
            "yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml", "yolo11n-pose.yaml",
            "yolov10n.yaml",
        ]  # fmt: skip
        for cfg in yolos:
            kind = SegmentationModel if "seg" in cfg else PoseModel if "pose" in cfg else (
                DetectionModel)  # fmt: skip
            cases.append((cfg.removesuffix(".yaml"),
                          lambda cfg=cfg, kind=kind: kind(cfg, verbose=False),
                          320 if quick else 640, "levels"))  # fmt: skip
    slowest = (0.0, "")
    for name, make, n, output in cases:
        model = build(make)
        if output == "levels":  # the maps the detection head reads: P3, P4, P5
            output = [f"model.{i}" for i in model.model[-1].f]
        gc.collect()
        start = time.perf_counter()
        net = rfa.from_torch(model, (n, n), verify=False, output=output)
        ms = (time.perf_counter() - start) * 1e3
        _fx._CACHE.pop(model, None)  # traced again, for its memory
        peak = peak_memory(rfa.from_torch, model, (n, n), verify=False, output=output)
        gc.collect()
        start = time.perf_counter()
        rfa.from_torch(model, (n, n), output=output)  # traced again (another key), verified
        verified = (time.perf_counter() - start) * 1e3
        params = sum(p.numel() for p in model.parameters())
        del model
        slowest = max(slowest, (ms, name))
        size = sum(len(x.nodes) - 1 for x in net.values()) if isinstance(net, dict) else (
            len(net.nodes) - 1)  # fmt: skip
        sec.rows.append(
            Row(
                f"{name} {n}^2" + (" P3-P5" if isinstance(net, dict) else ""),
                "rfa.from_torch",
                ms,
                note=f"{size} nodes; {params / 1e6:.1f}M parameters; "
                f"verify=True {verified / 1e3:.2f} s (verification adds "
                f"{(verified - ms) / 1e3:.2f} s); peak {format_bytes(peak)}",
            )
        )
    if not quick:
        ok = slowest[0] <= 2000
        sec.verdict = (
            f"{'met' if ok else 'NOT met'}: {len(cases)} models, slowest {slowest[1]} "
            f"{slowest[0] / 1e3:.2f} s"
        )
    return sec


def exact_section(quick: bool) -> Section:
    sec = Section(
        "4. Exact integers",
        "1-D n=4096, depth 1000, 3-tap: <= 2 s; and the largest 2-D exact map within 10 s",
    )
    n, depth = (256, 100) if quick else (4096, 1000)
    net = rfa.parse(f"conv3p1*{depth}")
    ms, exact = timed(1, rfa.coverage, net, (n,), exact=True)
    floats = rfa.coverage(net, (n,), log=True)
    digits = max(len(str(v)) for v in exact.tolist())
    check = float(np.max(np.abs(np.array([math.log10(v) for v in exact.tolist()]) - floats)))
    sec.rows.append(
        Row(
            f"1-D {n} x {depth}",
            "rfanalysis exact",
            ms,
            note=f"largest count has {digits} digits; log10 of it vs log mode: within {check:.1e}",
        )
    )
    if not quick:
        sec.verdict = f"{'met' if ms <= 2000 else 'NOT met'}: {ms / 1e3:.2f} s"
    budget = 1000.0 if quick else 10_000.0
    depth2 = 16 if quick else 64
    net2 = rfa.parse(f"conv3p1*{depth2}")
    best, size = None, 64
    while True:
        try:
            ms2, _ = timed(1, rfa.coverage, net2, (size, size), exact=True)
        except ValueError as exc:  # the memory guard: the next size does not fit this machine
            sec.rows.append(
                Row(f"2-D {size}^2 x {depth2}", "rfanalysis exact", None, note=f"refused: {exc}")
            )
            break
        if ms2 > budget:
            sec.rows.append(
                Row(f"2-D {size}^2 x {depth2}", "rfanalysis exact", ms2, note="over the budget")
            )
            break
        best = (size, ms2)
        size *= 2
        if size > (256 if quick else 16384):
            break
    if best:
        sec.rows.append(
            Row(
                f"2-D {best[0]}^2 x {depth2}",
                "rfanalysis exact",
                best[1],
                note=f"largest power-of-two size within {budget / 1e3:.0f} s",
            )
        )
    if not quick:
        largest = f"{best[0]}^2 x {depth2} in {best[1] / 1e3:.1f} s" if best else "none"
        sec.verdict += f"; largest 2-D exact map within 10 s: {largest}"
    return sec


def log_section(quick: bool) -> Section:
    sec = Section("5. Log mode at depth 2000", "no overflow, finite values")
    depth = 200 if quick else 2000
    n = 256 if quick else 1024
    net = rfa.parse(f"conv3p1*{depth}")
    ms, logs = timed(3, rfa.coverage, net, (n, n), log=True)
    finite = bool(np.isfinite(logs).all())
    sec.rows.append(
        Row(
            f"{n}^2 x {depth}",
            "rfanalysis log10",
            ms,
            note=f"all finite: {finite}; max log10 count {logs.max():.1f}",
        )
    )
    try:
        rfa.coverage(net, (n, n))
        note = "float64 did not overflow"
    except rfa.CountOverflowError as exc:
        note = f"float64 refuses: {str(exc)[:60]}..."
    sec.rows.append(Row(f"{n}^2 x {depth}", "rfanalysis float64", None, note=note))
    sec.verdict = "met" if finite else "NOT met"
    return sec


INFLUENCE = {
    "spec": "conv3p1*20",
    "shape": (64, 64),
    "weights": "normal",
    "activation": "relu",
    "channels": 32,
    "trials": 16,
    "rng": 0,
}
INFLUENCE_QUICK = {**INFLUENCE, "spec": "conv3p1*4", "shape": (32, 32), "channels": 8, "trials": 4}


def influence_child(backend: str, dtype: str, repeat: int, out: str, quick: bool) -> None:
    """Time one backend in this process (the numpy one never imports torch); print the
    median and save the map."""
    kw = dict(INFLUENCE_QUICK if quick else INFLUENCE)
    spec, shape = kw.pop("spec"), kw.pop("shape")
    rfa.influence(spec, shape, backend=backend, dtype=dtype, progress=False, **kw)  # warm up
    ms, result = timed(
        repeat, rfa.influence, spec, shape, backend=backend, dtype=dtype, progress=False, **kw
    )
    np.save(out, result)
    print(ms)


def influence_section(quick: bool) -> Section:
    """Each backend in a process of its own: thread pools that keep spinning after a call
    (OpenBLAS's, torch's OpenMP) would otherwise slow whichever runs next."""
    import subprocess
    import tempfile

    kw = INFLUENCE_QUICK if quick else INFLUENCE
    case = (
        f"{kw['spec']}, {kw['channels']} ch, {'x'.join(map(str, kw['shape']))}, "
        f"{kw['trials']} trials"
    )
    sec = Section(
        "6. Empirical influence: He-normal weights, ReLU (numpy backend vs torch "
        "CPU backend, same weights and inputs)",
        "numpy within 2x of torch",
    )
    repeat = 3 if quick else 5
    ratios = {}
    with tempfile.TemporaryDirectory() as folder:
        for dtype in ("float32", "float64"):
            runs = {}
            for backend in ("numpy", "torch"):
                out = str(Path(folder) / f"{backend}-{dtype}.npy")
                cmd = [
                    sys.executable,
                    __file__,
                    "--influence-child",
                    backend,
                    dtype,
                    str(repeat),
                    out,
                ] + (["--quick"] if quick else [])
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                runs[backend] = (float(done.stdout.split()[-1]), np.load(out))
            ms, ours = runs["numpy"]
            tms, theirs = runs["torch"]
            sec.rows.append(Row(f"{case}, {dtype}", "rfanalysis numpy", ms, 1.0))
            scale = float(np.abs(theirs).max())
            sec.rows.append(
                Row(
                    f"{case}, {dtype}",
                    "rfanalysis torch",
                    tms,
                    tms / ms,
                    float(np.abs(theirs - ours).max()) / scale,
                    note="difference relative to the map's maximum",
                )
            )
            ratios[dtype] = ms / tms
    if not quick:
        ok = ratios["float32"] <= 2
        sec.verdict = (
            f"{'met' if ok else 'NOT met'}: numpy takes "
            f"{ratios['float32']:.2f}x torch's time in float32, "
            f"{ratios['float64']:.2f}x in float64"
        )
    return sec


def peak_memory(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak of numpy's and Python's allocations during ``fn(*args, **kwargs)`` (tracemalloc;
    torch's own tensors are not traced)."""
    gc.collect()
    tracemalloc.start()
    fn(*args, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def memory_section(quick: bool) -> Section:
    sec = Section(
        "7. Peak memory (tracemalloc) and the memory guard",
        "a request beyond available memory is refused with a clear error, not a crash",
    )
    n = 256 if quick else 4096
    peak = peak_memory(rfa.coverage, "conv3p1*64", (n, n))
    sec.rows.append(
        Row(
            f"chain {n}^2 x 64",
            "rfanalysis",
            None,
            note=f"peak {format_bytes(peak)} (result alone {format_bytes(8 * n * n)})",
        )
    )
    m = 128 if quick else 1024
    net = rfa.zoo.get(RESNET50, trunk=True)
    peak = peak_memory(rfa.coverage, net, (m, m))
    sec.rows.append(
        Row(
            f"ResNet-50 {m}^2",
            "rfanalysis",
            None,
            note=f"peak {format_bytes(peak)} (result alone {format_bytes(8 * m * m)})",
        )
    )
    start = time.perf_counter()
    try:
        rfa.coverage("conv3p1", (300_000, 300_000))
        note = "NOT refused"
    except ValueError as exc:
        note = f"refused in {(time.perf_counter() - start) * 1e3:.1f} ms: {exc}"
    sec.rows.append(Row("300000^2", "rfanalysis", None, note=note))
    sec.verdict = "met" if note.startswith("refused") else "NOT met"
    return sec


STREAM = {"shape": (3, 224, 224), "batch": 50, "images": (250, 500, 1000)}
STREAM_QUICK = {"shape": (3, 32, 32), "batch": 16, "images": (32, 96)}


def stream_child(mode: str, quick: bool) -> None:
    """In this process: the influence of a small CNN averaged over data sets of growing
    size, streamed from a DataLoader (``mode="stream"``) or given as one array
    (``mode="array"``); print one line per size: images, batches, seconds, peak RSS growth
    (bytes) over the RSS before the run, and the number of images influence reports."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    cfg = STREAM_QUICK if quick else STREAM
    shape, batch = cfg["shape"], cfg["batch"]

    class RandomImages(Dataset):
        """Images made on demand from their index: the data set is never in memory."""

        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> Any:
            return torch.randn(shape, generator=torch.Generator().manual_seed(i))

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
    )
    spatial = shape[1:]
    rfa.influence(model, spatial, inputs=DataLoader(RandomImages(batch), batch_size=batch))
    for n in cfg["images"]:
        loader = DataLoader(RandomImages(n), batch_size=batch)
        gc.collect()
        start_rss = reset_peak_rss()
        start = time.perf_counter()
        if mode == "stream":
            _, count = rfa.influence(model, spatial, inputs=loader, return_count=True)
        else:  # what a user had to write before: every image in one array
            images = torch.cat(list(loader)).numpy()
            _, count = rfa.influence(model, spatial, inputs=images, return_count=True)
            del images
        seconds = time.perf_counter() - start
        print(n, len(loader), seconds, peak_rss() - start_rss, count, flush=True)


def reset_peak_rss() -> int:
    """Reset the process's peak resident set size to the current one (Linux:
    /proc/self/clear_refs) and return the current RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def peak_rss() -> int:
    return _status_bytes("VmHWM")


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def stream_section(quick: bool) -> Section:
    """Each mode in a process of its own, sizes in increasing order; peak memory from the
    kernel's high-water mark (torch's CPU tensors are invisible to tracemalloc)."""
    import subprocess

    cfg = STREAM_QUICK if quick else STREAM
    size = "x".join(map(str, cfg["shape"]))
    sec = Section(
        f"8. Influence over a data set: random {size} images from a DataLoader, batches of "
        f"{cfg['batch']}, a 3-layer CNN (streamed vs one array of every image)",
        "streaming memory independent of the number of images",
    )
    if not Path("/proc/self/clear_refs").exists():
        sec.verdict = "not measured: needs Linux's /proc/self/clear_refs"
        return sec
    peaks: dict[str, list[int]] = {}
    for mode in ("stream", "array"):
        cmd = [sys.executable, __file__, "--stream-child", mode] + (["--quick"] if quick else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        for line in done.stdout.split("\n"):
            if not line.strip():
                continue
            n, batches, seconds, peak, count = line.split()
            peaks.setdefault(mode, []).append(int(peak))
            data = int(n) * math.prod(cfg["shape"]) * 4
            sec.rows.append(
                Row(
                    f"{n} images, {batches} batches",
                    "rfanalysis, DataLoader" if mode == "stream" else "rfanalysis, one array",
                    float(seconds) * 1e3,
                    note=f"peak RSS +{format_bytes(int(peak))} over the start "
                    f"(data set {format_bytes(data)} in float32); influence counted {count} "
                    "images",
                )
            )
    stream = peaks["stream"]
    flat = max(stream) <= 1.25 * min(stream) + 2**24
    sec.verdict = (
        f"{'met' if flat else 'NOT met'}: streaming peaks "
        + ", ".join(format_bytes(p) for p in stream)
        + " for "
        + ", ".join(map(str, cfg["images"]))
        + " images; one array "
        + ", ".join(format_bytes(p) for p in peaks["array"])
    )
    return sec


# --------------------------------------------------------------------------- report
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"numpy {np.__version__}"]
    import scipy

    versions.append(f"scipy {scipy.__version__}")
    try:
        import torch

        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        versions.append("torch not installed")
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs; {format_bytes(available_bytes())} available "
        f"memory; {platform.system()} {platform.release()}; " + ", ".join(versions)
    )


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render(sections: list[Section], quick: bool) -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run.py" + (" --quick" if quick else "") + "` "
        "in one process run. Times are medians (ms); *ratio* is the method's time divided by "
        "rfanalysis's on the same case (higher = rfanalysis faster); *max rel diff* compares "
        "the method's map with rfanalysis's. Torch autograd runs in float32 and in float64; "
        "targets compare with the faster of the two whose counts are right (finite and within "
        f"{FLOAT32_TOLERANCE:g} of rfanalysis's), marked *the faster right baseline*; a "
        "dtype's note says where it overflows or can no longer hold the counts as integers.",
        "",
        f"Machine: {machine()}",
        "",
    ]
    for sec in sections:
        out += [
            f"## {sec.title}",
            "",
            f"Target: {sec.target}." + (f" Result: **{sec.verdict}**." if sec.verdict else ""),
            "",
            "| case | method | time (ms) | ratio | max rel diff | note |",
            "|---|---|---:|---:|---:|---|",
        ]
        for r in sec.rows:
            out.append(
                f"| {r.case} | {r.method} | {fmt(r.ms, '.2f')} | {fmt(r.ratio, '.1f')} "
                f"| {fmt(r.max_rel_diff, '.1e')} | {r.note.replace('|', '/')} |"
            )
        out.append("")
    return "\n".join(out)


SECTIONS: dict[str, Callable[[bool], Section]] = {
    "chain": chain_section,
    "dag": dag_section,
    "from_torch": from_torch_section,
    "exact": exact_section,
    "log": log_section,
    "influence": influence_section,
    "memory": memory_section,
    "stream": stream_section,
}
DEFAULT_OUTPUT = ROOT / "benchmarks" / "RESULTS.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument(
        "--output", type=Path, default=None, help=f"default: {DEFAULT_OUTPUT.relative_to(ROOT)}"
    )
    parser.add_argument("--influence-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--stream-child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        help="run only this section (repeatable); prints the table, and writes it only to an "
        "explicit --output",
    )
    args = parser.parse_args(argv)
    if args.influence_child:
        backend, dtype, repeat, out = args.influence_child
        influence_child(backend, dtype, int(repeat), out, args.quick)
        return 0
    if args.stream_child:
        stream_child(args.stream_child, args.quick)
        return 0
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        print(
            "torch is needed for the comparisons: pip install 'rfanalysis[torch]'", file=sys.stderr
        )
        return 2
    sections = []
    for name in args.only or SECTIONS:
        make = SECTIONS[name]
        print(f"running {make.__name__} ...", file=sys.stderr, flush=True)
        sections.append(make(args.quick))
    text = render(sections, args.quick)
    if args.output is not None:
        args.output.write_text(text + "\n")
    elif not args.only:
        DEFAULT_OUTPUT.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
