"""Layer value objects.

Every layer is a frozen, hashable dataclass normalised once, at construction: spatial
parameters become per-axis tuples and padding becomes per-axis ``(before, after)`` pairs
(``"valid"`` and ``"full"`` included) or the word ``"same"``, which depends on the input size
and is resolved by the planner. A parameter given as a plain int is stored as a 1-tuple and the
layer's ``ndim`` is ``None``: it applies to any number of spatial axes. A tuple fixes ``ndim``.
:meth:`Layer.expand` turns an ``ndim``-free layer into one for a given number of axes; nothing
downstream of the planner branches on int versus tuple.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any, ClassVar

PADDING_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")
POOL_KINDS = ("max", "avg", "lp")
PADDING_WORDS = ("same", "valid", "full")

Ints = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]
Padding = Pairs | str


# --------------------------------------------------------------------------- normalisers
def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"`{what}` must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"`{what}` must be an integer, got {value!r}") from None


def _ints(value: Any, what: str, minimum: int) -> tuple[Ints, bool]:
    """Normalise an int or a sequence of ints; return ``(values, was_scalar)``."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"`{what}` must not be empty")
        values = tuple(_as_int(v, what) for v in value)
        scalar = False
    else:
        values = (_as_int(value, what),)
        scalar = True
    for v in values:
        if v < minimum:
            raise ValueError(f"`{what}` must be >= {minimum}, got {value!r}")
    return values, scalar


def _padding(value: Any, what: str = "padding") -> tuple[Padding, bool]:
    """Normalise padding to per-axis ``(before, after)`` pairs or a padding word."""
    if isinstance(value, str):
        if value not in PADDING_WORDS:
            raise ValueError(
                f"`{what}` must be an int, a tuple, or one of 'same', 'valid', 'full'; "
                f"got {value!r}"
            )
        return value, True
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"`{what}` must not be empty")
        pairs = []
        for v in value:
            if isinstance(v, (tuple, list)):
                if len(v) != 2:
                    raise ValueError(f"`{what}` per-axis pairs must be (before, after), got {v!r}")
                pair = (_as_int(v[0], what), _as_int(v[1], what))
            else:
                p = _as_int(v, what)
                pair = (p, p)
            if min(pair) < 0:
                raise ValueError(f"`{what}` must be >= 0, got {value!r}")
            pairs.append(pair)
        return tuple(pairs), False
    p = _as_int(value, what)
    if p < 0:
        raise ValueError(f"`{what}` must be >= 0, got {value!r}")
    return ((p, p),), True


def _common_ndim(lengths: dict[str, int], owner: str) -> int | None:
    """The one length shared by all per-axis parameters given as tuples (None if none was)."""
    if not lengths:
        return None
    distinct = set(lengths.values())
    if len(distinct) > 1:
        parts = ", ".join(f"`{k}` has {v}" for k, v in lengths.items())
        raise ValueError(f"{owner}: per-axis parameters disagree on the number of axes ({parts})")
    return distinct.pop()


def _broadcast(values: tuple, ndim: int) -> tuple:
    return values * ndim if len(values) == 1 else values


def _fmt_axes(values: Sequence[Any]) -> str:
    """``(3, 3)`` -> ``"3"``; ``(3, 5)`` -> ``"3x5"`` (the spec grammar's per-axis form)."""
    if len(set(values)) == 1:
        return str(values[0])
    return "x".join(str(v) for v in values)


def _fmt_padding(padding: Padding) -> str:
    if isinstance(padding, str):
        return padding
    if all(b == a for b, a in padding):
        return _fmt_axes([b for b, _ in padding])
    return "x".join(f"({b},{a})" for b, a in padding)


def _repr_axes(values: tuple, ndim: int | None) -> str:
    return repr(values[0]) if ndim is None else repr(values)


def _repr_padding(padding: Padding, ndim: int | None) -> str:
    if isinstance(padding, str):
        return repr(padding)
    if all(b == a for b, a in padding):
        return _repr_axes(tuple(b for b, _ in padding), ndim)
    return repr(padding)


