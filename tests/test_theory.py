"""rfa.theory: every closed form against the engine."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings

import rfanalysis as rfa
from rfanalysis import theory

from .strategies import window_chains


@pytest.mark.parametrize(("k", "n", "d"), [(2, 10, 1), (3, 3, 1), (3, 7, 2), (5, 4, 3), (1, 9, 1)])
def test_multinomial_rows_are_the_routes_of_valid_stacks(k, n, d):
    row = theory.multinomial_row(k, n, d)
    assert len(row) == n * (k - 1) * d + 1 and sum(row) == k**n
    assert rfa.routes(f"conv{k}d{d}*{n}", (len(row),), exact=True).tolist() == row
    if k == 2 and d == 1:
        assert row == [math.comb(n, i) for i in range(n + 1)]


@settings(max_examples=150, deadline=None)
@given(net=window_chains())
def test_gaussian_limit_mean_and_variance_are_exact_for_interior_units(net):
    g = theory.gaussian_limit(net)
    size = rfa.receptive_field(net).size[0]
    pad = rfa.receptive_field(net).padding[0]
    n = 4 * size + 2 * pad + 4 * g.jump[0]
    out = rfa.output_shape(net, (n,))[0]
    o = (out - 1) // 2
    routes = rfa.routes(net, (n,), (o,), exact=True).tolist()
    assume(routes[0] == 0 and routes[-1] == 0)  # the whole field lies inside the input
    total = sum(routes)
    mean = Fraction(sum(i * r for i, r in enumerate(routes)), total)
    var = Fraction(sum(i * i * r for i, r in enumerate(routes)), total) - mean**2
    assert total == g.total
    assert mean == g.mean((o,))[0]
    assert var == g.variance[0]


def test_variance_grows_linearly_and_the_profile_becomes_gaussian():
    # n uniform 3-tap layers: variance n (9 - 1) / 12 = 2n / 3
    for n in (1, 10, 100):
        assert theory.gaussian_limit(f"conv3*{n}").variance == (Fraction(2 * n, 3),) * 2
    # dilation 2 multiplies a layer's term by 4; a stride-2 layer scales later terms by 4
    assert theory.gaussian_limit("conv3d2").variance == (Fraction(8, 3),) * 2
    assert theory.gaussian_limit("conv2s2,conv3").variance[0] == Fraction(3, 12) + 4 * Fraction(
        8, 12
    )
    g = theory.gaussian_limit((rfa.Conv((3,)),) * 200)
    routes = rfa.routes("conv3*200", (401,))
    approx = g.profile(401, 0)
    assert np.abs(approx - routes).sum() / routes.sum() < 2e-3  # total-variation distance


def test_gaussian_limit_rejects_what_it_does_not_cover():
    with pytest.raises(ValueError, match=r"layer 2 \(res\(conv3p1\)\): the closed form covers"):
        theory.gaussian_limit("conv3,res(conv3p1)")
    with pytest.raises(ValueError, match="depends on the input size; pass input_shape"):
        theory.gaussian_limit(rfa.Conv(3, 2, "same"))
    # TF "same", k = 3, s = 2, n = 8: total padding max(3 - 2, 0) = 1, none before, so unit
    # 0 reads pixels 0 1 2 and is centred on 1
    assert theory.gaussian_limit(rfa.Conv(3, 2, "same"), 8).start == (Fraction(1),) * 2


def test_valid_edge_centre_ratio_is_k_to_the_minus_depth():
    for k, depth in [(3, 5), (2, 12), (5, 3)]:
        n = 2 * depth * (k - 1) + 1  # the centre is depth (k - 1) pixels from both borders
        cov = rfa.coverage(f"conv{k}*{depth}", (n,), exact=True).tolist()
        assert Fraction(cov[0], cov[(n - 1) // 2]) == theory.valid_edge_centre_ratio(k, depth)
        # the edge has one route, the centre k^depth (every route of the centre unit's field)
        assert theory.valid_edge_centre_ratio(k, depth) == Fraction(1, k**depth)
    assert theory.rf_edge_centre_ratio(2, 10) == Fraction(1, 252)


def test_same_padding_ratio_tends_to_the_perron_limit():
    n = 33
    limit = theory.same_edge_centre_limit(n)
    # the leading eigenvector of the tridiagonal ones matrix: sin(pi (i + 1) / (n + 1))
    lp = theory.limit_profile("conv3p1", (n,))
    expected = np.sin(np.pi * np.arange(1, n + 1) / (n + 1))
    np.testing.assert_allclose(lp.profile, expected / expected.max(), atol=1e-12)
    assert lp.growth == pytest.approx(1 + 2 * math.cos(math.pi / (n + 1)))
    assert lp.edge_centre_ratio() == pytest.approx(limit)
    # sin(pi / 34) / sin(pi * 17 / 34) = sin(pi / 34): the edge over the middle pixel
    assert limit == pytest.approx(math.sin(math.pi / 34), rel=1e-12)
    # the engine at depth 4000: the second eigenvalue's share has shrunk by (lambda2 / lambda1)^L
    logs = rfa.coverage("conv3p1*4000", (n,), log=True)
    assert 10 ** (logs[0] - logs[(n - 1) // 2]) == pytest.approx(limit, rel=1e-9)
    growth = 10 ** (logs.max() - rfa.coverage("conv3p1*3999", (n,), log=True).max())
    assert growth == pytest.approx(lp.growth, rel=1e-9)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "symmetric", "circular"])
def test_limit_profiles_of_other_padding_modes_match_the_engine(mode):
    n = 12
    lp = theory.limit_profile(f"conv3p1:{mode}", (n,))
    logs = rfa.coverage(f"conv3p1:{mode}*3000", (n,), log=True)
    np.testing.assert_allclose(lp.profile, 10 ** (logs - logs.max()), rtol=1e-9)
    if mode in ("circular", "replicate", "symmetric"):
        # every pixel is read exactly 3 times: A^T 1 = 3 * 1
        np.testing.assert_allclose(lp.profile, 1.0, rtol=1e-12)
        assert lp.growth == pytest.approx(3.0)
    else:
        # reflect: pixel 0 is read by windows 0 and 1; pixel 1 by windows 0 (twice, once
        # mirrored), 1 and 2. With edges 1/2 and the rest 1, both read 3 times the profile:
        # 1/2 + 1 = 3 (1/2) and 1/2 + 1/2 + 1 + 1 = 3 (1)
        np.testing.assert_allclose(lp.profile, [0.5] + [1.0] * (n - 2) + [0.5], rtol=1e-12)
        assert lp.growth == pytest.approx(3.0)


def test_limit_profile_2d_is_an_outer_product_and_handles_reducible_layers():
    lp = theory.limit_profile("conv3p1", (5, 7))
    np.testing.assert_allclose(
        lp.profile,
        np.outer(
            theory.limit_profile("conv3p1", (5,)).profile,
            theory.limit_profile("conv3p1", (7,)).profile,
        ),
    )
    # dilation 2 splits the pixels into two independent chains of 4 and 3 units
    # (roots 1 + 2 cos(pi / 5) and 1 + 2 cos(pi / 4)): the odd chain's share vanishes
    lp = theory.limit_profile("conv3d2p2", (7,))
    logs = rfa.coverage("conv3d2p2*3000", (7,), log=True)
    np.testing.assert_allclose(lp.profile, 10 ** (logs - logs.max()), rtol=1e-9, atol=1e-12)
    assert lp.profile[1::2].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(theory.limit_profile("conv1", (4,)).profile, 1.0, rtol=1e-12)


def test_limit_profile_needs_a_size_preserving_layer():
    with pytest.raises(ValueError, match=r"must keep the size; it maps 8 to 6"):
        theory.limit_profile("conv3", (8,))
    with pytest.raises(ValueError, match=r"must be one convolution or pool, got 'conv3p1\*2'"):
        theory.limit_profile("conv3p1*2", (8,))


def test_windows_per_pixel_and_the_question_example():
    assert theory.windows_per_pixel(64, 4) == (16, 16)
    cov = rfa.coverage("conv64s4", (256, 256))
    assert cov[128, 128] == 16 * 16
    # 3 taps, stride 2: an even pixel is read by two windows, an odd one by one
    assert theory.windows_per_pixel(3, 2) == (1, 2)
    interior = rfa.coverage("conv3s2", (21,))[4:-4]
    assert set(interior.tolist()) == {1.0, 2.0}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: theory.multinomial_row(0, 3), ValueError, "`kernel_size` must be >= 1, got 0"),
        (lambda: theory.multinomial_row(3, -1), ValueError, "`depth` must be >= 0, got -1"),
        (lambda: theory.multinomial_row(3, 2.5), TypeError, "`depth` must be an integer"),
        (lambda: theory.windows_per_pixel(3, 0), ValueError, "`stride` must be >= 1"),
        (lambda: theory.same_edge_centre_limit(0), ValueError, "`n` must be >= 1"),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("activation", [None, "relu"])
def test_random_weight_influence_is_the_square_root_of_routes(activation):
    # statistical, with a fixed seed: 64 draws of He-normal weights, 8 channels. Measured
    # distances are about 0.04 for the right law and above 0.2 for the wrong one, so the
    # tolerances separate them with room on both sides.
    net, shape = "conv3p1*8", (25, 25)
    routes = rfa.routes(net, shape)
    kw = dict(weights="normal", activation=activation, channels=8, trials=64, rng=3)
    mean_abs = rfa.influence(net, shape, **kw)
    assert rfa.compare(theory.random_weight_influence(routes), mean_abs).total_variation < 0.08
    assert rfa.compare(routes, mean_abs).total_variation > 0.16
    mean_square = rfa.influence(net, shape, reduction="square", **kw)
    if activation is None:  # exact in expectation for a linear network
        assert rfa.compare(routes, mean_square).total_variation < 0.1
        assert (
            rfa.compare(theory.random_weight_influence(routes), mean_square).total_variation > 0.18
        )


def test_random_weight_influence_input():
    assert theory.random_weight_influence(rfa.routes("conv2*4", (5,), exact=True)).tolist() == [
        1.0,
        2.0,
        6**0.5,
        2.0,
        1.0,
    ]
    with pytest.raises(ValueError, match="must be finite, non-negative route counts"):
        theory.random_weight_influence([0.0, -np.inf])
    with pytest.raises(ValueError, match=r"exceed the float64 range; use 10 \*\* \(log10"):
        theory.random_weight_influence(np.array([1, 10**400], dtype=object))


def test_a_periodic_layer_has_no_limit_profile_when_coverage_cycles():
    # taps at offsets -1 and +1 connect even pixels only to odd ones: on 5 pixels (three
    # even, two odd) coverage alternates between two shapes with the parity of the depth
    even = rfa.coverage("conv2d2p1*400", (5,))
    odd = rfa.coverage("conv2d2p1*401", (5,))
    assert not np.allclose(even / even.max(), odd / odd.max())
    with pytest.raises(ValueError, match=r"coverage does not settle on input 5: it cycles"):
        theory.limit_profile("conv2d2p1", (5,))
    # on 6 pixels the two classes are mirror images: the cycle is not excited and a limit exists
    lp = theory.limit_profile("conv2d2p1", (6,))
    for depth in (400, 401):
        c = rfa.coverage(f"conv2d2p1*{depth}", (6,))
        np.testing.assert_allclose(lp.profile, c / c.max(), rtol=1e-9)
