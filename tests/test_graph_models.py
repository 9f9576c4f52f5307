"""Real graph architectures built with the public builder: the zoo's DenseNet-121 trunk and
an HRNet-style multi-resolution network, against torch autograd of their single-channel
ones-weight graphs, the brute-force enumerator and published or hand-derived numbers."""

from __future__ import annotations

import numpy as np
import pytest

import rfanalysis as rfa

from .oracles import brute_coverage, brute_routes, torch_grad

DENSENET121 = (6, 12, 24, 16)  # dense layers per block (torchvision's densenet121)
GROWTH, BN_SIZE, STEM = 32, 4, 64


def densenet121_trunk():
    """The zoo's DenseNet-121 without its head: torchvision's ``densenet121().features``
    (conv0 7x7 stride 2 padding 3, pool0 3x3 max stride 2 padding 1; dense blocks of (6, 12,
    24, 16) layers, each a 1x1 conv to 128 channels then a 3x3 conv to 32 reading the
    concatenation of the block's input and every earlier layer's output; transitions: a 1x1
    conv halving the channels and a 2x2 average pool of stride 2), written with the builder.
    Its layers are checked against torchvision's in tests/test_zoo_modern.py."""
    return rfa.zoo.get("densenet121", trunk=True)


def _densenet121_bn_channels():
    """Channels of every BatchNorm2d of torchvision's densenet121: norm0 (64); per dense
    layer norm1 (its input channels) and norm2 (128); per transition its input channels;
    norm5 (1024)."""
    total, channels = STEM, STEM
    for b, layers in enumerate(DENSENET121, start=1):
        for i in range(layers):
            total += channels + GROWTH * i + BN_SIZE * GROWTH
        channels += GROWTH * layers
        total += channels
        if b < len(DENSENET121):
            channels //= 2
    return total


def test_densenet121_conv_parameters_match_torchvision():
    # torchvision's published total (meta["num_params"] in torchvision/models/densenet.py)
    # less BatchNorm's weight and bias per channel and the classifier Linear(1024, 1000)
    published = 7_978_856
    assert _densenet121_bn_channels() == 41_824
    conv_weights = published - 2 * 41_824 - (1024 * 1000 + 1000)
    assert conv_weights == 6_870_208
    net = densenet121_trunk()
    assert not net.is_tree
    assert rfa.geometry(net, 224).params == conv_weights


def test_densenet121_receptive_field_by_hand():
    # per axis r += (k - 1) j, j *= s, start += ((k - 1) / 2 - p) j along the longest path,
    # which runs through every 3x3 conv (concat operands are centred alike, so the union is
    # the longest): conv0 r 7 j 2; pool0 r 11 j 4; block 1: 6 x 2 x 4 -> 59; transition
    # (1x1, avg 2 s2): 63 j 8, start + 1/2 * 4 = 2; block 2: 12 x 2 x 8 -> 255; transition
    # 263 j 16, start 6; block 3: 24 x 2 x 16 -> 1031; transition 1047 j 32, start 14;
    # block 4: 16 x 2 x 32 -> 2071. Effective padding (2071 - 1) / 2 - 14 = 1021.
    rf = rfa.receptive_field(densenet121_trunk())
    assert rf.size == (2071, 2071)
    assert rf.stride == (32, 32)
    assert rf.start == (14, 14)
    assert rf.padding == (1021, 1021)
    assert rfa.output_shape(densenet121_trunk(), 224) == (7, 7)


def _assert_counts(ours_exact, theirs):
    """Exact counts against torch's float64 gradient: equal where they are below 2**53,
    else to float64's rounding over the graph's depth."""
    expected = np.asarray(ours_exact, dtype=object)
    if max(expected.ravel()) < 2**53:
        np.testing.assert_array_equal(expected.astype(np.float64), theirs)
    else:
        np.testing.assert_allclose(expected.astype(np.float64), theirs, rtol=1e-12, atol=0)


