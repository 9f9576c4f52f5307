"""Global context: global pooling, adaptive pooling and normalisation over space.

Routes (DESIGN section 9): a global reduction's output unit reads every position of the map;
an adaptive pool's unit reads its window (torch's: ``floor(i n / m)`` to
``ceil((i + 1) n / m) - 1`` along each axis); a norm whose statistics span space (instance,
group or layer norm over space) makes every unit read itself and every position its
statistics read, which is every position. In context ``"local"`` the statistics only
modulate: a norm over space is the identity there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from . import kernels
from .axis import AxisOp, adaptive_bounds, adaptive_op
from .base import GLOBAL, Field, Layer, OpError, ReadsWholeMap, Shape, fmt_axes, ints, repr_axes
from .counts import Algebra, Counts
from .windows import Separable, Window

GLOBAL_KINDS = ("avg", "max")


def _spatial(x: Any) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


# --------------------------------------------------------------------------- global pooling
@dataclass(frozen=True, repr=False)
class GlobalPool(ReadsWholeMap):
    """Global pooling: every spatial axis reduced to one unit (kept, of size 1), which reads
    every position. ``kind`` is ``"avg"`` (the squeeze of squeeze-and-excitation, a
    classifier's pool) or ``"max"``.

    >>> GlobalPool()
    GlobalPool()
    >>> GlobalPool("max").spec()
    'gmp'
    """

    op_name = "gpool"
    kind: str = "avg"
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.kind not in GLOBAL_KINDS:
            raise ValueError(
                f"GlobalPool `kind` must be one of {', '.join(GLOBAL_KINDS)}; got {self.kind!r}"
            )

    def spec(self) -> str:
        return "gap" if self.kind == "avg" else "gmp"

    def _repr_args(self) -> list[str]:
        return [] if self.kind == "avg" else [repr(self.kind)]

    def on_axis(self, axis: int) -> Layer:
        return self

    # -- rules ----------------------------------------------------------------------------
    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, None]:
        (shape,) = in_shapes
        return (None if shape is None else (1,) * len(shape)), None

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        axes = _spatial(x)
        if self.kind == "avg":
            return x.mean(axis=axes, keepdims=True), x.shape
        flat = x.reshape(*x.shape[:2], -1)
        arg = flat.argmax(axis=2)  # the first maximum in C order, as torch picks it
        y = np.take_along_axis(flat, arg[:, :, None], axis=2)
        return y.reshape(*x.shape[:2], *(1,) * len(axes)), (arg, x.shape)

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        if self.kind == "avg":
            shape = saved
            n = math.prod(shape[2:])
            return (np.broadcast_to(gy / n, shape).copy(),)
        arg, shape = saved
        g = np.zeros((*shape[:2], math.prod(shape[2:])), dtype=gy.dtype)
        np.put_along_axis(g, arg[:, :, None], gy.reshape(*shape[:2], 1), axis=2)
        return (g.reshape(shape),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        nd = x.ndim - 2
        name = "adaptive_avg_pool" if self.kind == "avg" else "adaptive_max_pool"
        return kernels.torch_fn(torch, name, nd)(x, 1)


# --------------------------------------------------------------------------- adaptive pooling
@dataclass(frozen=True, repr=False)
class AdaptivePool(Separable):
    """Adaptive pooling to ``output_size`` units per axis, with torch's windows: output unit
    ``i`` reads inputs ``floor(i n / m)`` to ``ceil((i + 1) n / m) - 1``. Windows differ in
    size where ``n`` is not a multiple of ``m``.

    >>> AdaptivePool(7)
    AdaptivePool(7)
    >>> AdaptivePool((2, 3), kind="max").spec()
    'adaptivemaxpool2x3'
    """

    op_name = "apool"
    output_size: Any
    kind: str = "avg"
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    _axis_fields = ("output_size",)

    def __post_init__(self) -> None:
        sizes, scalar = ints(self.output_size, "output_size", 1)
        object.__setattr__(self, "output_size", sizes)
        object.__setattr__(self, "ndim", None if scalar else len(sizes))
        if self.kind not in GLOBAL_KINDS:
            raise ValueError(
                f"AdaptivePool `kind` must be one of {', '.join(GLOBAL_KINDS)}; got {self.kind!r}"
            )

    def spec(self) -> str:
        return f"adaptive{self.kind}pool{fmt_axes(self.output_size)}"

    def _repr_args(self) -> list[str]:
        args = [repr_axes(self.output_size, self.ndim)]
        return args + ([] if self.kind == "avg" else [f"kind={self.kind!r}"])

    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, Window]:
        (shape,) = in_shapes
        pads = ((0, 0),) * len(self.output_size)
        if shape is None:
            return None, Window(self, None, None, pads)
        if len(shape) != len(self.output_size):
            raise OpError(
                f"a {len(self.output_size)}-D adaptive pool cannot read a {len(shape)}-D map"
            )
        return tuple(self.output_size), Window(self, shape, tuple(self.output_size), pads)

    def _axis_ops(self, shape: Shape, pads: tuple) -> tuple[AxisOp, ...]:
        return tuple(adaptive_op(n, m) for n, m in zip(shape, self.output_size))

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        out: list[Any] = []
        note = ""
        for a, f in enumerate(inputs[0]):
            m = self.output_size[a]
            n = None if step.in_shape is None else step.in_shape[a]
            if not isinstance(f, Field) or m == 1:
                out.append(GLOBAL if m == 1 else f)
                continue
            if n is None:
                out.append(Field(f.rf, f.jump, None))
                note = "window sizes depend on the input size"
                continue
            starts, ends = adaptive_bounds(n, m)
            widest = max(e - s for s, e in zip(starts, ends))
            first = ends[0]
            start = None if f.start is None else f.start + Fraction(first - 1, 2) * f.jump
            out.append(Field(f.rf + (widest - 1) * f.jump, f.jump * Fraction(n, m), start))
            if n % m:
                note = "adaptive windows differ in size: size is the largest, start unit 0's"
        return tuple(out), note

    def _divisor(self, node: Any) -> np.ndarray:
        sizes = []
        for n, m in zip(node.in_shape, self.output_size):
            starts, ends = adaptive_bounds(n, m)
            sizes.append(np.subtract(ends, starts))
        out = sizes[0].astype(np.float64)
        for s in sizes[1:]:
            out = np.multiply.outer(out, s)
        return out

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        pcs = self._np_pieces(node)
        taps = math.prod(p.taps for p in pcs)
        units = math.prod(node.out_shape)
        b, c = x.shape[:2]
        if self.kind == "max":
            cols = kernels.to_cols(x, pcs, -np.inf).reshape(b, c, taps, units)
            arg = cols.argmax(axis=2)
            y = np.take_along_axis(cols, arg[:, :, None], axis=2)[:, :, 0]
            return y.reshape(b, c, *node.out_shape), arg
        cols = kernels.to_cols(x, pcs, 0.0).reshape(b, c, taps, units)
        div = self._divisor(node).reshape(units)
        return (cols.sum(axis=2) / div).reshape(b, c, *node.out_shape), div

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        pcs = self._np_pieces(node)
        shape_taps = tuple(p.taps for p in pcs)
        taps, units = math.prod(shape_taps), math.prod(node.out_shape)
        b, c = gy.shape[:2]
        g = gy.reshape(b, c, 1, units)
        if self.kind == "max":
            gcols = np.zeros((b, c, taps, units), dtype=gy.dtype)
            np.put_along_axis(gcols, saved[:, :, None], g, axis=2)
        else:
            gcols = np.broadcast_to(g / saved, (b, c, taps, units))
        return (kernels.from_cols(gcols.reshape(b, c, *shape_taps, *node.out_shape), pcs),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        nd = x.ndim - 2
        name = "adaptive_avg_pool" if self.kind == "avg" else "adaptive_max_pool"
        return kernels.torch_fn(torch, name, nd)(x, tuple(self.output_size))


# --------------------------------------------------------------------------- norms over space
NORM_KINDS = ("instance", "group", "layer")


@dataclass(frozen=True, repr=False)
class SpatialNorm(ReadsWholeMap):
    """A normalisation whose statistics span space: instance norm (per channel), group norm
    (``groups`` channel groups) or layer norm over channels and space. Every unit reads
    itself and every position; in context ``"local"`` it is the identity (the statistics
    only modulate). A norm over channels alone (a transformer's LayerNorm, ConvNeXt's) is
    the identity of space and not this layer.

    >>> SpatialNorm("group", groups=32)
    SpatialNorm('group', groups=32)
    """

    op_name = "snorm"
    modulates = True
    kind: str = "instance"
    groups: int | None = field(default=None, kw_only=True)
    eps: float = field(default=1e-5, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    kinds: ClassVar[tuple[str, ...]] = NORM_KINDS

    def __post_init__(self) -> None:
        if self.kind not in NORM_KINDS:
            raise ValueError(
                f"SpatialNorm `kind` must be one of {', '.join(NORM_KINDS)}; got {self.kind!r}"
            )
        if (self.kind == "group") != (self.groups is not None):
            raise ValueError(
                "SpatialNorm `groups` is given for kind='group' only, and needed there"
            )
        if self.groups is not None:
            object.__setattr__(self, "groups", ints(self.groups, "groups", 1)[0][0])

    def spec(self) -> str:
        return f"{self.kind}norm" + (str(self.groups) if self.groups else "")

    def _repr_args(self) -> list[str]:
        args = [repr(self.kind)]
        return args + ([f"groups={self.groups}"] if self.groups is not None else [])

    def on_axis(self, axis: int) -> Layer:
        return self

    # -- rules ----------------------------------------------------------------------------
    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, None]:
        return in_shapes[0], None

    def local_routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple[Counts]:
        return (g,)

    def local_reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return inputs[0]

    def local_field(
        self, step: Any, inputs: tuple[tuple[Any, ...], ...]
    ) -> tuple[tuple[Any, ...], str] | None:
        return inputs[0], ""

    # -- backends (no affine parameters) --------------------------------------------------
    def _grouped(self, x: Any, channels: int) -> tuple[Any, int]:
        groups = {"instance": channels, "layer": 1}.get(self.kind, self.groups)
        assert groups is not None
        if channels % groups:
            raise ValueError(f"SpatialNorm: {channels} channels do not split into {groups} groups")
        return x.reshape(x.shape[0], groups, -1), groups

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        v, _ = self._grouped(x, x.shape[1])
        mean = v.mean(axis=2, keepdims=True)
        inv = 1.0 / np.sqrt(v.var(axis=2, keepdims=True) + self.eps)
        y = (v - mean) * inv
        return y.reshape(x.shape), (y, inv)

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        y, inv = saved
        g = gy.reshape(y.shape)
        gx = inv * (g - g.mean(axis=2, keepdims=True) - y * (g * y).mean(axis=2, keepdims=True))
        return (gx.reshape(gy.shape),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        v, _ = self._grouped(x, x.shape[1])
        mean = v.mean(dim=2, keepdim=True)
        var = v.var(dim=2, keepdim=True, unbiased=False)
        return ((v - mean) / torch.sqrt(var + self.eps)).reshape(x.shape)
