"""Interpolation (torch's ``F.interpolate``): each output unit reads the input units with a
non-zero interpolation weight, one route each (DESIGN section 9).

The source positions follow torch's kernels in double precision: ``nearest`` reads
``min(floor(dst * scale), n - 1)``, ``nearest-exact`` ``min(floor((dst + 0.5) * scale), n - 1)``;
``linear`` (bilinear, trilinear) the two neighbours of ``scale * (dst + 0.5) - 0.5`` (clamped
at 0; ``scale * dst`` with ``align_corners``), ``cubic`` (bicubic) the four neighbours with
Keys' kernel (a = -0.75), indices clamped to the edges; ``area`` is adaptive average pooling.
``scale`` is ``1 / scale_factor`` when a factor is given (torch passes it to the kernel),
else ``n_in / n_out``; with ``align_corners`` it is ``(n_in - 1) / (n_out - 1)``. A tap whose
weight is exactly zero (an output on an input's centre) is no route. Every mode acts axis by
axis, so the operator is separable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from .axis import AxisOp, adaptive_bounds, weighted_op
from .base import (
    Field,
    Layer,
    OpError,
    Shape,
    TooSmall,
    fmt_axes,
    ints,
    positive_number,
    repr_axes,
)
from .windows import Separable, Window

MODES = ("nearest", "nearest-exact", "linear", "cubic", "area")
#: torch's names for the same modes
TORCH_MODES = {"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}
_A = -0.75


@lru_cache(maxsize=4096)
def interpolation_weights(
    n: int, m: int, mode: str, align_corners: bool, scale_factor: float | None
) -> np.ndarray:
    """The ``(m, n)`` matrix of interpolation weights along one axis, as torch computes them
    (float64)."""
    w = np.zeros((m, n))
    if mode == "area":  # adaptive average pooling
        for i, (s, e) in enumerate(zip(*adaptive_bounds(n, m))):
            w[i, s:e] = 1.0 / (e - s)
        return w
    if align_corners and mode in ("linear", "cubic"):
        scale = (n - 1) / (m - 1) if m > 1 else 0.0
    elif scale_factor is not None and scale_factor > 0:
        scale = 1.0 / scale_factor
    else:
        scale = n / m
    for j in range(m):
        if mode == "nearest":
            w[j, min(math.floor(j * scale), n - 1)] = 1.0
        elif mode == "nearest-exact":
            w[j, min(math.floor((j + 0.5) * scale), n - 1)] = 1.0
        elif mode == "linear":
            src = scale * j if align_corners else max(scale * (j + 0.5) - 0.5, 0.0)
            i0 = int(src)
            lam = src - i0
            i1 = i0 + (1 if i0 < n - 1 else 0)
            w[j, i0] += 1.0 - lam
            w[j, i1] += lam
        else:  # cubic
            src = scale * j if align_corners else scale * (j + 0.5) - 0.5
            i = math.floor(src)
            t = src - i
            coeffs = (
                ((_A * (t + 1) - 5 * _A) * (t + 1) + 8 * _A) * (t + 1) - 4 * _A,
                ((_A + 2) * t - (_A + 3)) * t * t + 1,
                ((_A + 2) * (1 - t) - (_A + 3)) * (1 - t) * (1 - t) + 1,
                ((_A * (2 - t) - 5 * _A) * (2 - t) + 8 * _A) * (2 - t) - 4 * _A,
            )
            for k, c in enumerate(coeffs):
                w[j, min(max(i - 1 + k, 0), n - 1)] += c
    return w


@lru_cache(maxsize=4096)
def interpolation_op(
    n: int, m: int, mode: str, align_corners: bool, scale_factor: float | None
) -> AxisOp:
    w = interpolation_weights(n, m, mode, align_corners, scale_factor)
    o, i = np.nonzero(w)
    return weighted_op(n, m, tuple(zip(o.tolist(), i.tolist())))


def output_length(n: int, size: int | None, scale: float | None) -> int:
    """torch's rule: ``size`` if given, else ``floor(n * scale_factor)``."""
    return size if size is not None else math.floor(n * scale)  # type: ignore[operator]


