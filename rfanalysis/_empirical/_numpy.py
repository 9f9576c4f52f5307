"""The numpy backend: forward and backward passes of a :class:`~._net.Model`, vectorised.

Arrays are channels-first, ``(batch, C, *spatial)``, as in torch. One interpreter walks the
plan's steps: forward in topological order, backward in reverse, summing the gradients of a
node read by several others. Each operation brings its own numpy rules
(:meth:`~rfanalysis._ops.base.Layer.np_forward` and ``np_backward``); windowed layers gather
and scatter their windows through :mod:`rfanalysis._ops.kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._net import Model, Op, trial_weights


# --------------------------------------------------------------------------- network
class _Pass:
    """Forward and backward through a model for one batch of trials."""

    def __init__(self, model: Model, weights: dict[int, np.ndarray], tick: Callable[[], None]):
        self.model = model
        self.weights = weights
        self.tick = tick

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        values: list[Any] = [x]
        saved: list[Any] = [None]
        for op in self.model.ops:
            y, keep = op.layer.np_forward(
                op, [values[j] for j in op.step.inputs], self.weights.get(id(op))
            )
            mask = None
            if op.relu:
                mask = y > 0
                y = y * mask
            values.append(y)
            saved.append((keep, mask))
            self.tick()
        return values[-1], saved

    def backward(self, saved: list[Any], g: np.ndarray) -> np.ndarray:
        grads: list[Any] = [None] * len(saved)
        grads[-1] = g
        for op in reversed(self.model.ops):
            i = op.step.index
            gy, grads[i] = grads[i], None
            keep, mask = saved[i]
            if mask is not None:
                gy = gy * mask
            parts = op.layer.np_backward(op, gy, keep, self.weights.get(id(op)))
            for j, gj in zip(op.step.inputs, parts):
                grads[j] = gj if grads[j] is None else grads[j] + gj
            self.tick()
        return grads[0]


def count_nodes(model: Model) -> int:
    """Forward plus backward visits of every step (the progress total of one batch)."""
    return 2 * len(model.ops)


def _columns(op: Op) -> int:
    """Elements per trial of the largest array an op builds (forward or backward): the
    column array of a windowed layer, the output of anything else."""
    taps = math.prod(getattr(op.layer, "kernel_size", (1,)))
    sizes = [math.prod(s or (1,)) for s in op.step.in_shapes] + [math.prod(op.out_shape)]
    return max([op.cout, *op.cins]) * taps * max(sizes)


def batch_size(model: Model, trials: int, itemsize: int) -> int:
    """Trials per batch: enough to amortise Python overhead, few enough that the largest
    column array stays near the size of a CPU's last-level cache (8 MiB; measured with
    ``benchmarks/influence_quick.py``: larger batches were slower)."""
    largest = max((_columns(op) for op in model.ops), default=0)
    if largest == 0:  # identity branches only: nothing to batch against
        return trials
    return max(1, min(trials, 8 * 2**20 // (largest * itemsize)))


def memory_bytes(model: Model, trials: int, itemsize: int) -> int:
    """Working memory of :func:`gradients` for one batch, roughly: two column arrays and
    every op's output, ReLU mask and max-pool indices."""
    largest = max((_columns(op) for op in model.ops), default=0)
    kept = sum(op.cout * math.prod(op.out_shape) * (itemsize + 9) for op in model.ops)
    return batch_size(model, trials, itemsize) * (2 * largest * itemsize + kept)


def gradients(
    model: Model,
    x: np.ndarray,
    weights: dict[int, np.ndarray],
    seed: np.ndarray,
    dtype: np.dtype,
    reduce: Callable[[np.ndarray], np.ndarray],
    tick: Callable[[], None],
) -> np.ndarray:
    """Sum over trials of ``reduce(d <seed, y> / d x)`` (``reduce`` maps the
    ``(B, C_in, *input_shape)`` gradient to ``(*input_shape)``), in float64."""
    trials = x.shape[0]
    size = batch_size(model, trials, np.dtype(dtype).itemsize)
    total = np.zeros(x.shape[2:])
    of = trial_weights(weights, lambda w: w.astype(dtype))
    for start in range(0, trials, size):
        stop = min(start + size, trials)
        run = _Pass(model, of(start, stop), tick)
        y, saved = run.forward(x[start:stop].astype(dtype))
        g = np.broadcast_to(seed.astype(dtype), y.shape).copy()
        gx = run.backward(saved, g)
        total += reduce(gx)
    return total
