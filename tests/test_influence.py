"""Empirical influence maps (numpy backend): the ones-weight identity against the engine,
pool gradients computed by hand, the effective-receptive-field statistics of random ReLU
networks, determinism and argument validation."""

from __future__ import annotations

import io
import math
import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import rfanalysis as rfa
from rfanalysis._empirical import _numpy
from rfanalysis._empirical._progress import Progress

from .strategies import MODES, stack_output, stack_settings, stacks

SETTINGS = stack_settings(60)


def _one_channel_adds(net):
    """Whether every residual add with an identity shortcut sees a one-channel input.

    A concat really concatenates channels: with ones weights each of them carries the routes
    of its branch, and the next weighted layer sums them (the routes add, as the engine
    counts). But an identity shortcut carries the channels as they are while the residual
    body's last layer outputs that many channels, each the sum of all of them: the body's
    routes would count once per channel. Strategies place blocks at the top level only.
    """
    several = False
    for x in net.layers:
        if isinstance(x, rfa.Concat):
            several = True
        elif isinstance(x, (rfa.Conv, rfa.LocallyConnected, rfa.ConvTranspose, rfa.Dense)):
            several = False
        elif isinstance(x, rfa.Residual) and x.shortcut is None and several:
            return False
    return True


def _without_pools(net):
    return rfa.Network([x for x in net.layers if not isinstance(x, rfa.Pool)] or [rfa.Conv(1)])


def _avg_pools(net):
    """Every pool made an avg pool without ceil_mode (its divisor is then the window size)."""
    layers = []
    for x in net.layers:
        if isinstance(x, rfa.Pool):
            x = rfa.Pool(x.kernel_size, x.stride, x.padding, x.dilation, kind="avg")
        layers.append(x)
    return rfa.Network(layers)


# --------------------------------------------------------------------------- ones-weight identity
# A one-channel, bias-free linear network with weights 1 has d y_u / d x_i = number of routes
# from i to u (every route contributes the product of its weights, 1); the sum over u gives
# coverage. These maps are integers below 2**53, so float64 must match exactly.
@SETTINGS
@given(net=stacks(ndim=1, max_layers=5), n=st.integers(3, 14), data=st.data())
def test_ones_weights_equal_routes_and_coverage_1d(net, n, data):
    net = _without_pools(net)
    out = stack_output(net, (n,))
    assume(out is not None and _one_channel_adds(net))
    unit = tuple(data.draw(st.integers(0, m - 1)) for m in out)
    np.testing.assert_array_equal(rfa.influence(net, (n,), unit), rfa.routes(net, (n,), unit))
    np.testing.assert_array_equal(rfa.influence(net, (n,), "all"), rfa.coverage(net, (n,)))


@stack_settings(40)
@given(net=stacks(ndim=2, max_layers=4), h=st.integers(3, 10), w=st.integers(3, 10))
def test_ones_weights_equal_routes_and_coverage_2d(net, h, w):
    net = _without_pools(net)
    out = stack_output(net, (h, w))
    assume(out is not None and _one_channel_adds(net))
    np.testing.assert_array_equal(rfa.influence(net, (h, w)), rfa.routes(net, (h, w)))
    corner = (0,) * len(out)
    np.testing.assert_array_equal(
        rfa.influence(net, (h, w), corner), rfa.routes(net, (h, w), corner)
    )
    np.testing.assert_array_equal(rfa.influence(net, (h, w), "all"), rfa.coverage(net, (h, w)))


# An avg pool is (1/K) times the window sum whose gradient is the route count, with K its
# window size (count_include_pad: padding counts, so K is the same for every window unless a
# ceil_mode window overhangs). The strategies place pools only at the top level, where every
# route crosses each of them once, so influence = routes / prod(K).
@SETTINGS
@given(net=stacks(ndim=1, max_layers=5), n=st.integers(3, 14))
def test_avg_pools_divide_routes_by_window_size(net, n):
    net = _avg_pools(net)
    assume(stack_output(net, (n,)) is not None and _one_channel_adds(net))
    scale = math.prod(math.prod(x.kernel_size) for x in net.layers if isinstance(x, rfa.Pool))
    np.testing.assert_allclose(rfa.influence(net, (n,)), rfa.routes(net, (n,)) / scale, rtol=1e-13)
    np.testing.assert_allclose(
        rfa.influence(net, (n,), "all"), rfa.coverage(net, (n,)) / scale, rtol=1e-13
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(13,), (9, 12)])
def test_every_padding_mode_deep_stack(mode, shape):
    spec = f"conv3p1:{mode}*3,conv5s2p2:{mode},conv3d2p2:{mode}*2"
    for unit in ["center", (0,) * len(shape), (-1,) * len(shape)]:
        np.testing.assert_array_equal(
            rfa.influence(spec, shape, unit), rfa.routes(spec, shape, unit)
        )
    np.testing.assert_array_equal(rfa.influence(spec, shape, "all"), rfa.coverage(spec, shape))


