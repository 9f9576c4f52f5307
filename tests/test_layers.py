"""Layer value objects: normalisation, equality, hashing, repr and validation."""

from __future__ import annotations

import pytest

import rfanalysis as rfa


def test_normalised_once_at_construction():
    c = rfa.Conv(3, padding=1)
    assert c.kernel_size == (3,) and c.padding == ((1, 1),) and c.ndim is None
    c2 = rfa.Conv((3, 5), padding=1)
    assert c2.ndim == 2 and c2.padding == ((1, 1), (1, 1)) and c2.stride == (1, 1)
    c3 = rfa.Conv(3, padding=((0, 1), (2, 3)))
    assert c3.ndim == 2 and c3.kernel_size == (3, 3) and c3.padding == ((0, 1), (2, 3))
    assert c.expand(2) == rfa.Conv((3, 3), padding=(1, 1))
    assert rfa.Pool(2).stride == (2,) and rfa.Pool((2, 3)).stride == (2, 3)
    # "valid" and "full" depend on the kernel only and are resolved at once
    assert rfa.Conv(3, padding="valid") == rfa.Conv(3)
    assert rfa.Conv((3, 5), padding="full", dilation=2).padding == ((4, 4), (8, 8))
    assert rfa.Conv(3, 2, "same").padding == "same"


def test_frozen_hashable_values():
    a, b = rfa.Conv(3, padding=1), rfa.Conv(3, 1, 1)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.stride = 2  # type: ignore[misc]
    assert rfa.Conv(3) != rfa.Conv((3,))  # an ndim-free layer differs from a 1-D one
    net = rfa.Network([a, rfa.Residual([a]), rfa.Concat([a], [])])
    assert hash(net) == hash(rfa.Network(list(net)))


def test_reprs_are_short_and_readable():
    assert (
        repr(rfa.Conv(3, 2, 1, padding_mode="reflect"))
        == "Conv(3, stride=2, padding=1, padding_mode='reflect')"
    )
    assert repr(rfa.Pool(3, 2, kind="avg")) == "Pool(3, stride=2, kind='avg')"
    assert repr(rfa.Network([rfa.Conv(3)] * 3, name="x")) == "Network('conv3*3', name='x')"


@pytest.mark.parametrize(
    "layer",
    [
        rfa.Conv((3, 5), 2, ((0, 1), (2, 2)), 2, padding_mode="circular", name="c"),
        rfa.Conv(3, in_channels=4, out_channels=8, groups=2, bias=False),
        rfa.LocallyConnected(5, in_channels=1, out_channels=20, bias=False, name="lc"),
        rfa.Pool(3, 2, 1, kind="lp", norm_type=3.0, ceil_mode=True, name="p"),
        rfa.ConvTranspose(4, 2, 1, output_padding=1, in_channels=2, out_channels=2, groups=2),
        rfa.Upsample((2, 3), name="up"),
        rfa.Dense(10, in_channels=3, bias=False, name="head"),
        rfa.Residual([rfa.Conv(3, padding=1)], shortcut=[rfa.Conv(1)], name="block"),
        rfa.Concat([rfa.Conv(1)], [], name="cat"),
        rfa.Parallel([], [rfa.GlobalPool(), rfa.Conv(1)], merge=rfa.Mul(gates=(1,)), name="se"),
        rfa.Parallel([rfa.Conv(3, padding=1)], [], merge="add"),
    ],
)
def test_repr_evaluates_back_to_an_equal_layer(layer):
    namespace = {name: getattr(rfa, name) for name in rfa.__all__}
    assert eval(repr(layer), namespace) == layer
    assert repr(layer).startswith(type(layer).__name__ + "(")
    if getattr(layer, "name", None):
        assert repr(layer).endswith(f"name={layer.name!r})")


