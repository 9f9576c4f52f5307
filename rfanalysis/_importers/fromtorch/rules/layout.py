"""Layout: operations that only move elements (permute, view, reshape, flatten, slicing,
chunk, split, pad, roll, repeat, expand, pixel and channel shuffles, concatenation, stack).
They run on the units themselves: where every element goes is where its unit goes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...._ops import Cat
from ...units import Read, varying_axes
from ..units import Unmapped, Value, as_units, canonical_units, shifted_units
from .base import Call, bind, function_rule, module_rule, op_name

#: methods whose second tensor is only a shape (or dtype) to follow
_SHAPE_ONLY = ("expand_as", "view_as", "reshape_as")
#: functions and methods that only move elements (applied to the units)
LAYOUT = (
    "view reshape flatten unflatten permute transpose t movedim moveaxis swapaxes "
    "squeeze unsqueeze expand expand_as repeat tile roll flip chunk split tensor_split "
    "unbind narrow select getitem pixel_shuffle pixel_unshuffle channel_shuffle "
    "native_channel_shuffle view_as reshape_as unfold gather index_select take_along_dim "
    "diagonal rot90 repeat_interleave split_with_sizes contiguous"
).split()
#: functions of torchvision that only move elements (fx leaves there)
LAYOUT_FUNCTIONS = ("_patch_merging_pad",)
#: torch.nn modules that only move elements: run on the units themselves
LAYOUT_MODULES = (
    "Flatten Unflatten PixelShuffle PixelUnshuffle ChannelShuffle ReflectionPad1d "
    "ReflectionPad2d ReflectionPad3d ReplicationPad1d ReplicationPad2d ReplicationPad3d "
    "CircularPad1d CircularPad2d CircularPad3d"
).split()
CONSTANT_PAD_MODULES = "ZeroPad1d ZeroPad2d ZeroPad3d ConstantPad1d ConstantPad2d ConstantPad3d"


@module_rule(*LAYOUT_MODULES)
def _layout_module(c: Call) -> Any:
    return Value(c.value.node, c.module(c.value.units))


@module_rule(*CONSTANT_PAD_MODULES.split())
def _constant_pad_module(c: Call) -> Any:
    m, value = c.module, c.value
    pad = m.padding if isinstance(m.padding, (tuple, list)) else (m.padding,) * (2 * c.nd)
    return Value(value.node, c.F.pad(value.units, tuple(pad), value=-1.0))


@function_rule(*LAYOUT, *LAYOUT_FUNCTIONS, "__get__")
def _layout_function(c: Call) -> Any:
    return layout(c.rules, c.run, c.n, c.out)


@function_rule("pad")
def _pad_function(c: Call) -> Any:
    return pad(c.rules, c.n, c.value, c.args, c.kwargs)


@function_rule("cat", "concat", "concatenate", "stack", "hstack", "vstack")
def _concat_function(c: Call) -> Any:
    return concat(c.rules, c.run, c.n, c.values, c.out, c.args, c.kwargs, c.label)


def layout(rules, run: Any, n: Any, out: Any) -> Any:
    """Run the operation on the units (constants read as -1)."""
    torch = rules.torch
    values = rules.values(run, (n.args, n.kwargs))
    shape_only = op_name(n.target) in _SHAPE_ONLY
    first = n.args[0] if n.args else None
    if shape_only:
        if not isinstance(run.vals.get(first), Value):
            return None  # a constant given the shape of a map is still a constant
        values = values[:1]
    nodes = {v.node for v in values}
    if len(nodes) > 1:
        raise Unmapped  # elements of different nodes in one layout: a concat handles it
    node = values[0].node

    def units(x: Any, dense: bool = False) -> Any:
        v = run.vals.get(x)
        if isinstance(v, Value) and (not shape_only or x is first):
            # shifted, so that a zero the operation writes (its own padding, as in
            # torchvision's _patch_merging_pad) is a constant, -1, after
            shifted = shifted_units(torch, v.units, 1)
            return shifted.contiguous() if dense else shifted
        return run.env[x]

    def dense(x: Any) -> Any:
        return units(x, True)

    map_arg = torch.fx.node.map_arg
    try:  # on the units as they are broadcast, where the operation allows it
        moved = rules.call(n, map_arg(n.args, units), map_arg(n.kwargs, units))
    except RuntimeError:  # a view of a broadcast tensor: as the model's own layout
        moved = rules.call(n, map_arg(n.args, dense), map_arg(n.kwargs, dense))
    moved = _shifted(torch, moved, -1)
    neg = None
    if values[0].neg is not None and len(values) == 1:

        def negs(x: Any) -> Any:
            v = run.vals.get(x)
            return v.neg.double() if isinstance(v, Value) else run.env[x]

        neg = rules.call(n, torch.fx.node.map_arg(n.args, negs),
                        torch.fx.node.map_arg(n.kwargs, negs))  # fmt: skip
    return _wrap(torch, moved, node, values[0].gate, neg)


def pad(rules, n: Any, value: Value, args: Any, kwargs: dict) -> Value:
    a = bind(("input", "pad", "mode", "value"), args, kwargs)
    mode = a.get("mode", "constant") or "constant"
    if mode == "constant":
        units = rules.F.pad(value.units, a["pad"], mode="constant", value=-1.0)
    else:
        units = rules.F.pad(value.units, a["pad"], mode=mode)
    return Value(value.node, units)


def concat(rules, run, n, values, out, args, kwargs, label) -> Any:
    torch = rules.torch
    tensors = list(args[0] if args else kwargs["tensors"])
    dim = bind(("tensors", "dim"), args, kwargs).get("dim", 0)
    srcs = list(n.args[0] if n.args else n.kwargs["tensors"])
    name = op_name(n.target)
    if name == "stack":
        fn = torch.stack
    elif name in ("hstack", "vstack"):
        raise Unmapped
    else:
        fn = torch.cat
    vals = [run.vals.get(s) for s in srcs]
    axis = dim % out.ndim
    if name != "stack" and out.ndim > 2 and all(isinstance(v, Value) for v in vals):
        # a concat of channels: along axis 1 of maps, or along an axis that no operand's
        # units vary along (the last one of channels-last maps, as Keras's DenseNet has)
        if axis == 1:
            axes = tuple(range(2, out.ndim))
        elif any(axis in varying_axes([v.np()]) for v in vals):
            axes = ()
        else:
            axes = tuple(a for a in range(1, out.ndim) if a != axis)
        nodes = [run.conv.canonical(v, axes, label) for v in vals] if axes else []
        if nodes and len({run.conv.grid(j) for j in nodes}) == 1:  # maps on one grid
            channels = math.prod(n for a, n in enumerate(out.shape) if a and a not in axes)
            node = run.conv.graph.add(Cat(name=label), tuple(nodes), label, channels)
            return Value(node, canonical_units(torch, tuple(out.shape), axes))

    def filled(k: int) -> list[Any]:
        return [
            v.units if (isinstance(v, Value) and j == k) else
            torch.full(tuple(t.shape), -1.0, dtype=torch.float64)
            for j, (v, t) in enumerate(zip(vals, tensors))
        ]  # fmt: skip

    reads = [
        Read(v, fn(filled(k), dim).detach().numpy().astype(np.int64))
        for k, v in enumerate(vals)
        if isinstance(v, Value)
    ]
    if len({r.value.node for r in reads}) == 1:
        ids = np.max([r.ids for r in reads], axis=0)  # each element from one operand
        return Value(reads[0].value.node, as_units(torch, ids))
    return run.conv.relate(reads, out, "concat", label)


def _shifted(torch: Any, moved: Any, by: int) -> Any:
    if isinstance(moved, torch.Tensor):
        return shifted_units(torch, moved, by)
    if isinstance(moved, (tuple, list)):
        return type(moved)(_shifted(torch, m, by) for m in moved)
    return moved


def _wrap(torch: Any, moved: Any, node: int, gate: bool, neg: Any) -> Any:
    if isinstance(moved, torch.Tensor):
        return Value(node, moved.to(torch.float64), gate, None if neg is None else neg > 0.5)
    if isinstance(moved, (tuple, list)):
        negs = neg if isinstance(neg, (tuple, list)) else [None] * len(moved)
        return type(moved)(_wrap(torch, m, node, gate, g) for m, g in zip(moved, negs))
    return None
