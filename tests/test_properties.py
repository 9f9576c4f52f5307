"""Engine against the brute-force enumerator, and structural properties of route counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rfanalysis as rfa
from rfanalysis._engine import backward
from rfanalysis._ops.counts import Algebra, Sep
from rfanalysis._plan import plan

from .oracles import (
    assert_engine_matches_brute_force,
    brute_coverage,
    brute_routes,
    enumerate_paths_1d,
)
from .strategies import stack_output, stack_settings, stacks

SETTINGS = stack_settings(150)


def test_brute_force_counter_matches_literal_path_enumeration():
    # the oracle's unit-by-unit counter against listing every route one by one
    for spec, n in [
        ("conv3p1:reflect,conv2s2,conv3d2p2:circular", 9),
        ("conv3p2:symmetric,maxpool3s2,tconv3s2p1", 6),
    ]:
        out = rfa.output_shape(spec, (n,))
        for unit in range(out[0]):
            assert brute_routes(spec, (n,), (unit,)).tolist() == enumerate_paths_1d(spec, n, unit)


@SETTINGS
@given(net=stacks(ndim=1, asymmetric=True), n=st.integers(3, 11), data=st.data())
def test_routes_and_coverage_match_brute_force_1d(net, n, data):
    out = stack_output(net, (n,))
    assume(out is not None)
    unit = tuple(data.draw(st.integers(0, m - 1)) for m in out)
    assert_engine_matches_brute_force(net, (n,), unit)


@SETTINGS
@given(net=stacks(ndim=2, max_layers=3, asymmetric=True), h=st.integers(3, 7), w=st.integers(3, 7))
def test_coverage_matches_brute_force_2d(net, h, w):
    assume(stack_output(net, (h, w)) is not None)
    assert_engine_matches_brute_force(net, (h, w))


@stack_settings(40)
@given(net=stacks(ndim=3, max_layers=2, upsample=False, asymmetric=True), n=st.integers(3, 5))
def test_coverage_matches_brute_force_3d(net, n):
    assume(stack_output(net, (n, n, n)) is not None)
    assert (
        rfa.coverage(net, (n, n, n), exact=True).tolist() == brute_coverage(net, (n, n, n)).tolist()
    )


@SETTINGS
@given(net=stacks(ndim=1), n=st.integers(3, 11))
def test_float_and_log_agree_with_exact(net, n):
    assume(stack_output(net, (n,)) is not None)
    exact = rfa.coverage(net, (n,), exact=True)
    assert rfa.coverage(net, (n,)).tolist() == [float(v) for v in exact]
    logs = rfa.coverage(net, (n,), log=True)
    expected = [math.log10(v) if v else -math.inf for v in exact]
    np.testing.assert_allclose(logs, expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- properties
@settings(max_examples=100, deadline=None)
@given(
    kernels=st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 2)), min_size=1, max_size=5
    ),
    n=st.integers(20, 40),
)
def test_total_routes_without_padding_is_product_of_kernels(kernels, n):
    # with no padding every tap of every layer lands on a unit, so each output unit has
    # exactly prod(k) routes back to the input
    net = rfa.Network([rfa.Conv(k, s, 0, d) for k, s, d in kernels])
    assume(stack_output(net, (n,)) is not None)
    assert int(rfa.routes(net, (n,)).sum()) == math.prod(k for k, _, _ in kernels)


@stack_settings(100)
@given(
    net=stacks(ndim=1, modes=("zeros", "reflect", "symmetric", "replicate"), dense=False),
    n=st.integers(3, 12),
)
def test_mirror_symmetric_stacks_give_symmetric_maps(net, n):
    # flipping the input is a symmetry when every layer's padding and window grid are
    # symmetric; check it on the maps where the plan says the layers are centred
    assume(stack_output(net, (n,)) is not None)
    p = plan(net, (n,))
    assume(all(_centred(step) for step in p.ops))
    cov = rfa.coverage(net, (n,), exact=True).tolist()
    assert cov == cov[::-1]


def _centred(step):
    """A layer whose connection pattern is the same read from either end."""
    layer = step.layer
    if isinstance(layer, (rfa.Dense, rfa.Upsample, rfa.Add, rfa.Cat)):
        return not isinstance(layer, rfa.Dense)
    if isinstance(layer, rfa.ConvTranspose):
        return False
    n, m = step.in_shape[0], step.out_shape[0]
    k_eff = layer.dilation[0] * (layer.kernel_size[0] - 1) + 1
    (pb, pa), s = step.data.pads[0], layer.stride[0]
    # the last window ends exactly where the padded input ends, and padding is even
    return pb == pa and (m - 1) * s + k_eff == n + pb + pa


@stack_settings(100)
@given(net=stacks(ndim=1, dense=False), h=st.integers(3, 9), w=st.integers(3, 9))
def test_2d_chain_map_is_outer_product_of_1d_maps(net, h, w):
    assume(not any(isinstance(x, (rfa.Residual, rfa.Concat)) for x in net.layers))
    assume(stack_output(net, (h, w)) is not None)
    rows = rfa.coverage(net, (h,), exact=True)
    cols = rfa.coverage(net, (w,), exact=True)
    assert rfa.coverage(net, (h, w), exact=True).tolist() == np.multiply.outer(rows, cols).tolist()


@SETTINGS
@given(net=stacks(ndim=2, max_layers=3), h=st.integers(3, 8), w=st.integers(3, 8))
def test_separable_and_general_paths_agree(net, h, w):
    # force the general (dense N-D array) path from the very start and compare
    assume(stack_output(net, (h, w)) is not None)
    p = plan(net, (h, w))
    start = np.ones(p.output_shape, dtype=object)
    alg = Algebra("exact")
    general = alg.materialise(backward(p, start, alg))
    ones = tuple(np.array([1] * m, dtype=object) for m in p.output_shape)
    separable = alg.materialise(backward(p, Sep(1, ones), alg))
    assert general.tolist() == separable.tolist() == rfa.coverage(net, (h, w), exact=True).tolist()


@pytest.mark.parametrize("depth", [1, 4, 9])
def test_coverage_is_sum_of_routes_over_units(depth):
    spec = f"conv3p1:reflect*{depth},maxpool2s2"
    shape = (9, 7)
    out = rfa.output_shape(spec, shape)
    total = sum(
        rfa.routes(spec, shape, (i, j), exact=True) for i in range(out[0]) for j in range(out[1])
    )
    assert total.tolist() == rfa.coverage(spec, shape, exact=True).tolist()