def _as_layers(value: Any, what: str) -> tuple[Layer, ...]:
    """A layer, a Network or a sequence of layers (nested Networks flattened) -> tuple."""
    if isinstance(value, Layer):
        return (value,)
    if isinstance(value, Network):
        return value.layers
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"`{what}` must be a layer or a sequence of layers, got {value!r}")
    out: list[Layer] = []
    for i, item in enumerate(value):
        if isinstance(item, Network):
            out.extend(item.layers)
        elif isinstance(item, Layer):
            out.append(item)
        else:
            raise TypeError(f"`{what}` item {i + 1} is not a layer: {item!r}")
    return tuple(out)


def _sequence_ndim(layers: Sequence[Layer], owner: str) -> int | None:
    ndim: int | None = None
    first = ""
    for i, layer in enumerate(layers):
        if layer.ndim is None:
            continue
        if ndim is None:
            ndim, first = layer.ndim, f"layer {i + 1} ({layer.label})"
        elif layer.ndim != ndim:
            raise ValueError(
                f"{owner}: layer {i + 1} ({layer.label}) is {layer.ndim}-D but {first} is {ndim}-D"
            )
    return ndim


def _sequence_spec(layers: Sequence[Layer]) -> str:
    """Compact spec of a sequence, with runs of equal layers written ``item*N``."""
    if not layers:
        return "id"
    items: list[str] = []
    run_spec, run = "", 0
    for layer in layers:
        s = layer.spec()
        if s == run_spec:
            run += 1
            continue
        if run:
            items.append(run_spec if run == 1 else f"{run_spec}*{run}")
        run_spec, run = s, 1
    items.append(run_spec if run == 1 else f"{run_spec}*{run}")
    return ",".join(items)


