"""Products: dense layers, matrix products, einsum and GLU. An output element reads, of each
operand, the elements it is summed over; a product over channels only keeps each element's
unit (the identity of space)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...._ops import Dense
from ...units import Read, fiber_sets, set_units
from ..units import Unmapped, Value, as_units, canonical_units
from .base import Call, bind, function_rule, module_rule, op_name, target_rule


@module_rule("Linear")
def _linear_module(c: Call) -> Any:
    m = c.module
    return linear(c.rules, c.run, c.value, c.out, m.out_features, m.bias is not None, c.label)


@target_rule("nn.functional.linear")
def _linear_function(c: Call) -> Any:
    weight = c.args[1] if len(c.args) > 1 else c.kwargs["weight"]
    if any(c.run.vals.get(a) is not None for a in c.n.all_input_nodes[1:]):
        return matmul(c.rules, c.run, c.n, c.out, c.label)  # weights that depend on the input
    return linear(c.rules, c.run, c.value, c.out, weight.shape[0], True, c.label)


@function_rule("matmul", "bmm", "mm", "baddbmm", "addmm")
def _matmul_function(c: Call) -> Any:
    return matmul(c.rules, c.run, c.n, c.out, c.label)


@function_rule("einsum")
def _einsum_function(c: Call) -> Any:
    return einsum(c.rules, c.run, c.n, c.out, c.args, c.label)


@function_rule("glu")
def _glu_function(c: Call) -> Any:
    return glu(c.rules, c.run, c.value, c.out, c.args, c.kwargs, c.label)


def linear(rules, run, value, out, out_features, bias, label) -> Value:
    torch = rules.torch
    units = value.np()
    if units.ndim == 2:
        # a flattened map into a dense layer: every output feature reads every unit
        present = np.unique(units[units >= 0])
        node = value.node
        if present.size != math.prod(run.conv.grid(node)):
            node = run.conv.canonical(value, (1,), label)
        layer = Dense(out_features, bias=bias, name=label)
        node = run.conv.graph.add(layer, (node,), label, 1)
        return Value(node, canonical_units(torch, tuple(out.shape), (1,)))
    last = units.ndim - 1
    ids, sets = fiber_sets(units, (last,))
    ids = np.broadcast_to(np.expand_dims(ids, last), tuple(out.shape))
    if all(len(s) == 1 for s in sets):  # over channels: the identity of space
        return Value(value.node, as_units(torch, set_units(ids, sets)))
    read = run.conv.read(value, ids, sets)
    # the last axis holds tokens (one element per unit along it: token mixing), and the
    # outputs along it are new tokens; or it holds the channels of several units (a
    # unit repeats along it, as after a space-to-depth), and the outputs are channels
    fibres = np.sort(units.reshape(-1, units.shape[last]), axis=1)
    repeats = ((fibres[:, 1:] == fibres[:, :-1]) & (fibres[:, 1:] >= 0)).any()
    force = () if repeats else (last,)
    what = "linear over channels of several units" if repeats else "linear over tokens"
    return run.conv.relate([read], out, what, label, force=force)


def matmul(rules, run, n, out, label) -> Any:
    """``a @ b``: an output element reads row ``i`` of ``a`` and column ``j`` of ``b``."""
    name = op_name(n.target)
    srcs = list(n.args[:2]) if name not in ("baddbmm", "addmm") else list(n.args[1:3])
    if name == "linear":
        srcs = list(n.args[:2])
    va, vb = (run.vals.get(s) for s in srcs)
    shape = tuple(out.shape)
    reads = []
    for v, axis in ((va, -1), (vb, -2)):
        if not isinstance(v, Value):
            continue
        units = v.np()
        if units.ndim < 2:
            raise Unmapped
        if name == "linear" and v is vb:
            axis = -1  # F.linear(x, w): w is (out, in)
        ids, sets = fiber_sets(units, (units.ndim + axis,))
        if axis == -1 and v is va:
            ids = ids[..., :, None]
        else:
            ids = ids[..., None, :]
        ids = np.broadcast_to(ids, shape)
        reads.append(run.conv.read(v, ids, sets))
    return product(rules, run, reads, out, "matrix product", label)


def product(rules, run: Any, reads: list[Read], out: Any, what: str, label: str) -> Value:
    """A product's output from what it reads of each operand: one operand read unit by
    unit (a product over channels only) keeps that operand's units; else a relation."""
    if len(reads) == 1 and all(len(s) == 1 for s in reads[0].sets or []):
        r = reads[0]
        return Value(r.value.node, as_units(rules.torch, set_units(r.ids, r.sets)))
    return run.conv.relate(reads, out, what, label)


def einsum(rules, run, n, out, args, label) -> Value:
    """``einsum(eq, *operands)``: an output element reads, of each operand, the elements
    that agree with it on the shared letters (every value of a summed letter)."""
    eq = args[0].replace(" ", "")
    operands = n.args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if "..." in eq or "->" not in eq:
        raise Unmapped
    ins, result = eq.split("->")
    letters = ins.split(",")
    shape = tuple(out.shape)
    reads = []
    for src, lets in zip(operands, letters):
        v = run.vals.get(src)
        if not isinstance(v, Value):
            continue
        if len(set(lets)) != len(lets) or len(lets) != v.units.ndim:
            raise Unmapped
        summed = tuple(a for a, c in enumerate(lets) if c not in result)
        ids, sets = fiber_sets(v.np(), summed)
        kept = [c for c in lets if c in result]
        ids = np.transpose(ids, [kept.index(c) for c in result if c in kept])
        view = [shape[a] if c in kept else 1 for a, c in enumerate(result)]
        ids = np.broadcast_to(ids.reshape(view), shape)
        reads.append(run.conv.read(v, ids, sets))
    return product(rules, run, reads, out, "einsum", label)


def glu(rules, run, value, out, args, kwargs, label) -> Value:
    dim = bind(("input", "dim"), args, kwargs).get("dim", -1)
    a, b = value.units.chunk(2, dim=dim)
    reads = [
        Read(value, a.numpy().astype(np.int64)),
        Read(value, b.numpy().astype(np.int64), local=None),
    ]
    return run.conv.relate(reads, out, "glu", label, merge="mul")
