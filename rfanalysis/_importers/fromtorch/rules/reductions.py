"""Reductions, softmax and normalisations: each output element reads the fibre of units it
reduces over; a reduction over every spatial axis of a map is a global pool, a norm whose
statistics span space reads them (locally: itself), one over channels only is the identity of
space."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...._ops import GlobalPool, SpatialNorm
from ...._ops.reads import Reads
from ...units import fiber_sets, identity_relation, norm_relation
from ..units import Value, is_canonical
from .base import (
    Call,
    as_tuple,
    bind,
    function_rule,
    is_tensor,
    module_rule,
    op_name,
    reduced_axes,
    target_rule,
)
from .pointwise import pointwise

#: reductions over axes
REDUCTIONS = "mean sum amax amin max min var std logsumexp prod norm nansum nanmean median"
#: norms over axes (``torch.linalg``), whose second argument is the order
NORMS = ("linalg_vector_norm", "linalg_norm", "linalg_matrix_norm")


@module_rule("LayerNorm", keeps_shape=True)
def _layer_norm_module(c: Call) -> Any:
    return layer_norm(c.rules, c.run, c.value, c.out, len(c.module.normalized_shape), c.label)


@module_rule("GroupNorm", keeps_shape=True)
def _group_norm_module(c: Call) -> Any:
    return c.structured([SpatialNorm("group", groups=c.module.num_groups, name=c.label)])


@module_rule("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", keeps_shape=True)
def _instance_norm_module(c: Call) -> Any:
    return c.structured([SpatialNorm("instance", name=c.label)])


@module_rule("Softmax", "LogSoftmax", "Softmin", keeps_shape=True)
def _softmax_module(c: Call) -> Any:
    m = c.module
    return softmax(c.rules, c.value, c.out, m.dim if m.dim is not None else -1, c.label, c.run)


@target_rule("nn.functional.layer_norm")
def _layer_norm_function(c: Call) -> Any:
    shape = c.args[1] if len(c.args) > 1 else c.kwargs["normalized_shape"]
    return layer_norm(c.rules, c.run, c.value, c.out, len(as_tuple(shape, 1)), c.label)


@target_rule("nn.functional.group_norm")
def _group_norm_function(c: Call) -> Any:
    groups = c.args[1] if len(c.args) > 1 else c.kwargs["num_groups"]
    return c.structured([SpatialNorm("group", groups=groups, name=c.label)])


@target_rule("nn.functional.instance_norm")
def _instance_norm_function(c: Call) -> Any:
    return c.structured([SpatialNorm("instance", name=c.label)])


@function_rule("softmax", "log_softmax", "softmin", "_softmax")
def _softmax_function(c: Call) -> Any:
    dim = bind(("input", "dim"), c.args, c.kwargs).get("dim", -1)
    return softmax(c.rules, c.value, c.out, dim, c.label, c.run)


@function_rule(*REDUCTIONS.split(), *NORMS, "adaptive_avg_pool1d")
def _reduction_function(c: Call) -> Any:
    return reduction(c.rules, c.run, c.n, c.value, c.out, c.args, c.kwargs, c.label)


@function_rule("normalize")
def _normalize_function(c: Call) -> Any:
    dim = bind(("input", "p", "dim"), c.args, c.kwargs).get("dim", 1)
    dims = reduced_axes(dim, c.value.units.ndim)  # one axis, or several (over space)
    return norm_over(c.rules, c.run, c.value, c.out, dims, c.label)


def reduction(rules, run, n, value, out, args, kwargs, label) -> Any:
    torch = rules.torch
    name = op_name(n.target)
    a = bind(("input", "dim", "keepdim"), args, kwargs)
    if name == "norm" or name in NORMS:
        a = bind(("input", "p", "dim", "keepdim"), args, kwargs)
        if name == "linalg_matrix_norm":
            a.setdefault("dim", (-2, -1))
    if name in ("max", "min", "median") and not isinstance(a.get("dim"), int):
        if len(args) > 1 and is_tensor(torch, args[1]):  # torch.max(a, b): elementwise
            return pointwise(rules, run, n, value, out, name, args, kwargs)
    ndim = value.units.ndim
    dims = reduced_axes(a.get("dim"), ndim)
    keep = bool(a.get("keepdim", False))
    result = out[0] if isinstance(out, (tuple, list)) else out
    spatial = tuple(range(2, ndim))
    if (
        ndim > 2 and dims == spatial and name in ("mean", "sum", "amax", "max")
        and on_grid(rules, run, value, spatial)
    ):  # fmt: skip
        layer = GlobalPool("max" if "max" in name else "avg", name=label)
        channels = run.conv.graph.channels_of(value.node)
        node = run.conv.graph.add(layer, (value.node,), label, channels)
        found = Value(node, torch.zeros(tuple(result.shape), dtype=torch.float64))
    else:
        ids, sets = fiber_sets(value.np(), dims)
        if keep:
            ids = np.expand_dims(ids, dims)
        ids = np.broadcast_to(ids, tuple(result.shape))
        read = run.conv.read(value, ids, sets)
        found = run.conv.relate([read], result, name, label)
    if isinstance(out, (tuple, list)):
        return (found, *([None] * (len(out) - 1)))
    return found


def on_grid(rules, run: Any, value: Value, axes: tuple[int, ...]) -> bool:
    shape = tuple(value.units.shape)
    grid = tuple(shape[a] for a in axes)
    if run.conv.grid(value.node) != grid:
        return False
    return is_canonical(rules.torch, value.units, axes)


def softmax(rules, value: Value, out: Any, dim: Any, label: str, run: Any) -> Value:
    dim = int(dim) % value.units.ndim
    units = value.np()
    if value.neg is not None:
        units = np.where(value.neg.numpy(), -1, units)
    ids, sets = fiber_sets(units, (dim,))
    ids = np.broadcast_to(np.expand_dims(ids, dim), units.shape).copy()
    if value.neg is not None:
        ids[value.neg.numpy()] = -1  # a masked entry is a constant
    read = run.conv.read(value, ids, sets)
    found = run.conv.relate([read], out, "softmax", label)
    found.gate = True
    return found


def layer_norm(rules, run, value, out, k, label) -> Value:
    """Statistics over the last ``k`` axes (see :meth:`norm_over`)."""
    ndim = value.units.ndim
    return norm_over(rules, run, value, out, tuple(range(ndim - k, ndim)), label)


def norm_over(rules, run, value, out, dims, label) -> Value:
    """A normalisation whose statistics span ``dims``: over channels only, the identity of
    space; over space too, every unit reads the units its statistics read (locally
    itself)."""
    units = value.np()
    ndim = units.ndim
    spatial = tuple(range(2, ndim))
    if ndim > 2 and dims == (1, *spatial) and on_grid(rules, run, value, spatial):
        # over channels and space of a (B, C, *grid) map: GroupNorm(1, C)'s statistics
        return run.conv.structured(value, [SpatialNorm("layer", name=label)], out, label)
    ids, sets = fiber_sets(units, dims)
    ids = np.broadcast_to(np.expand_dims(ids, dims), units.shape)
    if all(len(s) == 1 for s in sets):
        return Value(value.node, value.units)
    graph = run.conv.graph
    grid = graph.grid(value.node)
    n = math.prod(grid)
    rel = norm_relation(units, ids, sets, n)
    own = identity_relation(n)
    channels = graph.channels_of(value.node)
    layer = Reads((grid,), grid, (rel,), (own,), "layer norm", out_channels=channels,
                  name=label)  # fmt: skip
    node = graph.add(layer, (value.node,), label, channels)
    return Value(node, value.units)