# --------------------------------------------------------------------------- base
class Layer:
    """Base class of every layer. Layers are frozen, hashable value objects."""

    # names of per-axis int-tuple fields and padding fields, used by expand()
    _axis_fields: ClassVar[tuple[str, ...]] = ()
    ndim: int | None
    name: str | None

    def expand(self, ndim: int) -> Layer:
        """Return this layer with every per-axis parameter written out for ``ndim`` axes."""
        return _expand_cached(self, ndim)

    def _expand(self, ndim: int) -> Layer:
        if self.ndim is not None:
            if self.ndim != ndim:
                raise ValueError(
                    f"{self.label} is {self.ndim}-D but the input has {ndim} spatial axes"
                )
            return self
        changes = {}
        for f in self._axis_fields:
            value = getattr(self, f)
            if not isinstance(value, str):
                changes[f] = _broadcast(value, ndim)
        return replace(self, **changes) if changes else self  # type: ignore[type-var]

    def spec(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Display label: the compact spec, with the layer's name if it has one."""
        s = self.spec()
        return f"{self.name}: {s}" if getattr(self, "name", None) else s

    def __str__(self) -> str:
        return self.spec()

    def _repr_args(self) -> list[str]:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def __repr__(self) -> str:
        args = self._repr_args()
        if getattr(self, "name", None):
            args.append(f"name={self.name!r}")  # type: ignore[attr-defined]
        return f"{type(self).__name__}({', '.join(args)})"


def _weights_repr(layer: Layer) -> list[str]:
    """repr arguments of a weighted layer's channels, groups and bias (defaults left out)."""
    args = [
        f"{f}={getattr(layer, f)}"
        for f in ("in_channels", "out_channels")
        if getattr(layer, f, None) is not None
    ]
    if getattr(layer, "groups", 1) != 1:
        args.append(f"groups={layer.groups}")  # type: ignore[attr-defined]
    if not layer.bias:  # type: ignore[attr-defined]
        args.append("bias=False")
    return args


def _check_channels(owner: str, in_channels: Any, out_channels: Any, groups: Any) -> tuple:
    cin = None if in_channels is None else _ints(in_channels, f"{owner} in_channels", 1)[0][0]
    cout = None if out_channels is None else _ints(out_channels, f"{owner} out_channels", 1)[0][0]
    g = _ints(groups, f"{owner} groups", 1)[0][0]
    for what, c in (("in_channels", cin), ("out_channels", cout)):
        if c is not None and c % g:
            raise ValueError(f"{owner}: `{what}` ({c}) must be divisible by `groups` ({g})")
    return cin, cout, g


class _Windowed(Layer):
    """Shared normalisation of kernel_size / stride / padding / dilation."""

    _axis_fields = ("kernel_size", "stride", "padding", "dilation")
    kernel_size: Ints
    stride: Ints
    padding: Padding
    dilation: Ints

    def _normalise_window(self, stride_default: Any = 1) -> dict[str, int]:
        lengths: dict[str, int] = {}
        k, scalar = _ints(self.kernel_size, "kernel_size", 1)
        if not scalar:
            lengths["kernel_size"] = len(k)
        object.__setattr__(self, "kernel_size", k)
        stride = self.stride if self.stride is not None else stride_default
        s, scalar = _ints(stride, "stride", 1)
        if not scalar:
            lengths["stride"] = len(s)
        object.__setattr__(self, "stride", s)
        p, scalar = _padding(self.padding)
        if not scalar:
            lengths["padding"] = len(p)
        object.__setattr__(self, "padding", p)
        d, scalar = _ints(self.dilation, "dilation", 1)
        if not scalar:
            lengths["dilation"] = len(d)
        object.__setattr__(self, "dilation", d)
        # "valid" and "full" depend only on the kernel: resolve them now, so that equal layers
        # compare equal; only "same" (which depends on the input size) stays a word
        if p in ("valid", "full"):
            ndim = _common_ndim(lengths, type(self).__name__) or 1
            k_eff = [dd * (kk - 1) + 1 for kk, dd in zip(_broadcast(k, ndim), _broadcast(d, ndim))]
            pad = 0 if p == "valid" else 1
            object.__setattr__(self, "padding", tuple((pad * (ke - 1),) * 2 for ke in k_eff))
        return lengths

    def _set_ndim(self, lengths: dict[str, int]) -> None:
        ndim = _common_ndim(lengths, type(self).__name__)
        # a scalar parameter broadcasts: write it out once ndim is known
        if ndim is not None:
            for f in self._axis_fields:
                value = getattr(self, f)
                if not isinstance(value, str):
                    object.__setattr__(self, f, _broadcast(value, ndim))
        object.__setattr__(self, "ndim", ndim)

    def _window_spec(self, kind: str, stride_default: Ints | None = None) -> str:
        out = kind + _fmt_axes(self.kernel_size)
        default = stride_default if stride_default is not None else (1,) * len(self.stride)
        if tuple(self.stride) != tuple(_broadcast(default, len(self.stride))):
            out += "s" + _fmt_axes(self.stride)
        if isinstance(self.padding, str) or any(b or a for b, a in self.padding):
            out += "p" + _fmt_padding(self.padding)
        if any(d != 1 for d in self.dilation):
            out += "d" + _fmt_axes(self.dilation)
        return out

    def _window_repr(self, stride_default: Ints | None = None) -> list[str]:
        args = [_repr_axes(self.kernel_size, self.ndim)]
        default = stride_default if stride_default is not None else (1,)
        if tuple(self.stride) != tuple(_broadcast(default, len(self.stride))):
            args.append(f"stride={_repr_axes(self.stride, self.ndim)}")
        if isinstance(self.padding, str) or any(b or a for b, a in self.padding):
            args.append(f"padding={_repr_padding(self.padding, self.ndim)}")
        if any(d != 1 for d in self.dilation):
            args.append(f"dilation={_repr_axes(self.dilation, self.ndim)}")
        return args

    @property
    def effective_kernel_size(self) -> Ints:
        """``dilation * (kernel_size - 1) + 1`` per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))


# --------------------------------------------------------------------------- layers
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
        Only used for parameter counts; routes collapse channels.
    bias : bool
        Whether the layer has a bias (parameter counts only).

    Examples
    --------
    >>> Conv(3, padding=1)
    Conv(3, padding=1)
    >>> Conv((3, 5), stride=2).kernel_size
    (3, 5)
    """

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
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(
                f"`padding_mode` must be one of {', '.join(PADDING_MODES)}; "
                f"got {self.padding_mode!r}"
            )
        cin, cout, g = _check_channels("Conv", self.in_channels, self.out_channels, self.groups)
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "out_channels", cout)
        object.__setattr__(self, "groups", g)
        self._set_ndim(lengths)

    def spec(self) -> str:
        out = self._window_spec("conv")
        if self.padding_mode != "zeros":
            out += ":" + self.padding_mode
        return out

    def _repr_args(self) -> list[str]:
        args = self._window_repr()
        if self.padding_mode != "zeros":
            args.append(f"padding_mode={self.padding_mode!r}")
        return args + _weights_repr(self)