def test_resnet_style_stack_with_projection_concat_transposed_upsample_dense():
    spec = (
        "conv7s2p3,res(conv3p1,conv3p1)*2,res(conv3s2p1,conv3p1|conv1s2),"
        "cat(conv1|conv3p1|conv5p2|id),lc3p1,tconv4s2p1,up2,conv3p1:reflect"
    )
    for shape in [(37, 41), (30,)]:
        np.testing.assert_array_equal(rfa.influence(spec, shape, "all"), rfa.coverage(spec, shape))
        np.testing.assert_array_equal(rfa.influence(spec, shape), rfa.routes(spec, shape))
    dense = spec + ",fc3"
    np.testing.assert_array_equal(
        rfa.influence(dense, (20, 17), (2,)), rfa.routes(dense, (20, 17), (2,))
    )


def test_concat_then_identity_residual_counts_each_channel():
    # cat(id|id) makes two channels, each equal to x (2 routes per pixel, as the engine
    # counts). res(conv1): the body's 1x1 ones-weight layer outputs 2 channels, each x + x;
    # adding the shortcut gives 3x per channel, 6x over both: the body's routes count twice
    # (channels are real here, not collapsed), so the map is 6 where routes are 4
    net = "cat(id|id),res(conv1)"
    assert rfa.coverage(net, (3,)).tolist() == [4, 4, 4]
    assert rfa.influence(net, (3,), "all").tolist() == [6, 6, 6]


def test_three_dimensional_stack():
    spec = "conv3p1:circular,conv2s2,res(conv3p1),tconv2s2,up2"
    np.testing.assert_array_equal(
        rfa.influence(spec, (5, 6, 4), "all"), rfa.coverage(spec, (5, 6, 4))
    )


# --------------------------------------------------------------------------- pools by hand
def test_avg_pool_ceil_mode_divisor_follows_torch():
    # n=3, k=2, s=2, ceil_mode: windows [0, 1] and [2, (3)]; torch divides by the part of the
    # window inside the (padded) input: 2 and 1. Gradient of the sum: 1/2, 1/2, 1/1.
    assert rfa.influence("avgpool2c", (3,), "all").tolist() == [0.5, 0.5, 1.0]
    # padding counts (count_include_pad=True): n=2, k=3, s=1, p=1 -> two windows of 3, each
    # pixel is in both: 2/3
    np.testing.assert_allclose(rfa.influence("avgpool3s1p1", (2,), "all"), [2 / 3, 2 / 3])


def test_max_pool_routes_one_pixel_per_window_avg_pool_spreads():
    # 8x8 input, 2x2 windows, gradient of the sum: each of the 16 windows sends 1 to its
    # argmax (max) or 1/4 to each of its 4 pixels (avg)
    for seed in range(3):
        m = rfa.influence("maxpool2", (8, 8), "all", rng=seed)
        windows = m.reshape(4, 2, 4, 2).transpose(0, 2, 1, 3).reshape(16, 4)
        assert ((windows != 0).sum(axis=1) == 1).all()
        assert windows.sum(axis=1).tolist() == [1.0] * 16
    avg = rfa.influence("avgpool2", (8, 8), "all")
    assert (avg == 0.25).all()


def test_max_pool_sends_gradient_to_the_argmax_of_given_input():
    x = np.array([[1.0, 5.0, 2.0, 2.0], [0.0, 3.0, 4.0, -1.0]])
    # windows along the row axis of (2, 4) with a 1x2 kernel: (1,5) (2,2) | (0,3) (4,-1);
    # ties go to the first element (torch's choice)
    m = rfa.influence(rfa.Pool((1, 2)), (2, 4), "all", inputs=x)
    assert m.tolist() == [[0, 1, 1, 0], [0, 1, 1, 0]]