def test_networks_flatten_and_add():
    a = rfa.Network([rfa.Conv(3)])
    b = rfa.Network([a, rfa.Pool(2)])
    assert len(b) == 2 and (a + b).spec() == "conv3*2,maxpool2"


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: rfa.Conv(0), ValueError, r"`kernel_size` must be >= 1, got 0"),
        (lambda: rfa.Conv(-3), ValueError, r"`kernel_size` must be >= 1"),
        (lambda: rfa.Conv(2.5), TypeError, r"`kernel_size` must be an integer, got 2.5"),
        (lambda: rfa.Conv(3, stride=0), ValueError, r"`stride` must be >= 1"),
        (lambda: rfa.Conv(3, dilation=0), ValueError, r"`dilation` must be >= 1"),
        (lambda: rfa.Conv(3, padding=-1), ValueError, r"`padding` must be >= 0"),
        (lambda: rfa.Conv(3, padding="half"), ValueError, r"one of 'same', 'valid', 'full'"),
        (
            lambda: rfa.Conv(3, padding_mode="mirror"),
            ValueError,
            r"`padding_mode` must be one of zeros, reflect, symmetric, replicate, circular",
        ),
        (
            lambda: rfa.Conv((3, 3), stride=(1, 1, 1)),
            ValueError,
            r"`kernel_size` has 2, `stride` has 3",
        ),
        (lambda: rfa.Conv(3, in_channels=6, groups=4), ValueError, r"divisible by `groups`"),
        (
            lambda: rfa.Pool(2, kind="median"),
            ValueError,
            r"Pool `kind` must be one of max, avg, lp",
        ),
        (
            lambda: rfa.ConvTranspose(3, 2, output_padding=2),
            ValueError,
            r"`output_padding` \(2\) must be smaller",
        ),
        (lambda: rfa.ConvTranspose(3, padding="same"), ValueError, r"crops the output"),
        (lambda: rfa.Upsample(0), ValueError, r"`scale_factor` must be a positive number"),
        (lambda: rfa.Dense(0), ValueError, r"`out_features` must be >= 1"),
        (lambda: rfa.Residual([]), ValueError, r"at least one layer"),
        (lambda: rfa.Residual([3]), TypeError, r"`body` item 1 is not a layer: 3"),
        (lambda: rfa.Concat(), ValueError, r"at least one branch"),
        (lambda: rfa.Network([]), ValueError, r"at least one layer"),
        (
            lambda: rfa.Network([rfa.Conv((3, 3)), rfa.Conv((3, 3, 3))]),
            ValueError,
            r"layer 2 \(conv3\) is 3-D but layer 1 \(conv3\) is 2-D",
        ),
    ],
)
def test_bad_layer_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    ("spec", "shape", "message"),
    [
        # 8 -> 6 -> 2, and a 5-tap kernel does not fit in 2; it fits in 5 = (11 - 3) // 2 + 1,
        # and 11 = 13 - 2
        (
            "conv3,conv3s2,conv5",
            (8,),
            r"layer 3 \(conv5\): output size 0 for input 2 .* too small for this stack; the "
            r"smallest input that works is 13$",
        ),
        ("conv3,conv3s2,conv5", 8, r"too small for this stack \(this layer's input is 2x2\)"),
        (
            "conv3p3:reflect",
            (3,),
            r"layer 1 \(conv3p3:reflect\): reflect padding must be smaller "
            r"than the input \(pad < n\); got padding 3 for input 3",
        ),
        ("conv3p4:circular", (3,), r"circular padding must not exceed the input"),
        (
            "res(conv3)",
            (8,),
            r"layer 1 \(res\(conv3\)\): branch outputs must have the same "
            r"spatial shape .* body 6, shortcut 8",
        ),
        ("fc10,conv3", (8,), r"layer 2 \(conv3\): a spatial layer cannot follow a dense layer"),
        ("tconv3p3", (1,), r"the crop removes the whole output"),
    ],
)
def test_plan_errors_name_the_layer(spec, shape, message):
    with pytest.raises(ValueError, match=message):
        rfa.coverage(spec, shape)


def test_dimension_and_channel_mismatches():
    with pytest.raises(ValueError, match=r"is 1-D but the input 8x8 has 2 spatial axes"):
        rfa.coverage(rfa.Network([rfa.Conv((3,))]), (8, 8))
    net = rfa.Network([rfa.Conv(3, out_channels=8), rfa.Conv(3, in_channels=4, out_channels=4)])
    with pytest.raises(
        ValueError,
        match=r"layer 2 \(conv3\): in_channels is 4 but the previous "
        r"layer gives 8 channels",
    ):
        rfa.geometry(net, 16)
    with pytest.raises(ValueError, match=r"`unit` \(9, 0\) is out of range on axis 0"):
        rfa.routes("conv3", (8, 8), unit=(9, 0))
    with pytest.raises(ValueError, match=r"`unit` \(1,\) has 1 coordinates but"):
        rfa.routes("conv3", (8, 8), unit=(1,))
    with pytest.raises(TypeError, match=r"`input_shape` must contain integers"):
        rfa.coverage("conv3", (8.5, 8))
    with pytest.raises(ValueError, match=r"`input_shape` sizes must be >= 1"):
        rfa.coverage("conv3", (0, 8))
    with pytest.raises(TypeError, match=r"`net` must be a Network"):
        rfa.coverage(42, 8)