@dataclass(frozen=True, repr=False)
class LocallyConnected(_Windowed):
    """Locally connected layer: the topology of :class:`Conv` with unshared weights.

    Routes are those of a zero-padded convolution; only the parameter count differs
    (one weight set per output position).

    >>> LocallyConnected(5)
    LocallyConnected(5)
    """

    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    in_channels: int | None = field(default=None, kw_only=True)
    out_channels: int | None = field(default=None, kw_only=True)
    bias: bool = field(default=True, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    padding_mode: ClassVar[str] = "zeros"
    groups: ClassVar[int] = 1

    def __post_init__(self) -> None:
        lengths = self._normalise_window()
        cin, cout, _ = _check_channels("LocallyConnected", self.in_channels, self.out_channels, 1)
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "out_channels", cout)
        self._set_ndim(lengths)

    def spec(self) -> str:
        return self._window_spec("lc")

    def _repr_args(self) -> list[str]:
        return self._window_repr() + _weights_repr(self)


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

    kernel_size: Any
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    kind: str = "max"
    ceil_mode: bool = False
    norm_type: float = field(default=2.0, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    padding_mode: ClassVar[str] = "zeros"

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


@dataclass(frozen=True, repr=False)
class ConvTranspose(Layer):
    """Transposed convolution (torch's definition).

    Input unit ``i`` and tap ``t`` write output ``i*stride + t*dilation - pad_before``; the
    output has ``(n - 1)*stride - pad_before - pad_after + dilation*(k - 1) + output_padding + 1``
    units. ``padding`` crops the output (an int crops both ends, as in torch).

    >>> ConvTranspose(4, 2, 1)
    ConvTranspose(4, stride=2, padding=1)
    """

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

    def __post_init__(self) -> None:
        lengths: dict[str, int] = {}
        for f, minimum in (
            ("kernel_size", 1),
            ("stride", 1),
            ("output_padding", 0),
            ("dilation", 1),
        ):
            values, scalar = _ints(getattr(self, f), f, minimum)
            object.__setattr__(self, f, values)
            if not scalar:
                lengths[f] = len(values)
        if isinstance(self.padding, str):
            raise ValueError(
                f"ConvTranspose `padding` must be an int or a tuple (it crops the output); "
                f"got {self.padding!r}"
            )
        p, scalar = _padding(self.padding)
        object.__setattr__(self, "padding", p)
        if not scalar:
            lengths["padding"] = len(p)
        ndim = _common_ndim(lengths, "ConvTranspose")
        if ndim is not None:
            for f in self._axis_fields:
                object.__setattr__(self, f, _broadcast(getattr(self, f), ndim))
        for op, s, d in zip(
            _broadcast(self.output_padding, ndim or 1),
            _broadcast(self.stride, ndim or 1),
            _broadcast(self.dilation, ndim or 1),
        ):
            if op >= max(s, d):
                raise ValueError(
                    f"ConvTranspose `output_padding` ({op}) must be smaller than "
                    f"stride or dilation ({max(s, d)})"
                )
        cin, cout, g = _check_channels(
            "ConvTranspose", self.in_channels, self.out_channels, self.groups
        )
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "out_channels", cout)
        object.__setattr__(self, "groups", g)
        object.__setattr__(self, "ndim", ndim)

    padding_mode: ClassVar[str] = "zeros"

    @property
    def effective_kernel_size(self) -> Ints:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    def spec(self) -> str:
        out = "tconv" + _fmt_axes(self.kernel_size)
        if any(s != 1 for s in self.stride):
            out += "s" + _fmt_axes(self.stride)
        if any(b or a for b, a in self.padding):  # type: ignore[union-attr]
            out += "p" + _fmt_padding(self.padding)
        if any(o for o in self.output_padding):
            out += "o" + _fmt_axes(self.output_padding)
        if any(d != 1 for d in self.dilation):
            out += "d" + _fmt_axes(self.dilation)
        return out

    def _repr_args(self) -> list[str]:
        args = [_repr_axes(self.kernel_size, self.ndim)]
        if any(s != 1 for s in self.stride):
            args.append(f"stride={_repr_axes(self.stride, self.ndim)}")
        if any(b or a for b, a in self.padding):  # type: ignore[union-attr]
            args.append(f"padding={_repr_padding(self.padding, self.ndim)}")
        if any(self.output_padding):
            args.append(f"output_padding={_repr_axes(self.output_padding, self.ndim)}")
        if any(d != 1 for d in self.dilation):
            args.append(f"dilation={_repr_axes(self.dilation, self.ndim)}")
        return args + _weights_repr(self)


