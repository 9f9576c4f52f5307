"""Speed and memory of rfanalysis against what a user would otherwise use.

    python benchmarks/run.py                 # full run (minutes); writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick         # tiny sizes: a smoke test of the script itself
    python benchmarks/run.py --output FILE   # write the table elsewhere
    python benchmarks/run.py --only stream   # one section (printed; written only to --output)

Every number comes from this one process run: medians over repeats (warm: the plan cache of
rfanalysis is filled by the first call, which is reported separately as "cold"). Alternatives:
torch autograd of the single-channel, float64, ones-weight network (pools as window sums),
whose input gradient is the route count, and repeated convolution with scipy. float64 is the
only fair dtype: counts pass float32's range (3.4e38) after ~40 3x3 layers.
"""

from __future__ import annotations

import argparse
import gc
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
    net: rfa.Network,
    shape: tuple[int, ...],
    repeat: int,
    ms: float,
    ours: np.ndarray,
) -> None:
    """Time torch autograd of the ones-weight network (forward and backward only: the module
    is built before the clock starts) and add its row, with the ratio to rfanalysis's time."""
    import torch

    from tests.oracles import torch_net

    f = torch_net(net, shape)

    def coverage() -> np.ndarray:
        x = torch.zeros((1, 1, *shape), dtype=torch.float64, requires_grad=True)
        f(x).sum().backward()
        return x.grad[0, 0].numpy()

    tms, theirs = timed(repeat, coverage)
    time.sleep(0.3)  # let torch's worker threads stop spinning before anything else is timed
    sec.rows.append(Row(case, "torch autograd", tms, tms / ms, rel_diff(theirs, ours)))


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


def torch_activation_bytes(shape: tuple[int, ...], depth: int) -> int:
    # autograd keeps one float64 activation (and its gradient) per layer
    return 2 * 8 * math.prod(shape) * depth


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
        "autograd vs scipy.ndimage.correlate and scipy.signal.correlate2d)",
        "<= 5 ms at 1024^2 x 64 and >= 1000x faster than torch autograd there",
    )
    sizes = [32, 64] if quick else [224, 1024, 4096]
    depths = [4, 16] if quick else [16, 64]
    for n in sizes:
        for depth in depths:
            net = rfa.parse(f"conv3p1*{depth}")
            shape = (n, n)
            case = f"{n}^2 x {depth}"
            ms, ours = time_coverage(sec, case, net, shape, quick)
            need = torch_activation_bytes(shape, depth)
            if need > 0.5 * available_bytes():
                sec.rows.append(
                    Row(
                        case,
                        "torch autograd",
                        None,
                        note=f"skipped: needs ~{format_bytes(need)} of activations",
                    )
                )
            else:
                time_torch(sec, case, net, shape, 1 if n >= 1024 else 3, ms, ours)
            for module in ("ndimage", "signal"):
                sms, theirs = timed(1 if n >= 1024 else 3, scipy_chain_coverage, n, depth, module)
                sec.rows.append(Row(case, f"scipy.{module}", sms, sms / ms, rel_diff(theirs, ours)))
    key = [r for r in sec.rows if r.case == "1024^2 x 64"]
    if key:
        ours = key[0].ms
        torch_row = next(r for r in key if r.method == "torch autograd")
        ok = ours is not None and ours <= 5 and (torch_row.ratio or 0) >= 1000
        versus = (
            "torch autograd not measured"
            if torch_row.ratio is None
            else f"{torch_row.ratio:.0f}x faster than torch autograd"
        )
        sec.verdict = f"{'met' if ok else 'NOT met'}: {ours:.2f} ms, {versus}"
    return sec


def dag_section(quick: bool) -> Section:
    sec = Section(
        "2. DAG coverage: ResNet-50 trunk (torchvision layout without its head, single channel)",
        ">= 10x faster than torch autograd at 1024^2",
    )
    net = rfa.zoo.get(RESNET50, trunk=True)
    for n in [64, 128] if quick else [224, 1024]:
        shape = (n, n)
        case = f"{n}^2"
        ms, ours = time_coverage(sec, case, net, shape, quick)
        time_torch(sec, case, net, shape, 3, ms, ours)
    if not quick:
        r = sec.rows[-1]
        sec.verdict = f"{'met' if r.ratio >= 10 else 'NOT met'}: {r.ratio:.0f}x at 1024^2"
    return sec


def exact_section(quick: bool) -> Section:
    sec = Section(
        "3. Exact integers",
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
        ms2, _ = timed(1, rfa.coverage, net2, (size, size), exact=True)
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
    sec = Section("4. Log mode at depth 2000", "no overflow, finite values")
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
        "5. Empirical influence: He-normal weights, ReLU (numpy backend vs torch "
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


def peak_memory(fn: Callable[..., Any], *args: Any) -> int:
    gc.collect()
    tracemalloc.start()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def memory_section(quick: bool) -> Section:
    sec = Section(
        "6. Peak memory (tracemalloc) and the memory guard",
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
        f"7. Influence over a data set: random {size} images from a DataLoader, batches of "
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
        "the method's map with rfanalysis's.",
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
