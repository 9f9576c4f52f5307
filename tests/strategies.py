"""Hypothesis strategies for random layer stacks and graphs that are valid for small inputs."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import rfanalysis as rfa

from .oracles import _pads, _window_out, as_graph, tconv_out, upsample_out

MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")


def stack_settings(max_examples: int, *, derandomize: bool = False) -> settings:
    """Settings for tests drawing random stacks: no deadline (the first call of a size pays
    for planning), and no complaint about the invalid stacks that ``assume`` filters out."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )


def stack_output(net, shape):
    """``net``'s output shape on ``shape`` by torch's rules, or None where ``shape`` is too
    small for it (or branches do not meet in one shape).

    Computed node by node from the layers' fields (:func:`layer_output`; a merge keeps its
    operands' common shape; a dense layer gives ``(out_features,)``), not by the planner: a
    test that ``assume``s this is not None then calls the code under test on every valid
    example, so a planner that wrongly refuses a layer fails the test instead of thinning
    its examples."""
    shapes = [tuple(shape)]
    for node in as_graph(net, len(shape))[1:]:
        ins = [shapes[j] for j in node.inputs]
        layer = node.layer
        if any(s is None for s in ins):
            out = None
        elif isinstance(layer, rfa.Dense):
            out = (layer.out_features,)
        elif isinstance(layer, (rfa.Add, rfa.Mul, rfa.Cat)):
            out = ins[0] if len(set(ins)) == 1 else None
        else:
            out = layer_output(layer, ins[0])
        shapes.append(out)
    return shapes[-1]


def _axes(draw, ndim, values):
    """One value for every axis, or (sometimes) one per axis."""
    if ndim > 1 and draw(st.booleans()):
        return tuple(draw(values) for _ in range(ndim))
    return draw(values)


@st.composite
def convs(draw, ndim=1, modes=MODES, asymmetric=False):
    """A convolution or locally connected layer; ``asymmetric`` sometimes pads ``(before,
    after)`` per axis (which fixes the layer to ``ndim`` axes, and which the spec grammar
    does not write)."""
    k = _axes(draw, ndim, st.integers(1, 4))
    s = _axes(draw, ndim, st.integers(1, 3))
    d = _axes(draw, ndim, st.integers(1, 2))
    padding = draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid", "full"])))
    if padding == "same" and draw(st.booleans()):
        s = 1
    if asymmetric and draw(st.integers(0, 3)) == 0:
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
    mode = draw(st.sampled_from(modes))
    if draw(st.integers(0, 4)) == 0:
        return rfa.LocallyConnected(k, s, padding if mode == "zeros" else 0, d)
    return rfa.Conv(k, s, padding, d, mode)


@st.composite
def pools(draw, ndim=1, ceil=True):
    k = draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    padding = draw(st.integers(0, k // 2))
    use_ceil = ceil and draw(st.booleans())
    dilation = 1 if use_ceil else draw(st.integers(1, 2))
    kind = draw(st.sampled_from(["max", "avg", "lp"]))
    return rfa.Pool(k, stride, padding, dilation, kind=kind, ceil_mode=use_ceil)


@st.composite
def tconvs(draw, ndim=1):
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, k - 1))
    op = draw(st.integers(0, max(s, d) - 1))
    return rfa.ConvTranspose(k, s, p, op, d)


