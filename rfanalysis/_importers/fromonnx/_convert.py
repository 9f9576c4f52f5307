"""The loop over an ONNX graph: fold what does not depend on the input, convert the rest
operator by operator (:mod:`._registry`), and cut the network at the analysed tensor."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._graph import Network
from ..._plan import normalise_input_shape, plan
from ..._suggest import did_you_mean
from ..errors import ConversionError
from ..units import pruned, varying_axes
from . import _layout, _pointwise, _products, _reduce, _resize, _windows  # noqa: F401
from ._registry import RULES, Ctx, shape_of
from ._units import Converter, Graph, Opaque, Value, canonical_units

#: operators that first fix a map's layout (channels at axis 1 of their input)
_FIRST_LAYOUT = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool",
                 "GlobalAveragePool", "GlobalMaxPool", "InstanceNormalization")  # fmt: skip
#: operators a map passes on the way to the first of those, axes unchanged
_PASS = (
    *_pointwise.UNARY, *_pointwise.GATES, *_pointwise.NARY, "Identity", "Cast", "Dropout",
    "Pad", "Slice",
)  # fmt: skip


@dataclass
class Imported:
    """A converted graph: the network, the analysed tensor and its grid axes, the input."""

    net: Network
    proto: Any
    input_name: str
    input_shape: tuple[int, ...]  # the input tensor's full shape
    input_axes: tuple[int, ...]  # its spatial axes
    output: str
    output_shape: tuple[int, ...]
    output_axes: tuple[int, ...]
    elem_type: int


def convert(onnx: Any, proto: Any, input_shape: Any, output: str | None, context: str,
            name: str) -> Imported:  # fmt: skip
    if proto.functions:
        proto = onnx.inliner.inline_local_functions(proto)
    graph = proto.graph
    opsets = {o.domain or "": o.version for o in proto.opset_import}
    consts: dict[str, Any] = {
        t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer
    }  # fmt: skip
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise ConversionError(
            f"from_onnx: {name} must take one input tensor (an image), got {len(inputs)} ({names})"
        )
    inp = inputs[0]
    tensor_type = inp.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    symbols = [d.dim_param or "?" for d in tensor_type.shape.dim]
    rank = len(dims)
    if rank < 3:
        raise ConversionError(
            f"from_onnx: input {inp.name!r} of {name} has {rank} axes; expected (batch, "
            "channels, *spatial) or (batch, *spatial, channels)"
        )
    cax = _channel_axis(graph, inp.name, rank, dims)
    spatial = tuple(a for a in range(1, rank) if a != cax)
    fixed = [dims[a] for a in spatial]
    if input_shape is None:
        if any(n is None for n in fixed):
            free = ", ".join(symbols[a] for a in spatial if dims[a] is None)
            raise ConversionError(
                f"from_onnx: input {inp.name!r} of {name} has symbolic spatial sizes ({free}); "
                "pass input_shape="
            )
        shape = tuple(int(n) for n in fixed if n is not None)
    else:
        shape = normalise_input_shape(input_shape, len(spatial))
        if len(shape) != len(spatial):
            raise ValueError(
                f"`input_shape` must have {len(spatial)} sizes for input {inp.name!r} of "
                f"{name}, got {input_shape!r}"
            )
        for a, want in zip(spatial, shape):
            if dims[a] is not None and dims[a] != want:
                raise ConversionError(
                    f"from_onnx: input {inp.name!r} of {name} has fixed spatial size "
                    f"{tuple(fixed)}; input_shape {shape} differs (export it with dynamic axes "
                    "or leave input_shape out)"
                )
    cin = dims[cax]
    if cin is None:
        raise ConversionError(
            f"from_onnx: the channel axis ({cax}) of input {inp.name!r} of {name} is symbolic"
        )
    full = [1] * rank
    full[0] = dims[0] or 1
    full[cax] = cin
    for a, n in zip(spatial, shape):
        full[a] = n
    full_shape = tuple(full)

    producers: dict[str, int] = {}
    for k, node in enumerate(graph.node):
        for o in node.output:
            producers[o] = k
    outputs = [o.name for o in graph.output]
    if output is None:
        if len(outputs) != 1:
            raise ConversionError(
                f"from_onnx: {name} has {len(outputs)} outputs ({', '.join(map(repr, outputs))}); "
                "pass output= with the one to analyse"
            )
        output = outputs[0]
    elif not isinstance(output, str):
        raise TypeError(f"`output` must be a tensor name, got {output!r}")
    elif output not in producers:
        raise ConversionError(
            f"from_onnx: {name} has no tensor {output!r}{did_you_mean(output, list(producers))}"
        )
    needed = _ancestors(graph, producers, output)

    g = Graph(input_grid=shape, input_channels=cin)
    conv = Converter(g)
    env: dict[str, Any] = dict(consts)
    env[""] = None
    env[inp.name] = Value(0, canonical_units(full_shape, spatial))
    evaluate = _Evaluator(opsets)
    for k, node in enumerate(graph.node):
        if k not in needed:
            continue
        label = node.name or f"{node.op_type}_{k}"
        ins = []
        for i in node.input:
            if i not in env:
                raise ConversionError(
                    f"from_onnx: node {label!r} ({node.op_type}) reads {i!r}, which no node "
                    "computes"
                )
            ins.append(env[i])
        outs = _convert_node(onnx, node, label, ins, conv, evaluate)
        for o, v in zip(node.output, outs):
            env[o] = v
    value = env.get(output)
    if not isinstance(value, Value):
        raise ConversionError(
            f"from_onnx: tensor {output!r} of {name} does not depend on its input"
        )
    out_node, axes = _output_node(conv, value, spatial, name)
    nodes, _ = pruned(g.nodes, out_node)
    if len(nodes) < 2:
        raise ConversionError(
            f"from_onnx: {name} has no layer that changes routes (it is the identity)"
        )
    net_name = name if output in outputs and len(outputs) == 1 else f"{name}:{output}"
    net = Network.from_nodes(nodes, name=net_name, ndim=len(shape))
    if context == "local":
        net = net.with_context("local")
    grid = tuple(value.shape[a] for a in axes) or (1,)
    got = plan(net, shape).output_shape
    if got != grid:  # pragma: no cover - the converter tracks grids as the planner does
        raise ConversionError(
            f"from_onnx: the network gives output {got} but tensor {output!r} has grid {grid}; "
            "please report this"
        )
    return Imported(net, proto, inp.name, full_shape, spatial, output, value.shape, axes,
                    tensor_type.elem_type)  # fmt: skip


class _Evaluator:
    """Runs one node with ONNX's reference kernels (numpy), at the model's opsets."""

    def __init__(self, opsets: dict[str, int]) -> None:
        self.opsets = opsets

    def __call__(self, node: Any, feeds: list[Any]) -> list[np.ndarray]:
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(node, opsets=self.opsets)
        named = {n: f for n, f in zip(node.input, feeds) if n and f is not None}
        return [np.asarray(o) for o in ev.run(None, named)]


def _convert_node(onnx, node, label, ins, conv, evaluate) -> list[Any]:
    op = node.op_type
    dynamic = [x for x in ins if isinstance(x, (Value, Opaque))]
    if op in ("Shape", "Size") and dynamic:
        shape = shape_of(ins[0])
        if op == "Size":
            return [np.array(int(np.prod(shape)), dtype=np.int64)]
        start = _attr(onnx, node, "start", 0)
        end = _attr(onnx, node, "end", None)
        return [np.array(shape[start:end], dtype=np.int64)]
    if not dynamic:  # a constant (a shape computation, a weight transform): folded
        try:
            return evaluate(node, ins)
        except Exception as exc:
            raise ConversionError(
                f"from_onnx: cannot fold constant node {label!r} ({op}): "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    cx = Ctx(node, label, ins, attrs, conv, evaluate)
    fn = RULES.get(op) if node.domain in ("", "ai.onnx") else None
    if not any(isinstance(x, Value) for x in ins):
        # only results without gradient in: a constant of unknown value, of its shape
        from ._pointwise import no_gradient

        return no_gradient(cx)
    if fn is None:
        domain = f" (domain {node.domain!r})" if node.domain not in ("", "ai.onnx") else ""
        raise ConversionError(
            f"from_onnx: no rule for operator {op}{domain} at node {label!r}, on the path from "
            "the input to the analysed output"
        )
    outs = fn(cx)
    return list(outs) + [None] * (len(node.output) - len(outs))


def _attr(onnx, node, key, default):
    for a in node.attribute:
        if a.name == key:
            return onnx.helper.get_attribute_value(a)
    return default


def _ancestors(graph: Any, producers: dict[str, int], output: str) -> set[int]:
    need: set[int] = set()
    stack = [output]
    seen = set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        k = producers.get(t)
        if k is None or k in need:
            continue
        need.add(k)
        stack.extend(i for i in graph.node[k].input if i)
    return need


def _channel_axis(graph: Any, name: str, rank: int, dims: list) -> int:
    """The input's channel axis: where the data reaches the first convolution or pool (through
    transposes: Keras and TensorFlow exports are channels-last), else by the sizes."""
    users = defaultdict(list)
    for node in graph.node:
        for i in node.input:
            users[i].append(node)
    queue = [(name, tuple(range(rank)))]
    seen = set()
    while queue:
        t, perm = queue.pop(0)
        if t in seen:
            continue
        seen.add(t)
        for node in users[t]:
            op = node.op_type
            if op in _FIRST_LAYOUT and node.input[0] == t:
                return int(perm[1])
            if op == "Transpose":
                p = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                p = p or list(range(rank))[::-1]
                if len(p) == rank:
                    queue.append((node.output[0], tuple(perm[i] for i in p)))
            elif op in _PASS:
                queue.append((node.output[0], perm))
    first, last = dims[1], dims[-1]
    if last is not None and last <= 4 and (first is None or first > 4):
        return rank - 1
    return 1


def _output_node(conv: Converter, value: Value, spatial: tuple[int, ...], name: str):
    """The node whose units are the output's, and the output's grid axes."""
    units = value.units
    if units.ndim == 2:
        axes: tuple[int, ...] = (1,)
    else:
        moving = varying_axes([units])
        layout = spatial if units.ndim == len(spatial) + 2 else tuple(range(2, units.ndim))
        axes = layout if set(moving) <= set(layout) else moving
    node = conv.canonical(value, axes, f"{name} output") if axes else value.node
    return node, axes