@pytest.mark.torch
def test_densenet121_routes_and_coverage_match_torch():
    net = densenet121_trunk()
    shape = (64, 64)  # block 4 runs at 2x2
    for unit in [(0, 0), (1, 1)]:
        routes = rfa.routes(net, shape, unit, exact=True)
        _assert_counts(routes, torch_grad(net, shape, unit))
        np.testing.assert_allclose(rfa.routes(net, shape, unit), routes.astype(float), rtol=1e-13)
    _assert_counts(rfa.coverage(net, shape, exact=True), torch_grad(net, shape))


def test_densenet121_matches_brute_force():
    net = densenet121_trunk()
    for shape in [(64, 64), (40, 47)]:
        exact = rfa.coverage(net, shape, exact=True)
        assert exact.tolist() == brute_coverage(net, shape).tolist()
        assert max(exact.ravel()) > 2**53  # beyond float64: the exact path is what is checked
        assert rfa.routes(net, shape, exact=True).tolist() == brute_routes(net, shape).tolist()


# --------------------------------------------------------------------------- HRNet
def hrnet_style(stages=2):
    """An HRNet-style network (Wang et al., "Deep High-Resolution Representation Learning
    for Visual Recognition", TPAMI 2020), small: a stem of two 3x3 stride-2 convs; each stage
    adds a branch at half the lowest resolution (a 3x3 stride-2 conv), gives every branch a
    residual block of two 3x3 convs, and ends with an exchange unit in which output branch
    i sums every input branch j: itself (j = i), a 1x1 conv and nearest upsampling by
    2**(j - i) from a lower resolution (j > i), or a chain of i - j strided 3x3 convs from a
    higher one (j < i). The head (HRNetV2) upsamples every branch to the highest resolution
    and concatenates them."""
    x = rfa.Input()
    y = rfa.Conv(3, 2, 1)(rfa.Conv(3, 2, 1)(x))
    branches = [y]
    for _ in range(stages):
        branches.append(rfa.Conv(3, 2, 1)(branches[-1]))
        branches = [
            rfa.Add()(b, rfa.Conv(3, padding=1)(rfa.Conv(3, padding=1)(b))) for b in branches
        ]
        fused = []
        for i in range(len(branches)):
            terms = []
            for j, b in enumerate(branches):
                if j > i:
                    b = rfa.Upsample(2 ** (j - i))(rfa.Conv(1)(b))
                for _ in range(i - j):
                    b = rfa.Conv(3, 2, 1)(b)
                terms.append(b)
            fused.append(rfa.Add()(*terms))
        branches = fused
    up = [rfa.Upsample(2**i)(b) if i else b for i, b in enumerate(branches)]
    return rfa.Network(rfa.Cat()(*up), name="hrnet-style")


def test_hrnet_style_shapes_and_structure():
    net = hrnet_style()
    assert not net.is_tree
    # 3 resolutions after 2 stages: 1/4, 1/8, 1/16 of (32, 48) -> (8, 12), (4, 6), (2, 3)
    assert rfa.output_shape(net, (32, 48)) == (8, 12)
    sums = [n for n in net.nodes if isinstance(n.layer, rfa.Add) and len(n.inputs) == 3]
    assert len(sums) == 3  # the last exchange unit: every output branch reads all three


@pytest.mark.torch
def test_hrnet_style_matches_torch():
    net = hrnet_style()
    shape = (32, 48)
    for unit in ["center", (0, 0), (7, 11)]:
        routes = rfa.routes(net, shape, unit, exact=True)
        _assert_counts(routes, torch_grad(net, shape, unit))
    _assert_counts(rfa.coverage(net, shape, exact=True), torch_grad(net, shape))


def test_hrnet_style_matches_brute_force():
    net = hrnet_style()
    shape = (32, 48)
    assert rfa.coverage(net, shape, exact=True).tolist() == brute_coverage(net, shape).tolist()
    assert rfa.routes(net, shape, (7, 0), exact=True).tolist() == (
        brute_routes(net, shape, (7, 0)).tolist()
    )
