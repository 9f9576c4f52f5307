"""Independent oracles for route counts.

``brute_routes`` / ``brute_coverage`` list every connection of every layer with plain Python
loops straight from the definition (output unit ``o``, tap ``t`` reads padded position
``o*s + t*d``; padding modes through ``np.pad`` applied to an index array), then add up routes
unit by unit with Python integers. They share no code with the engine beyond reading the layer
objects' fields.

``torch_net`` builds the single-channel, bias-free, float64 network with all weights 1 (pools
as window sums) whose input gradients are route counts.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

import rfanalysis as rfa

NUMPY_MODE = {
    "reflect": "reflect",
    "symmetric": "symmetric",
    "replicate": "edge",
    "circular": "wrap",
}


# --------------------------------------------------------------------------- per-axis helpers
def _same_pads(n, k_eff, s):
    total = max(k_eff - s, 0) if n % s == 0 else max(k_eff - n % s, 0)
    return total // 2, total - total // 2


def _pads(layer, axis, n):
    k_eff = layer.dilation[axis] * (layer.kernel_size[axis] - 1) + 1
    p = layer.padding
    if p == "valid":
        return 0, 0
    if p == "full":
        return k_eff - 1, k_eff - 1
    if p == "same":
        return _same_pads(n, k_eff, layer.stride[axis])
    return p[axis]


def _source_index(n, pb, pa, mode):
    """Input unit read at each padded position, or None (zeros padding)."""
    if mode == "zeros":
        return [None] * pb + list(range(n)) + [None] * pa
    return [int(v) for v in np.pad(np.arange(n), (pb, pa), mode=NUMPY_MODE[mode])]


def _window_out(n, k, s, d, pb, pa, ceil_mode):
    span = n + pb + pa - d * (k - 1) - 1
    if ceil_mode:
        m = math.ceil(span / s) + 1
        if (m - 1) * s >= n + pb:
            m -= 1
        return m
    return span // s + 1


# --------------------------------------------------------------------------- edges
def layer_edges(layer, in_shape):
    """``(out_shape, edges)`` with ``edges`` a list of ``(out_unit, in_unit)`` tuples, one per
    connection (repeats count)."""
    nd = len(in_shape)
    if isinstance(layer, rfa.Dense):
        ins = list(itertools.product(*map(range, in_shape)))
        return (layer.out_features,), [((j,), i) for j in range(layer.out_features) for i in ins]
    if isinstance(layer, rfa.Upsample):
        out_shape = tuple(n * int(f) for n, f in zip(in_shape, layer.scale_factor))
        edges = [
            (o, tuple(oa // int(f) for oa, f in zip(o, layer.scale_factor)))
            for o in itertools.product(*map(range, out_shape))
        ]
        return out_shape, edges
    if isinstance(layer, rfa.ConvTranspose):
        out_shape = tuple(
            (n - 1) * s - pb - pa + d * (k - 1) + op + 1
            for n, k, s, d, (pb, pa), op in zip(
                in_shape,
                layer.kernel_size,
                layer.stride,
                layer.dilation,
                layer.padding,
                layer.output_padding,
            )
        )
        edges = []
        for i in itertools.product(*map(range, in_shape)):
            for t in itertools.product(*map(range, layer.kernel_size)):
                o = tuple(
                    ia * s + ta * d - pb
                    for ia, ta, s, d, (pb, _) in zip(
                        i, t, layer.stride, layer.dilation, layer.padding
                    )
                )
                if all(0 <= oa < m for oa, m in zip(o, out_shape)):
                    edges.append((o, i))
        return out_shape, edges
    # conv, locally connected, pool
    mode = getattr(layer, "padding_mode", "zeros")
    ceil_mode = getattr(layer, "ceil_mode", False)
    pads = [_pads(layer, a, in_shape[a]) for a in range(nd)]
    out_shape = tuple(
        _window_out(n, k, s, d, pb, pa, ceil_mode)
        for n, k, s, d, (pb, pa) in zip(
            in_shape, layer.kernel_size, layer.stride, layer.dilation, pads
        )
    )
    sources = [_source_index(n, pb, pa, mode) for n, (pb, pa) in zip(in_shape, pads)]
    edges = []
    for o in itertools.product(*map(range, out_shape)):
        for t in itertools.product(*map(range, layer.kernel_size)):
            i = []
            for a in range(nd):
                pos = o[a] * layer.stride[a] + t[a] * layer.dilation[a]
                src = sources[a][pos] if pos < len(sources[a]) else None  # ceil_mode overhang
                if src is None:
                    break
                i.append(src)
            else:
                edges.append((o, tuple(i)))
    return out_shape, edges


def _output_shape(layers, shape):
    for layer in layers:
        if isinstance(layer, rfa.Residual):
            shape = _output_shape(layer.body, shape)
        elif isinstance(layer, rfa.Concat):
            shape = _output_shape(layer.branches[0], shape) if layer.branches[0] else shape
        else:
            shape, _ = layer_edges(layer, shape)
    return shape


def _back(layers, in_shape, counts):
    """``counts``: dict output unit -> routes to the target; returns dict over input units."""
    shapes = [in_shape]
    for layer in layers:
        shapes.append(_output_shape([layer], shapes[-1]))
    for layer, shape in zip(reversed(layers), reversed(shapes[:-1])):
        if isinstance(layer, (rfa.Residual, rfa.Concat)):
            total: dict = defaultdict(int)
            for branch in layer.branches:
                part = _back(branch, shape, counts) if branch else counts
                for k, v in part.items():
                    total[k] += v
            counts = dict(total)
        else:
            _, edges = layer_edges(layer, shape)
            new: dict = defaultdict(int)
            for o, i in edges:
                c = counts.get(o, 0)
                if c:
                    new[i] += c
            counts = dict(new)
    return counts


def _to_array(counts, shape):
    out = np.zeros(shape, dtype=object)
    for index in itertools.product(*map(range, shape)):
        out[index] = counts.get(index, 0)
    return out


def _expanded(net, in_shape):
    network = rfa.parse(net) if isinstance(net, str) else rfa.Network(net)
    return network.expand(len(in_shape)).layers


def brute_routes(net, in_shape, unit="center"):
    layers = _expanded(net, in_shape)
    out_shape = _output_shape(layers, in_shape)
    if unit == "center":
        unit = tuple((m - 1) // 2 for m in out_shape)
    return _to_array(_back(layers, in_shape, {tuple(unit): 1}), in_shape)


def brute_coverage(net, in_shape):
    layers = _expanded(net, in_shape)
    out_shape = _output_shape(layers, in_shape)
    start = {u: 1 for u in itertools.product(*map(range, out_shape))}
    return _to_array(_back(layers, in_shape, start), in_shape)


def assert_engine_matches_brute_force(net, in_shape, unit="center", *, routes=True):
    """Exact coverage (and, with ``routes``, exact routes to ``unit``) equal the enumerator's."""
    assert (
        rfa.coverage(net, in_shape, exact=True).tolist() == brute_coverage(net, in_shape).tolist()
    )
    if routes:
        assert (
            rfa.routes(net, in_shape, unit, exact=True).tolist()
            == brute_routes(net, in_shape, unit).tolist()
        )