def test_lp_pool_derivative_by_hand():
    # y = sqrt(3^2 + 4^2) = 5; dy/dx = x / y = (0.6, 0.8), signed
    m = rfa.influence(rfa.Pool(2, kind="lp"), (2,), inputs=[3.0, 4.0], reduction="signed")
    np.testing.assert_allclose(m, [0.6, 0.8])
    # a window of zeros has no gradient (not NaN)
    assert rfa.influence(rfa.Pool(2, kind="lp"), (2,), inputs=[0.0, 0.0]).tolist() == [0, 0]


def test_max_pool_influence_is_sparse_per_trial_after_a_convolution():
    # conv3p1 then maxpool2 on 8x8, centre unit, one channel, ones weights: the pool picks one
    # of its 4 inputs, whose 3x3 window gives 9 nonzero pixels; avg pooling touches the union
    # of four 3x3 windows (4x4 = 16 pixels)
    for seed in range(3):
        assert np.count_nonzero(rfa.influence("conv3p1,maxpool2", (8, 8), rng=seed)) == 9
    assert np.count_nonzero(rfa.influence("conv3p1,avgpool2", (8, 8))) == 16


# --------------------------------------------------------------------------- random ReLU nets
def _moments(m):
    p = m / m.sum()
    x = np.arange(m.size)
    mu = (p * x).sum()
    sigma = math.sqrt((p * (x - mu) ** 2).sum())
    gauss = np.exp(-((x - mu) ** 2) / (2 * sigma**2))
    return mu, sigma, 0.5 * np.abs(p - gauss / gauss.sum()).sum()


def test_random_relu_stack_is_gaussian_with_sigma_growing_like_sqrt_depth():
    # Luo et al. (2016): the effective receptive field of a deep stack is Gaussian-shaped with
    # a standard deviation that grows like sqrt(depth). Derivation of the scale: with zero-mean
    # independent weights the cross terms of E[g_i^2] vanish, so E[g_i^2] is proportional to
    # routes(i), a multinomial row of variance n (k^2 - 1) / 12 = 2n/3 for k = 3; g_i is
    # close to normal (a sum over many channel paths), so E|g_i| ~ sqrt(routes(i)), whose
    # profile has twice that variance: sigma^2 ~ 4n/3.
    depths = np.array([8, 16, 32, 64])
    sigmas, tvs, shifts = [], [], []
    for depth in depths:
        n = 2 * depth + 65  # wide enough that no border is reached
        kw = dict(weights="normal", activation="relu", channels=16, trials=64)
        m = rfa.influence(f"conv3p1*{depth}", (n,), rng=0, **kw)  # fixed seed
        mu, sigma, tv = _moments(m)
        sigmas.append(sigma)
        tvs.append(tv)
        shifts.append(abs(mu - (n - 1) / 2))
    slope = np.polyfit(np.log(depths), np.log(sigmas), 1)[0]
    tolerance = 0.1
    assert abs(slope - 0.5) < tolerance  # sigma ~ depth ** 0.5
    # the same tolerance rejects wrong growth laws: linear (slope 1) or none (slope 0)
    assert abs(slope - 1.0) > tolerance and abs(slope - 0.0) > tolerance
    assert max(tvs) < 0.12  # total-variation distance to the fitted Gaussian
    assert max(s / sigma for s, sigma in zip(shifts, sigmas)) < 0.25  # centred
    for depth, sigma in zip(depths[2:], sigmas[2:]):
        assert abs(sigma / math.sqrt(4 * depth / 3) - 1) < 0.15


def test_relu_with_ones_weights_and_positive_inputs_is_linear():
    # ones weights and positive inputs keep every pre-activation positive: ReLU passes all
    # gradients and the map is the route count
    x = np.ones((1, 9, 9))
    m = rfa.influence("conv3p1*3", (9, 9), activation="relu", inputs=x)
    np.testing.assert_array_equal(m, rfa.routes("conv3p1*3", (9, 9)))


def test_channels_scale_ones_weight_maps():
    # C channels, ones weights, no activation: layer 1 copies its one input channel into C
    # equal channels, layers 2 and 3 each sum C equal channels (factor C each), and the
    # output unit sums C channels: factor C^3
    m = rfa.influence("conv3p1*3", (9, 9), channels=4)
    np.testing.assert_array_equal(m, 4**3 * rfa.routes("conv3p1*3", (9, 9)))
    two = rfa.influence("conv3p1*3", (9, 9), channels=4, in_channels=2)
    np.testing.assert_array_equal(two, 2 * m)  # |gradient| summed over two input channels


