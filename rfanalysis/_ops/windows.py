"""Windowed operations: convolution, locally connected layer, pooling, transposed convolution
and nearest upsampling, each with all of its rules.

They are separable: along every spatial axis they connect units through an
:class:`~.axis.AxisOp`, and in N-D their connections are the product of the per-axis ones, so
routes, geometry, blind spots and both backends work axis by axis.

Geometry (per axis; kernel ``k``, stride ``s``, dilation ``d``, leading padding ``p``,
``k_eff = d (k - 1) + 1``)::

    r_l = r_{l-1} + (k_eff - 1) j_{l-1}                 receptive-field size
    j_l = j_{l-1} s                                     jump (effective stride)
    c_l = c_{l-1} + ((k_eff - 1) / 2 - p) j_{l-1}        centre of unit 0 (start)

(Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks",
Distill 2019). Transposed convolutions and upsampling divide the jump; their size is the
largest over output phases and their start the mean over phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from . import kernels
from .axis import (
    PAD_LIMITS,
    AxisOp,
    map_outside,
    resolve_padding,
    transposed_length,
    transposed_op,
    upsample_length,
    upsample_op,
    window_length,
    window_op,
)
from .base import (
    PADDING_MODES,
    POOL_KINDS,
    Field,
    Ints,
    Layer,
    OpError,
    Padding,
    Shape,
    TooSmall,
    broadcast,
    check_channels,
    common_ndim,
    fmt_axes,
    fmt_padding,
    ints,
    padding_arg,
    positive_number,
    repr_axes,
    repr_padding,
    weights_repr,
)
from .counts import Algebra, Counts, Sep


# --------------------------------------------------------------------------- resolved data
@dataclass(frozen=True, eq=False)
class Window:
    """A windowed operation resolved for its input: padding per axis ``(before, after)``
    (None where it depends on an unknown size) and, for a known input, the per-axis
    operators, built on first use (geometry never needs them)."""

    layer: Any
    in_shape: Shape | None
    out_shape: Shape | None
    pads: tuple[tuple[int, int] | None, ...]

    @cached_property
    def ops(self) -> tuple[AxisOp, ...]:
        assert self.in_shape is not None
        return self.layer._axis_ops(self.in_shape, self.pads)


def _separable_back(ops: tuple[AxisOp, ...], g: Counts, alg: Algebra) -> Counts:
    """``A.T @ g`` for a separable operator (one AxisOp per axis)."""
    if isinstance(g, Sep):
        done: dict[tuple[int, int], np.ndarray] = {}
        vecs = []
        for op, v in zip(ops, g.vecs):
            key = (id(op), id(v))  # square inputs: the same operator on the same vector
            if key not in done:
                done[key] = op.transpose_apply(v, 0, alg.mode)
            vecs.append(done[key])
        return Sep(g.scale, tuple(vecs))
    size = math.prod(op.n_in for op in ops)
    # (a repeat is one copy per axis: blocks would only add calls)
    if len(ops) > 1 and size > _BLOCK and not ops[0].is_identity and not ops[0].repeats:
        return _blocked_back(ops, g, alg, size)
    # the last axis first: where the map grows (the transpose of a strided window), the
    # strided writes along the innermost axis then fill the smaller intermediate map
    for axis in reversed(range(len(ops))):
        g = ops[axis].transpose_apply(g, axis, alg.mode)
    return g


#: units of a block of rows that :func:`_blocked_back` computes at a time (its temporaries
#: stay in the cache and below numpy's threshold for huge pages)
_BLOCK = 1 << 17


def _blocked_back(ops: tuple[AxisOp, ...], g: np.ndarray, alg: Algebra, size: int) -> np.ndarray:
    """``A.T @ g`` for a large result, a block of rows (units along axis 0) at a time: each
    block reads the rows of ``g`` that reach it, is transformed along the other axes, then
    along axis 0 into the result. One large array is written; the work per unit is the same."""
    first = ops[0]
    rows = max(1, _BLOCK * first.n_in // size)
    out = np.empty(tuple(op.n_in for op in ops), dtype=object if alg.mode == "exact" else float)
    for a in range(0, first.n_in, rows):
        b = min(first.n_in, a + rows)
        c, d, sub = first.rows(a, b)
        h = g[c:d]
        for axis in reversed(range(1, len(ops))):
            h = ops[axis].transpose_apply(h, axis, alg.mode)
        sub.transpose_apply(h, 0, alg.mode, out=out[a:b])
    return out


class Separable(Layer):
    """An operation that acts axis by axis through per-axis operators (``Window.ops``)."""

    needs_space = True

    def routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple[Counts]:
        return (_separable_back(step.data.ops, g, alg),)

    def reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        (r,) = inputs
        for axis, op in enumerate(step.data.ops):
            r = op.reach(r, axis)
        return r

    def on_axis(self, axis: int) -> Layer:
        changes = {}
        for f in self._axis_fields:
            value = getattr(self, f)
            changes[f] = value if isinstance(value, str) else (value[axis],)
        return replace(self, **changes) if changes else self  # type: ignore[type-var]

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        out = []
        for a, f in enumerate(inputs[0]):
            # a global or irregular field stays so
            out.append(self._axis_field(a, f, step.data.pads[a]) if isinstance(f, Field) else f)
        return tuple(out), ""

    def _axis_field(self, axis: int, f: Field, pad: Any) -> Field:  # pragma: no cover
        raise NotImplementedError

    def connections(self, step: Any, axis: int) -> tuple[np.ndarray, ...]:
        """Every connection along ``axis``: ``(out, tap, position, source)`` arrays, with
        ``position`` the input coordinate the tap reads (outside ``[0, n)`` in the padding)
        and ``source`` the input unit it reaches (-1: no route)."""
        tap, src, out = step.data.ops[axis].edges()
        return out, tap, src, src

    def _np_pieces(self, node: Any, swap: bool = False) -> tuple[kernels.Pieces, ...]:
        return tuple(kernels.pieces(a, swap) for a in node.step.data.ops)


class _Windowed(Separable):
    """Shared normalisation and rules of kernel_size / stride / padding / dilation windows."""

    _axis_fields = ("kernel_size", "stride", "padding", "dilation")
    kernel_size: Ints
    stride: Ints
    padding: Padding
    dilation: Ints
    padding_mode: str
    ceil_mode: ClassVar[bool] = False

    def _normalise_window(self, stride_default: Any = 1) -> dict[str, int]:
        lengths: dict[str, int] = {}
        k, scalar = ints(self.kernel_size, "kernel_size", 1)
        if not scalar:
            lengths["kernel_size"] = len(k)
        object.__setattr__(self, "kernel_size", k)
        stride = self.stride if self.stride is not None else stride_default
        s, scalar = ints(stride, "stride", 1)
        if not scalar:
            lengths["stride"] = len(s)
        object.__setattr__(self, "stride", s)
        p, scalar = padding_arg(self.padding)
        if not scalar:
            lengths["padding"] = len(p)
        object.__setattr__(self, "padding", p)
        d, scalar = ints(self.dilation, "dilation", 1)
        if not scalar:
            lengths["dilation"] = len(d)
        object.__setattr__(self, "dilation", d)
        # "valid" and "full" depend only on the kernel: resolve them now, so that equal layers
        # compare equal; only "same" (which depends on the input size) stays a word
        if p in ("valid", "full"):
            ndim = common_ndim(lengths, type(self).__name__) or 1
            k_eff = [dd * (kk - 1) + 1 for kk, dd in zip(broadcast(k, ndim), broadcast(d, ndim))]
            pad = 0 if p == "valid" else 1
            object.__setattr__(self, "padding", tuple((pad * (ke - 1),) * 2 for ke in k_eff))
        return lengths

    def _set_ndim(self, lengths: dict[str, int]) -> None:
        ndim = common_ndim(lengths, type(self).__name__)
        # a scalar parameter broadcasts: write it out once ndim is known
        if ndim is not None:
            for f in self._axis_fields:
                value = getattr(self, f)
                if not isinstance(value, str):
                    object.__setattr__(self, f, broadcast(value, ndim))
        object.__setattr__(self, "ndim", ndim)

    def _window_spec(self, kind: str, stride_default: Ints | None = None) -> str:
        out = kind + fmt_axes(self.kernel_size)
        default = stride_default if stride_default is not None else (1,) * len(self.stride)
        if tuple(self.stride) != tuple(broadcast(default, len(self.stride))):
            out += "s" + fmt_axes(self.stride)
        if isinstance(self.padding, str) or any(b or a for b, a in self.padding):
            out += "p" + fmt_padding(self.padding)
        if any(d != 1 for d in self.dilation):
            out += "d" + fmt_axes(self.dilation)
        mode = getattr(self, "padding_mode", "zeros")
        return out if mode == "zeros" else f"{out}:{mode}"

    def _window_repr(self, stride_default: Ints | None = None) -> list[str]:
        args = [repr_axes(self.kernel_size, self.ndim)]
        default = stride_default if stride_default is not None else (1,)
        if tuple(self.stride) != tuple(broadcast(default, len(self.stride))):
            args.append(f"stride={repr_axes(self.stride, self.ndim)}")
        if isinstance(self.padding, str) or any(b or a for b, a in self.padding):
            args.append(f"padding={repr_padding(self.padding, self.ndim)}")
        if any(d != 1 for d in self.dilation):
            args.append(f"dilation={repr_axes(self.dilation, self.ndim)}")
        mode = getattr(self, "padding_mode", "zeros")
        return args if mode == "zeros" else [*args, f"padding_mode={mode!r}"]

    @property
    def effective_kernel_size(self) -> Ints:
        """``dilation * (kernel_size - 1) + 1`` per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    # -- shape rule -----------------------------------------------------------------------
    def _pads(self, shape: Shape | None) -> tuple[tuple[int, int] | None, ...]:
        k_eff = self.effective_kernel_size
        if not isinstance(self.padding, str):
            return tuple(self.padding)
        if shape is None:
            # TF's "same" with stride > 1 depends on the size; stride 1 does not
            return tuple(
                None if s > 1 else resolve_padding("same", 0, ke, 1)
                for ke, s in zip(k_eff, self.stride)
            )
        return tuple(
            resolve_padding(self.padding, n, ke, s) for n, ke, s in zip(shape, k_eff, self.stride)
        )

    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, Window]:
        (shape,) = in_shapes
        pads = self._pads(shape)
        if shape is None:
            return None, Window(self, None, None, pads)
        if len(shape) != len(self.kernel_size):
            raise OpError(f"a {len(self.kernel_size)}-D window cannot read a {len(shape)}-D map")
        out = []
        for n, k, s, d, pad in zip(shape, self.kernel_size, self.stride, self.dilation, pads):
            assert pad is not None
            pb, pa = pad
            if self.padding_mode in PAD_LIMITS:
                limit, rule = PAD_LIMITS[self.padding_mode]
                if max(pb, pa) > limit(n):
                    raise TooSmall(f"{rule}; got padding {max(pb, pa)} for input {n}")
            m = window_length(n, k, s, d, pb, pa, self.ceil_mode)
            if m <= 0:
                raise TooSmall(
                    f"output size 0 for input {n} (kernel {k}, dilation {d}, padding {pb}+{pa}); "
                    "the input is too small for this stack"
                )
            out.append(m)
        return tuple(out), Window(self, shape, tuple(out), pads)

    def _axis_ops(self, shape: Shape, pads: tuple) -> tuple[AxisOp, ...]:
        return tuple(
            window_op(n, k, s, d, pb, pa, self.padding_mode, self.ceil_mode)
            for n, k, s, d, (pb, pa) in zip(
                shape, self.kernel_size, self.stride, self.dilation, pads
            )
        )

    def connections(self, step: Any, axis: int) -> tuple[np.ndarray, ...]:
        n, m = step.data.in_shape[axis], step.data.out_shape[axis]
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        pb, pa = step.data.pads[axis]
        out = np.repeat(np.arange(m), k)
        tap = np.tile(np.arange(k), m)
        position = out * s + tap * d - pb
        inside = (position >= 0) & (position < n)
        source = np.where(inside, position, -1)
        if self.padding_mode != "zeros":
            padded = ~inside & (position < n + pa)  # not a ceil-mode window's overhang
            source[padded] = map_outside(position[padded], n, self.padding_mode)
        return out, tap, position, source

    # -- geometry -------------------------------------------------------------------------
    def _axis_field(self, axis: int, f: Field, pad: Any) -> Field:
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        ke = d * (k - 1) + 1
        start = (
            None
            if f.start is None or pad is None
            else f.start + (Fraction(ke - 1, 2) - pad[0]) * f.jump
        )
        return Field(f.rf + (ke - 1) * f.jump, f.jump * s, start)

    def uneven(self, step: Any) -> list[dict[str, Any]]:
        """Axes where the windows use the padding unevenly (see :mod:`rfanalysis._blindspots`)."""
        data: Window = step.data
        if data.in_shape is None or data.out_shape is None:
            return []
        out = []
        for a, (n, m, pads) in enumerate(zip(data.in_shape, data.out_shape, data.pads)):
            assert pads is not None
            pb, pa = pads
            k, s, d = self.kernel_size[a], self.stride[a], self.dilation[a]
            reach = (m - 1) * s + d * (k - 1) + 1  # padded units up to the end of the last window
            after = reach - pb - n
            if after == pb:
                continue
            out.append(
                {
                    "axis": a,
                    "input_size": n,
                    "output_size": m,
                    "kernel_size": k,
                    "stride": s,
                    "dilation": d,
                    "padding": (pb, pa),
                    "effective_padding": (pb, after),
                    "dropped": max(0, pa - after),
                    "dropped_input": min(n, max(0, -after)),
                    "size_dependent": s > 1,
                }
            )
        return out

    # -- parameters -----------------------------------------------------------------------
    def _weight_params(self, step: Any) -> tuple[int | None, int | None, int | None]:
        """(shared, locally connected, dense) parameter counts, where known."""
        cin, cout = step.in_channels, step.out_channels
        if cin is None or cout is None:
            return None, None, None
        bias = 1 if self.bias else 0  # type: ignore[attr-defined]
        taps = math.prod(self.kernel_size)
        groups = getattr(self, "groups", 1)
        shared = taps * (cin // groups) * cout + bias * cout
        local = dense = None
        if step.in_shape is not None and step.out_shape is not None:
            n_in, n_out = math.prod(step.in_shape), math.prod(step.out_shape)
            local = n_out * shared
            dense = n_in * cin * n_out * cout + bias * n_out * cout
        return shared, local, dense


def _check_mode(padding_mode: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"`padding_mode` must be one of {', '.join(PADDING_MODES)}; got {padding_mode!r}"
        )


# --------------------------------------------------------------------------- conv
@dataclass(frozen=True, repr=False)
class Conv(_Windowed):
    """Convolution. Output unit ``o`` and tap ``t`` read input ``o*stride + t*dilation - pad``.

    Parameters
    ----------
    kernel_size, stride, dilation : int or tuple of int
        One value for every spatial axis, or one per axis.
    padding : int, tuple, tuple of (before, after) pairs, or {"same", "valid", "full"}
        ``"same"`` follows torch for stride 1 (the odd pixel at the end) and TF's rule for
        stride > 1; ``"full"`` pads ``k_eff - 1`` on both sides.
    padding_mode : {"zeros", "reflect", "symmetric", "replicate", "circular"}
        What a tap outside the input reads (see the package docstring).
    in_channels, out_channels, groups : int, optional
        Channels for parameter counts and the empirical backends; routes collapse channels.
    bias : bool
        Whether the layer has a bias (parameter counts only).

    Examples
    --------
    >>> Conv(3, padding=1)
    Conv(3, padding=1)
    >>> Conv((3, 5), stride=2).kernel_size
    (3, 5)
    """

    op_name = "conv"
    channel_rule = "weighted"
    weighted = True

    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    padding_mode: str = "zeros"
    in_channels: int | None = field(default=None, kw_only=True)
    out_channels: int | None = field(default=None, kw_only=True)
    groups: int = field(default=1, kw_only=True)
    bias: bool = field(default=True, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lengths = self._normalise_window()
        _check_mode(self.padding_mode)
        cin, cout, g = check_channels("Conv", self.in_channels, self.out_channels, self.groups)
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "out_channels", cout)
        object.__setattr__(self, "groups", g)
        self._set_ndim(lengths)

    def spec(self) -> str:
        return self._window_spec("conv")

    def _repr_args(self) -> list[str]:
        return self._window_repr() + weights_repr(self)

    def params(self, step: Any) -> tuple[int | None, int | None, int | None, int | None]:
        shared, local, dense = self._weight_params(step)
        return shared, shared, local, dense

    # -- backends -------------------------------------------------------------------------
    def weight_shape(self, node: Any) -> tuple[tuple[int, ...], int]:
        g = node.groups
        return (node.cout, node.cin // g, *self.kernel_size), node.cin // g * math.prod(
            self.kernel_size
        )

    def np_forward(self, node: Any, xs: list[np.ndarray], w: np.ndarray) -> tuple[np.ndarray, Any]:
        (x,) = xs
        taps, units = math.prod(self.kernel_size), math.prod(node.out_shape)
        b, g = x.shape[0], node.groups
        cols = kernels.to_cols(x, self._np_pieces(node), 0.0).reshape(
            b, g, node.cin // g * taps, units
        )
        wm = w.reshape(w.shape[0], g, node.cout // g, node.cin // g * taps)
        return np.matmul(wm, cols).reshape(b, node.cout, *node.out_shape), None

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: np.ndarray) -> tuple:
        taps, units = math.prod(self.kernel_size), math.prod(node.out_shape)
        in_shape = node.in_shape
        b, g = gy.shape[0], node.groups
        cin_g, cout_g = node.cin // g, node.cout // g
        transposed = self._np_pieces(node, swap=True)
        if all(s == 1 for s in self.stride) and not any(p.has_extras for p in transposed):
            # gather the output gradient through the transposed operator: no scatter needed
            cols = kernels.to_cols(gy, transposed, 0.0).reshape(
                b, g, cout_g * taps, math.prod(in_shape)
            )
            wb = w.reshape(w.shape[0], g, cout_g, cin_g, taps).transpose(0, 1, 3, 2, 4)
            wb = wb.reshape(w.shape[0], g, cin_g, cout_g * taps)
            return (np.matmul(wb, cols).reshape(b, node.cin, *in_shape),)
        wm = w.reshape(w.shape[0], g, cout_g, cin_g * taps).transpose(0, 1, 3, 2)
        gcols = np.matmul(wm, gy.reshape(b, g, cout_g, units))
        gcols = gcols.reshape(b, node.cin, *self.kernel_size, *node.out_shape)
        return (kernels.from_cols(gcols, self._np_pieces(node)),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        pads = node.step.data.pads
        nd = x.ndim - 2
        if self.padding_mode == "zeros" and all(b == a for b, a in pads):
            native = tuple(b for b, _ in pads)
        else:
            x = kernels.torch_pad(torch, x, pads, self.padding_mode)
            native = (0,) * nd
        return kernels.torch_grouped(
            kernels.torch_fn(torch, "conv", nd),
            x,
            w,
            node.groups,
            stride=self.stride,
            padding=native,
            dilation=self.dilation,
        )


# --------------------------------------------------------------------------- locally connected
@dataclass(frozen=True, repr=False)
class LocallyConnected(_Windowed):
    """Locally connected layer: the topology of :class:`Conv` with unshared weights.

    Routes are those of a zero-padded convolution; only the parameter count differs
    (one weight set per output position).

    >>> LocallyConnected(5)
    LocallyConnected(5)
    """

    op_name = "lc"
    channel_rule = "weighted"
    weighted = True

    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    in_channels: int | None = field(default=None, kw_only=True)
    out_channels: int | None = field(default=None, kw_only=True)
    bias: bool = field(default=True, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    padding_mode: ClassVar[str] = "zeros"  # type: ignore[misc]
    groups: ClassVar[int] = 1

    def __post_init__(self) -> None:
        lengths = self._normalise_window()
        cin, cout, _ = check_channels("LocallyConnected", self.in_channels, self.out_channels, 1)
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "out_channels", cout)
        self._set_ndim(lengths)

    def spec(self) -> str:
        return self._window_spec("lc")

    def _repr_args(self) -> list[str]:
        return self._window_repr() + weights_repr(self)

    def params(self, step: Any) -> tuple[int | None, int | None, int | None, int | None]:
        shared, local, dense = self._weight_params(step)
        return local, shared, local, dense

    # -- backends -------------------------------------------------------------------------
    def weight_shape(self, node: Any) -> tuple[tuple[int, ...], int]:
        # one kernel per output position
        shape = (*node.out_shape, node.cout, node.cin, *self.kernel_size)
        return shape, node.cin * math.prod(self.kernel_size)

    def _w(self, node: Any, w: np.ndarray) -> np.ndarray:
        taps, units = math.prod(self.kernel_size), math.prod(node.out_shape)
        return w.reshape(w.shape[0], units, node.cout, node.cin * taps)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: np.ndarray) -> tuple[np.ndarray, Any]:
        (x,) = xs
        taps, units = math.prod(self.kernel_size), math.prod(node.out_shape)
        cols = kernels.to_cols(x, self._np_pieces(node), 0.0).reshape(
            x.shape[0], node.cin * taps, units
        )
        wm = self._w(node, w)
        if wm.shape[0] == 1:
            y = np.einsum("bjm,mcj->bcm", cols, wm[0], optimize=True)
        else:
            y = np.einsum("bjm,bmcj->bcm", cols, wm, optimize=True)
        return y.reshape(x.shape[0], node.cout, *node.out_shape), None

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: np.ndarray) -> tuple:
        units = math.prod(node.out_shape)
        g = gy.reshape(gy.shape[0], node.cout, units)
        wm = self._w(node, w)
        if wm.shape[0] == 1:
            gcols = np.einsum("bcm,mcj->bjm", g, wm[0], optimize=True)
        else:
            gcols = np.einsum("bcm,bmcj->bjm", g, wm, optimize=True)
        gcols = gcols.reshape(gy.shape[0], node.cin, *self.kernel_size, *node.out_shape)
        return (kernels.from_cols(gcols, self._np_pieces(node)),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        nd = x.ndim - 2
        xp = kernels.torch_pad(torch, x, node.step.data.pads, "zeros")
        for axis, (k, s, d) in enumerate(zip(self.kernel_size, self.stride, self.dilation)):
            xp = xp.unfold(2 + axis, d * (k - 1) + 1, s)
        xp = xp[(..., *(slice(None, None, d) for d in self.dilation))]  # (B, C, *out, *k)
        letters = "defghijklmnopq"
        m, k = letters[:nd], letters[nd : 2 * nd]
        if w.shape[0] == 1:
            return torch.einsum(f"bc{m}{k},{m}oc{k}->bo{m}", xp, w[0])
        return torch.einsum(f"bc{m}{k},b{m}oc{k}->bo{m}", xp, w)


# --------------------------------------------------------------------------- pool
@dataclass(frozen=True, repr=False)
class Pool(_Windowed):
    """Pooling (max, avg or lp). Every window element is a route; padding is never a route.

    ``stride`` defaults to ``kernel_size`` (torch). ``ceil_mode`` follows torch, including
    its rule that the last window must start inside the input or the leading padding.

    >>> Pool(2)
    Pool(2)
    >>> Pool(3, 2, 1).stride
    (2,)
    """

    op_name = "pool"

    kernel_size: Any
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    kind: str = "max"
    ceil_mode: bool = False  # type: ignore[misc]
    norm_type: float = field(default=2.0, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    padding_mode: ClassVar[str] = "zeros"  # type: ignore[misc]

    def __post_init__(self) -> None:
        stride_given = self.stride
        lengths = self._normalise_window(stride_default=self.kernel_size)
        if stride_given is None:
            lengths.pop("stride", None)
            if "kernel_size" in lengths:
                lengths["stride"] = lengths["kernel_size"]
        if self.kind not in POOL_KINDS:
            raise ValueError(
                f"Pool `kind` must be one of {', '.join(POOL_KINDS)}; got {self.kind!r}"
            )
        if not isinstance(self.ceil_mode, bool):
            raise TypeError(f"Pool `ceil_mode` must be a bool, got {self.ceil_mode!r}")
        if not (isinstance(self.norm_type, (int, float)) and self.norm_type > 0):
            raise ValueError(f"Pool `norm_type` must be a positive number, got {self.norm_type!r}")
        self._set_ndim(lengths)

    def spec(self) -> str:
        out = self._window_spec(f"{self.kind}pool", stride_default=self.kernel_size)
        return out + ("c" if self.ceil_mode else "")

    def _repr_args(self) -> list[str]:
        args = self._window_repr(stride_default=self.kernel_size)
        if self.kind != "max":
            args.append(f"kind={self.kind!r}")
        if self.ceil_mode:
            args.append("ceil_mode=True")
        if self.kind == "lp" and self.norm_type != 2.0:
            args.append(f"norm_type={self.norm_type!r}")
        return args

    # -- backends -------------------------------------------------------------------------
    def _divisor(self, node: Any) -> np.ndarray:
        return kernels.avg_divisor(node.in_shape, node.out_shape, self, node.step.data.pads)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        taps, units = math.prod(self.kernel_size), math.prod(node.out_shape)
        b, c = x.shape[:2]
        pcs = self._np_pieces(node)
        if self.kind == "max":
            cols = kernels.to_cols(x, pcs, -np.inf).reshape(b, c, taps, units)
            arg = cols.argmax(axis=2)  # the first maximum in window order, as torch picks it
            y = np.take_along_axis(cols, arg[:, :, None], axis=2)[:, :, 0]
            y[np.isneginf(y)] = 0.0  # a window lying wholly in the padding
            return y.reshape(b, c, *node.out_shape), arg
        cols = kernels.to_cols(x, pcs, 0.0).reshape(b, c, taps, units)
        if self.kind == "avg":
            div = self._divisor(node).reshape(units)
            return (cols.sum(axis=2) / div).reshape(b, c, *node.out_shape), div
        p = float(self.norm_type)
        s = (np.abs(cols) ** p).sum(axis=2)
        return (s ** (1.0 / p)).reshape(b, c, *node.out_shape), x

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        taps, units = math.prod(self.kernel_size), math.prod(node.out_shape)
        b, c = gy.shape[:2]
        g = gy.reshape(b, c, 1, units)
        pcs = self._np_pieces(node)
        if self.kind == "max":
            gcols = np.zeros((b, c, taps, units), dtype=gy.dtype)
            np.put_along_axis(gcols, saved[:, :, None], g, axis=2)
        elif self.kind == "avg":
            gcols = np.broadcast_to(g / saved, (b, c, taps, units))
        else:
            # d/dx_i (sum |x|^p)^(1/p) = sign(x_i) |x_i|^(p-1) s^(1/p - 1); 0 where s or x_i is 0
            p = float(self.norm_type)
            cols = kernels.to_cols(saved, pcs, 0.0).reshape(b, c, taps, units)
            a = np.abs(cols)
            s = (a**p).sum(axis=2, keepdims=True)
            scale = np.where(s > 0, s ** (1.0 / p - 1.0), 0.0)
            local = np.where(a > 0, np.sign(cols) * a ** (p - 1.0), 0.0)
            gcols = local * scale * g
        return (kernels.from_cols(gcols.reshape(b, c, *self.kernel_size, *node.out_shape), pcs),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        pads = node.step.data.pads
        nd = x.ndim - 2
        native = all(b == a and b <= k // 2 for (b, a), k in zip(pads, self.kernel_size))
        if self.kind == "max":
            pad = tuple(b for b, _ in pads)
            if not native:
                x = kernels.torch_pad(torch, x, pads, "zeros", value=-math.inf)
                pad = (0,) * nd
            y = kernels.torch_fn(torch, "max_pool", nd)(
                x, self.kernel_size, self.stride, pad, self.dilation, self.ceil_mode
            )
            y = y[(slice(None), slice(None), *(slice(0, m) for m in node.out_shape))]
            return torch.where(torch.isneginf(y), torch.zeros_like(y), y)
        if self.kind == "avg":
            if native and all(d == 1 for d in self.dilation):
                # contiguous: on CUDA (torch 2.11) avg_pool2d's backward is wrong for a
                # channels-last input (a locally connected layer's einsum output is one)
                # whose last ceil-mode window overhangs the padding
                return kernels.torch_fn(torch, "avg_pool", nd)(
                    x.contiguous(),
                    self.kernel_size,
                    self.stride,
                    tuple(b for b, _ in pads),
                    self.ceil_mode,
                    count_include_pad=True,
                )
            div = torch.as_tensor(self._divisor(node), dtype=x.dtype, device=x.device)
            return self._window_sum(node, torch, x) / div
        # Lp: (sum |x|^p)^(1/p) with gradient 0 where an element or a whole window is 0
        p = float(self.norm_type)
        nonzero = x != 0
        a = torch.where(nonzero, x.abs(), torch.ones_like(x)) ** p * nonzero
        s = self._window_sum(node, torch, a)
        positive = s > 0
        return torch.where(positive, s, torch.ones_like(s)) ** (1.0 / p) * positive

    def _window_sum(self, node: Any, torch: Any, x: Any) -> Any:
        return kernels.torch_window_sum(
            torch, x, self, node.in_shape, node.out_shape, node.step.data.pads
        )


# --------------------------------------------------------------------------- transposed conv
@dataclass(frozen=True, repr=False)
class ConvTranspose(Separable):
    """Transposed convolution (torch's definition).

    Input unit ``i`` and tap ``t`` write output ``i*stride + t*dilation - pad_before``; the
    output has ``(n - 1)*stride - pad_before - pad_after + dilation*(k - 1) + output_padding + 1``
    units. ``padding`` crops the output (an int crops both ends, as in torch).

    >>> ConvTranspose(4, 2, 1)
    ConvTranspose(4, stride=2, padding=1)
    """

    op_name = "tconv"
    channel_rule = "weighted"
    weighted = True

    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    output_padding: Any = 0
    dilation: Any = 1
    in_channels: int | None = field(default=None, kw_only=True)
    out_channels: int | None = field(default=None, kw_only=True)
    groups: int = field(default=1, kw_only=True)
    bias: bool = field(default=True, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    _axis_fields = ("kernel_size", "stride", "padding", "output_padding", "dilation")
    padding_mode: ClassVar[str] = "zeros"

    def __post_init__(self) -> None:
        lengths: dict[str, int] = {}
        for f, minimum in (
            ("kernel_size", 1),
            ("stride", 1),
            ("output_padding", 0),
            ("dilation", 1),
        ):
            values, scalar = ints(getattr(self, f), f, minimum)
            object.__setattr__(self, f, values)
            if not scalar:
                lengths[f] = len(values)
        if isinstance(self.padding, str):
            raise ValueError(
                f"ConvTranspose `padding` must be an int or a tuple (it crops the output); "
                f"got {self.padding!r}"
            )
        p, scalar = padding_arg(self.padding)
        object.__setattr__(self, "padding", p)
        if not scalar:
            lengths["padding"] = len(p)
        ndim = common_ndim(lengths, "ConvTranspose")
        if ndim is not None:
            for f in self._axis_fields:
                object.__setattr__(self, f, broadcast(getattr(self, f), ndim))
        for op, s, d in zip(
            broadcast(self.output_padding, ndim or 1),
            broadcast(self.stride, ndim or 1),
            broadcast(self.dilation, ndim or 1),
        ):
            if op >= max(s, d):
                raise ValueError(
                    f"ConvTranspose `output_padding` ({op}) must be smaller than "
                    f"stride or dilation ({max(s, d)})"
                )
        cin, cout, g = check_channels(
            "ConvTranspose", self.in_channels, self.out_channels, self.groups
        )
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "out_channels", cout)
        object.__setattr__(self, "groups", g)
        object.__setattr__(self, "ndim", ndim)

    @property
    def effective_kernel_size(self) -> Ints:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    def spec(self) -> str:
        out = "tconv" + fmt_axes(self.kernel_size)
        if any(s != 1 for s in self.stride):
            out += "s" + fmt_axes(self.stride)
        if any(b or a for b, a in self.padding):  # type: ignore[union-attr]
            out += "p" + fmt_padding(self.padding)
        if any(o for o in self.output_padding):
            out += "o" + fmt_axes(self.output_padding)
        if any(d != 1 for d in self.dilation):
            out += "d" + fmt_axes(self.dilation)
        mode = getattr(self, "padding_mode", "zeros")
        return out if mode == "zeros" else f"{out}:{mode}"

    def _repr_args(self) -> list[str]:
        args = [repr_axes(self.kernel_size, self.ndim)]
        if any(s != 1 for s in self.stride):
            args.append(f"stride={repr_axes(self.stride, self.ndim)}")
        if any(b or a for b, a in self.padding):  # type: ignore[union-attr]
            args.append(f"padding={repr_padding(self.padding, self.ndim)}")
        if any(self.output_padding):
            args.append(f"output_padding={repr_axes(self.output_padding, self.ndim)}")
        if any(d != 1 for d in self.dilation):
            args.append(f"dilation={repr_axes(self.dilation, self.ndim)}")
        return args + weights_repr(self)

    # -- shape rule -----------------------------------------------------------------------
    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, Window]:
        (shape,) = in_shapes
        pads = tuple(self.padding)  # type: ignore[arg-type]
        if shape is None:
            return None, Window(self, None, None, pads)
        if len(shape) != len(self.kernel_size):
            raise OpError(
                f"a {len(self.kernel_size)}-D transposed convolution cannot read a "
                f"{len(shape)}-D map"
            )
        out = []
        for n, k, s, d, (pb, pa), op in zip(
            shape, self.kernel_size, self.stride, self.dilation, pads, self.output_padding
        ):
            m = transposed_length(n, k, s, d, pb, pa, op)
            if m <= 0:
                raise OpError(
                    f"output size {m} for input {n} (kernel {k}, stride {s}, cropping "
                    f"{pb}+{pa}); the crop removes the whole output"
                )
            out.append(m)
        return tuple(out), Window(self, shape, tuple(out), pads)

    def _axis_ops(self, shape: Shape, pads: tuple) -> tuple[AxisOp, ...]:
        return tuple(
            transposed_op(n, k, s, d, pb, pa, op)
            for n, k, s, d, (pb, pa), op in zip(
                shape, self.kernel_size, self.stride, self.dilation, pads, self.output_padding
            )
        )

    # -- geometry -------------------------------------------------------------------------
    def _axis_field(self, axis: int, f: Field, pad: Any) -> Field:
        k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
        ke = d * (k - 1) + 1
        start = None if f.start is None else f.start + f.jump * (pad[0] - Fraction(ke - 1, 2)) / s
        return Field(f.rf + _transposed_span(k, s, d) * f.jump, f.jump / s, start)

    def params(self, step: Any) -> tuple[int | None, int | None, int | None, int | None]:
        cin, cout = step.in_channels, step.out_channels
        if cin is None or cout is None:
            return None, None, None, None
        bias = 1 if self.bias else 0
        shared = math.prod(self.kernel_size) * (cin // self.groups) * cout + bias * cout
        local = dense = None
        if step.in_shape is not None and step.out_shape is not None:
            n_in, n_out = math.prod(step.in_shape), math.prod(step.out_shape)
            local = n_out * shared
            dense = n_in * cin * n_out * cout + bias * n_out * cout
        return shared, shared, local, dense

    # -- backends -------------------------------------------------------------------------
    def weight_shape(self, node: Any) -> tuple[tuple[int, ...], int]:
        g = node.groups
        shape = (node.cin, node.cout // g, *self.kernel_size)
        return shape, node.cin // g * math.prod(self.kernel_size)

    def _w(self, node: Any, w: np.ndarray) -> np.ndarray:
        taps, g = math.prod(self.kernel_size), node.groups
        return w.reshape(w.shape[0], g, node.cin // g, node.cout // g * taps)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: np.ndarray) -> tuple[np.ndarray, Any]:
        (x,) = xs
        b, g = x.shape[0], node.groups
        wt = self._w(node, w).transpose(0, 1, 3, 2)
        z = np.matmul(wt, x.reshape(b, g, node.cin // g, math.prod(node.in_shape)))
        z = z.reshape(b, node.cout, *self.kernel_size, *node.in_shape)
        return kernels.from_cols(z, self._np_pieces(node, swap=True)), None

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: np.ndarray) -> tuple:
        taps = math.prod(self.kernel_size)
        b, g = gy.shape[0], node.groups
        cols = kernels.to_cols(gy, self._np_pieces(node, swap=True), 0.0)
        cols = cols.reshape(b, g, node.cout // g * taps, math.prod(node.in_shape))
        return (np.matmul(self._w(node, w), cols).reshape(b, node.cin, *node.in_shape),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        nd = x.ndim - 2
        y = kernels.torch_grouped(
            kernels.torch_fn(torch, "conv_transpose", nd),
            x,
            w,
            node.groups,
            stride=self.stride,
            output_padding=self.output_padding,
            dilation=self.dilation,
        )
        # crop here rather than through torch's padding, which must be equal on both sides
        crop = tuple(slice(b, b + m) for (b, _), m in zip(node.step.data.pads, node.out_shape))
        return y[(slice(None), slice(None), *crop)]


def _transposed_span(k: int, s: int, d: int) -> Fraction:
    """Largest distance (in input units) between two inputs feeding one output of a transposed
    convolution: taps ``t`` feeding output ``j`` satisfy ``t d = j + p (mod s)``."""
    best = 0
    for r in range(s):
        taps = [t for t in range(k) if (t * d - r) % s == 0]
        if taps:
            best = max(best, (taps[-1] - taps[0]) * d // s)
    return Fraction(best)


# --------------------------------------------------------------------------- upsample
@dataclass(frozen=True, repr=False)
class Upsample(Separable):
    """Nearest-neighbour upsampling (torch ``nn.Upsample(mode="nearest")``).

    Output unit ``j`` reads input ``min(floor(j / scale_factor), n - 1)``; the output has
    ``floor(n * scale_factor)`` units.

    >>> Upsample(2)
    Upsample(2)
    """

    op_name = "up"

    scale_factor: Any
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    _axis_fields = ("scale_factor",)

    def __post_init__(self) -> None:
        if isinstance(self.scale_factor, (tuple, list)):
            if not self.scale_factor:
                raise ValueError("`scale_factor` must not be empty")
            values = tuple(positive_number(v, "scale_factor") for v in self.scale_factor)
            ndim: int | None = len(values)
        else:
            values = (positive_number(self.scale_factor, "scale_factor"),)
            ndim = None
        object.__setattr__(self, "scale_factor", values)
        object.__setattr__(self, "ndim", ndim)

    def spec(self) -> str:
        return "up" + fmt_axes(self.scale_factor)

    def _repr_args(self) -> list[str]:
        return [repr_axes(self.scale_factor, self.ndim)]

    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, Window]:
        (shape,) = in_shapes
        pads = ((0, 0),) * len(self.scale_factor)
        if shape is None:
            return None, Window(self, None, None, pads)
        if len(shape) != len(self.scale_factor):
            raise OpError(
                f"a {len(self.scale_factor)}-D upsampling cannot read a {len(shape)}-D map"
            )
        out = []
        for n, f in zip(shape, self.scale_factor):
            m = upsample_length(n, f)
            if m <= 0:
                raise TooSmall(f"output size 0 for input {n} (scale factor {f})")
            out.append(m)
        return tuple(out), Window(self, shape, tuple(out), pads)

    def _axis_ops(self, shape: Shape, pads: tuple) -> tuple[AxisOp, ...]:
        return tuple(upsample_op(n, f) for n, f in zip(shape, self.scale_factor))

    def _axis_field(self, axis: int, f: Field, pad: Any) -> Field:
        s = Fraction(self.scale_factor[axis])
        start = None if f.start is None else f.start + f.jump * (1 / (2 * s) - Fraction(1, 2))
        return Field(f.rf, f.jump / s, start)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        cols = kernels.to_cols(x, self._np_pieces(node), 0.0)
        return cols.reshape(*x.shape[:2], *node.out_shape), None

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        ones = (1,) * (gy.ndim - 2)
        return (
            kernels.from_cols(
                gy.reshape(*gy.shape[:2], *ones, *gy.shape[2:]), self._np_pieces(node)
            ),
        )

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        scale = tuple(float(f) for f in self.scale_factor)
        return torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")


#: window layers whose field changes by output phase (the geometry table summarises them)
def phased(layer: Any) -> bool:
    """A transposed convolution with stride > 1 or a non-unit upsampling: neighbouring output
    units read their inputs through different taps, so their fields differ."""
    if isinstance(layer, ConvTranspose):
        return any(s > 1 for s in layer.stride)
    if isinstance(layer, Upsample):
        return any(f != 1 for f in layer.scale_factor)
    return False
