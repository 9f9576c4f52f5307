"""Independent oracles for route counts, on any network graph.

``brute_routes`` / ``brute_coverage`` list every connection of every node with plain Python
loops straight from the definitions (output unit ``o``, tap ``t`` reads padded position
``o*s + t*d``; padding modes through ``np.pad`` applied to an index array; a merge reads each
operand at the same position, a size-1 operand axis at position 0), then add up routes unit by
unit with Python integers, walking the graph's nodes (``net.expand(ndim).nodes``) backwards.
They share no code with the engine beyond reading the layer objects' fields and the node list.
``enumerate_paths`` lists routes one at a time, to check that counter on tiny graphs.

``torch_net`` builds the single-channel, bias-free graph with all weights 1 (pools as window
sums; concat and product replaced by the sum of their operands; every "reads" of DESIGN section
9 a sum over the units read: global pools and norms over space sum the whole map, attention
sums its window, a traced relation sums its sets) whose input gradients are route counts.
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


def upsample_out(layer, in_shape):
    """Nearest upsampling's output shape: every unit repeated ``scale_factor`` times."""
    return tuple(n * int(f) for n, f in zip(in_shape, layer.scale_factor))


def tconv_out(layer, in_shape):
    """A transposed convolution's output shape (torch's formula)."""
    return tuple(
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


# --------------------------------------------------------------------------- edges
def layer_edges(layer, in_shape):
    """``(out_shape, edges)`` with ``edges`` a list of ``(out_unit, in_unit)`` tuples, one per
    connection (repeats count)."""
    nd = len(in_shape)
    if isinstance(layer, rfa.Dense):
        ins = list(itertools.product(*map(range, in_shape)))
        return (layer.out_features,), [((j,), i) for j in range(layer.out_features) for i in ins]
    if isinstance(layer, rfa.Upsample):
        out_shape = upsample_out(layer, in_shape)
        edges = [
            (o, tuple(oa // int(f) for oa, f in zip(o, layer.scale_factor)))
            for o in itertools.product(*map(range, out_shape))
        ]
        return out_shape, edges
    if isinstance(layer, rfa.ConvTranspose):
        out_shape = tconv_out(layer, in_shape)
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


def merge_edges(layer, in_shapes):
    """``(out_shape, edges)`` of an n-ary add, product or concat, straight from DESIGN section
    9: every operand unit feeds the merged unit at its position; an operand with one unit on
    an axis (add and product only) feeds every position on that axis. ``edges`` lists
    ``(operand, out_unit, in_unit)``; routes through a product add like those through a sum
    (one term per factor of the derivative)."""
    nd = len(in_shapes[0])
    if any(len(s) != nd for s in in_shapes):
        raise ValueError(f"operands of {layer} have different numbers of axes: {in_shapes}")
    out_shape = []
    for a in range(nd):
        sizes = {s[a] for s in in_shapes}
        if not isinstance(layer, rfa.Cat):
            sizes = sizes - {1} or {1}
        if len(sizes) != 1:
            raise ValueError(f"operands of {layer} cannot be merged: {in_shapes}")
        out_shape.append(sizes.pop())
    edges = []
    for k, shape in enumerate(in_shapes):
        for o in itertools.product(*map(range, out_shape)):
            i = tuple(oa if n == m else 0 for oa, n, m in zip(o, shape, out_shape))
            edges.append((k, o, i))
    return tuple(out_shape), edges


MERGES = (rfa.Add, rfa.Mul, rfa.Cat)


def node_edges(layer, in_shapes, extra=None):
    """``(out_shape, edges)`` of one graph node, ``edges`` as ``(operand, out_unit, in_unit)``.

    ``extra`` maps a layer class the oracle does not know (a test's own operation) to a
    function ``(layer, in_shape) -> (out_shape, [(out_unit, in_unit), ...])``."""
    if isinstance(layer, MERGES):
        return merge_edges(layer, in_shapes)
    (in_shape,) = in_shapes
    if extra and type(layer) in extra:
        out_shape, edges = extra[type(layer)](layer, in_shape)
    else:
        out_shape, edges = layer_edges(layer, in_shape)
    return out_shape, [(0, o, i) for o, i in edges]


def as_graph(net, ndim):
    """``net`` (a spec string, a Network, a layer sequence or a graph value) as the node list
    of its graph, every layer written out for ``ndim`` axes."""
    if isinstance(net, str):
        network = rfa.parse(net)
    elif isinstance(net, rfa.Network):
        network = net
    else:
        network = rfa.Network(net)
    return network.expand(ndim).nodes


def graph_edges(net, in_shape, extra=None):
    """Per node of ``net``'s graph: ``(inputs, out_shape, edges)`` (node 0: the input)."""
    nodes = as_graph(net, len(in_shape))
    shapes = [tuple(in_shape)]
    out = [((), tuple(in_shape), [])]
    for node in nodes[1:]:
        shape, edges = node_edges(node.layer, [shapes[j] for j in node.inputs], extra)
        shapes.append(shape)
        out.append((node.inputs, shape, edges))
    return out


def _back(graph, counts):
    """``counts``: dict unit of the last node -> routes to the target; returns the dict over
    input units. Nodes are visited in reverse topological order; a node read by several
    others (or twice by one merge) adds up what each reading sends back."""
    per_node: list[dict] = [defaultdict(int) for _ in graph]
    per_node[-1].update(counts)
    for index in range(len(graph) - 1, 0, -1):
        inputs, _, edges = graph[index]
        here = per_node[index]
        for k, o, i in edges:
            c = here.get(o, 0)
            if c:
                per_node[inputs[k]][i] += c
    return per_node[0]


def _to_array(counts, shape):
    out = np.zeros(shape, dtype=object)
    for index in itertools.product(*map(range, shape)):
        out[index] = counts.get(index, 0)
    return out


def brute_output_shape(net, in_shape, extra=None):
    return graph_edges(net, in_shape, extra)[-1][1]


def brute_routes(net, in_shape, unit="center", extra=None):
    """Routes from every input pixel to ``unit`` of the output (Python ints)."""
    graph = graph_edges(net, in_shape, extra)
    out_shape = graph[-1][1]
    if unit == "center":
        unit = tuple((m - 1) // 2 for m in out_shape)
    return _to_array(_back(graph, {tuple(unit): 1}), in_shape)


def brute_coverage(net, in_shape, extra=None):
    """Routes from every input pixel summed over every output unit (Python ints)."""
    graph = graph_edges(net, in_shape, extra)
    start = {u: 1 for u in itertools.product(*map(range, graph[-1][1]))}
    return _to_array(_back(graph, start), in_shape)


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


def enumerate_paths(net, in_shape, unit, extra=None):
    """Literal route enumeration for tiny graphs: walk back from ``unit`` along every
    connection of every operand, one route at a time, and count where each walk ends. Used
    to check the brute-force counter itself."""
    graph = graph_edges(net, in_shape, extra)
    feeds: list[dict] = []  # per node: out unit -> [(input node, input unit), ...]
    for inputs, _, edges in graph:
        by_unit: dict = defaultdict(list)
        for k, o, i in edges:
            by_unit[o].append((inputs[k], i))
        feeds.append(by_unit)
    counts: dict = defaultdict(int)

    def walk(index, unit_here):
        if index == 0:
            counts[unit_here] += 1
            return
        for j, i in feeds[index][unit_here]:
            walk(j, i)

    walk(len(graph) - 1, tuple(unit))
    return _to_array(counts, in_shape)


def enumerate_paths_1d(net, n, unit):
    """:func:`enumerate_paths` for a 1-D input of ``n`` units, as a list."""
    return enumerate_paths(net, (n,), (unit,)).tolist()


# --------------------------------------------------------------------------- field spans
#: a unit whose field along an axis is the whole input (after a dense layer, or a merge that
#: broadcasts an operand of one unit over several)
GLOBAL_SPAN = "global"


def field_spans(net, in_shape, axis):
    """Per node of ``net``'s graph, a function ``unit -> (lo, hi)``: the first and last input
    coordinate of the field of that unit along ``axis`` (any integer unit, also one in the
    padding: its field is where it would read), or :data:`GLOBAL_SPAN`.

    Straight from the definitions, unit by unit: input unit ``i`` spans ``(i, i)``; output
    unit ``o`` of a window spans every tap ``o*s + t*d - p_before`` of its input; nearest
    upsampling reads ``o // f``; a merge spans all its operands at the same unit (an operand of
    one unit on an axis where the merged map has several: global); a dense layer is global.
    Transposed convolutions are not covered. The field's size is ``hi - lo + 1``, its centre
    ``(lo + hi) / 2``; no closed form (jump, start) is used, so a table can be checked
    against it unit by unit."""
    nodes = as_graph(net, len(in_shape))
    shapes = [s for _, s, _ in graph_edges(net, in_shape)]
    memo: dict = {}

    def span(j, o):
        if (j, o) in memo:
            return memo[(j, o)]
        node = nodes[j]
        layer = node.layer
        if j == 0:
            reads = None
            out = (o, o)
        elif isinstance(layer, rfa.Dense):
            reads = None
            out = GLOBAL_SPAN
        elif isinstance(layer, MERGES):
            m = shapes[j][axis]
            reads = []
            for i in node.inputs:
                if shapes[i][axis] == 1 < m:
                    reads = None
                    out = GLOBAL_SPAN
                    break
                reads.append((i, o))
        elif isinstance(layer, rfa.Upsample):
            reads = [(node.inputs[0], o // int(layer.scale_factor[axis]))]
        elif isinstance(layer, rfa.ConvTranspose):
            raise NotImplementedError("field_spans: transposed convolutions")
        else:  # conv, locally connected, pool
            (i,) = node.inputs
            pb, _ = _pads(layer, axis, shapes[i][axis])
            k, s, d = layer.kernel_size[axis], layer.stride[axis], layer.dilation[axis]
            reads = [(i, o * s + t * d - pb) for t in range(k)]
        if reads is not None:
            spans = [span(i, u) for i, u in reads]
            if any(x == GLOBAL_SPAN for x in spans):
                out = GLOBAL_SPAN
            else:
                out = (min(x[0] for x in spans), max(x[1] for x in spans))
        memo[(j, o)] = out
        return out

    return [lambda o, j=j: span(j, o) for j in range(len(nodes))]


# --------------------------------------------------------------------------- torch oracle
def torch_net(net, in_shape, extra=None, dtype="float64"):
    """A callable ``x -> y`` in torch (one channel, ones weights, ``dtype``) for ``net``'s
    graph.

    Every node applies its layer to the values of its inputs. Channels collapse, so a concat
    is the sum of its operands; a sum is a sum; a product is replaced by the sum of its
    operands (its routes are one term per factor), broadcast as torch broadcasts. Operations
    that read sets of units sum them: a global pool and a norm over space the whole map, an
    adaptive pool its windows (torch's), attention the window of each token (torchvision's
    shifted windows and their mask), a traced relation (``from_torch``) its sets. Those
    sets are the relation's own, replayed: that lets the benchmarks time autograd of a whole
    traced model, but checks nothing about the relation (the module's own autograd does, in
    from_torch's verification and the real-model suite), so no test relies on it. ``extra``
    maps a layer class the oracle does not know to a function ``(layer, x) -> y``. Index
    arrays are made on the first call and kept.
    """
    import torch
    import torch.nn.functional as F

    from rfanalysis._ops.reads import Reads

    tdtype = getattr(torch, dtype)
    made: dict = {}  # per node: index tensors and matrices, made on the first call

    def once(key, make):
        if key not in made:
            made[key] = make()
        return made[key]

    nodes = as_graph(net, len(in_shape))
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

    def run(x):
        values = [x]
        for index, node in enumerate(nodes[1:], start=1):
            operands = [values[j] for j in node.inputs]
            if isinstance(node.layer, MERGES):
                # concatenated channels feed the next ones-weight layer summed; a product's
                # routes are those of the sum of its factors
                y = operands[0]
                for other in operands[1:]:
                    y = y + other
            elif extra and type(node.layer) in extra:
                y = extra[type(node.layer)](node.layer, *operands)
            elif isinstance(node.layer, Reads):
                y = reads(index, node.layer, operands)
            else:
                y = apply(index, node.layer, *operands)
            values.append(y)
        return values[-1]

    def reads(index, layer, xs):
        """Every output unit sums the input units of its set, over every operand."""
        total = None
        for k, (rel, x) in enumerate(zip(layer.relations, xs)):
            if rel is None:
                continue
            owner, members, pick, ok = once(
                (index, k),
                lambda rel=rel: (
                    torch.as_tensor(np.repeat(np.arange(len(rel.ptr) - 1), np.diff(rel.ptr))),
                    torch.as_tensor(rel.members),
                    torch.as_tensor(np.maximum(rel.set_of, 0)),
                    torch.as_tensor(rel.set_of >= 0).to(tdtype),
                ),
            )
            sums = torch.zeros(len(rel.ptr) - 1, dtype=x.dtype)
            part = sums.index_add(0, owner, x.reshape(-1)[members])[pick] * ok
            total = part if total is None else total + part
        return total.reshape(1, 1, *layer.out_shape)

    def apply(index, layer, x):
        shape = tuple(x.shape[2:])
        spatial = tuple(range(2, x.ndim))
        if isinstance(layer, rfa.Dense):
            w = torch.ones(layer.out_features, x[0].numel(), dtype=tdtype)
            return (w @ x.reshape(-1)).reshape(1, 1, -1)
        if isinstance(layer, rfa.GlobalPool):  # one unit reads every position
            return x.sum(dim=spatial, keepdim=True)
        if isinstance(layer, rfa.SpatialNorm):  # every unit reads every position
            return x.sum(dim=spatial, keepdim=True).expand(x.shape)
        if isinstance(layer, rfa.AdaptivePool):
            mats = once(index, lambda: adaptive_matrices(shape, layer.output_size))
            for axis, m in enumerate(mats):  # windows along each axis in turn
                x = torch.movedim(torch.movedim(x, 2 + axis, -1) @ m.T, -1, 2 + axis)
            return x
        if isinstance(layer, rfa.Attention):
            labels, groups = once(
                index, lambda: window_groups(shape, layer.window_size, layer.shift_size)
            )
            flat = x.reshape(-1)
            sums = torch.zeros(groups, dtype=x.dtype).index_add(0, labels, flat)
            return sums[labels].reshape(x.shape)
        if isinstance(layer, rfa.Upsample):
            return F.interpolate(
                x, scale_factor=tuple(float(f) for f in layer.scale_factor), mode="nearest"
            )
        if isinstance(layer, rfa.ConvTranspose):
            w = torch.ones((1, 1, *layer.kernel_size), dtype=tdtype)
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
        w = torch.ones((1, 1, *layer.kernel_size), dtype=tdtype)
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

    def adaptive_matrices(shape, sizes):
        """Per axis, the 0/1 matrix of torch's adaptive windows: output ``i`` of ``m`` reads
        inputs ``floor(i n / m)`` to ``ceil((i + 1) n / m) - 1``."""
        mats = []
        for n, m in zip(shape, sizes):
            a = torch.zeros((m, n), dtype=tdtype)
            for i in range(m):
                a[i, (i * n) // m : -((-(i + 1) * n) // m)] = 1
            mats.append(a)
        return mats

    def window_groups(shape, window, shift):
        labels, groups = attention_groups(shape, window, shift)
        return torch.as_tensor(labels.ravel()), groups

    return run


def attention_groups(shape, window, shift):
    """Which tokens of a ``shape`` grid attend each other, as torchvision's
    ``shifted_window_attention`` computes it: labels (one per token; equal labels attend) and
    their number. The grid is padded at the end to whole windows, an axis whose window covers
    it is not shifted, the padded grid is rolled by ``-shift`` and cut into windows; with a
    shift, tokens attend only within one region of the mask that torchvision builds from the
    slices ``(0, -w)``, ``(-w, -s)``, ``(-s, None)`` of each axis (later slices overwrite).
    ``window`` None: one group (global attention)."""
    if window is None:
        return np.zeros(shape, dtype=np.int64), 1
    window, shift = tuple(window), list(shift)
    padded = tuple(-(-n // w) * w for n, w in zip(shape, window))
    for a, (w, p) in enumerate(zip(window, padded)):
        if w >= p:
            shift[a] = 0
    mask = np.zeros(padded, dtype=np.int64)
    if sum(shift) > 0:
        slices = [((0, -w), (-w, -s), (-s, None)) for w, s in zip(window, shift)]
        for count, combo in enumerate(itertools.product(*slices)):
            mask[tuple(slice(lo, hi) for lo, hi in combo)] = count
    # label on the rolled, padded grid: the window, then the mask region inside it
    index = np.indices(padded)
    label = np.zeros(padded, dtype=np.int64)
    for a, w in enumerate(window):
        label = label * (padded[a] // w) + index[a] // w
    label = label * 9 ** len(shape) + mask
    # token at position p sits at (p - shift) mod padded on the rolled grid
    where = tuple(
        ((np.arange(n) - s) % p).reshape([-1 if b == a else 1 for b in range(len(shape))])
        for a, (n, s, p) in enumerate(zip(shape, shift, padded))
    )
    labels = label[where]
    uniq, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(shape), len(uniq)


def torch_grad(net, in_shape, unit=None, extra=None):
    """d y_unit / d x (``unit`` a tuple) or d sum(y) / d x (``unit=None``) as a numpy array."""
    import torch

    # the maps are tiny: on one thread each op takes microseconds, while handing them to a
    # second thread on a busy machine costs milliseconds per op
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        f = torch_net(net, in_shape, extra)
        x = torch.zeros((1, 1, *in_shape), dtype=torch.float64, requires_grad=True)
        y = f(x)
        if unit is None:
            y.sum().backward()
        else:
            if unit == "center":
                unit = tuple((m - 1) // 2 for m in y.shape[2:])
            y[(0, 0, *unit)].backward()
    finally:
        torch.set_num_threads(threads)
    return x.grad[0, 0].numpy()
