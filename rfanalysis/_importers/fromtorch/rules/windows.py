"""Windows: convolutions (transposed too), pools (adaptive too), interpolation, fold and
unfold, as torch.nn layers and as functions."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ...._ops import (
    AdaptivePool,
    Conv,
    ConvTranspose,
    GlobalPool,
    Interpolate,
    Layer,
    Pool,
    Upsample,
)
from ...units import Read, compact, dedupe_sets
from ..units import Unmapped, Value, is_canonical
from .base import Call, as_tuple, bind, module_rule, op_name, target_rule


# --------------------------------------------------------------------------- torch.nn layers
@module_rule("Conv1d", "Conv2d", "Conv3d")
def _conv_module(c: Call) -> Any:
    m = c.module
    layer = Conv(
        tuple(m.kernel_size),
        tuple(m.stride),
        m.padding if isinstance(m.padding, str) else tuple(m.padding),
        tuple(m.dilation),
        m.padding_mode,
        in_channels=m.in_channels,
        out_channels=m.out_channels,
        groups=m.groups,
        bias=m.bias is not None,
        name=c.label,
    )
    return window(c, layer)


@module_rule("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
def _tconv_module(c: Call) -> Any:
    m = c.module
    op = _output_padding(c.value, c.out, m.kernel_size, m.stride, m.padding, m.dilation)
    layer = ConvTranspose(
        tuple(m.kernel_size), tuple(m.stride), tuple(m.padding), op,
        tuple(m.dilation), in_channels=m.in_channels, out_channels=m.out_channels,
        groups=m.groups, bias=m.bias is not None, name=c.label,
    )  # fmt: skip
    return c.structured([layer])


@module_rule("MaxPool1d", "MaxPool2d", "MaxPool3d")
def _maxpool_module(c: Call) -> Any:
    m = c.module
    if m.return_indices:
        raise Unmapped
    return window(c, pool("max", c.nd, m.kernel_size, m.stride, m.padding, m.dilation,
                          m.ceil_mode, c.label))  # fmt: skip


@module_rule("AvgPool1d", "AvgPool2d", "AvgPool3d")
def _avgpool_module(c: Call) -> Any:
    m = c.module
    return window(c, pool("avg", c.nd, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode,
                          c.label))  # fmt: skip


@module_rule("LPPool1d", "LPPool2d", "LPPool3d")
def _lppool_module(c: Call) -> Any:
    m = c.module
    return c.structured([pool("lp", c.nd, m.kernel_size, m.stride, 0, 1, m.ceil_mode, c.label,
                              float(m.norm_type))])  # fmt: skip


@module_rule(*(f"Adaptive{k}Pool{d}d" for k in ("Avg", "Max") for d in (1, 2, 3)))
def _adaptive_module(c: Call) -> Any:
    m = c.module
    kind = type(m).__name__
    if "Max" in kind and m.return_indices:
        raise Unmapped
    return c.structured([adaptive("avg" if "Avg" in kind else "max", c.value, m.output_size,
                                  c.label)])  # fmt: skip


@module_rule("Upsample")
def _upsample_module(c: Call) -> Any:
    m = c.module
    layer = interpolate(c.value, c.out, m.size, m.scale_factor, m.mode, m.align_corners,
                        m.recompute_scale_factor, c.label)  # fmt: skip
    return c.structured([layer])


@module_rule("Unfold")
def _unfold_module(c: Call) -> Any:
    return unfold(c.value, c.module)


@module_rule("Fold")
def _fold_module(c: Call) -> Any:
    m = c.module
    a = {"output_size": m.output_size, "kernel_size": m.kernel_size,
         "dilation": m.dilation, "padding": m.padding, "stride": m.stride}  # fmt: skip
    return fold(c, a)


# --------------------------------------------------------------------------- functions
@target_rule(*(f"nn.functional.conv{t}{d}d" for t in ("", "_transpose") for d in (1, 2, 3)))
def _conv_function(c: Call) -> Any:
    n, run = c.n, c.run
    if any(run.vals.get(a) is not None for a in n.all_input_nodes[1:]):
        raise Unmapped  # weights that depend on the input
    transposed = "transpose" in op_name(n.target)
    names = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups",
             "dilation") if transposed else ("input", "weight", "bias", "stride", "padding",
             "dilation", "groups")  # fmt: skip
    a = bind(names, c.args, c.kwargs)
    w = a["weight"]
    nd = w.ndim - 2
    k = tuple(w.shape[2:])
    groups = int(a.get("groups", 1))
    if transposed:
        stride, padding = as_tuple(a.get("stride", 1), nd), as_tuple(a.get("padding", 0), nd)
        dilation = as_tuple(a.get("dilation", 1), nd)
        op = _output_padding(c.value, c.out, k, stride, padding, dilation)
        layer: Layer = ConvTranspose(
            k, stride, padding, op, dilation, in_channels=w.shape[0],
            out_channels=w.shape[1] * groups, groups=groups,
            bias=a.get("bias") is not None, name=c.label,
        )  # fmt: skip
    else:
        pad = a.get("padding", 0)
        layer = Conv(
            k, as_tuple(a.get("stride", 1), nd),
            pad if isinstance(pad, str) else as_tuple(pad, nd),
            as_tuple(a.get("dilation", 1), nd), in_channels=w.shape[1] * groups,
            out_channels=w.shape[0], groups=groups, bias=a.get("bias") is not None,
            name=c.label,
        )  # fmt: skip
        return window(c, layer)
    return c.structured([layer])


#: the pooling functions' parameters, by family
_POOLS = {
    "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                 "return_indices"),
    "avg_pool": ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    "lp_pool": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
    "adaptive_avg_pool": ("input", "output_size"),
    "adaptive_max_pool": ("input", "output_size", "return_indices"),
}  # fmt: skip


@target_rule(*(f"nn.functional.{base}{d}d" for base in _POOLS for d in (1, 2, 3)))
def _pool_function(c: Call) -> Any:
    F = c.F
    nd = c.nd
    for base, params in _POOLS.items():
        if not any(c.n.target is getattr(F, f"{base}{d}d", None) for d in (1, 2, 3)):
            continue
        a = bind(params, c.args, c.kwargs)
        if a.get("return_indices"):
            raise Unmapped
        layer: Layer
        if base.startswith("adaptive"):
            kind = "avg" if "avg" in base else "max"
            layer = adaptive(kind, c.value, a["output_size"], c.label)
        elif base == "lp_pool":
            norm = float(a["norm_type"])
            k, stride = a["kernel_size"], a.get("stride")
            layer = pool("lp", nd, k, stride, 0, 1, a.get("ceil_mode", False), c.label, norm)
        else:
            kind = base.split("_")[0]
            pad, dil = a.get("padding", 0), a.get("dilation", 1)
            layer = pool(kind, nd, a["kernel_size"], a.get("stride"), pad, dil,
                         a.get("ceil_mode", False), c.label)  # fmt: skip
            return window(c, layer)
        return c.structured([layer])
    raise Unmapped  # pragma: no cover - registered for these functions only


@target_rule("nn.functional.interpolate")
def _interpolate_function(c: Call) -> Any:
    a = bind(("input", "size", "scale_factor", "mode", "align_corners",
              "recompute_scale_factor", "antialias"), c.args, c.kwargs)  # fmt: skip
    if a.get("antialias"):
        raise Unmapped
    layer = interpolate(c.value, c.out, a.get("size"), a.get("scale_factor"),
                        a.get("mode", "nearest"), a.get("align_corners"),
                        a.get("recompute_scale_factor"), c.label)  # fmt: skip
    return c.structured([layer])


@target_rule("nn.functional.fold")
def _fold_function(c: Call) -> Any:
    a = bind(("input", "output_size", "kernel_size", "dilation", "padding", "stride"),
             c.args, c.kwargs)  # fmt: skip
    return fold(c, a)


@target_rule("nn.functional.unfold")
def _unfold_function(c: Call) -> Any:
    args, kwargs, F = c.args, c.kwargs, c.F
    return unfold(c.value, lambda u: F.unfold(u, *args[1:], **kwargs))


# --------------------------------------------------------------------------- layers
def window(c: Call, layer: Any) -> Value:
    """A convolution or pool on the first operand. Where that operand is a map with a
    constant border on its spatial axes (``F.pad`` or a ``ZeroPad`` layer right before the
    window, as Keras's ``ZeroPadding2D`` and TF-style "same" convolutions write it), the
    window reads the map itself with the border added to its own padding: the same routes
    (a constant is no route, and a pool's padding never is one), and a geometry that stays
    exact instead of a gather of the padded map."""
    value = c.value
    nd = value.units.ndim - 2
    # (in ceil mode the last window's start depends on where the input ends: not absorbed)
    if isinstance(layer.padding, str) or layer.padding_mode != "zeros" or layer.ceil_mode:
        return c.structured([layer])
    units = value.np()
    small = compact(units)
    if small.size == 0 or small.min() >= 0:  # no constant anywhere: no border
        return c.structured([layer])
    grid = c.run.conv.grid(value.node)
    border = []
    for a in range(nd):
        n = units.shape[2 + a]
        if small.shape[2 + a] != n:
            return c.structured([layer])  # broadcast along a spatial axis: no padded map
        empty = (np.moveaxis(small, 2 + a, 0).reshape(n, -1) < 0).all(axis=1)
        if empty.all():
            return c.structured([layer])
        before = int(np.argmin(empty))
        after = int(np.argmin(empty[::-1]))
        border.append((before, after))
    inner = tuple(n - b - e for n, (b, e) in zip(units.shape[2:], border))
    if not any(b or e for b, e in border) or inner != tuple(grid):
        return c.structured([layer])
    crop = (slice(None), slice(None), *(slice(b, n - e) for n, (b, e) in
                                         zip(units.shape[2:], border)))  # fmt: skip
    cropped = Value(value.node, value.units[crop], value.gate)
    if not is_canonical(c.torch, cropped.units, tuple(range(2, 2 + nd))):
        return c.structured([layer])
    padding = tuple((pb + b, pa + e) for (pb, pa), (b, e) in zip(layer.padding, border))
    wider = replace(layer, padding=padding)
    return c.run.conv.structured(cropped, [wider], c.out, c.label)


def pool(kind, nd, k, s, p, d, ceil_mode, name, norm_type=2.0) -> Pool:
    k = as_tuple(k, nd)
    s = k if s is None or (isinstance(s, (tuple, list)) and not s) else as_tuple(s, nd)
    return Pool(k, s, as_tuple(p, nd), as_tuple(d, nd), kind=kind, ceil_mode=bool(ceil_mode),
                norm_type=norm_type, name=name)  # fmt: skip


def adaptive(kind: str, value: Value, output_size: Any, name: str) -> Layer:
    """A global pool to one unit; a fixed pool where the sizes divide; else adaptive."""
    spatial = tuple(value.units.shape[2:])
    sizes = as_tuple(output_size, len(spatial))
    sizes = tuple(n if m is None else m for n, m in zip(spatial, sizes))
    if all(m == 1 for m in sizes):
        return GlobalPool(kind, name=name)
    if all(n % m == 0 for n, m in zip(spatial, sizes)):
        k = tuple(n // m for n, m in zip(spatial, sizes))
        return Pool(k, k, kind=kind, name=name)
    return AdaptivePool(sizes, kind=kind, name=name)


def interpolate(value, out, size, scale, mode, align_corners, recompute, name):
    if mode not in ("nearest", "nearest-exact", "linear", "bilinear", "trilinear",
                    "bicubic", "area"):  # fmt: skip
        raise Unmapped
    nd = value.units.ndim - 2
    linear = mode in ("linear", "bilinear", "trilinear", "bicubic")
    corners = bool(align_corners) if linear else False
    if mode == "nearest":  # nearest upsampling by whole factors: Upsample
        ins, outs = value.units.shape[2:], out.shape[2:]
        factors = as_tuple(scale, nd) if scale is not None else None
        if factors is None and all(m % n == 0 for n, m in zip(ins, outs)):
            factors = tuple(m // n for n, m in zip(ins, outs))
        if factors is not None and all(float(f).is_integer() for f in factors):
            return Upsample(tuple(int(f) for f in factors), name=name)
    if scale is not None and not recompute and mode != "area":
        return Interpolate(None, tuple(float(f) for f in as_tuple(scale, nd)), mode, corners,
                           name=name)  # fmt: skip
    return Interpolate(tuple(out.shape[2:]), None, mode, corners, name=name)


def fold(c: Call, a: dict) -> Value:
    """col2im (``F.fold``, ``nn.Fold``): an output element reads every column entry that
    folds onto it (found by unfolding the output positions)."""
    torch, F, value, out = c.torch, c.F, c.value, c.out
    if value.units.ndim != 3:
        raise Unmapped
    size = tuple(out.shape[2:])
    where = torch.arange(math.prod(size), dtype=torch.float64).reshape(1, 1, *size) + 1.0
    kw = {k: a[k] for k in ("dilation", "padding", "stride") if k in a}
    pos = (F.unfold(where, a["kernel_size"], **kw) - 1.0)[0].numpy().astype(np.int64)
    units = value.np()[0]  # (C * K, L)
    k = pos.shape[0]
    channels = units.shape[0] // k
    per = units.reshape(channels, k, -1)
    ch = np.repeat(np.arange(channels), pos.size)  # the channel of every column entry
    lands = np.tile(pos.ravel(), channels)  # the output position it folds onto
    element = ch * math.prod(size) + lands
    keep = (lands >= 0) & (per.ravel() >= 0)
    order = np.argsort(element[keep], kind="stable")
    elems, found = element[keep][order], per.ravel()[keep][order]
    bounds = np.searchsorted(elems, np.arange(channels * math.prod(size) + 1))
    rows = [np.unique(found[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1)]
    ids, sets = dedupe_sets(rows)
    read = Read(value, ids.reshape(1, channels, *size), sets)
    return c.run.conv.relate([read], out, "fold", c.label)


def unfold(value: Value, fn: Any) -> Value:
    """im2col (``F.unfold``, ``nn.Unfold``): run on the units shifted by one, so that the
    zero padding it adds reads as -1 (no unit)."""
    return Value(value.node, fn(value.units + 1.0) - 1.0)


def _output_padding(value: Value, out: Any, k: Any, s: Any, p: Any, d: Any) -> tuple[int, ...]:
    """A transposed convolution's output padding as torch resolved it (an ``output_size``
    argument sets it per call): the output size beyond ``(n - 1) s - 2 p + d (k - 1) + 1``."""
    return tuple(
        out.shape[2 + a] - ((value.units.shape[2 + a] - 1) * sa - 2 * pa + da * (ka - 1) + 1)
        for a, (ka, sa, pa, da) in enumerate(zip(k, s, p, d))
    )
