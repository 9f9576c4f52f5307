"""Number systems for route counts, and the separable representation.

Counts propagate backwards from the output: a map ``g`` over a node's units (``g[u]`` =
routes from ``u`` to the target) becomes one map per input of the node. Two representations
of ``g`` are used:

* separable, :class:`Sep`: ``scale * outer(v_0, v_1, ...)``; every windowed layer acts axis
  by axis and a dense layer or a global reduction maps anything to ``total * outer(1, ...)``,
  so a chain keeps it to the end (a 1024x1024 map through 64 layers costs 64 x 2 operations
  on 1024-vectors and one outer product);
* dense N-D arrays, once two maps are added (fan-out, or a merge of branches).

Three number systems share the code (:class:`Algebra`): float64, Python ints in object arrays
(exact), and natural-log counts combined with ``logaddexp`` (never overflows, never loses a
small count beside a huge one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal

import numpy as np

Mode = Literal["float", "exact", "log"]


@dataclass(frozen=True, eq=False)
class Sep:
    """``scale * outer(*vecs)`` (in log mode: ``scale + sum of vecs``, natural logs)."""

    scale: Any
    vecs: tuple[np.ndarray, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(v.shape[0] for v in self.vecs)


Counts = Sep | np.ndarray


class Algebra:
    """Zeros, ones, sums and products of counts in one number system."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode

    @property
    def log(self) -> bool:
        return self.mode == "log"

    # -- constants ------------------------------------------------------------------------
    def zeros(self, shape: Any) -> np.ndarray:
        if self.mode == "log":
            return np.full(shape, -np.inf)
        if self.mode == "exact":
            return np.zeros(shape, dtype=object)
        return np.zeros(shape)

    def ones(self, n: int) -> np.ndarray:
        if self.mode == "log":
            return np.zeros(n)
        if self.mode == "exact":
            out = np.empty(n, dtype=object)
            out.fill(1)
            return out
        return np.ones(n)

    def one_hot(self, n: int, index: int) -> np.ndarray:
        out = self.zeros(n)
        out[index] = 0.0 if self.mode == "log" else 1
        return out

    @property
    def unit(self) -> Any:
        """The number 1."""
        return 0.0 if self.mode == "log" else 1

    # -- arithmetic -----------------------------------------------------------------------
    def mul(self, a: Any, b: Any) -> Any:
        return a + b if self.mode == "log" else a * b

    def total(self, g: Counts) -> Any:
        """The sum of all counts in ``g``."""
        if isinstance(g, Sep):
            return reduce(lambda a, v: self.mul(a, self._array_total(v)), g.vecs, g.scale)
        return self._array_total(g)

    def _array_total(self, values: np.ndarray) -> Any:
        if self.mode == "log":
            peak = values.max() if values.size else -np.inf
            if peak == -np.inf:
                return -np.inf
            return float(peak + np.log(np.exp(values - peak).sum()))
        if self.mode == "exact":
            return sum(values.ravel().tolist())
        return float(values.sum())

    def sum_axis(self, g: np.ndarray, axis: int) -> np.ndarray:
        """Sum over one axis, kept with length 1."""
        if self.mode == "log":
            peak = np.max(g, axis=axis, keepdims=True)
            safe = np.where(np.isneginf(peak), 0.0, peak)
            with np.errstate(divide="ignore"):
                return safe + np.log(np.exp(g - safe).sum(axis=axis, keepdims=True))
        return g.sum(axis=axis, keepdims=True)

    def materialise(self, g: Counts) -> np.ndarray:
        if isinstance(g, np.ndarray):
            return g
        if not g.vecs:
            out = self.zeros(())
            out[()] = g.scale
            return out
        if self.mode == "log":
            return reduce(np.add.outer, g.vecs) + g.scale
        with np.errstate(over="ignore", invalid="ignore"):
            out = reduce(np.multiply.outer, g.vecs)
            if g.scale != 1:
                out = out * g.scale
        return out

    def add(self, parts: list[Counts]) -> Counts:
        """The sum of maps of one shape (a single map is returned as it is)."""
        if len(parts) == 1:
            return parts[0]
        add = np.logaddexp if self.mode == "log" else np.add
        # a constant map (a global term: a gate's or a norm's routes, read by every unit)
        # adds as a number, without being written out
        values = [self._constant(p) for p in parts]
        constants = [c for c in values if c is not None]
        arrays = [self.materialise(p) for p, c in zip(parts, values) if c is None]
        c = reduce(self.plus, constants) if constants else None
        if not arrays:
            return Sep(c, tuple(self.ones(n) for n in parts[0].shape))
        if len(arrays) == 1:  # beside constants
            return add(arrays[0], c)  # type: ignore[arg-type]
        out = add(arrays[0], arrays[1])
        for a in arrays[2:]:
            add(out, a, out=out)
        if c is not None:
            add(out, c, out=out)
        return out

    def plus(self, a: Any, b: Any) -> Any:
        """The sum of two counts (numbers)."""
        return float(np.logaddexp(a, b)) if self.mode == "log" else a + b

    def _constant(self, g: Counts) -> Any:
        """The value of a map whose every unit has the same count (a separable one whose
        vectors are constant), else None."""
        if not isinstance(g, Sep):
            return None
        value = g.scale
        for v in g.vecs:
            if v.size == 0 or v.min() != v.max():
                return None
            value = self.mul(value, v[0])
        return value

    def full(self, shape: tuple[int, ...], value: Any) -> Sep:
        """``value`` at every unit of ``shape``, separable."""
        return Sep(value, tuple(self.ones(n) for n in shape))

    def broadcast_back(self, g: Counts, shape: tuple[int, ...]) -> Counts:
        """Adjoint of broadcasting a map of ``shape`` to ``g``'s shape (numpy's rule: axes
        aligned from the right, missing leading axes and single units repeat): sum over the
        axes ``shape`` lacks or has a single unit on."""
        lead = len(g.shape) - len(shape)
        if isinstance(g, Sep):
            scale = g.scale
            for v in g.vecs[:lead]:
                scale = self.mul(scale, self._array_total(v))
            vecs = tuple(
                v if n == v.shape[0] else self._single(self._array_total(v))
                for v, n in zip(g.vecs[lead:], shape)
            )
            return Sep(scale, vecs)
        if lead:
            g = self.total_over(g, tuple(range(lead)))
        for axis, n in enumerate(shape):
            if n != g.shape[axis]:
                g = self.sum_axis(g, axis)
        return g

    def _single(self, value: Any) -> np.ndarray:
        out = self.zeros(1)
        out[0] = value
        return out

    def total_over(self, g: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        """Sum over ``axes`` (removed)."""
        for axis in sorted(axes, reverse=True):
            g = self.sum_axis(g, axis).squeeze(axis)
        return g

    def group_sums(self, g: Counts, labels: np.ndarray, n: int) -> np.ndarray:
        """``out[k] = sum of g[u] over units u with labels[u] == k`` (labels of g's shape;
        -1: left out)."""
        values = self.materialise(g).ravel()
        flat = labels.ravel()
        keep = flat >= 0
        return self.scatter(n, flat[keep], values[keep])

    def scatter(self, n: int, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``out[index[k]] += values[k]`` over a flat map of ``n`` units (repeats add)."""
        out = self.zeros(n)
        if index.size == 0:
            return out
        if self.mode == "float":
            return np.bincount(index, weights=values, minlength=n).astype(np.float64)
        if self.mode == "log":
            np.logaddexp.at(out, index, values)
        else:
            np.add.at(out, index, values)
        return out

    def mask(self, g: Counts, keep: np.ndarray) -> np.ndarray:
        """``g`` where ``keep``, zero elsewhere."""
        values = self.materialise(g)
        return np.where(keep, values, -np.inf if self.mode == "log" else 0).astype(values.dtype)

    def log10(self, values: np.ndarray) -> np.ndarray:
        return values / math.log(10.0)