@dataclass(frozen=True, repr=False)
class Interpolate(Separable):
    """Resampling as ``torch.nn.functional.interpolate``: to ``size`` or by ``scale_factor``,
    in ``mode`` ``"nearest"``, ``"nearest-exact"``, ``"linear"`` (bilinear/trilinear),
    ``"cubic"`` (bicubic) or ``"area"``.

    >>> Interpolate(scale_factor=2, mode="linear")
    Interpolate(scale_factor=2, mode='linear')
    """

    op_name = "interp"
    size: Any = None
    scale_factor: Any = None
    mode: str = "nearest"
    align_corners: bool = False
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    _axis_fields = ("size", "scale_factor")

    def __post_init__(self) -> None:
        mode = TORCH_MODES.get(self.mode, self.mode)
        if mode not in MODES:
            raise ValueError(
                f"Interpolate `mode` must be one of {', '.join(MODES)} (or torch's bilinear, "
                f"trilinear, bicubic); got {self.mode!r}"
            )
        object.__setattr__(self, "mode", mode)
        if (self.size is None) == (self.scale_factor is None):
            raise ValueError("Interpolate takes exactly one of `size` and `scale_factor`")
        if not isinstance(self.align_corners, bool):
            raise TypeError(f"`align_corners` must be a bool, got {self.align_corners!r}")
        if self.align_corners and mode not in ("linear", "cubic"):
            raise ValueError(f"`align_corners` applies to linear and cubic modes, not {mode!r}")
        ndim = None
        if self.size is not None:
            sizes, scalar = ints(self.size, "size", 1)
            object.__setattr__(self, "size", sizes)
            ndim = None if scalar else len(sizes)
        else:
            if isinstance(self.scale_factor, (tuple, list)):
                values = tuple(positive_number(v, "scale_factor") for v in self.scale_factor)
                ndim = len(values)
            else:
                values = (positive_number(self.scale_factor, "scale_factor"),)
            object.__setattr__(self, "scale_factor", values)
        object.__setattr__(self, "ndim", ndim)

    def _expand(self, ndim: int) -> Layer:
        if self.ndim is not None:
            return Layer._expand(self, ndim)
        if self.size is not None:
            return Interpolate(
                self.size * ndim, None, self.mode, self.align_corners, name=self.name
            )
        return Interpolate(
            None, self.scale_factor * ndim, self.mode, self.align_corners, name=self.name
        )

    def on_axis(self, axis: int) -> Layer:
        if self.size is not None:
            return Interpolate((self.size[axis],), None, self.mode, self.align_corners)
        return Interpolate(None, (self.scale_factor[axis],), self.mode, self.align_corners)

    def spec(self) -> str:
        how = fmt_axes(self.size) if self.size is not None else "s" + fmt_axes(self.scale_factor)
        return f"interp{how}:{self.mode}" + (":corners" if self.align_corners else "")

    def _repr_args(self) -> list[str]:
        args = (
            [f"size={repr_axes(self.size, self.ndim)}"]
            if self.size is not None
            else [f"scale_factor={repr_axes(self.scale_factor, self.ndim)}"]
        )
        if self.mode != "nearest":
            args.append(f"mode={self.mode!r}")
        if self.align_corners:
            args.append("align_corners=True")
        return args

    # -- rules ----------------------------------------------------------------------------
    def _axes(self, shape: Shape) -> list[tuple[int, int, float | None]]:
        out = []
        for a, n in enumerate(shape):
            size = None if self.size is None else self.size[a]
            scale = None if self.scale_factor is None else float(self.scale_factor[a])
            out.append((n, output_length(n, size, scale), scale))
        return out

    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, Window]:
        (shape,) = in_shapes
        nd = len(self.size if self.size is not None else self.scale_factor)
        pads = ((0, 0),) * nd
        if shape is None:
            return None, Window(self, None, None, pads)
        if len(shape) != nd:
            raise OpError(f"a {nd}-D interpolation cannot read a {len(shape)}-D map")
        out = []
        for n, m, _ in self._axes(shape):
            if m <= 0:
                raise TooSmall(f"output size {m} for input {n}")
            out.append(m)
        return tuple(out), Window(self, shape, tuple(out), pads)

    def _axis_ops(self, shape: Shape, pads: tuple) -> tuple[AxisOp, ...]:
        return tuple(
            interpolation_op(n, m, self.mode, self.align_corners, s)
            for n, m, s in self._axes(shape)
        )

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        data: Window = step.data
        if data.in_shape is None:
            return (
                tuple(Field(f.rf, f.jump, None) if isinstance(f, Field) else f for f in inputs[0]),
                "",
            )
        out: list[Any] = []
        for (n, m, s), f in zip(self._axes(data.in_shape), inputs[0]):
            if not isinstance(f, Field):
                out.append(f)
                continue
            w = interpolation_weights(n, m, self.mode, self.align_corners, s)
            span = max(int(np.flatnonzero(row).max() - np.flatnonzero(row).min()) for row in w)
            first = np.flatnonzero(w[0])
            centre = Fraction(int(first.min() + first.max()), 2)
            start = None if f.start is None else f.start + centre * f.jump
            out.append(Field(f.rf + span * f.jump, f.jump * Fraction(n, m), start))
        return tuple(out), "interpolation: size is the widest output's, start unit 0's"

    # -- backends -------------------------------------------------------------------------
    def _matrices(self, node: Any) -> list[np.ndarray]:
        return [
            interpolation_weights(n, m, self.mode, self.align_corners, s)
            for n, m, s in self._axes(node.in_shape)
        ]

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        for axis, mat in enumerate(self._matrices(node)):
            x = np.moveaxis(np.tensordot(x, mat, axes=([2 + axis], [1])), -1, 2 + axis)
        return x, None

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        for axis, mat in enumerate(self._matrices(node)):
            gy = np.moveaxis(np.tensordot(gy, mat, axes=([2 + axis], [0])), -1, 2 + axis)
        return (gy,)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        nd = x.ndim - 2
        mode = self.mode
        if mode == "linear":
            mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
        elif mode == "cubic":
            mode = "bicubic"
        kwargs: dict[str, Any] = {"mode": mode}
        if self.mode in ("linear", "cubic"):
            kwargs["align_corners"] = self.align_corners
        if self.size is not None:
            return torch.nn.functional.interpolate(x, size=tuple(self.size), **kwargs)
        scale = tuple(float(s) for s in self.scale_factor)
        return torch.nn.functional.interpolate(x, scale_factor=scale, **kwargs)