@st.composite
def shape_preserving(draw, modes=MODES):
    """A stride-1 conv whose output has the input's size (a residual body layer)."""
    k = draw(st.sampled_from([1, 3, 5]))
    d = draw(st.integers(1, 2))
    return rfa.Conv(k, 1, d * (k - 1) // 2, d, draw(st.sampled_from(modes)))


@st.composite
def blocks(draw, modes=MODES):
    choice = draw(st.integers(0, 2))
    if choice == 0:
        body = draw(st.lists(shape_preserving(modes), min_size=1, max_size=2))
        shortcut = draw(st.sampled_from([None, [rfa.Conv(1)]]))
        return rfa.Residual(body, shortcut)
    if choice == 1:  # the downsampling block of ResNets: stride-2 body, projection shortcut
        return rfa.Residual([rfa.Conv(3, 2, 1), draw(shape_preserving(modes))], [rfa.Conv(1, 2)])
    n = draw(st.integers(2, 3))
    branches = [draw(st.lists(shape_preserving(modes), min_size=0, max_size=2)) for _ in range(n)]
    return rfa.Concat(*branches)


@st.composite
def stacks(
    draw,
    ndim=1,
    max_layers=4,
    modes=MODES,
    ceil=True,
    dense=True,
    upsample=True,
    asymmetric=False,
):
    options = [convs(ndim, modes, asymmetric), pools(ndim, ceil), tconvs(ndim), blocks(modes)]
    if upsample:
        options.append(st.integers(1, 3).map(rfa.Upsample))
    layers = draw(st.lists(st.one_of(options), min_size=1, max_size=max_layers))
    if dense and draw(st.integers(0, 5)) == 0:
        layers.append(rfa.Dense(draw(st.integers(1, 3))))
    return rfa.Network(layers)


@st.composite
def window_chains(draw, max_layers=4):
    """1-D chains of zero-padded convolutions and max pools (padding at most half the kernel),
    with every kernel, stride, padding and dilation in a small range."""
    layers = draw(
        st.lists(
            st.tuples(
                st.integers(1, 5),
                st.integers(1, 3),
                st.integers(0, 2),
                st.integers(1, 3),
                st.booleans(),
            ),
            min_size=1,
            max_size=max_layers,
        )
    )
    return rfa.Network(
        [
            rfa.Pool((k,), (s,), (min(p, k // 2),), (d,))
            if pool
            else rfa.Conv((k,), (s,), (p,), (d,))
            for k, s, p, d, pool in layers
        ]
    )


# --------------------------------------------------------------------------- graphs
#: largest map size per axis in random graphs (the brute-force oracle enumerates every edge)
GRAPH_MAX_SIZE = {1: 16, 2: 9}
_PAD_LIMIT = {"reflect": lambda n: n - 1, "symmetric": lambda n: n, "circular": lambda n: n}


def layer_output(layer, shape):
    """``layer``'s output shape on ``shape`` by torch's rules (the padding limits of reflect,
    symmetric and circular padding included), or None where ``shape`` is too small for it.
    Computed here, from the layer's fields, so that the strategy does not depend on the
    planner it tests."""
    layer = layer.expand(len(shape))
    if isinstance(layer, rfa.Upsample):
        return upsample_out(layer, shape)
    if isinstance(layer, rfa.ConvTranspose):
        out = tconv_out(layer, shape)
        return out if min(out) >= 1 else None
    mode = getattr(layer, "padding_mode", "zeros")
    out = []
    for a, n in enumerate(shape):
        pb, pa = _pads(layer, a, n)
        if mode in _PAD_LIMIT and max(pb, pa) > _PAD_LIMIT[mode](n):
            return None
        k, s, d = layer.kernel_size[a], layer.stride[a], layer.dilation[a]
        if n + pb + pa - d * (k - 1) - 1 < 0:
            return None
        out.append(_window_out(n, k, s, d, pb, pa, getattr(layer, "ceil_mode", False)))
    return tuple(out)


def _fits(shape, ndim):
    return shape is not None and min(shape) >= 1 and max(shape) <= GRAPH_MAX_SIZE[ndim]


def _broadcasts_into(shape, target, allow):
    """An operand of ``shape`` merges into a map of ``target`` (a size 1 broadcasts)."""
    return all(n == m or (allow and n == 1) for n, m in zip(shape, target))


@st.composite
def graphs(draw, ndim=1, max_ops=7, dense=True, modes=MODES, upsampling=True):
    """A random DAG built with the public builder, and an input shape it is valid for:
    ``(network, input_shape)``.

    The graph grows a path to its output (the tip) by windows and by n-ary add, product or
    concat merges, and side branches from any node. A merge takes the tip and 0 to 3 more
    operands, repeats allowed: earlier nodes of the path (which already feed it, so spans
    of merges cross as in DenseNet, and nested blocks cannot write the graph), any node of
    a fitting shape, a shape-preserving convolution of one (a branch one level deeper),
    or, for add and product, a pool whose window covers whole axes (a size-1 operand that
    broadcasts, like squeeze-and-excitation's pool). Windows cover strided and dilated
    convolutions and pools in every padding mode, "same"/"valid"/"full" padding, ceil mode,
    locally connected layers, transposed convolutions and nearest upsampling; a layer that
    does not fit the map it reads is drawn again or replaced by a shape-preserving
    convolution, so nothing is rejected. The nodes nobody reads are merged into the tip
    where their shapes allow (others are not part of the network); sometimes a dense
    layer ends it. ``modes`` limits the padding modes; ``upsampling=False`` leaves out
    transposed convolutions and upsampling.
    """
    limit = GRAPH_MAX_SIZE[ndim]
    shape = tuple(draw(st.integers(3, limit)) for _ in range(ndim))
    values = [rfa.Input()]
    shapes = [shape]
    read: set[int] = set()

    def add(value, out_shape, inputs):
        values.append(value)
        shapes.append(out_shape)
        read.update(inputs)
        return len(values) - 1

    def keep_shape(j):
        """A stride-1 convolution that keeps node ``j``'s shape (zeros padding where the map is
        too small for the drawn mode)."""
        k = draw(st.sampled_from([1, 3, 5]))
        d = draw(st.integers(1, 2))
        mode = draw(st.sampled_from(modes))
        padding = draw(st.sampled_from([d * (k - 1) // 2, "same"]))
        layer = rfa.Conv(k, 1, padding, d, mode)
        if layer_output(layer, shapes[j]) != shapes[j]:
            layer = rfa.Conv(k, 1, padding, d)
        return add(layer(values[j]), shapes[j], [j])

    def squeeze(j):
        """A pool whose window covers some whole axes of node ``j``: size 1 there."""
        axes = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
        if not any(axes) or draw(st.booleans()):
            axes = [True] * ndim
        kernel = tuple(n if a else 1 for n, a in zip(shapes[j], axes))
        layer = rfa.Pool(kernel, kind=draw(st.sampled_from(["max", "avg", "lp"])))
        out = tuple(1 if a else n for n, a in zip(shapes[j], axes))
        return add(layer(values[j]), out, [j])

    def window(j):
        options = [convs(ndim, modes), pools(ndim)]
        if upsampling:
            options += [tconvs(ndim), st.integers(1, 3).map(rfa.Upsample)]
        for _ in range(3):
            layer = draw(st.one_of(options))
            out = layer_output(layer, shapes[j])
            if _fits(out, ndim):
                return add(layer(values[j]), out, [j])
        return keep_shape(j)

    def merge(operands, kind):
        return add(kind()(*(values[j] for j in operands)), shapes[operands[0]], operands)

    tip = 0  # the newest node on the way to the output
    path = [0]  # the nodes the tip was built from, in order
    for _ in range(draw(st.integers(4, max_ops))):
        what = draw(st.sampled_from(["window", "merge", "merge", "branch"]))
        if what == "branch":
            # a side branch from any node; a later merge takes it where its shape fits
            window(draw(st.integers(0, len(values) - 1)))
            continue
        if what == "window":
            # half of them keep the shape, so that later merges find operands on the path
            tip = keep_shape(tip) if draw(st.booleans()) else window(tip)
            path.append(tip)
            continue
        kind = draw(st.sampled_from([rfa.Add, rfa.Mul, rfa.Cat]))
        allow = kind is not rfa.Cat
        fits = [i for i, s in enumerate(shapes) if _broadcasts_into(s, shapes[tip], allow)]
        # earlier nodes of the path already feed it: merging them again crosses the spans of
        # earlier merges (DenseNet's pattern), which nested blocks cannot write
        earlier = [i for i in path[1:-2] if i in fits] or [i for i in path if i in fits]
        operands = [tip]  # it fixes the merged shape
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3]))):
            how = draw(st.integers(0, 4))
            if how == 0:
                operands.append(keep_shape(draw(st.sampled_from(fits))))
            elif how == 1 and allow:
                operands.append(squeeze(draw(st.sampled_from(fits))))
            else:
                # repeats (the same operand twice) only where nothing else fits
                pool = fits if how == 4 else earlier
                pool = [i for i in pool if i not in operands] or pool
                operands.append(draw(st.sampled_from(pool)))
        tip = merge(operands, kind)
        path.append(tip)
    kind = draw(st.sampled_from([rfa.Add, rfa.Mul, rfa.Cat]))
    unread = [
        i
        for i in range(1, len(values))
        if i != tip
        and i not in read
        and _broadcasts_into(shapes[i], shapes[tip], kind is not rfa.Cat)
    ]
    if unread:
        tip = merge([tip, *unread], kind)
    if tip == 0:  # every operation was a side branch that did not fit
        tip = window(0)
    if dense and draw(st.integers(0, 7)) == 7:
        tip = add(rfa.Dense(draw(st.integers(1, 3)))(values[tip]), None, [tip])
    return rfa.Network(values[tip]), shape
