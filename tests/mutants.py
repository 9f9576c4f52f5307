"""Mutation gate: plant plausible one-line bugs, one at a time, and check the tests catch them.

Run from the repository root::

    python tests/mutants.py            # every mutant; exit 1 if one survives or is not found
    python tests/mutants.py -k merge   # only mutants whose name contains "merge"
    python tests/mutants.py --list     # names and the tests each one runs
    python tests/mutants.py -j 1       # one at a time (default: one per CPU, at most 4)

Each mutant is ``(name, original snippet, replacement, tests)``. The snippet is found by
searching every ``.py`` file of the ``rfanalysis`` package for it (it must occur exactly once
in the whole package, not in a given file: modules may move), so a mutant survives a
refactor that moves code between files and fails loudly (``not found`` / ``ambiguous``) when
the code itself changes. Mutants are applied to a copy of ``rfanalysis/`` and ``tests/`` in a
temporary directory and the tests run there, so the working tree is never changed, even if
the run is interrupted. ``tests`` is the pytest selection that should catch the mutant: the
core tests of that code, kept small so that the whole gate stays fast.

A mutant is caught when pytest fails (exit status 1) or errors while collecting (2); a run
that selects no test (5) or a usage error (4) is a broken gate entry and counts as a failure
of the gate. First, every selected test runs once on the unchanged code (``--no-baseline``
skips it where the suite has just passed): a failing test would make every mutant look
caught. ``tests/test_mutants.py`` checks the list itself (every snippet unique) in CI.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rfanalysis"


class Mutant(NamedTuple):
    name: str
    original: str
    replacement: str
    tests: tuple[str, ...]


_GRAPH_FIELDS = "tests/test_graph_oracles.py::test_receptive_field_table_matches_field_spans"
_ENGINE = ("tests/test_engine.py",)
_GEOMETRY = ("tests/test_geometry.py", "tests/test_merge_geometry.py", _GRAPH_FIELDS)

MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- window operators
    Mutant(
        "window length off by one",
        "        return max(0, span // s + 1)\n",
        "        return max(0, span // s)\n",
        ("tests/test_engine.py::test_pools",),
    ),
    Mutant(
        "ceil-mode window allowed to start in the right padding",
        "    if (m - 1) * s >= n + pb:",
        "    if (m - 1) * s > n + pb:",
        ("tests/test_engine.py::test_pools",),
    ),
    Mutant(
        "window taps offset by the trailing padding",
        "        off = t * d - pb  # input index = o*s + off",
        "        off = t * d - pa  # input index = o*s + off",
        ("tests/test_connections.py::test_asymmetric_padding_by_hand",),
    ),
    Mutant(
        "reflect padding repeats the edge on the left",
        "return np.where(i < 0, -i, np.where(i >= n, 2 * (n - 1) - i, i))",
        "return np.where(i < 0, -1 - i, np.where(i >= n, 2 * (n - 1) - i, i))",
        ("tests/test_engine.py::test_padding_modes_one_layer",),
    ),
    Mutant(
        "symmetric padding skips the edge on the right",
        "return np.where(i < 0, -1 - i, np.where(i >= n, 2 * n - 1 - i, i))",
        "return np.where(i < 0, -1 - i, np.where(i >= n, 2 * (n - 1) - i, i))",
        ("tests/test_engine.py::test_padding_modes_one_layer",),
    ),
    Mutant(
        "replicate padding reads the second pixel from the edge",
        "return np.clip(i, 0, n - 1)",
        "return np.clip(i, 1, n - 1)",
        ("tests/test_engine.py::test_padding_modes_one_layer",),
    ),
    Mutant(
        "circular padding wraps the wrong way",
        "return np.mod(i, n)",
        "return np.mod(-i, n)",
        ("tests/test_engine.py::test_padding_modes_one_layer",),
    ),
    Mutant(
        "'same' padding puts the odd pixel first",
        "        return (total // 2, total - total // 2)",
        "        return (total - total // 2, total // 2)",
        ("tests/test_engine.py::test_same_padding_puts_the_odd_pixel_at_the_end",),
    ),
    Mutant(
        "transposed convolution ignores its crop",
        "        off = t * d - pb  # output index = i*s + off",
        "        off = t * d  # output index = i*s + off",
        _ENGINE,
    ),
    Mutant(
        "transposed convolution drops output_padding",
        "    return (n - 1) * s - pb - pa + d * (k - 1) + output_padding + 1",
        "    return (n - 1) * s - pb - pa + d * (k - 1) + 1",
        ("tests/test_engine.py::test_pools",),
    ),
    Mutant(
        "planner refuses every dilated transposed convolution",
        "            m = transposed_length(n, k, s, d, pb, pa, op)",
        "            m = transposed_length(n, k, s, d, pb, pa, op) if d == 1 else 0",
        ("tests/test_properties.py",),
    ),
    Mutant(
        "nearest upsampling loses a phase",
        "segments = [(0, slice(0, n), slice(r, m, scale)) for r in range(scale)]",
        "segments = [(0, slice(0, n), slice(r, m, scale)) for r in range(1, scale)]",
        ("tests/test_engine.py::test_transposed_conv_and_upsample",),
    ),
    Mutant(
        "adaptive windows end one unit early",
        "return [i * n // m for i in range(m)], [-(-(i + 1) * n // m) for i in range(m)]",
        "return [i * n // m for i in range(m)], [(i + 1) * n // m for i in range(m)]",
        ("tests/test_reads_by_hand.py",),
    ),
    Mutant(
        "reflect padding limit lets pad == n through",
        '"reflect": (lambda n: n - 1, ',
        '"reflect": (lambda n: n, ',
        ("tests/test_bad_input.py", "tests/test_engine.py"),
    ),
    Mutant(
        "adaptive pool field takes the narrowest window",
        "            widest = max(e - s for s, e in zip(starts, ends))",
        "            widest = min(e - s for s, e in zip(starts, ends))",
        ("tests/test_reads_by_hand.py",),
    ),
    Mutant(
        "shifted windows roll the wrong way",
        "        q = (np.arange(n) - s) % padded  # position on the rolled grid",
        "        q = (np.arange(n) + s) % padded  # position on the rolled grid",
        ("tests/test_reads_by_hand.py",),
    ),
    Mutant(
        "a layer that reads the whole map gives each unit one route",
        "        return (alg.full(step.in_shape, alg.total(g)),)",
        "        return (alg.full(step.in_shape, 1),)",
        ("tests/test_reads_by_hand.py",),
    ),
    Mutant(
        "dense layer parameters without the bias",
        "* cin * self.out_features + bias * self.out_features",
        "* cin * self.out_features",
        ("tests/test_geometry.py", "tests/test_zoo.py"),
    ),
    Mutant(
        "context 'local' keeps a product's gate",
        "            None if i in gates else alg.broadcast_back(g, shape)",
        "            alg.broadcast_back(g, shape)",
        ("tests/test_io.py::test_round_trip_keeps_a_products_gates",),
    ),
    Mutant(
        "planner lets a spatial layer follow a dense layer",
        "        if after_dense and layer.needs_space:",
        "        if False and layer.needs_space:",
        ("tests/test_bad_input.py", "tests/test_layers.py"),
    ),
    # ---------------------------------------------------------------- merges
    Mutant(
        "merge field is the largest operand's, not the span",
        "        out.append(Field(hi - lo + 1, jump, (lo + hi) / 2))",
        "        out.append(Field(max(f.rf for f in fs), jump, (lo + hi) / 2))",
        ("tests/test_merge_geometry.py", _GRAPH_FIELDS),
    ),
    Mutant(
        "merge jump is the smallest operand jump",
        "        jump = max(jumps)\n",
        "        jump = min(jumps)\n",
        ("tests/test_merge_geometry.py", _GRAPH_FIELDS),
    ),
    Mutant(
        "broadcast operand does not make its axis global",
        "wide = sorted({a for s in padded for a, n in enumerate(s) if n == 1 < out[a]})",
        "wide = []",
        ("tests/test_merge_geometry.py", _GRAPH_FIELDS),
    ),
    Mutant(
        "merges refuse to broadcast a size-1 operand",
        "        big = {n for n in sizes if not (allow and n == 1)}",
        "        big = set(sizes)",
        ("tests/test_graph_oracles.py::test_broadcasting_product_by_hand",),
    ),
    # ---------------------------------------------------------------- geometry
    Mutant(
        "window start shifted by the trailing padding",
        "else f.start + (Fraction(ke - 1, 2) - pad[0]) * f.jump",
        "else f.start + (Fraction(ke - 1, 2) - pad[1]) * f.jump",
        _GEOMETRY,
    ),
    Mutant(
        "window field grows by the layer's own stride",
        "        return Field(f.rf + (ke - 1) * f.jump, f.jump * s, start)",
        "        return Field(f.rf + (ke - 1) * f.jump * s, f.jump * s, start)",
        _GEOMETRY,
    ),
    Mutant(
        "transposed convolution multiplies the jump",
        "return Field(f.rf + _transposed_span(k, s, d) * f.jump, f.jump / s, start)",
        "return Field(f.rf + _transposed_span(k, s, d) * f.jump, f.jump * s, start)",
        ("tests/test_geometry.py",),
    ),
    Mutant(
        "connections read the trailing padding",
        "        position = out * s + tap * d - pb\n",
        "        position = out * s + tap * d - pa\n",
        ("tests/test_connections.py",),
    ),
    Mutant(
        "centre unit rounds up",
        "        return tuple((m - 1) // 2 for m in out_shape)",
        "        return tuple(m // 2 for m in out_shape)",
        ("tests/test_engine.py::test_unit_selection",),
    ),
    # ---------------------------------------------------------------- blind spots
    Mutant(
        "uneven padding missed when the end pads less",
        "            if after == pb:\n",
        "            if after <= pb:\n",
        ("tests/test_blindspots.py",),
    ),
    Mutant(
        "zero-coverage pixels not reported",
        "    zero = counts == 0\n",
        "    zero = counts < 0\n",
        ("tests/test_blindspots.py",),
    ),
    # ---------------------------------------------------------------- torch importer rules
    Mutant(
        "ZeroPad / ConstantPad modules pad with unit 0 instead of no unit",
        "c.F.pad(value.units, tuple(pad), value=-1.0)",
        "c.F.pad(value.units, tuple(pad), value=0.0)",
        ("tests/test_importer_padding_pools.py::test_constant_padding_module_is_no_unit",),
    ),
    Mutant(
        "F.pad in constant mode pads with unit 0 instead of no unit",
        'units = rules.F.pad(value.units, a["pad"], mode="constant", value=-1.0)',
        'units = rules.F.pad(value.units, a["pad"], mode="constant", value=0.0)',
        ("tests/test_importer_padding_pools.py::test_functional_pad_modes",),
    ),
    Mutant(
        "F.max_pool / F.avg_pool lose their padding",
        '            pad, dil = a.get("padding", 0), a.get("dilation", 1)',
        '            pad, dil = 0, a.get("dilation", 1)',
        ("tests/test_importer_padding_pools.py::test_functional_pool_keeps_its_padding",),
    ),
    Mutant(
        "functional pools lose ceil_mode",
        '                         a.get("ceil_mode", False), c.label)  # fmt: skip',
        "                         False, c.label)  # fmt: skip",
        ("tests/test_importer_padding_pools.py::test_functional_pool_keeps_ceil_mode",),
    ),
    Mutant(
        "conv modules lose their padding mode",
        "        m.padding_mode,\n        in_channels=m.in_channels,",
        '        "zeros",\n        in_channels=m.in_channels,',
        ("tests/test_importer_padding_pools.py::test_padding_mode_of_a_conv_module",),
    ),
    Mutant(
        "AvgPool modules lose their padding",
        'pool("avg", c.nd, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode,',
        'pool("avg", c.nd, m.kernel_size, m.stride, 0, 1, m.ceil_mode,',
        ("tests/test_importer_padding_pools.py::test_avg_pool_module_keeps_its_padding",),
    ),
    Mutant(
        "adaptive pools become fixed pools where the sizes do not divide",
        "    if all(n % m == 0 for n, m in zip(spatial, sizes)):",
        "    if True:",
        ("tests/test_importer_padding_pools.py::test_adaptive_pool_to_sizes_that_do_not_divide",),
    ),
    # ---------------------------------------------------------------- influence backends
    Mutant(
        "numpy backend keeps only the last consumer's gradient",
        "                grads[j] = gj if grads[j] is None else grads[j] + gj",
        "                grads[j] = gj",
        ("tests/test_influence.py",),
    ),
    Mutant(
        "numpy backend ignores the ReLU mask going back",
        "            if mask is not None:\n                gy = gy * mask\n",
        "            if mask is not None:\n                gy = gy\n",
        ("tests/test_influence_torch.py::test_torch_backend_equals_numpy_1d",),
    ),
    Mutant(
        "torch backend drops the ReLU",
        "        values.append(torch.nn.functional.relu(y) if op.relu else y)",
        "        values.append(y)",
        ("tests/test_influence_torch.py::test_torch_backend_equals_numpy_1d",),
    ),
)


# --------------------------------------------------------------------------- locating
def package_files(root: Path) -> list[Path]:
    return sorted((root / PACKAGE).rglob("*.py"))


def locate(mutant: Mutant, root: Path) -> tuple[Path | None, str]:
    """The one file of the package under ``root`` holding the snippet, and a problem
    (``""``, ``"not found"`` or ``"ambiguous: ..."``)."""
    hits = []
    for path in package_files(root):
        count = path.read_text().count(mutant.original)
        hits += [path] * count
    if not hits:
        return None, "not found"
    if len(hits) > 1:
        where = ", ".join(sorted({str(p.relative_to(root)) for p in hits}))
        return None, f"ambiguous: {len(hits)} occurrences ({where})"
    return hits[0], ""


# --------------------------------------------------------------------------- running
def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in (PACKAGE, "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)


def run_tests(root: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, float]:
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, time.perf_counter() - start
    return done.returncode, time.perf_counter() - start


def _verdict(code: int) -> str:
    if code in (1, 2):
        return "caught"
    if code == 0:
        return "SURVIVED"
    if code == -1:
        return "TIMEOUT"
    return f"BROKEN ENTRY (pytest exit {code})"


def _worker(root: Path, todo: queue.Queue, report, timeout: float) -> None:
    """Take mutants off ``todo`` and run each on the copy at ``root`` (one copy per worker:
    a mutant is restored before the next is applied)."""
    while True:
        try:
            i, m = todo.get_nowait()
        except queue.Empty:
            return
        path, problem = locate(m, root)
        if path is None:
            report(i, m, f"snippet {problem}", 0.0, "")
            continue
        original = path.read_text()
        try:
            path.write_text(original.replace(m.original, m.replacement))
            code, seconds = run_tests(root, m.tests, timeout)
        finally:
            path.write_text(original)
        report(i, m, _verdict(code), seconds, str(path.relative_to(root)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    parser.add_argument(
        "--no-baseline", action="store_true",
        help="skip the first run of every selected test on the unchanged code (CI runs the "
        "whole suite just before)",
    )  # fmt: skip
    parser.add_argument(
        "-j", "--jobs", type=int, default=min(4, os.cpu_count() or 1),
        help="mutants run at once, each on its own copy (default: CPUs, at most 4)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.k.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {' '.join(m.tests)}")
        return 0
    total_start = time.perf_counter()
    failures: list[str] = []
    lock = threading.Lock()

    def report(i: int, m: Mutant, verdict: str, seconds: float, where: str) -> None:
        with lock:
            line = f"[{i}/{len(chosen)}] {verdict:8} {seconds:6.1f}s  {m.name}"
            print(line + (f" ({where})" if where else ""), flush=True)
            if verdict != "caught":
                failures.append(m.name)

    todo: queue.Queue = queue.Queue()
    for item in enumerate(chosen, 1):
        todo.put(item)
    with tempfile.TemporaryDirectory(prefix="rfa-mutants-") as tmp:
        if not args.no_baseline:
            # a test that fails without any mutant would make every mutant look caught
            base = Path(tmp) / "baseline"
            _copy_tree(base)
            selections = list(dict.fromkeys(t for m in chosen for t in m.tests))
            code, seconds = run_tests(base, tuple(selections), args.timeout)
            print(f"baseline: pytest exit {code} in {seconds:.0f}s", flush=True)
            if code != 0:
                print("the selected tests fail on the unchanged code: fix them first")
                return 1
        threads = []
        for j in range(max(1, min(args.jobs, len(chosen)))):
            root = Path(tmp) / f"copy{j}"
            _copy_tree(root)
            t = threading.Thread(target=_worker, args=(root, todo, report, args.timeout))
            t.start()
            threads.append(t)
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:  # let the running mutants end; start no more
            while not todo.empty():
                todo.get_nowait()
            for t in threads:
                t.join()
            print("interrupted", flush=True)
            return 130
    elapsed = time.perf_counter() - total_start
    caught = len(chosen) - len(failures)
    print(f"{caught}/{len(chosen)} mutants caught in {elapsed:.0f}s")
    if failures:
        print("not caught: " + "; ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
