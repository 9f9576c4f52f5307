"""Resolve a network against an input shape, once.

A :class:`Plan` is the network's graph as a topologically ordered tuple of :class:`Step`
(step 0 is the input): every node with its input indices, input and output shapes, channel
counts and the data its operation resolved (padding, per-axis operators). Routes, coverage,
geometry, blind spots, both influence backends and plotting consume this one list. Every user
error found while resolving names the node (``layer 5.body.2 (conv3s2p1)``). Plans are cached
on the (hashable) network and input shape.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Any

from ._graph import Network, Node, as_network
from ._ops.base import OpError, Shape, TooSmall, fmt_shape
from ._ops.merges import ShapeMismatch
from ._parse import parse

#: number of spatial axes an ``int`` input size stands for when the network does not fix it
DEFAULT_NDIM = 2


@dataclass(frozen=True, eq=False)
class Step:
    """One node of a planned network."""

    index: int
    layer: Any  # the operation; None for the input
    inputs: tuple[int, ...]
    path: str
    in_shapes: tuple[Shape | None, ...]
    out_shape: Shape | None
    in_channels: int | None  # channels of the (first) input, where known
    out_channels: int | None
    data: Any  # what the operation resolved (e.g. padding and per-axis operators)
    input_names: tuple[str, ...]  # for tables and notes: "body", "shortcut", node labels
    label: str  # the layer's label, or the label of the tree block it merges
    where: str  # "layer 5.body.2 (conv3s2p1)": how errors and tables name the step

    @property
    def in_shape(self) -> Shape | None:
        return self.in_shapes[0] if self.in_shapes else None


@dataclass(frozen=True, eq=False)
class Plan:
    network: Network  # expanded to ndim
    ndim: int
    input_shape: Shape | None
    steps: tuple[Step, ...]
    flat: bool = False  # the output has no spatial layout (a dense layer on the way)

    @property
    def output_shape(self) -> Shape | None:
        return self.steps[-1].out_shape

    @property
    def ops(self) -> tuple[Step, ...]:
        """Every step but the input, in data-flow order."""
        return self.steps[1:]

    @cached_property
    def consumers(self) -> tuple[tuple[int, ...], ...]:
        """For every step, the steps that read it (fan-out)."""
        out: list[list[int]] = [[] for _ in self.steps]
        for step in self.steps:
            for j in step.inputs:
                out[j].append(step.index)
        return tuple(tuple(c) for c in out)

    @property
    def is_chain(self) -> bool:
        """Every step reads the one before it and nothing else."""
        return all(s.inputs == (s.index - 1,) for s in self.ops)

    def largest_map(self) -> int:
        """Units in the largest map anywhere in the network (input included)."""
        return max(math.prod(s.out_shape or ()) for s in self.steps)

    def where(self, index: int) -> str:
        return self.steps[index].where


# --------------------------------------------------------------------------- input shapes
def normalise_input_shape(input_shape: Any, ndim: int | None) -> Shape:
    """An int is the size of every spatial axis (``ndim`` axes, or 2 when the network is
    ndim-free: images); a sequence gives one size per axis."""
    if isinstance(input_shape, (list, tuple)):
        if not input_shape:
            raise ValueError("`input_shape` must not be empty")
        shape = tuple(positive_size(v) for v in input_shape)
    else:
        n = positive_size(input_shape)
        shape = (n,) * (ndim or DEFAULT_NDIM)
    return shape


def positive_size(v: Any, what: str = "input_shape") -> int:
    """``v`` as a size of at least 1 (an integer, not a bool); ``what`` names the argument."""
    if isinstance(v, bool):
        raise TypeError(f"`{what}` must contain integers, got {v!r}")
    try:
        n = operator.index(v)
    except TypeError:
        raise TypeError(f"`{what}` must contain integers, got {v!r}") from None
    if n < 1:
        raise ValueError(f"`{what}` sizes must be >= 1, got {v!r}")
    return n


def network_of(obj: Any, what: str = "net") -> Network:
    """A Network, a layer, a sequence of layers or compact spec text as a :class:`Network`.

    The analyses take networks; the public functions turn every other model source (spec
    files, zoo names, torch modules, ONNX files, model references) into one first
    (:mod:`rfanalysis._sources`)."""
    if isinstance(obj, str):
        return parse(obj)
    try:
        return as_network(obj, what)
    except TypeError:
        raise TypeError(
            f"`{what}` must be a Network, a layer, a sequence of layers or a spec string; got "
            f"{type(obj).__name__}"
        ) from None


# --------------------------------------------------------------------------- planning
def plan(net: Any, input_shape: Any = None) -> Plan:
    """Resolve ``net`` (anything :func:`network_of` accepts) for ``input_shape``."""
    if isinstance(net, Plan):
        return net
    network = network_of(net)
    if input_shape is None:
        return _plan_cached(network, None, network.ndim or DEFAULT_NDIM)
    shape = normalise_input_shape(input_shape, network.ndim)
    try:
        return _plan_cached(network, shape, len(shape))
    except InputTooSmall as exc:
        smallest = smallest_input(network, shape)
        hint = (
            "" if smallest is None else f"; the smallest input that works is {fmt_shape(smallest)}"
        )
        raise ValueError(f"{exc}{hint}") from None


class InputTooSmall(ValueError):
    """A layer found its input too small (the message names the layer)."""


def axis_network(net: Network, axis: int) -> Network:
    """The 1-D network that acts along ``axis`` of ``net`` (expanded to its number of axes):
    every windowed layer acts on each axis separately."""
    nodes = tuple(
        n if n.layer is None else replace(n, layer=n.layer.on_axis(axis)) for n in net.nodes
    )
    return Network.from_nodes(nodes)


def smallest_input(network: Network, shape: Shape, limit: int = 1 << 30) -> Shape | None:
    """Per axis, the smallest size no layer finds too small (sizes only grow the maps of
    windows, upsampling and transposed convolutions, so a bisection finds it), where the
    whole network then plans at those sizes; else None."""
    ndim = len(shape)
    expanded = network.expand(ndim)

    def fits(net1: Network, n: int) -> bool:
        try:
            _plan_cached(net1, (n,), 1)
        except InputTooSmall:
            return False
        except ValueError:  # another problem: not one of size
            return True
        return True

    out = []
    for axis, n in enumerate(shape):
        try:
            net1 = axis_network(expanded, axis)
        except (TypeError, ValueError, NotImplementedError):  # not separable by axis
            return None
        if fits(net1, n):
            out.append(n)
            continue
        lo, hi = n, 2 * n
        while not fits(net1, hi):
            lo, hi = hi, 2 * hi
            if hi > limit:
                return None
        while hi - lo > 1:  # lo fails, hi fits
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(net1, mid) else (mid, hi)
        out.append(hi)
    smallest = tuple(out)
    try:
        _plan_cached(network, smallest, ndim)
    except ValueError:
        return None
    return smallest


@lru_cache(maxsize=256)
def _plan_cached(network: Network, shape: Shape | None, ndim: int) -> Plan:
    if network.ndim is not None and network.ndim != ndim:
        raise ValueError(
            f"network {network.display_name!r} is {network.ndim}-D but the input "
            f"{fmt_shape(shape)} has {ndim} spatial axes"
        )
    expanded = network.expand(ndim)
    nodes = expanded.nodes
    channels = infer_channels(nodes, None, None)
    steps: list[Step] = [
        Step(0, None, (), "input", (), shape, None, channels[0], None, (), "input", "the input")
    ]
    flat = [False]  # the map has no spatial layout (after a dense layer)
    for i, node in enumerate(nodes[1:], start=1):
        layer: Any = node.layer
        after_dense = any(flat[j] for j in node.inputs)
        if after_dense and layer.needs_space:
            raise ValueError(
                f"{node.where}: a spatial layer cannot follow a dense layer (its output has "
                "no spatial layout)"
            )
        flat.append(after_dense or layer.flattens)
        steps.append(_step(i, node, nodes, steps, channels))
    return Plan(expanded, ndim, shape, tuple(steps), flat[-1])


def _input_names(node: Node, nodes: tuple[Node, ...]) -> tuple[str, ...]:
    """How tables name a node's inputs: a tree block's branch names, else the input nodes'
    labels."""
    if node.input_names:
        return node.input_names
    return tuple(nodes[j].label for j in node.inputs)


def _step(i: int, node: Node, nodes: tuple[Node, ...], steps: list[Step], channels) -> Step:
    layer: Any = node.layer
    where = node.where
    in_shapes = tuple(steps[j].out_shape for j in node.inputs)
    names = _input_names(node, nodes)
    try:
        out_shape, data = layer.resolve(in_shapes)
    except ShapeMismatch as exc:
        desc = ", ".join(f"{n} {fmt_shape(s)}" for n, s in zip(names, exc.shapes))
        inp = steps[0].out_shape
        raise ValueError(
            f"{where}: branch outputs {exc.rule}; got {desc}"
            + (f" for input {fmt_shape(inp)}" if inp is not None else "")
            + exc.hint
        ) from None
    except OpError as exc:
        shape = in_shapes[0] if in_shapes else None
        hint = (
            ""
            if shape is None or len(shape) <= 1
            else f" (this layer's input is {fmt_shape(shape)})"
        )
        error = InputTooSmall if isinstance(exc, TooSmall) else ValueError
        raise error(f"{where}: {exc}{hint}") from None
    cin = channels[node.inputs[0]] if node.inputs else None
    declared = getattr(layer, "in_channels", None)
    return Step(
        i,
        layer,
        node.inputs,
        node.path,
        in_shapes,
        out_shape,
        cin if cin is not None else declared,
        channels[i],
        data,
        names,
        node.label,
        where,
    )


# --------------------------------------------------------------------------- channels
def declared_in_channels(nodes: tuple[Node, ...]) -> int | None:
    """The input channels a network declares: its first weighted layer's ``in_channels``, in
    data-flow order (branches depth first). Pools, upsampling and merges keep channels."""
    for node in nodes[1:]:
        if node.layer is not None and node.layer.weighted:
            return node.layer.in_channels  # type: ignore[no-any-return]
    return None


def infer_channels(
    nodes: tuple[Node, ...], in_channels: int | None, default: int | None
) -> tuple[int | None, ...]:
    """Output channels of every node.

    The input has ``in_channels`` (default: what the network declares). A weighted layer
    outputs its declared ``out_channels``, else a free count; an add or a product makes its
    operands and its output agree (a product's 1-channel operand broadcasts), so that the last
    weighted layer of a residual body beside an identity shortcut takes the block's input
    channels; a concat outputs the sum of its operands; a dense layer one channel of features.
    Free counts take ``default`` (None: unknown), earliest first, once everything determined
    by declarations is known.
    """
    n = len(nodes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    value: dict[int, int] = {}  # root -> channels
    source: dict[int, int] = {}  # root -> the node that fixed it (for errors)

    def bind(i: int, c: int | None) -> None:
        if c is None:
            return
        r = find(i)
        if r in value and value[r] != c:
            raise ValueError(_conflict(nodes, source[r], value[r], i, c))
        value.setdefault(r, c)
        source.setdefault(r, i)

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri == rj:
            return
        if ri in value and rj in value and value[ri] != value[rj]:
            raise ValueError(_conflict(nodes, source[ri], value[ri], source[rj], value[rj]))
        parent[rj] = ri
        if rj in value:
            value.setdefault(ri, value[rj])
            source.setdefault(ri, source[rj])

    declared_in = declared_in_channels(nodes)
    if in_channels is not None and declared_in is not None and in_channels != declared_in:
        raise ValueError(
            f"`in_channels` is {in_channels} but the network's first weighted layer takes "
            f"{declared_in}"
        )
    bind(0, in_channels if in_channels is not None else declared_in)
    sums: list[int] = []
    gates: list[int] = []
    for i, node in enumerate(nodes[1:], start=1):
        layer: Any = node.layer
        rule = layer.channel_rule
        if rule == "keep":
            union(i, node.inputs[0])
        elif rule == "weighted":
            bind(i, getattr(layer, "out_channels", None))
        elif rule == "one":
            bind(i, 1)
        elif rule == "unify":
            for j in node.inputs:
                union(i, j)
        elif rule == "gate":
            gates.append(i)
        elif rule == "sum":
            sums.append(i)
        else:  # pragma: no cover - a registration error
            raise ValueError(f"{node.where}: unknown channel rule {rule!r}")
    for i in gates:  # a product: operands agree unless declared single-channel (broadcast)
        for j in nodes[i].inputs:
            if value.get(find(j)) != 1:
                union(i, j)

    def settle() -> None:
        changed = True
        while changed:
            changed = False
            for i in sums:
                if find(i) in value:
                    continue
                parts = [value.get(find(j)) for j in nodes[i].inputs]
                if all(p is not None for p in parts):
                    bind(i, sum(p for p in parts if p is not None))
                    changed = True

    settle()
    if default is not None:
        for i in range(n):
            if find(i) not in value and i not in sums:
                bind(i, default)
                settle()
    out = tuple(value.get(find(i)) for i in range(n))
    for node in nodes[1:]:
        declared = getattr(node.layer, "in_channels", None)
        got = out[node.inputs[0]]
        if declared is not None and got is not None and declared != got:
            raise ValueError(
                f"{node.where}: in_channels is {declared} but the previous layer gives {got} "
                "channels"
            )
        if getattr(node.layer, "channel_rule", "") == "gate":
            counts = {c for j in node.inputs if (c := out[j]) is not None} - {1}
            if len(counts) > 1:
                raise ValueError(
                    f"{node.where}: operands have {sorted(counts)} channels; a product needs "
                    "equal channel counts (or 1, which broadcasts)"
                )
    return out


def _conflict(nodes: tuple[Node, ...], i: int, ci: int, j: int, cj: int) -> str:
    a, b = sorted((i, j))
    ca, cb = (ci, cj) if a == i else (cj, ci)
    return (
        f"{nodes[b].where} needs {cb} channels where {nodes[a].where} gives {ca}; an add, a "
        "product or a layer that keeps channels needs equal channel counts (give the last "
        "weighted layer of a branch `out_channels`, or use a projection)"
    )
