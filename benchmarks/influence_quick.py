"""Time ``rfa.influence`` on the numpy backend against the torch CPU backend.

The network: 20 layers of 3x3 convolutions with padding 1 (``conv3p1*20``), 32 channels,
a 64x64 input, 16 trials, He-normal weights drawn per trial and ReLU. Both backends run the
same weights and inputs in the same dtype (float32 is torch's default; float64 is what
exact ones-weight identities need), on the same threads. The best of ``--repeat`` runs
is reported.

    python benchmarks/influence_quick.py [--repeat 5] [--dtype float32 float64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rfanalysis as rfa

SPEC = "conv3p1*20"
KW = dict(weights="normal", activation="relu", channels=32, trials=16, rng=0)
SHAPE = (64, 64)


def best_time(backend: str, dtype: str, repeat: int) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = rfa.influence(SPEC, SHAPE, backend=backend, dtype=dtype, progress=False, **KW)
        times.append(time.perf_counter() - start)
    assert result is not None
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    args = parser.parse_args()

    import torch

    print(f"{SPEC}, {KW['channels']} channels, input {SHAPE}, {KW['trials']} trials, ReLU")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    print(f"{'dtype':8} {'numpy s':>9} {'torch s':>9} {'ratio':>7}  max rel. difference")
    for dtype in args.dtype:
        best_time("numpy", dtype, 1)  # warm caches and imports
        best_time("torch", dtype, 1)
        t_np, m_np = best_time("numpy", dtype, args.repeat)
        t_torch, m_torch = best_time("torch", dtype, args.repeat)
        diff = float(np.abs(m_np - m_torch).max() / np.abs(m_torch).max())
        print(f"{dtype:8} {t_np:9.3f} {t_torch:9.3f} {t_np / t_torch:7.2f}  {diff:.1e}")


if __name__ == "__main__":
    main()
