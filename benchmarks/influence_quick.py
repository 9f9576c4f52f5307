"""Time ``rfa.influence`` on the numpy backend against the torch CPU backend.

The network: 20 layers of 3x3 convolutions with padding 1 (``conv3p1*20``), 32 channels,
a 64x64 input, 16 trials, He-normal weights drawn per trial and ReLU. Both backends run the
same weights and inputs in the same dtype (float32 is torch's default; float64 is what
exact ones-weight identities need) with their default threads. Each backend runs in a
process of its own (the numpy one never imports torch): thread pools that keep spinning
after a call (OpenBLAS's, torch's OpenMP) would otherwise slow whichever runs next. After
one warm-up call, the best of ``--repeat`` calls is reported.

    python benchmarks/influence_quick.py [--repeat 5] [--dtype float32 float64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPEC = "conv3p1*20"
SHAPE = (64, 64)
KW = dict(weights="normal", activation="relu", channels=32, trials=16, rng=0)


def child(backend: str, dtype: str, repeat: int, out: str) -> None:
    """Time one backend in this process; print the best time, save the map to ``out``."""
    import rfanalysis as rfa

    def call() -> np.ndarray:
        return rfa.influence(SPEC, SHAPE, backend=backend, dtype=dtype, progress=False, **KW)

    call()  # warm caches and imports
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    np.save(out, result)
    print(min(times))


def measure(backend: str, dtype: str, repeat: int, folder: str) -> tuple[float, np.ndarray]:
    out = str(Path(folder) / f"{backend}-{dtype}.npy")
    args = [sys.executable, __file__, "--child", backend, dtype, str(repeat), out]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1]), np.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, dtype, repeat, out = args.child
        child(backend, dtype, int(repeat), out)
        return

    import torch

    print(f"{SPEC}, {KW['channels']} channels, input {SHAPE}, {KW['trials']} trials, ReLU")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    print(f"{'dtype':8} {'numpy s':>9} {'torch s':>9} {'ratio':>7}  max rel. difference")
    with tempfile.TemporaryDirectory() as folder:
        for dtype in args.dtype:
            t_np, m_np = measure("numpy", dtype, args.repeat, folder)
            t_torch, m_torch = measure("torch", dtype, args.repeat, folder)
            diff = float(np.abs(m_np - m_torch).max() / np.abs(m_torch).max())
            print(f"{dtype:8} {t_np:9.3f} {t_torch:9.3f} {t_np / t_torch:7.2f}  {diff:.1e}")


if __name__ == "__main__":
    main()
