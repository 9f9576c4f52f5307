"""Attention: a query token reads every key and value token it may attend (DESIGN section 9):
``scaled_dot_product_attention``, ``nn.MultiheadAttention`` with its masks, and
torchvision's shifted windows."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...._ops import Attention
from ...units import MASK_BELOW, Read, attended_sets, fiber_sets
from ..units import Unmapped, Value
from .base import Call, bind, function_rule, module_rule


@module_rule("MultiheadAttention")
def _multihead_module(c: Call) -> Any:
    return multihead(c.rules, c.run, c.n, c.module, c.out, c.label)


@function_rule("scaled_dot_product_attention")
def _sdpa_function(c: Call) -> Any:
    return sdpa(c.rules, c.run, c.n, c.out, c.args, c.kwargs, c.label)


@function_rule("shifted_window_attention")
def _swin_function(c: Call) -> Any:
    return swin_attention(c.rules, c.run, c.n, c.value, c.out, c.args, c.kwargs, c.label)


def attention_reads(rules, run, q, k, v, allowed, out_shape) -> list[Read]:
    """Reads of attention: query ``i`` reads its own row of ``q`` and, of ``k`` and
    ``v``, the rows of the keys it may attend (``allowed``: (..., L, S) booleans)."""
    reads = []
    qu = q.np()
    ids, sets = fiber_sets(qu, (qu.ndim - 1,))
    ids = np.broadcast_to(ids[..., None], out_shape)
    reads.append(Read(q, ids, sets))
    for val in (k, v):
        ku = val.np()
        kid, ksets = fiber_sets(ku, (ku.ndim - 1,))  # (..., S)
        ids, deduped = attended_sets(kid, ksets, allowed, out_shape[:-2])
        ids = np.broadcast_to(ids[..., None], out_shape)
        read = run.conv.read(val, ids, deduped)
        reads.append(read)
    return reads


def sdpa(rules, run, n, out, args, kwargs, label) -> Value:
    a = bind(("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"),
              args, kwargs)  # fmt: skip
    srcs = bind(("query", "key", "value"), tuple(n.args), dict(n.kwargs))
    q, k, v = (run.vals.get(srcs[x]) for x in ("query", "key", "value"))
    if not all(isinstance(x, Value) for x in (q, k, v)):
        raise Unmapped
    L, S = a["query"].shape[-2], a["key"].shape[-2]
    allowed = np.ones((L, S), dtype=bool)
    mask = a.get("attn_mask")
    if mask is not None:
        m = mask.detach().cpu().numpy()
        allowed = m if m.dtype == bool else m > MASK_BELOW
    if a.get("is_causal"):
        allowed = allowed & np.tril(np.ones((L, S), dtype=bool))
    reads = attention_reads(rules, run, q, k, v, allowed, tuple(out.shape))
    return run.conv.relate(reads, out, "attention", label)


def multihead(rules, run, n, m, out, label) -> Any:
    torch = rules.torch
    args, kwargs = rules.real_args(run, n)
    a = bind(("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
               "average_attn_weights", "is_causal"), args, kwargs)  # fmt: skip
    srcs = bind(("query", "key", "value"), tuple(n.args), dict(n.kwargs))
    vals = [run.vals.get(srcs[x]) for x in ("query", "key", "value")]
    if not all(isinstance(x, Value) for x in vals):
        raise Unmapped
    first = not m.batch_first  # (L, N, E): move the batch first, then back
    moved = [Value(x.node, x.units.transpose(0, 1) if first else x.units) for x in vals]
    L, S = moved[0].units.shape[1], moved[1].units.shape[1]
    allowed = np.ones((L, S), dtype=bool)
    mask = a.get("attn_mask")
    if mask is not None:
        mk = mask.detach().cpu().numpy()
        allowed = ~mk if mk.dtype == bool else mk > MASK_BELOW  # True: masked out
    if a.get("key_padding_mask") is not None:
        kp = a["key_padding_mask"].detach().cpu().numpy()
        kp = ~kp if kp.dtype == bool else kp > MASK_BELOW
        allowed = allowed & kp[:, None, :]
    result = out[0]
    shape = tuple(result.transpose(0, 1).shape if first else result.shape)
    reads = attention_reads(rules, run, moved[0], moved[1], moved[2], allowed, shape)
    fake = torch.zeros(shape)
    found = run.conv.relate(reads, fake, "attention", label)
    if first:
        found = Value(found.node, found.units.transpose(0, 1))
    return (found, None)


def swin_attention(rules, run, n, value, out, args, kwargs, label) -> Value:
    """torchvision's ``shifted_window_attention`` (its input is ``(B, H, W, C)``)."""
    a = bind(("input", "qkv_weight", "proj_weight", "relative_position_bias",
               "window_size", "num_heads", "shift_size"), args, kwargs)  # fmt: skip
    layer = Attention(tuple(a["window_size"]), tuple(a["shift_size"]), name=label)
    return run.conv.structured(value, [layer], out, label, axes=(1, 2))
