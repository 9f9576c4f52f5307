"""The compact spec grammar: examples, round trips and error messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

import rfanalysis as rfa

from .strategies import stacks


def test_design_examples():
    assert rfa.parse("conv3p1*10") == rfa.Network([rfa.Conv(3, padding=1)] * 10)
    net = rfa.parse("conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*2")
    assert net.layers[0] == rfa.Conv(7, 2, 3)
    assert net.layers[1] == rfa.Pool(3, 2, 1)
    assert net.layers[2] == net.layers[3] == rfa.Residual([rfa.Conv(3, padding=1)] * 2)
    assert rfa.parse("conv3p1:reflect*5").layers[4].padding_mode == "reflect"
    lenet = rfa.parse("conv5,maxpool2s2,fc10")
    assert lenet.layers == (rfa.Conv(5), rfa.Pool(2), rfa.Dense(10))
    assert rfa.parse("conv3x5").layers[0].kernel_size == (3, 5)


def test_every_kind_and_option():
    net = rfa.parse(
        "lc3, avgpool3s1p1, lppool2c, tconv4s2p1o1d2, up2, conv3pfull, "
        "conv3psame:circular, cat(conv1|id|conv3p1), res(conv3s2p1|conv1s2), fc7"
    )
    kinds = [type(x).__name__ for x in net]
    assert kinds == [
        "LocallyConnected",
        "Pool",
        "Pool",
        "ConvTranspose",
        "Upsample",
        "Conv",
        "Conv",
        "Concat",
        "Residual",
        "Dense",
    ]
    assert net[1].kind == "avg" and net[1].stride == (1,)
    assert net[2].kind == "lp" and net[2].ceil_mode
    assert net[3].output_padding == (1,) and net[3].dilation == (2,)
    assert net[5].padding == ((2, 2),) and net[6].padding == "same"
    assert net[7].branches[1] == ()
    assert net[8].shortcut == (rfa.Conv(1, 2),)


def test_case_and_whitespace_are_forgiven():
    assert rfa.parse(" Conv3P1 , MaxPool2 * 2 ") == rfa.parse("conv3p1,maxpool2*2")


@settings(max_examples=200, deadline=None)
@given(net=stacks(ndim=1))
def test_spec_round_trip(net):
    assert rfa.parse(net.spec()) == net


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"the spec is empty"),
        ("conv", r"expected a size after 'conv' at position 4 \(found end of spec\)"),
        ("conv3,,conv3", r"expected a layer .* at position 6 \(found ','\)"),
        ("conv3p1*0", r"repeat count must be at least 1 at position 8 \(found '0'\)"),
        ("conv3*", r"expected a repeat count after '\*' at position 6"),
        ("res(conv3p1", r"expected '\)' to close 'res\(' at position 11 \(found end of spec\)"),
        ("cat(conv1)", r"'cat\(' needs at least two branches"),
        ("conv3)", r"expected ',' or the end of the spec at position 5 \(found '\)'\)"),
        ("conv3:mirror", r"expected a padding mode .* at position 6 \(found 'mirror'\)"),
        ("maxpool2:reflect", r"a padding mode applies to conv and blurpool only"),
        ("conv3q1", r"expected ',' or the end of the spec at position 5 \(found 'q1'\)"),
        ("fc3x3", r"fc takes a single number"),
        ("conv3s2s2", r"'s' given twice at position 7"),
        ("conv3c", r"'c' is not an option of 'conv'"),
        ("tconv3s2o2", r"output_padding.*must be smaller than stride or dilation"),
        ("relu", r"expected a layer \(conv, lc, .* or 'id' at position 0 \(found 'relu'\)"),
        ("conv0", r"kernel_size` must be >= 1"),
    ],
)
def test_errors_name_position_and_token(text, message):
    with pytest.raises(ValueError, match=message):
        rfa.parse(text)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="must be a spec string"):
        rfa.parse(3)
