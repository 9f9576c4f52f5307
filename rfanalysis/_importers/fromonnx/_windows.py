"""Window operators on channels-first maps: Conv, ConvTranspose, the pools (MaxPool,
AveragePool, LpPool; ceil_mode, dilations, any padding), the global pools."""

from __future__ import annotations

import math
from typing import Any

from ..._ops import Conv, ConvTranspose, GlobalPool, Pool
from ._registry import Ctx, rule
from ._units import Value


def _auto_pads(cx: Ctx, n: tuple[int, ...], k, s, d) -> list[tuple[int, int]]:
    """ONNX ``pads`` (or ``auto_pad``) as (before, after) per axis at input size ``n``."""
    auto = cx.attr("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    nd = len(n)
    if auto in ("NOTSET", ""):
        pads = list(cx.attr("pads", [0] * (2 * nd)))
        return [(int(pads[a]), int(pads[a + nd])) for a in range(nd)]
    if auto == "VALID":
        return [(0, 0)] * nd
    out = []
    for na, ka, sa, da in zip(n, k, s, d):
        total = max((math.ceil(na / sa) - 1) * sa + (ka - 1) * da + 1 - na, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out


def _spatial(cx: Ctx, x: Value) -> tuple[int, ...]:
    return x.shape[2:]


def _window_args(cx: Ctx, x: Value, k: tuple[int, ...]):
    nd = len(k)
    s = tuple(int(v) for v in cx.attr("strides", [1] * nd))
    d = tuple(int(v) for v in cx.attr("dilations", [1] * nd))
    pads = tuple(_auto_pads(cx, _spatial(cx, x), k, s, d))
    return s, d, pads


def _out(x: Value, cout: int, layer, nd: int) -> tuple[int, ...]:
    grid, _ = layer.expand(nd).resolve((x.shape[2:],))
    return (x.shape[0], cout, *grid)


@rule("Conv")
def conv(cx: Ctx) -> list:
    x = cx.inputs[0]
    w = cx.const(1)
    nd = w.ndim - 2
    k = tuple(int(v) for v in cx.attr("kernel_shape", w.shape[2:]))
    s, d, pads = _window_args(cx, x, k)
    group = int(cx.attr("group", 1))
    layer = Conv(k, s, pads, d, in_channels=w.shape[1] * group, out_channels=w.shape[0],
                 groups=group, bias=cx.input(2) is not None, name=cx.label)  # fmt: skip
    return [cx.conv.structured(x, [layer], _out(x, w.shape[0], layer, nd), cx.label)]


@rule("ConvTranspose")
def conv_transpose(cx: Ctx) -> list:
    x = cx.inputs[0]
    w = cx.const(1)
    nd = w.ndim - 2
    group = int(cx.attr("group", 1))
    k = tuple(int(v) for v in cx.attr("kernel_shape", w.shape[2:]))
    s = tuple(int(v) for v in cx.attr("strides", [1] * nd))
    d = tuple(int(v) for v in cx.attr("dilations", [1] * nd))
    op = [int(v) for v in cx.attr("output_padding", [0] * nd)]
    n = x.shape[2:]
    auto = cx.attr("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    full = [sa * (na - 1) + opa + (ka - 1) * da + 1 for na, sa, opa, ka, da in zip(n, s, op, k, d)]
    target = cx.attr("output_shape")
    if target is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        # the padding that gives output_shape (or n * stride): the odd one where auto_pad says
        want = [int(v) for v in target][-nd:] if target is not None else [
            na * sa for na, sa in zip(n, s)]  # fmt: skip
        pads = []
        for f, m in zip(full, want):
            total = f - m
            half = total // 2
            pads.append((half, total - half) if auto == "SAME_UPPER" else (total - half, half))
    elif auto == "VALID":
        pads = [(0, 0)] * nd
    else:
        p = [int(v) for v in cx.attr("pads", [0] * (2 * nd))]
        pads = [(p[a], p[a + nd]) for a in range(nd)]
    cout = w.shape[1] * group
    layer = ConvTranspose(k, s, tuple(pads), tuple(op), d, in_channels=w.shape[0],
                          out_channels=cout, groups=group, bias=cx.input(2) is not None,
                          name=cx.label)  # fmt: skip
    grid = tuple(f - b - e for f, (b, e) in zip(full, pads))
    return [cx.conv.structured(x, [layer], (x.shape[0], cout, *grid), cx.label)]


@rule("MaxPool", "AveragePool", "LpPool")
def pool(cx: Ctx) -> list:
    x = cx.inputs[0]
    k = tuple(int(v) for v in cx.attr("kernel_shape"))
    s, d, pads = _window_args(cx, x, k)
    kind = {"MaxPool": "max", "AveragePool": "avg", "LpPool": "lp"}[cx.op]
    extra = {"norm_type": float(cx.attr("p", 2))} if kind == "lp" else {}
    layer = Pool(k, s, pads, d, kind=kind, ceil_mode=bool(cx.attr("ceil_mode", 0)),
                 name=cx.label, **extra)  # fmt: skip
    out: list[Any] = [cx.conv.structured(x, [layer], _out(x, x.shape[1], layer, len(k)), cx.label)]
    if len(cx.node.output) > 1:
        out.append(None)  # MaxPool's indices: nothing reads them on a vision path
    return out


@rule("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool(cx: Ctx) -> list:
    x = cx.inputs[0]
    kind = "max" if cx.op == "GlobalMaxPool" else "avg"
    shape = (x.shape[0], x.shape[1]) + (1,) * (len(x.shape) - 2)
    return [cx.conv.structured(x, [GlobalPool(kind, name=cx.label)], shape, cx.label)]