def _positive_number(value: Any, what: str) -> int | float:
    if isinstance(value, bool) or (
        not isinstance(value, (int, float)) and not hasattr(value, "__index__")
    ):
        raise TypeError(f"`{what}` must be a positive number, got {value!r}")
    if hasattr(value, "__index__"):
        value = operator.index(value)
    elif float(value).is_integer():
        value = int(value)
    if not (value > 0) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"`{what}` must be a positive number, got {value!r}")
    return value


@dataclass(frozen=True, repr=False)
class Upsample(Layer):
    """Nearest-neighbour upsampling (torch ``nn.Upsample(mode="nearest")``).

    Output unit ``j`` reads input ``min(floor(j / scale_factor), n - 1)``; the output has
    ``floor(n * scale_factor)`` units.

    >>> Upsample(2)
    Upsample(2)
    """

    scale_factor: Any
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    _axis_fields = ("scale_factor",)

    def __post_init__(self) -> None:
        if isinstance(self.scale_factor, (tuple, list)):
            if not self.scale_factor:
                raise ValueError("`scale_factor` must not be empty")
            values = tuple(_positive_number(v, "scale_factor") for v in self.scale_factor)
            ndim: int | None = len(values)
        else:
            values = (_positive_number(self.scale_factor, "scale_factor"),)
            ndim = None
        object.__setattr__(self, "scale_factor", values)
        object.__setattr__(self, "ndim", ndim)

    def spec(self) -> str:
        return "up" + _fmt_axes(self.scale_factor)

    def _repr_args(self) -> list[str]:
        return [_repr_axes(self.scale_factor, self.ndim)]


@dataclass(frozen=True, repr=False)
class Dense(Layer):
    """Fully connected layer: every input unit (all positions, all channels) reaches every
    output unit. Its output is a 1-D map of ``out_features`` units. ``in_channels`` (channels
    of the input map) is only needed for parameter counts when the layer comes first.

    >>> Dense(10)
    Dense(10)
    """

    out_features: int
    in_channels: int | None = field(default=None, kw_only=True)
    bias: bool = field(default=True, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_features", _ints(self.out_features, "out_features", 1)[0][0])
        cin, _, _ = _check_channels("Dense", self.in_channels, None, 1)
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "ndim", None)

    def _expand(self, ndim: int) -> Layer:
        return self

    def spec(self) -> str:
        return f"fc{self.out_features}"

    def _repr_args(self) -> list[str]:
        return [str(self.out_features), *_weights_repr(self)]


@dataclass(frozen=True, repr=False)
class Residual(Layer):
    """``y = body(x) + shortcut(x)``; ``shortcut=None`` is the identity.

    Routes through the block are routes through the body plus routes through the shortcut.

    >>> Residual([Conv(3, padding=1), Conv(3, padding=1)]).spec()
    'res(conv3p1*2)'
    """

    body: Any
    shortcut: Any = None
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        body = _as_layers(self.body, "body")
        if not body:
            raise ValueError("Residual `body` must contain at least one layer")
        shortcut = None if self.shortcut is None else _as_layers(self.shortcut, "shortcut")
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "shortcut", shortcut or None)
        object.__setattr__(self, "ndim", _sequence_ndim(body + (shortcut or ()), "Residual"))

    @property
    def branches(self) -> tuple[tuple[Layer, ...], ...]:
        """``(body, shortcut)``; an identity shortcut is the empty tuple."""
        return (self.body, self.shortcut or ())

    def _expand(self, ndim: int) -> Layer:
        Layer._expand(self, ndim)  # checks a fixed ndim
        return replace(
            self,
            body=tuple(layer.expand(ndim) for layer in self.body),
            shortcut=None
            if self.shortcut is None
            else tuple(layer.expand(ndim) for layer in self.shortcut),
        )

    def spec(self) -> str:
        inner = _sequence_spec(self.body)
        if self.shortcut:
            inner += "|" + _sequence_spec(self.shortcut)
        return f"res({inner})"

    def _repr_args(self) -> list[str]:
        args = [repr(list(self.body))]
        if self.shortcut:
            args.append(f"shortcut={list(self.shortcut)!r}")
        return args


