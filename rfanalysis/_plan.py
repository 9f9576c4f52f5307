"""Resolve a network against an input shape, once.

A :class:`Plan` mirrors the network's tree: one :class:`Step` per primitive layer (with its
input and output shapes, resolved padding, channel counts and per-axis operators) and one
:class:`Block` per residual or concat block. Every user error found while resolving names the
layer by its position (``layer 5.body.2``) and its spec. Plans are cached on the (hashable)
network and input shape, so repeated calls pay for resolution once.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from ._axis import AxisError, AxisOp, resolve_padding, transposed_op, upsample_op, window_op
from ._layers import (
    Concat,
    Conv,
    ConvTranspose,
    Dense,
    Layer,
    LocallyConnected,
    Network,
    Pool,
    Residual,
    Upsample,
    as_network,
)

T = TypeVar("T")

Shape = tuple[int, ...]

#: number of spatial axes an ``int`` input size stands for when the network does not fix it
DEFAULT_NDIM = 2


@dataclass(frozen=True, eq=False)
class Step:
    """A primitive layer resolved for its input."""

    layer: Layer
    path: str
    in_shape: Shape | None
    out_shape: Shape | None
    in_channels: int | None
    out_channels: int | None
    pads: tuple[tuple[int, int] | None, ...]  # resolved (before, after) per axis, None if unknown
    ops: tuple[AxisOp, ...] | None  # None for Dense or without an input shape

    @property
    def where(self) -> str:
        return f"layer {self.path} ({self.layer.label})"


@dataclass(frozen=True, eq=False)
class Block:
    """A residual or concat block: branches applied to the same input, outputs merged."""

    layer: Residual | Concat
    path: str
    in_shape: Shape | None
    out_shape: Shape | None
    in_channels: int | None
    out_channels: int | None
    branches: tuple[tuple[Node, ...], ...]
    branch_names: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"layer {self.path} ({self.layer.label})"


Node = Step | Block


@dataclass(frozen=True, eq=False)
class Plan:
    network: Network  # expanded to ndim
    ndim: int
    input_shape: Shape | None
    output_shape: Shape | None
    nodes: tuple[Node, ...]

    def steps(self) -> list[Step]:
        """Every primitive step, depth first, in data-flow order."""
        return leaves(self.nodes, Step)

    def largest_map(self) -> int:
        """Units in the largest map anywhere in the network (input included)."""
        sizes = [math.prod(self.input_shape or ())]
        sizes += [math.prod(s.out_shape or ()) for s in self.steps()]
        return max(sizes)


def leaves(nodes: tuple[Any, ...], kind: type[T]) -> list[T]:
    """The nodes of type ``kind`` in a tree of nodes and blocks (anything with ``branches``),
    depth first, in data-flow order."""
    out: list[T] = []

    def walk(level: tuple[Any, ...]) -> None:
        for node in level:
            if isinstance(node, kind):
                out.append(node)
            else:
                for branch in node.branches:
                    walk(branch)

    walk(nodes)
    return out


# --------------------------------------------------------------------------- input shapes
def normalise_input_shape(input_shape: Any, ndim: int | None) -> Shape:
    """An int is the size of every spatial axis (``ndim`` axes, or 2 when the network is
    ndim-free: images); a sequence gives one size per axis."""
    if isinstance(input_shape, (list, tuple)):
        if not input_shape:
            raise ValueError("`input_shape` must not be empty")
        shape = tuple(_positive(v) for v in input_shape)
    else:
        n = _positive(input_shape)
        shape = (n,) * (ndim or DEFAULT_NDIM)
    return shape


def _positive(v: Any) -> int:
    if isinstance(v, bool):
        raise TypeError(f"`input_shape` must contain integers, got {v!r}")
    try:
        n = operator.index(v)
    except TypeError:
        raise TypeError(f"`input_shape` must contain integers, got {v!r}") from None
    if n < 1:
        raise ValueError(f"`input_shape` sizes must be >= 1, got {v!r}")
    return n


# --------------------------------------------------------------------------- planning
def plan(net: Any, input_shape: Any = None) -> Plan:
    """Resolve ``net`` (anything :func:`as_network` accepts) for ``input_shape``."""
    network = as_network(net)
    if input_shape is None:
        return _plan_cached(network, None, network.ndim or DEFAULT_NDIM)
    shape = normalise_input_shape(input_shape, network.ndim)
    return _plan_cached(network, shape, len(shape))


@lru_cache(maxsize=256)
def _plan_cached(network: Network, shape: Shape | None, ndim: int) -> Plan:
    if network.ndim is not None and network.ndim != ndim:
        raise ValueError(
            f"network {network.display_name!r} is {network.ndim}-D but the input "
            f"{'x'.join(map(str, shape or ()))} has {ndim} spatial axes"
        )
    expanded = network.expand(ndim)
    channels = declared_in_channels(expanded.layers)
    nodes, out_shape, _ = _plan_sequence(expanded.layers, shape, channels, prefix="", dense=False)
    return Plan(expanded, ndim, shape, out_shape, nodes)


def declared_in_channels(layers: tuple[Layer, ...]) -> int | None:
    """The input channels a network declares: its first weighted layer's ``in_channels``, in
    data-flow order (branches depth first). Pools, upsampling and merges keep channels."""
    for layer in _flat(layers):
        if isinstance(layer, (Conv, LocallyConnected, ConvTranspose, Dense)):
            return layer.in_channels
    return None


def _flat(layers: tuple[Layer, ...]) -> Iterator[Layer]:
    for layer in layers:
        if isinstance(layer, Residual):
            yield from _flat(layer.body)
            yield from _flat(layer.shortcut or ())
        elif isinstance(layer, Concat):
            for branch in layer.branches:
                yield from _flat(branch)
        else:
            yield layer


def _plan_sequence(layers, shape, channels, prefix, dense):
    """Plan a sequence; ``dense`` tells whether a Dense layer came before (no spatial layer may
    follow one). Returns ``(nodes, out_shape, channels)``."""
    nodes: list[Node] = []
    for index, layer in enumerate(layers):
        path = f"{prefix}{index + 1}"
        if isinstance(layer, (Residual, Concat)):
            node = _plan_block(layer, path, shape, channels, dense)
        else:
            node = _plan_step(layer, path, shape, channels, dense)
            dense = dense or isinstance(layer, Dense)
        nodes.append(node)
        shape, channels = node.out_shape, node.out_channels
    return tuple(nodes), shape, channels


def _plan_block(layer, path, shape, channels, dense) -> Block:
    where = f"layer {path} ({layer.label})"
    branches = layer.branches
    names: tuple[str, ...] = (
        ("body", "shortcut")
        if isinstance(layer, Residual)
        else tuple(f"branch{b + 1}" for b in range(len(branches)))
    )
    planned, shapes, chans = [], [], []
    for name, branch in zip(names, branches):
        nodes, out, ch = _plan_sequence(branch, shape, channels, f"{path}.{name}.", dense)
        planned.append(nodes)
        shapes.append(out)
        chans.append(ch)
    if shape is not None and len(set(shapes)) > 1:
        desc = ", ".join(f"{n} {_fmt_shape(s)}" for n, s in zip(names, shapes))
        raise ValueError(
            f"{where}: branch outputs must have the same spatial shape to be merged; got {desc} "
            f"for input {_fmt_shape(shape)}"
        )
    if isinstance(layer, Residual):
        known = {c for c in chans if c is not None}
        if len(known) > 1:
            raise ValueError(
                f"{where}: body gives {chans[0]} channels but shortcut gives {chans[1]}; "
                "a residual add needs equal channel counts (use a projection shortcut)"
            )
        out_channels = chans[0] if chans[0] is not None else chans[1]
    else:
        out_channels = None if any(c is None for c in chans) else sum(chans)
    return Block(layer, path, shape, shapes[0], channels, out_channels, tuple(planned), names)


def _plan_step(layer, path, shape, channels, dense) -> Step:
    where = f"layer {path} ({layer.label})"
    if dense and not isinstance(layer, Dense):
        raise ValueError(
            f"{where}: a spatial layer cannot follow a dense layer (its output has no "
            "spatial layout)"
        )
    cin = getattr(layer, "in_channels", None)
    if cin is not None and channels is not None and cin != channels:
        raise ValueError(
            f"{where}: in_channels is {cin} but the previous layer gives {channels} channels"
        )
    cin = cin if cin is not None else channels
    if isinstance(layer, Dense):
        dense_shape = None if shape is None else (layer.out_features,)
        return Step(layer, path, shape, dense_shape, cin, 1, (), None)
    if isinstance(layer, (Pool, Upsample)):
        cout = cin
    else:
        cout = layer.out_channels
    ndim = layer.ndim
    try:
        if isinstance(layer, Upsample):
            pads: tuple = ((0, 0),) * ndim
            ops = None
            if shape is not None:
                ops = tuple(upsample_op(n, f) for n, f in zip(shape, layer.scale_factor))
        elif isinstance(layer, ConvTranspose):
            pads = tuple(layer.padding)
            ops = None
            if shape is not None:
                ops = tuple(
                    transposed_op(n, k, s, d, pb, pa, op)
                    for n, k, s, d, (pb, pa), op in zip(
                        shape,
                        layer.kernel_size,
                        layer.stride,
                        layer.dilation,
                        pads,
                        layer.output_padding,
                    )
                )
        else:  # Conv, LocallyConnected, Pool
            k_eff = layer.effective_kernel_size
            if isinstance(layer.padding, str):
                if layer.padding == "same" and any(s > 1 for s in layer.stride) and shape is None:
                    pads = tuple(
                        None if s > 1 else resolve_padding("same", 0, ke, 1)
                        for ke, s in zip(k_eff, layer.stride)
                    )
                else:
                    sizes = shape or (0,) * ndim
                    pads = tuple(
                        resolve_padding(layer.padding, n, ke, s)
                        for n, ke, s in zip(sizes, k_eff, layer.stride)
                    )
            else:
                pads = tuple(layer.padding)
            ops = None
            if shape is not None:
                ceil_mode = getattr(layer, "ceil_mode", False)
                ops = tuple(
                    window_op(n, k, s, d, pb, pa, layer.padding_mode, ceil_mode)
                    for n, k, s, d, (pb, pa) in zip(
                        shape, layer.kernel_size, layer.stride, layer.dilation, pads
                    )
                )
    except AxisError as exc:
        hint = (
            ""
            if shape is None or len(shape) == 1
            else f" (this layer's input is {_fmt_shape(shape)})"
        )
        raise ValueError(f"{where}: {exc}{hint}") from None
    out_shape: Shape | None = None if ops is None else tuple(op.n_out for op in ops)
    return Step(layer, path, shape, out_shape, cin, cout, pads, ops)


def _fmt_shape(shape: Shape | None) -> str:
    return "?" if shape is None else "x".join(str(n) for n in shape)
