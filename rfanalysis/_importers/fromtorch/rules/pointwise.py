"""Pointwise operations: activations, eval-mode norms and dropout (identities of space),
gates (the sigmoid family), arithmetic with constants, and sums, products and selections
(``where``) of several tensors that depend on the input: routes through each operand add up
(DESIGN section 9)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...units import MASK_BELOW, Read, compact
from ..units import Value, as_units
from .base import Call, function_rule, is_tensor, module_rule

#: torch.nn modules that keep every position's value at its position (channels may mix)
IDENTITY_MODULES = (
    "BatchNorm1d BatchNorm2d BatchNorm3d SyncBatchNorm LazyBatchNorm1d LazyBatchNorm2d "
    "LazyBatchNorm3d Identity Dropout Dropout1d Dropout2d Dropout3d AlphaDropout "
    "FeatureAlphaDropout ReLU ReLU6 LeakyReLU PReLU RReLU ELU SELU CELU GELU SiLU Mish "
    "Tanh Hardtanh Hardswish Softplus Softsign Tanhshrink Threshold LogSigmoid Hardshrink "
    "Softshrink LocalResponseNorm"
).split()
GATE_MODULES = ("Sigmoid", "Hardsigmoid")

#: functions and Tensor methods of one tensor that keep positions (pointwise)
POINTWISE = (
    "relu relu_ relu6 leaky_relu leaky_relu_ elu elu_ selu celu gelu silu mish hardswish "
    "hardtanh hardtanh_ softplus softsign tanhshrink threshold logsigmoid tanh tanh_ "
    "dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout batch_norm "
    "local_response_norm clamp clamp_ clip clip_ abs abs_ exp exp_ sqrt sqrt_ rsqrt square neg "
    "neg_ clone float double half bfloat16 type log log_ sin cos erf "
    "pow pow_ reciprocal sign floor ceil round stochastic_depth drop_path requires_grad_ "
    "add add_ sub sub_ mul mul_ div div_ truediv floordiv mod remainder masked_fill "
    "masked_fill_ nan_to_num cumsum_ rsub iadd imul isub "
    "itruediv pos gelu_ addcmul addcdiv lerp softplus_ exp2 expm1 log1p log2 erfc "
    # the names Keras's torch backend calls; as_tensor and asarray of a tensor are that tensor
    "subtract multiply divide true_divide negative positive as_tensor asarray"
).split()
GATES = ("sigmoid", "sigmoid_", "hardsigmoid")
#: the products and quotients among them
PRODUCTS = ("mul mul_ imul div div_ truediv itruediv multiply divide true_divide").split()


@module_rule(*GATE_MODULES, keeps_shape=True)
def _gate_module(c: Call) -> Any:
    return Value(c.value.node, c.value.units, gate=True)


@module_rule(*IDENTITY_MODULES, keeps_shape=True)
def _identity_module(c: Call) -> Any:
    value = c.value
    return Value(value.node, value.units, value.gate, value.neg)


@function_rule(*POINTWISE, *GATES, "maximum", "minimum", "fmax", "fmin")
def _pointwise_function(c: Call) -> Any:
    if len(c.values) > 1:
        return elementwise(c.rules, c.run, c.n, c.values, c.out, c.name, c.label)
    return pointwise(c.rules, c.run, c.n, c.value, c.out, c.name, c.args, c.kwargs)


@function_rule("type_as", "to")
def _cast_function(c: Call) -> Any:
    if len(c.values) > 1:
        # x.type_as(y), x.to(y): y gives a dtype and a device, no routes
        first = c.run.vals.get(c.n.args[0])
        return first if isinstance(first, Value) else None
    return _pointwise_function(c)


@function_rule("where")
def _where_function(c: Call) -> Any:
    return where(c.rules, c.run, c.n, c.out, c.args, c.kwargs, c.label)


def where(rules, run, n, out, args, kwargs, label) -> Any:
    torch = rules.torch
    cond, x, y = (n.args + tuple(n.kwargs.values()))[:3]
    vx, vy = run.vals.get(x), run.vals.get(y)
    c = run.env[cond] if not isinstance(cond, (bool, int, float)) else cond
    if isinstance(c, torch.Tensor):
        c = c.expand(out.shape)
    reads = []
    for v, keep in ((vx, c), (vy, ~c if isinstance(c, torch.Tensor) else not c)):
        if isinstance(v, Value):
            ids = torch.where(keep, v.units.expand(out.shape), torch.tensor(-1.0))
            reads.append(Read(v, ids.numpy().astype(np.int64)))
    if not reads:
        return None
    if len(reads) == 1 or len({r.value.node for r in reads}) == 1:
        ids = np.max([r.ids for r in reads], axis=0)
        return Value(reads[0].value.node, as_units(torch, ids))
    return run.conv.relate(reads, out, "where", label, merge="add")


def pointwise(rules, run, n, value, out, name, args, kwargs) -> Any:
    torch = rules.torch
    if not is_tensor(torch, out):
        return None
    units = value.units.expand(out.shape) if value.units.shape != out.shape else value.units
    gate = name in GATES or value.gate
    neg = value.neg
    if neg is not None:
        neg = neg.expand(out.shape)
    consts = [
        run.env[a]
        for a in n.all_input_nodes
        if a not in run.vals and is_tensor(torch, run.env.get(a))
    ]
    if name in ("add", "add_", "iadd"):
        for c in consts:  # an additive mask: its entries push softmax inputs to zero
            if c.numel() and bool((c <= MASK_BELOW).any()):
                low = torch.broadcast_to(c <= MASK_BELOW, out.shape)
                neg = low if neg is None else neg | low
    if name in ("masked_fill", "masked_fill_"):
        mask = args[1].expand(out.shape)
        fill = args[2]
        fill = float(fill) if not is_tensor(torch, fill) else float(fill.max())
        if fill <= MASK_BELOW:
            neg = mask if neg is None else neg | mask
        else:
            units = torch.where(mask, torch.tensor(-1.0, dtype=torch.float64), units)
    if name in ("mul", "mul_", "imul") and any(c.numel() and not bool(c.any()) for c in consts):
        return None  # multiplied by zero: a constant
    return Value(value.node, units, gate, neg)


def elementwise(rules, run, n, values, out, name, label) -> Value:
    """Several operands that depend on the input: routes through each add up."""
    srcs = [a for a in n.all_input_nodes if isinstance(run.vals.get(a), Value)]
    vals = [run.vals[a] for a in srcs]
    product = name in PRODUCTS
    reads = []
    counts = [len(np.unique(compact(v.np()))) for v in vals]
    for k, v in enumerate(vals):
        ids = np.broadcast_to(v.np(), tuple(out.shape))
        gate = product and (
            v.gate or (counts[k] == 1 and max(counts) > 1) or (k > 0 and "div" in name)
        )
        reads.append(Read(v, ids, local=None if gate else "same"))
    if product and all(r.local is None for r in reads):
        for r in reads:
            r.local = "same"  # no factor carries the map: all do
    return run.conv.relate(reads, out, name, label, merge="mul" if product else "add")
