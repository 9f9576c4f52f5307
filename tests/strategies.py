"""Hypothesis strategies for random layer stacks that are valid for small inputs."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import rfanalysis as rfa

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


def output_or_none(net, shape):
    """``net``'s output shape on ``shape``, or None where the input is too small for it."""
    try:
        return rfa.output_shape(net, shape)
    except ValueError:
        return None


def _axes(draw, ndim, values):
    """One value for every axis, or (sometimes) one per axis."""
    if ndim > 1 and draw(st.booleans()):
        return tuple(draw(values) for _ in range(ndim))
    return draw(values)


@st.composite
def convs(draw, ndim=1, modes=MODES):
    k = _axes(draw, ndim, st.integers(1, 4))
    s = _axes(draw, ndim, st.integers(1, 3))
    d = _axes(draw, ndim, st.integers(1, 2))
    padding = draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid", "full"])))
    if padding == "same" and draw(st.booleans()):
        s = 1
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
def stacks(draw, ndim=1, max_layers=4, modes=MODES, ceil=True, dense=True, upsample=True):
    options = [convs(ndim, modes), pools(ndim, ceil), tconvs(ndim), blocks(modes)]
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
