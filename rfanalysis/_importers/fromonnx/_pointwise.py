"""Element-wise operators: activations (identities of space; the sigmoid family marks a
gate), arithmetic of several input-dependent tensors (routes through each operand add: an
``Add`` or a gated ``Mul`` where the operands share a grid, else a relation), ``Where``, and
comparisons (no gradient: a constant of unknown value)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..units import MASK_BELOW, Read
from ._registry import Ctx, rule, shape_of
from ._units import Opaque, Value

#: one tensor in, each element from its own: the identity of space
UNARY = (
    "Relu LeakyRelu PRelu Elu Selu Celu Gelu ThresholdedRelu HardSwish Mish Softplus Softsign "
    "Tanh Abs Neg Exp Log Sqrt Reciprocal Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh "
    "Atanh Erf Clip Floor Ceil Round Sign Shrink BatchNormalization Swish"
).split()
GATES = ("Sigmoid", "HardSigmoid")
#: results with no gradient: constants whose values depend on the input
NO_GRADIENT = (
    "Equal Less LessOrEqual Greater GreaterOrEqual Not And Or Xor IsNaN IsInf ArgMax ArgMin "
    "BitwiseAnd BitwiseOr BitwiseNot BitwiseXor NonZero"
).split()
#: n-ary arithmetic: (operator, whether it is a product)
NARY = {
    "Add": False, "Sub": False, "Sum": False, "Mean": False, "Max": False, "Min": False,
    "Mul": True, "Div": True, "Pow": True, "PRelu": True, "Mod": False,
}  # fmt: skip


def _attn(x: Value, shape: tuple[int, ...]) -> Any:
    """Attention weights scaled or cast (a dropout's scale, a dtype) are still attention
    weights, where the shape is theirs."""
    return x.attn if x.shape == shape else None


def _out_shape(cx: Ctx) -> tuple[int, ...]:
    shapes = [shape_of(x) for x in cx.inputs if x is not None]
    return tuple(np.broadcast_shapes(*shapes))


@rule(*UNARY, *GATES)
def unary(cx: Ctx) -> list:
    x = cx.inputs[0]
    if not isinstance(x, Value):
        return [Opaque(x.shape, np.float32)]
    if cx.op == "PRelu" and isinstance(cx.input(1), Value):
        return nary(cx)
    shape = _out_shape(cx) if cx.op == "PRelu" else x.shape
    units = np.broadcast_to(x.units, shape)
    neg = None if x.neg is None else np.broadcast_to(x.neg, shape)
    gate = cx.op in GATES or x.gate
    out: list[Any] = [Value(x.node, units, gate, neg, x.origin, x.scores, _attn(x, shape))]
    if cx.op == "BatchNormalization" and len(cx.node.output) > 1:
        out += [None] * (len(cx.node.output) - 1)
    return out


@rule(*NO_GRADIENT)
def no_gradient(cx: Ctx) -> list:
    feeds = [
        None if x is None else np.zeros(shape_of(x), dtype=_dtype(x))
        for x in cx.inputs
    ]  # fmt: skip
    try:
        outs = cx.run(feeds)
        return [Opaque(o.shape, o.dtype) for o in outs]
    except Exception:  # a kernel that refuses zeros (NonZero's shape is data-dependent)
        raise cx.fail("its result's shape depends on the input's values") from None


def _dtype(x: object) -> object:
    if isinstance(x, Opaque):
        return x.dtype
    if isinstance(x, Value):
        return np.float32
    return np.asarray(x).dtype


@rule(*[k for k in NARY if k != "PRelu"])
def nary(cx: Ctx) -> list:
    shape = _out_shape(cx)
    values = [x for x in cx.inputs if isinstance(x, Value)]
    consts = [x for x in cx.inputs if isinstance(x, np.ndarray)]
    product = NARY[cx.op]
    if len(values) == 1:
        (v,) = values
        units = np.broadcast_to(v.units, shape)
        neg = None if v.neg is None else np.broadcast_to(v.neg, shape)
        if cx.op in ("Add", "Sum"):
            for c in consts:  # an additive mask: its entries push softmax inputs to zero
                if c.size and np.issubdtype(c.dtype, np.floating) and (c <= MASK_BELOW).any():
                    low = np.broadcast_to(c <= MASK_BELOW, shape)
                    neg = low if neg is None else neg | low
        if cx.op == "Mul" and any(c.size and not c.any() for c in consts):
            return [np.zeros(shape, dtype=np.float32)]  # multiplied by zero: a constant
        return [Value(v.node, units, v.gate, neg, v.origin, v.scores, _attn(v, shape))]
    arrays = [np.broadcast_to(v.units, shape) for v in values]
    if len({v.origin for v in values}) == 1 and all(np.array_equal(a, arrays[0]) for a in arrays):
        # a pointwise function of one tensor written out (x * sigmoid(x), erf's GELU): every
        # element reads its own unit only
        negs = [v.neg for v in values if v.neg is not None]
        neg = None
        if negs:
            neg = np.logical_or.reduce([np.broadcast_to(n, shape) for n in negs])
        return [Value(values[0].node, arrays[0], False, neg, values[0].origin)]
    return [merge(cx, values, shape, product)]


def merge(cx: Ctx, values: list[Value], shape: tuple[int, ...], product: bool) -> Value:
    """Several operands that depend on the input: routes through each add up."""
    counts = [len(np.unique(v.units)) for v in values]
    reads = []
    for k, v in enumerate(values):
        ids = np.broadcast_to(v.units, shape)
        gate = product and (
            v.gate or (counts[k] == 1 and max(counts) > 1) or (k > 0 and cx.op == "Div")
        )
        reads.append(Read(v, ids, local=None if gate else "same"))
    if product and all(r.local is None for r in reads):
        for r in reads:
            r.local = "same"  # no factor carries the map: all do
    return cx.conv.relate(reads, shape, cx.op.lower(), cx.label,
                          merge="mul" if product else "add")  # fmt: skip


@rule("Where")
def where(cx: Ctx) -> list:
    cond, x, y = cx.inputs[:3]
    shape = _out_shape(cx)
    reads = []
    for v, keep in ((x, cond), (y, None if not isinstance(cond, np.ndarray) else ~cond)):
        if not isinstance(v, Value):
            continue
        ids = np.broadcast_to(v.units, shape)
        if isinstance(cond, np.ndarray):
            # a constant condition picks each element from one side
            pick = np.broadcast_to(cond if keep is None else keep, shape).astype(bool)
            ids = np.where(pick, ids, -1)
        reads.append(Read(v, ids))
    if not reads:
        return [Opaque(shape, np.float32)]
    if len(reads) == 1 or len({r.value.node for r in reads}) == 1:
        if len(reads) > 1 and not isinstance(cond, np.ndarray):
            # a condition computed from the input: each element may come from either side
            a, b = (r.ids for r in reads)
            if not np.array_equal(a, b):
                return [cx.conv.relate(reads, shape, "where", cx.label, merge="add")]
        ids = np.max([r.ids for r in reads], axis=0)
        return [Value(reads[0].value.node, ids)]
    return [cx.conv.relate(reads, shape, "where", cx.label, merge="add")]