def test_signed_and_abs_reductions():
    kw = dict(weights="normal", channels=3, trials=2, rng=4)
    signed = rfa.influence("conv3p1*3", (9,), reduction="signed", **kw)
    absolute = rfa.influence("conv3p1*3", (9,), **kw)
    assert (signed < 0).any()
    assert (absolute >= np.abs(signed)).all()


def test_given_inputs_and_trials():
    x = np.random.default_rng(7).standard_normal((3, 1, 6, 6))  # fixed seed
    kw = dict(weights="normal", activation="relu", channels=2, rng=1)
    a = rfa.influence("conv3p1*2,maxpool2", (6, 6), inputs=x, **kw)
    b = rfa.influence("conv3p1*2,maxpool2", (6, 6), inputs=x, trials=3, **kw)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"`trials` is 2 but `inputs` holds 3"):
        rfa.influence("conv3p1", (6, 6), inputs=x, trials=2)
    with pytest.raises(ValueError, match=r"`inputs` must have shape \(trials, 1, 6, 6\)"):
        rfa.influence("conv3p1", (6, 6), inputs=np.zeros((2, 5)))


def test_float32_matches_float64():
    kw = dict(weights="normal", activation="relu", channels=4, trials=3, rng=2)
    a = rfa.influence("conv3p1*4,avgpool2,conv3p1", (16, 16), dtype="float32", **kw)
    b = rfa.influence("conv3p1*4,avgpool2,conv3p1", (16, 16), **kw)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * b.max())


