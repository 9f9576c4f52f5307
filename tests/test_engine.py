"""Route counts against values computed by hand or from closed forms (binomials)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rfanalysis as rfa


def ints(a):
    return np.asarray(a).astype(np.int64).tolist()


# --------------------------------------------------------------------------- hand-computed rows
def test_pascal_row_depth_10():
    assert ints(rfa.routes("conv2*10", (11,))) == [1, 10, 45, 120, 210, 252, 210, 120, 45, 10, 1]


def test_trinomial_rows():
    # (1 + x + x^2)^2 = 1 2 3 2 1 ; (1 + x + x^2)^3 = 1 3 6 7 6 3 1
    assert ints(rfa.routes("conv3*2", (5,))) == [1, 2, 3, 2, 1]
    assert ints(rfa.routes("conv3*3", (7,))) == [1, 3, 6, 7, 6, 3, 1]


def test_same_3x3_coverage_corner_edge_interior():
    cov = ints(rfa.coverage("conv3p1", (5, 5)))
    assert cov[0][0] == 4 and cov[0][2] == 6 and cov[2][2] == 9
    assert cov == [
        [4, 6, 6, 6, 4],
        [6, 9, 9, 9, 6],
        [6, 9, 9, 9, 6],
        [6, 9, 9, 9, 6],
        [4, 6, 6, 6, 4],
    ]
    assert rfa.coverage(rfa.Conv(3, padding="same"), (5, 5)).tolist() == cov


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # c b | a b c d | c b : unit 0 reads b a b, unit 3 reads c d c
        ("conv3p1:reflect", [2, 4, 4, 2]),
        # a | a b c d | d : uniform
        ("conv3p1:symmetric", [3, 3, 3, 3]),
        ("conv3p1:replicate", [3, 3, 3, 3]),
        ("conv3p1:circular", [3, 3, 3, 3]),
        ("conv3p1", [2, 3, 3, 2]),
        # pad 2: replicate a a | a b c d | d d ; symmetric b a | a b c d | d c
        ("conv5p2:replicate", [6, 4, 4, 6]),
        ("conv5p2:symmetric", [5, 5, 5, 5]),
        # c b | a b c d | c b : units read cbabc, babcd, abcdc, bcdcb
        ("conv5p2:reflect", [3, 7, 7, 3]),
        ("conv5p2:circular", [5, 5, 5, 5]),
    ],
)
def test_padding_modes_one_layer(spec, expected):
    assert ints(rfa.coverage(spec, (4,))) == expected


def test_reflect_two_layers():
    # one layer on 5 pixels gives [2, 4, 3, 4, 2]; the second layer adds it up again
    assert ints(rfa.coverage("conv3p1:reflect", (5,))) == [2, 4, 3, 4, 2]
    assert ints(rfa.coverage("conv3p1:reflect*2", (5,))) == [6, 11, 11, 11, 6]


def test_stride_checkerboard_and_dilation_holes():
    # windows [0 1 2], [2 3 4], [4 5 6]
    assert ints(rfa.coverage("conv3s2", (7,))) == [1, 1, 2, 1, 2, 1, 1]
    # taps 0, 2, 4
    assert ints(rfa.routes("conv3d2", (5,))) == [1, 0, 1, 0, 1]


def test_question_64_kernel_stride_4_reaches_256_units():
    # the seed question: each interior pixel feeds (64 / 4)^2 = 16 x 16 = 256 windows
    cov = rfa.coverage("conv64s4", (256, 256))
    assert cov[128, 128] == 256
    assert cov[0, 0] == 1


def test_pools():
    assert ints(rfa.coverage("maxpool2", (4,))) == [1, 1, 1, 1]
    # windows [-1 0 1], [1 2 3], [3 4 5]; padding is never a route
    assert ints(rfa.coverage("maxpool3s2p1", (5,))) == [1, 2, 1, 2, 1]
    # ceil mode: 5 pixels, windows [0 1], [2 3], [4]
    assert rfa.output_shape("maxpool2c", (5,)) == (3,)
    assert ints(rfa.coverage("maxpool2c", (5,))) == [1, 1, 1, 1, 1]
    # ceil mode, padding 1 on 3 pixels: padded positions 0..4; windows start at 0 and 2; a
    # third would start at 4, in the right padding, which torch drops
    assert rfa.output_shape("maxpool2s2p1c", (3,)) == (2,)
    assert ints(rfa.coverage("maxpool2s2p1c", (3,))) == [1, 1, 1]
    # transposed convolution with output padding 1: (2 - 1) * 2 + 3 + 1 = 6 outputs; the
    # last one has no input (output 5: no i, t with 2i + t = 5, t < 3, i < 2)
    assert rfa.output_shape("tconv3s2o1", (2,)) == (6,)


def test_transposed_conv_and_upsample():
    # input 0 writes outputs 0 1 2, input 1 writes 2 3 4
    assert rfa.output_shape("tconv3s2", (2,)) == (5,)
    assert ints(rfa.coverage("tconv3s2", (2,))) == [3, 3]
    assert ints(rfa.routes("tconv3s2", (2,))) == [1, 1]
    assert ints(rfa.routes("tconv3s2", (2,), unit=(1,))) == [1, 0]
    assert ints(rfa.coverage("up2", (3,))) == [2, 2, 2]
    assert ints(rfa.coverage("up3", (2, 2))) == [[9, 9], [9, 9]]


def test_dense_residual_concat():
    base = [2, 3, 3, 3, 2]
    assert ints(rfa.coverage("conv3p1", (5,))) == base
    assert ints(rfa.coverage("conv3p1,fc10", (5,))) == [10 * v for v in base]
    assert ints(rfa.routes("conv3p1,fc10", (5,))) == base
    assert ints(rfa.coverage("res(conv3p1)", (5,))) == [v + 1 for v in base]
    assert ints(rfa.coverage("cat(conv1|conv3p1)", (5,))) == [v + 1 for v in base]
    assert ints(rfa.coverage("cat(id|conv3p1|conv3p1)", (5,))) == [2 * v + 1 for v in base]
    # projection shortcut: body conv3s2p1 covers [1 2 1 2 1] (windows [-1 0 1], [1 2 3],
    # [3 4 5]); shortcut conv1s2 reads pixels 0, 2, 4
    assert ints(rfa.coverage("res(conv3s2p1|conv1s2)", (5,))) == [2, 2, 2, 2, 2]


def test_unit_selection():
    assert ints(rfa.routes("conv3", (5,), unit=(0,))) == [1, 1, 1, 0, 0]
    assert ints(rfa.routes("conv3", (5,), unit=(-1,))) == [0, 0, 1, 1, 1]
    assert ints(rfa.routes("conv3", (5,), unit=2)) == [0, 0, 1, 1, 1]
    r = rfa.routes("conv3", (4, 6), unit=(0, 3))
    assert r.shape == (4, 6) and r.sum() == 9 and r[0:3, 3:6].sum() == 9
    # "center" is unit (m - 1) // 2: on 6 pixels conv3 has 4 units; unit 1 reads 1, 2, 3
    assert ints(rfa.routes("conv3", (6,))) == [0, 1, 1, 1, 0, 0]
    assert ints(rfa.routes("conv3", (6, 5), unit="center")[:, 1]) == [0, 1, 1, 1, 0, 0]


# --------------------------------------------------------------------------- number systems
def test_exact_matches_binomials_beyond_float64():
    exact = rfa.routes("conv2*100", (101,), exact=True)
    assert exact.dtype == object
    assert exact.tolist() == [math.comb(100, i) for i in range(101)]
    assert all(type(v) is int for v in exact.tolist())


def test_exact_2d_is_outer_product_of_binomials():
    exact = rfa.routes("conv2*60", (61, 61), exact=True)
    row = [math.comb(60, i) for i in range(61)]
    assert exact[30, 17] == row[30] * row[17]
    assert exact[0, 0] == 1


def _log10_comb(n, k):
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(10)


def test_log_mode_deep_is_finite_and_exact_enough():
    n = 2000
    logs = rfa.routes(f"conv2*{n}", (n + 1,), log=True)
    assert np.isfinite(logs).all()
    expected = np.array([_log10_comb(n, k) for k in range(n + 1)])
    np.testing.assert_allclose(logs, expected, rtol=1e-9, atol=1e-9)
    assert logs[0] == 0.0  # the edge pixel has exactly one route, beside 10^600 in the middle


def test_log_mode_zero_routes_are_minus_inf():
    logs = rfa.routes("conv3d2", (5,), log=True)
    assert np.isneginf(logs[[1, 3]]).all()
    np.testing.assert_array_equal(logs[[0, 2, 4]], [0.0, 0.0, 0.0])


def test_log_mode_through_blocks_and_dense():
    spec = "conv3p1,res(conv3p1:reflect*2),cat(conv1|conv3p1),fc3"
    np.testing.assert_allclose(
        10 ** rfa.coverage(spec, (6, 7), log=True), rfa.coverage(spec, (6, 7)), rtol=1e-12
    )


def test_float_overflow_raises_with_hint():
    with pytest.raises(rfa.CountOverflowError, match=r"log=True.*exact=True"):
        rfa.routes("conv2*1100", (1101,))
    # and it is a ValueError, so callers catching bad input catch it too
    with pytest.raises(ValueError, match="float64 range"):
        rfa.coverage("conv3p1*700", (9, 9))


def test_exact_and_log_are_exclusive():
    with pytest.raises(ValueError, match="`exact` and `log` are exclusive"):
        rfa.routes("conv3", (5,), exact=True, log=True)


def test_float_agrees_with_exact_below_2_53():
    spec = "conv3p1:reflect*4,maxpool2s2,res(conv3p1*2),tconv2s2"
    f = rfa.coverage(spec, (12, 10))
    e = rfa.coverage(spec, (12, 10), exact=True)
    assert f.tolist() == [[float(v) for v in row] for row in e.tolist()]


# --------------------------------------------------------------------------- shapes and inputs
def test_output_shape_rules():
    assert rfa.output_shape("conv5,maxpool2s2", 28) == (12, 12)
    assert rfa.output_shape("conv7s2p3", 224) == (112, 112)
    # TF "same" for stride 2: ceil(n / s)
    assert rfa.output_shape(rfa.Conv(3, 2, "same"), (7, 8)) == (4, 4)
    assert rfa.output_shape(rfa.Conv(3, padding="full"), (5,)) == (7,)
    assert rfa.output_shape("conv3x5", (7, 7)) == (5, 3)
    assert rfa.output_shape("conv3", (7, 7, 7)) == (5, 5, 5)


def test_int_input_size_means_every_axis():
    assert rfa.coverage("conv3", 5).shape == (5, 5)
    assert rfa.coverage(rfa.Conv((3,)), 5).shape == (5,)
    assert rfa.coverage(rfa.Conv((3, 3, 3)), 5).shape == (5, 5, 5)


def test_memory_estimate_refuses_huge_inputs():
    with pytest.raises(ValueError, match=r"would need about .* of memory"):
        rfa.coverage("conv3p1", (10**6, 10**6))


def test_memory_guard_ignores_small_jobs_on_a_busy_machine(monkeypatch):
    from rfanalysis import _memory

    # a machine with almost no memory left still runs a tiny job ...
    monkeypatch.setattr(_memory, "available_bytes", lambda: 1024)
    assert rfa.coverage("conv3p1", (8, 8)).shape == (8, 8)
    # ... but refuses a large one
    with pytest.raises(ValueError, match=r"would need about .* but only 1.0 KB is available"):
        rfa.coverage("conv3p1", (4096, 4096))


# --------------------------------------------------------------------------- fast paths
# the transpose of a window as box sums per residue of its stride, the identity of a 1x1
# layer, a large map computed a block of rows at a time, and constant (global) terms added
# as numbers: each against the brute-force enumerator, in every number system
FAST_PATHS = [
    "conv7s2p3",  # boxes of widths 3 and 4 sharing pair sums
    "conv5p2",  # one residue, a box of 5 (4 + 1)
    "conv7p3:reflect",  # boxes, then the taps the padding mode redirects
    "conv5p4d2:circular",  # dilation: offsets that are no box
    "conv6s3p2",
    "conv9s4p4:replicate",
    "conv5s2p4d2",
    "maxpool3s2p1",
    "tconv4s2p1",  # the transpose of a transposed convolution gathers: no boxes
    "conv1,conv1s2,conv7p3*2",  # identities, then boxes of boxes
    "conv4s4",  # a patch embedding: each unit repeated, the units past the last patch zero
    "conv1,avgpool2s2,conv3s3",  # repeats in sequence (2 and 3 units per axis)
    "maxpool2c,maxpool3s3c",  # ceil mode: the last window is cut short
    "conv2s2p1",  # as wide as the stride but padded: boxes, not repeats
]


@pytest.mark.parametrize("spec", FAST_PATHS)
@pytest.mark.parametrize("block", [None, 5])
@pytest.mark.parametrize("dense", [False, True])
def test_fast_paths_equal_brute_force(spec, block, dense, monkeypatch):
    from rfanalysis._ops import windows

    from .oracles import brute_coverage, brute_routes

    if block is not None:  # blocks of one or two rows
        monkeypatch.setattr(windows, "_BLOCK", block)
    if dense:  # a residual after the layer: the counts reach it as a map, not as vectors
        spec += ",res(conv3p1)"
    shape = (23, 17)
    coverage = brute_coverage(spec, shape)
    routes = brute_routes(spec, shape, "center")
    assert rfa.coverage(spec, shape, exact=True).tolist() == coverage.tolist()
    assert rfa.routes(spec, shape, exact=True).tolist() == routes.tolist()
    np.testing.assert_array_equal(rfa.coverage(spec, shape), coverage.astype(float))
    with np.errstate(divide="ignore"):
        expected = np.log10(routes.astype(float))
    np.testing.assert_allclose(rfa.routes(spec, shape, log=True), expected, rtol=1e-13)


def test_constant_terms_add_as_numbers():
    # y = x * gap(x): every unit reads its pixel and, through the gate, every pixel (DESIGN
    # section 9); the gate's term is constant over the map
    x = rfa.Input()
    net = rfa.Network(rfa.Mul()(rfa.Conv(3, padding=1)(x), rfa.GlobalPool()(x)))
    # 3x3 coverage of conv3p1 (per axis 2 3 2 on 3 pixels) plus 9 gated units per pixel
    expected = np.outer([2, 3, 2], [2, 3, 2]) + 9
    np.testing.assert_array_equal(rfa.coverage(net, (3, 3)), expected)
    assert rfa.coverage(net, (3, 3), exact=True).tolist() == expected.tolist()
    np.testing.assert_allclose(rfa.coverage(net, (3, 3), log=True), np.log10(expected))
    # gates alone: a constant map
    gate = rfa.Network(rfa.Mul()(rfa.GlobalPool()(x), rfa.GlobalPool()(x)))
    np.testing.assert_array_equal(rfa.coverage(gate, (2, 3)), np.full((2, 3), 2))


@pytest.mark.torch
def test_large_maps_a_block_at_a_time_equal_autograd():
    from .oracles import torch_grad

    spec = "conv7s2p3,maxpool3s2p1,conv3p1:reflect,conv5s2p2,tconv4s2p1,conv1"
    shape = (700, 530)  # 371,000 units: computed in blocks of rows
    np.testing.assert_array_equal(rfa.coverage(spec, shape), torch_grad(spec, shape))
    np.testing.assert_array_equal(rfa.routes(spec, shape), torch_grad(spec, shape, "center"))


def test_counting_leaves_no_reference_cycles(monkeypatch):
    # arrays held in a cycle live until the garbage collector runs: memory a large map
    # would need twice over
    import gc

    from rfanalysis._ops import windows

    monkeypatch.setattr(windows, "_BLOCK", 64)  # blocks of rows, box sums in each
    net = rfa.parse("conv7s2p3,maxpool3s2p1,res(conv3p1)")
    rfa.coverage(net, (40, 36))  # plans and operators are cached on the first call
    gc.collect()
    gc.disable()
    try:
        rfa.coverage(net, (40, 36))
        rfa.routes(net, (40, 36), log=True)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_same_padding_puts_the_odd_pixel_at_the_end():
    # conv2 "same" on 3 pixels pads 1 in total, at the end (torch; TF's rule for stride 1):
    # windows [0 1], [1 2], [2 pad]
    assert ints(rfa.coverage(rfa.Conv(2, padding="same"), (3,))) == [1, 2, 2]
    # stride 2 (TF): 4 pixels, total max(4 - 2, 0) = 2, one before and one after; 5 pixels,
    # total max(4 - 1, 0) = 3, one before and two after. conv4s2 windows on 5 pixels:
    # [pad 0 1 2], [1 2 3 4], [3 4 pad pad]
    assert ints(rfa.coverage(rfa.Conv(4, 2, "same"), (5,))) == [1, 2, 2, 2, 2]