def enumerate_paths_1d(net, n, unit):
    """Literal path enumeration for tiny 1-D chains (no blocks): every sequence of one unit per
    layer, each step one connection. Used to check the brute-force counter itself."""
    layers = _expanded(net, (n,))
    shapes, edge_lists = [(n,)], []
    for layer in layers:
        out_shape, edges = layer_edges(layer, shapes[-1])
        shapes.append(out_shape)
        edge_lists.append(edges)
    counts = [0] * n

    def walk(depth, unit_here):
        if depth < 0:
            counts[unit_here[0]] += 1
            return
        for o, i in edge_lists[depth]:
            if o == unit_here:
                walk(depth - 1, i)

    walk(len(layers) - 1, (unit,))
    return counts


# --------------------------------------------------------------------------- torch oracle
def torch_net(net, in_shape):
    """A callable ``x -> y`` in torch (float64, one channel, ones weights) for ``net``."""
    import torch
    import torch.nn.functional as F

    layers = _expanded(net, in_shape)
    nd = len(in_shape)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    tconv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd]

    def pad(x, pads, mode):
        if not any(b or a for b, a in pads):
            return x
        if mode == "symmetric":
            for axis, (b, a) in enumerate(pads):
                n = x.shape[2 + axis]
                idx = torch.as_tensor(np.pad(np.arange(n), (b, a), mode="symmetric"))
                x = torch.index_select(x, 2 + axis, idx)
            return x
        flat = [v for b, a in reversed(pads) for v in (b, a)]  # F.pad: last axis first
        return F.pad(x, flat, mode="constant" if mode == "zeros" else mode)

    def run(seq, x):
        for layer in seq:
            x = apply(layer, x)
        return x

    def apply(layer, x):
        shape = tuple(x.shape[2:])
        if isinstance(layer, rfa.Residual):
            return run(layer.body, x) + (run(layer.shortcut, x) if layer.shortcut else x)
        if isinstance(layer, rfa.Concat):
            # channels collapse: concatenated channels feed the next ones-weight layer summed
            return sum(run(b, x) if b else x for b in layer.branches)
        if isinstance(layer, rfa.Dense):
            w = torch.ones(layer.out_features, x[0].numel(), dtype=torch.float64)
            return (w @ x.reshape(-1)).reshape(1, 1, -1)
        if isinstance(layer, rfa.Upsample):
            return F.interpolate(
                x, scale_factor=tuple(float(f) for f in layer.scale_factor), mode="nearest"
            )
        if isinstance(layer, rfa.ConvTranspose):
            w = torch.ones((1, 1, *layer.kernel_size), dtype=torch.float64)
            assert all(b == a for b, a in layer.padding), "torch crops symmetrically"
            return tconv(
                x,
                w,
                stride=layer.stride,
                padding=tuple(b for b, _ in layer.padding),
                output_padding=layer.output_padding,
                dilation=layer.dilation,
            )
        pads = [_pads(layer, a, shape[a]) for a in range(nd)]
        w = torch.ones((1, 1, *layer.kernel_size), dtype=torch.float64)
        if isinstance(layer, rfa.Pool) and layer.ceil_mode:
            # window sums with torch's own ceil_mode rule (avg pool with divisor 1)
            assert all(d == 1 for d in layer.dilation) and all(b == a for b, a in pads)
            xx = x if nd == 2 else x.unsqueeze(2) if nd == 1 else None
            ks = layer.kernel_size if nd == 2 else (1, *layer.kernel_size)
            st = layer.stride if nd == 2 else (1, *layer.stride)
            pp = tuple(b for b, _ in pads) if nd == 2 else (0, pads[0][0])
            y = F.avg_pool2d(
                xx, ks, st, pp, ceil_mode=True, count_include_pad=True, divisor_override=1
            )
            return y if nd == 2 else y.squeeze(2)
        mode = getattr(layer, "padding_mode", "zeros")
        return conv(pad(x, pads, mode), w, stride=layer.stride, dilation=layer.dilation)

    return lambda x: run(layers, x)


def torch_grad(net, in_shape, unit=None):
    """d y_unit / d x (``unit`` a tuple) or d sum(y) / d x (``unit=None``) as a numpy array."""
    import torch

    f = torch_net(net, in_shape)
    x = torch.zeros((1, 1, *in_shape), dtype=torch.float64, requires_grad=True)
    y = f(x)
    if unit is None:
        y.sum().backward()
    else:
        if unit == "center":
            unit = tuple((m - 1) // 2 for m in y.shape[2:])
        y[(0, 0, *unit)].backward()
    return x.grad[0, 0].numpy()