def test_overflow_is_an_error_not_inf():
    # ones weights, 16 channels: the centre's gradient grows about 9 x 16 = 144-fold a layer
    with pytest.raises(FloatingPointError, match=r"overflowed float32.*use dtype='float64', "):
        rfa.influence("conv3p1*40", (9, 9), channels=16, dtype="float32")
    # float64 lasts to about 144^143 ~ 1e308; then only the other advice applies
    with pytest.raises(FloatingPointError, match=r"overflowed float64 \(or became NaN\); use fe"):
        rfa.influence("conv3p1*150", (9, 9), channels=16)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_map_different_seed_different_map():
    kw = dict(weights="normal", activation="relu", channels=4, trials=3)
    a = rfa.influence("conv3p1*4,maxpool2", (12, 12), rng=5, **kw)
    b = rfa.influence("conv3p1*4,maxpool2", (12, 12), rng=5, **kw)
    c = rfa.influence("conv3p1*4,maxpool2", (12, 12), rng=6, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    g1 = rfa.influence("conv3p1*4", (12, 12), rng=np.random.default_rng(3), **kw)
    g2 = rfa.influence("conv3p1*4", (12, 12), rng=np.random.default_rng(3), **kw)
    np.testing.assert_array_equal(g1, g2)
    gen = np.random.default_rng(3)  # a Generator advances: two calls give two draws
    assert not np.array_equal(
        rfa.influence("conv3p1*4", (12, 12), rng=gen, **kw),
        rfa.influence("conv3p1*4", (12, 12), rng=gen, **kw),
    )


def test_seed_sequence_is_not_consumed():
    seq = np.random.SeedSequence(9)
    kw = dict(weights="normal", channels=2, trials=2)
    np.testing.assert_array_equal(
        rfa.influence("conv3p1*2", (9,), rng=seq, **kw),
        rfa.influence("conv3p1*2", (9,), rng=seq, **kw),
    )
    assert seq.n_children_spawned == 0


def test_result_does_not_depend_on_batching(monkeypatch):
    kw = dict(weights="uniform", activation="relu", channels=3, trials=5, rng=8)
    whole = rfa.influence("conv3p1*3,maxpool2,fc4", (8, 8), **kw)
    monkeypatch.setattr(_numpy, "batch_size", lambda model, trials, itemsize: 2)
    np.testing.assert_allclose(rfa.influence("conv3p1*3,maxpool2,fc4", (8, 8), **kw), whole)


def test_callable_weights():
    calls = []

    def half(shape, rng):
        calls.append(shape)
        return np.full(shape, 0.5)

    m = rfa.influence("conv3p1,conv3p1", (7,), weights=half, channels=2, trials=2)
    # two layers of weight 0.5, two channels: the second layer sums 2 channels, the output
    # unit sums 2 channels -> routes * 0.5^2 * 2 * 2
    np.testing.assert_array_equal(m, rfa.routes("conv3p1*2", (7,)))
    assert calls == [(2, 1, 3), (2, 2, 3)] * 2  # torch layout, once per layer and trial
    with pytest.raises(ValueError, match=r"`weights` callable returned shape \(3,\)"):
        rfa.influence("conv3p1", (7,), weights=lambda shape, rng: np.ones(3))


# --------------------------------------------------------------------------- progress
def test_progress_bar_only_on_request_or_terminal():
    quiet = io.StringIO()
    with Progress(10, "x", None, stream=quiet) as bar:  # not a terminal
        for _ in range(10):
            bar.tick()
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    with Progress(4, "influence", True, stream=loud) as bar:
        for _ in range(4):
            bar.tick()
    assert "influence [" in loud.getvalue() and "100%" in loud.getvalue()


def test_influence_progress_goes_to_stderr(capsys):
    rfa.influence("conv3p1*2", (8, 8), progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "100%" in captured.err
    rfa.influence("conv3p1*2", (8, 8))  # automatic: stderr is not a terminal here
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(trials=0), ValueError, r"`trials` must be >= 1, got 0"),
        (dict(trials=2.5), TypeError, r"`trials` must be an integer"),
        (dict(channels=0), ValueError, r"`channels` must be >= 1, got 0"),
        (dict(channels=True), TypeError, r"`channels` must be an integer"),
        (dict(in_channels=0), ValueError, r"`in_channels` must be >= 1"),
        (dict(weights="zeros"), ValueError, r"`weights` must be one of ones, normal, uniform"),
        (dict(weights=3), TypeError, r"`weights` must be one of .* got int"),
        (dict(activation="tanh"), ValueError, r"`activation` must be None or 'relu'"),
        (dict(backend="jax"), ValueError, r"`backend` must be one of numpy, torch; got 'jax'"),
        (dict(reduction="max"), ValueError, r"`reduction` must be one of abs, signed"),
        (dict(rng="seed"), TypeError, r"`rng` must be an int seed"),
        (dict(rng=-1), ValueError, r"`rng` seed must be >= 0"),
        (dict(dtype="float16"), ValueError, r"`dtype` must be float32 or float64"),
        (dict(progress="yes"), TypeError, r"`progress` must be None, True or False"),
        (dict(device="cuda"), ValueError, r"`device` applies to the torch backend"),
        (dict(unit="corner"), ValueError, r"`unit` must be 'center', 'all' or an index"),
        (dict(unit=(5, 0)), ValueError, r"`unit` \(5, 0\) is out of range on axis 0"),
        (dict(unit=(1,)), ValueError, r"`unit` \(1,\) has 1 coordinates"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        rfa.influence("conv3p1,maxpool2", (8, 8), **kwargs)


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now fails
    with pytest.raises(ImportError, match=r'needs PyTorch: pip install "rfanalysis\[torch\]"'):
        rfa.influence("conv3", (8, 8), backend="torch")
    with pytest.raises(ImportError, match=r'needs PyTorch: pip install "rfanalysis\[torch\]"'):
        rfa.from_torch(object(), 8)


def test_memory_is_checked_before_allocating():
    with pytest.raises(ValueError, match=r"influence of conv3p1 for input 4096x4096 would need"):
        rfa.influence("conv3p1", 4096, channels=4096, trials=1000)


def test_channel_errors_name_the_layer():
    grouped = rfa.Network([rfa.Conv(3, padding=1, groups=2)])
    with pytest.raises(ValueError, match=r"layer 1 \(conv3p1\): groups=2 needs input and output"):
        rfa.influence(grouped, (8, 8), channels=4)
    declared = rfa.Network([rfa.Conv(3, in_channels=3)])
    with pytest.raises(ValueError, match=r"`in_channels` is 1 but the network's first weighted"):
        rfa.influence(declared, (8, 8), in_channels=1)


def test_in_channels_declared_after_a_block_without_weights():
    # a pool-only residual keeps channels, so the convolution after it sets the input's 5
    net = rfa.Network([rfa.Residual([rfa.Pool(1)]), rfa.Conv(3, padding=1, in_channels=5)])
    with pytest.raises(ValueError, match="`in_channels` is 4 but the network's first weighted"):
        rfa.influence(net, (8, 8), in_channels=4)
    # ones weights: d y / d x is the route count on each of the 5 input channels, summed
    np.testing.assert_array_equal(rfa.influence(net, (8, 8)), 5 * rfa.routes(net, (8, 8)))