@dataclass(frozen=True, repr=False, init=False)
class Concat(Layer):
    """Channel concatenation of branches applied to the same input.

    Channels are collapsed, so routes through the block are the sum over branches. Every
    branch must produce the same spatial shape. An empty branch is the identity.

    >>> Concat([Conv(1)], [Conv(3, padding=1)]).spec()
    'cat(conv1|conv3p1)'
    """

    branches: tuple[tuple[Layer, ...], ...]
    name: str | None
    ndim: int | None

    def __init__(self, *branches: Any, name: str | None = None) -> None:
        if not branches:
            raise ValueError("Concat needs at least one branch")
        normalised = tuple(
            () if b is None else _as_layers(b, f"branch {i + 1}") for i, b in enumerate(branches)
        )
        object.__setattr__(self, "branches", normalised)
        object.__setattr__(self, "name", name)
        object.__setattr__(
            self, "ndim", _sequence_ndim([x for b in normalised for x in b], "Concat")
        )

    def _expand(self, ndim: int) -> Layer:
        Layer._expand(self, ndim)
        return Concat(*(tuple(x.expand(ndim) for x in b) for b in self.branches), name=self.name)

    def spec(self) -> str:
        return "cat(" + "|".join(_sequence_spec(b) for b in self.branches) + ")"

    def _repr_args(self) -> list[str]:
        return [repr(list(b)) for b in self.branches]


@lru_cache(maxsize=4096)
def _expand_cached(layer: Layer, ndim: int) -> Layer:
    # layers are hashable values, so a stack of identical layers expands once
    return layer._expand(ndim)


# --------------------------------------------------------------------------- network
@dataclass(frozen=True, repr=False)
class Network:
    """A sequence of layers (residual and concat blocks nest further sequences).

    Parameters
    ----------
    layers : layer or sequence of layers
        Nested networks are flattened.
    name : str, optional

    Examples
    --------
    >>> net = Network([Conv(3, padding=1)] * 2 + [Pool(2)], name="tiny")
    >>> net.spec()
    'conv3p1*2,maxpool2'
    >>> len(net)
    3
    """

    layers: Any
    name: str | None = None
    ndim: int | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        layers = _as_layers(self.layers, "layers")
        if not layers:
            raise ValueError("a Network needs at least one layer")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "ndim", _sequence_ndim(layers, "Network"))

    def expand(self, ndim: int) -> Network:
        """This network with every layer written out for ``ndim`` spatial axes."""
        if self.ndim is not None and self.ndim != ndim:
            raise ValueError(
                f"network {self.display_name!r} is {self.ndim}-D but the input has "
                f"{ndim} spatial axes"
            )
        return Network(tuple(layer.expand(ndim) for layer in self.layers), name=self.name)

    def spec(self) -> str:
        """The compact spec string (channels and names are not part of the grammar)."""
        return _sequence_spec(self.layers)

    @property
    def display_name(self) -> str:
        return self.name or self.spec()

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]  # type: ignore[no-any-return]

    def __add__(self, other: Any) -> Network:
        return Network(self.layers + _as_layers(other, "other"))

    def __str__(self) -> str:
        return self.spec()

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"Network({self.spec()!r}{name})"


def as_network(obj: Any, what: str = "net") -> Network:
    """Accept a Network, a layer, a sequence of layers or a compact spec string."""
    if isinstance(obj, Network):
        return obj
    if isinstance(obj, str):
        from ._parse import parse

        return parse(obj)
    if isinstance(obj, Layer) or isinstance(obj, (list, tuple)):
        return Network(obj)
    raise TypeError(
        f"`{what}` must be a Network, a layer, a sequence of layers or a spec string; "
        f"got {type(obj).__name__}"
    )


def layer_fields(layer: Layer) -> dict[str, Any]:
    """The constructor arguments of a layer (used by the spec-file writer)."""
    if isinstance(layer, Concat):
        return {"branches": layer.branches, "name": layer.name}
    return {f.name: getattr(layer, f.name) for f in fields(layer) if f.init}  # type: ignore[arg-type]
