"""Receptive-field geometry: hand-computed tables, parameter counts, and the closed form
against the support of the engine's route maps."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rfanalysis as rfa

from .strategies import window_chains


def test_stem_by_hand():
    # conv7s2p3: unit u covers [2u - 3, 2u + 3]; pool3s2p1 unit 0 reads conv units -1..1,
    # so it covers [-5, 5]: size 11, jump 4, effective padding 5
    g = rfa.geometry("conv7s2p3,maxpool3s2p1", 224)
    conv, pool = g.rows[1], g.rows[2]
    assert (conv.rf_size, conv.jump, conv.eff_padding, conv.output) == (
        (7, 7),
        (2, 2),
        (3, 3),
        (112, 112),
    )
    assert (pool.rf_size, pool.jump, pool.eff_padding, pool.output) == (
        (11, 11),
        (4, 4),
        (5, 5),
        (56, 56),
    )
    assert g.receptive_field.size == (11, 11)


def test_repeated_same_conv():
    rf = rfa.receptive_field("conv3p1*10")
    assert rf.size == (21, 21) and rf.stride == (1, 1) and rf.padding == (10, 10)
    assert rf.start == (0, 0) and rf.center(5) == (5, 5)


def test_dilation_counts():
    # k_eff = d (k - 1) + 1: 3, 5, 9 -> 1 + 2 + 4 + 8 = 15
    assert rfa.receptive_field("conv3,conv3d2,conv3d4").size == (15, 15)


def test_non_square_and_fractional_start():
    rf = rfa.receptive_field("conv3x5,maxpool2s2")
    assert rf.size == (4, 6) and rf.stride == (2, 2)
    assert rf.start == (Fraction(3, 2), Fraction(5, 2))


def test_transposed_conv_and_upsample_divide_the_jump():
    rf = rfa.receptive_field("conv3s2p1,conv3s2p1,tconv4s2p1")
    # after two stride-2 convs: size 7, jump 4; tconv4s2p1 output j reads units i with
    # 2i + t - 1 = j: two neighbours (span 1), so size 7 + 4 = 11 and jump 4 / 2
    assert rf.stride == (2, 2) and rf.size == (11, 11)
    r = rfa.routes("conv3s2p1,conv3s2p1,tconv4s2p1", (64,), unit=(16,))
    assert np.flatnonzero(r).tolist() == list(range(25, 36))
    assert rfa.receptive_field("up2").stride == (Fraction(1, 2),) * 2


def test_lenet_parameter_counts_from_the_tutorial():
    g = rfa.geometry(rfa.zoo.get("lenet"), 28)
    conv = g.rows[1]
    # 20 maps x (5 x 5 + 1) shared weights = 520
    assert conv.params == conv.params_shared == 520
    assert conv.output == (24, 24)
    # one weight set per output position: 24 x 24 x 520
    assert conv.params_local == 24 * 24 * 520
    # every input pixel to every output unit, plus a bias per output unit
    assert conv.params_dense == 784 * (24 * 24 * 20) + 24 * 24 * 20
    assert g.rows[2].output == (12, 12)
    assert g.rows[3].params == 12 * 12 * 20 * 10 + 10
    assert g.params == 520 + 28810


def test_dense_layer_of_the_tutorial():
    # a dense layer of 30 units on a 28x28 image: 784 x 30 + 30 = 23550
    g = rfa.geometry(rfa.Network([rfa.Dense(30, in_channels=1)]), 28)
    assert g.params == 23550
    assert g.receptive_field.size == ("global", "global") and g.receptive_field.is_global


def test_grouped_and_transposed_parameter_counts():
    net = rfa.Network(
        [
            rfa.Conv(3, in_channels=32, out_channels=64, groups=4, bias=False),
            rfa.ConvTranspose(2, 2, in_channels=64, out_channels=16),
        ]
    )
    g = rfa.geometry(net, 8)
    assert g.rows[1].params == 9 * 8 * 64
    assert g.rows[2].params == 4 * 64 * 16 + 16


def test_residual_union_and_misalignment():
    aligned = rfa.geometry("res(conv3s2p1|conv1s2)", 8)
    assert aligned.rows[-1].note == ""
    assert aligned.receptive_field.size == (3, 3)
    # body conv2s2: unit 0 centred at 0.5; shortcut conv1s2: unit 0 centred at 0
    g = rfa.geometry("res(conv2s2|conv1s2)", 8)
    merge = g.rows[-1]
    assert "misaligned" in merge.note and "1/2" in merge.note
    assert merge.rf_size == (2, 2) and merge.start == (Fraction(1, 2),) * 2


def test_same_padding_with_stride_needs_the_input_size():
    g = rfa.geometry(rfa.Conv(4, 2, "same"))
    assert g.rows[1].padding == (None, None) and g.receptive_field.padding == (None, None)
    assert g.receptive_field.size == (4, 4)
    # TF: n = 8 (divisible by 2): total 2 -> (1, 1); n = 9: total 3 -> (1, 2)
    assert rfa.geometry(rfa.Conv(4, 2, "same"), 8).rows[1].padding == ((1, 1), (1, 1))
    assert rfa.geometry(rfa.Conv(4, 2, "same"), 9).rows[1].padding == ((1, 2), (1, 2))


def test_exports():
    g = rfa.geometry("conv3p1,res(conv3p1*2),maxpool2s2", 32)
    text = str(g)
    assert "receptive field 8" in text and "5.body" not in text and "2.body.1" in text
    d = g.to_dict()
    json.dumps(d)
    assert d["receptive_field"]["size"] == [8, 8] and len(d["rows"]) == len(g.rows) == 6
    csv_lines = g.to_csv().splitlines()
    assert csv_lines[0].startswith("index,layer,kind,output") and len(csv_lines) == 7
    md = g.to_markdown().splitlines()
    assert md[0].startswith("| # | layer |") and md[1].startswith("|---|---|") and len(md) == 8


@settings(max_examples=150, deadline=None)
@given(net=window_chains(), data=st.data())
def test_closed_form_matches_route_support(net, data):
    """Unit o's routes reach exactly [o J - P, o J - P + R - 1] when it is away from borders."""
    rf = rfa.receptive_field(net)
    (size,), (jump,), (pad,) = rf.size, rf.stride, rf.padding
    n = 3 * size + 2 * pad + 4 * jump
    out = rfa.output_shape(net, (n,))[0]
    lo_unit = -(-pad // jump)
    hi_unit = (n - size + pad) // jump
    assume(lo_unit <= min(hi_unit, out - 1))
    o = data.draw(st.integers(lo_unit, min(hi_unit, out - 1)))
    support = np.flatnonzero(rfa.routes(net, (n,), (o,)))
    assert support[0] == o * jump - pad
    assert support[-1] == o * jump - pad + size - 1


def test_geometry_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 3 \(conv5\): output size 0 for input 2"):
        rfa.geometry("conv3,conv3,conv5", 6)


def test_transposed_convolutions_say_their_rows_summarise_phases():
    # tconv4s2p1 after two stride-2 convs: unit 16 is fed by layer-2 units 7 and 8 (taps 3
    # and 1), unit 17 by 8 and 9 (taps 2 and 0), so their fields [25, 35] and [29, 39] are
    # centred on 30 and 34, not on the table's start + o * jump = 31 and 33
    net = "conv3s2p1,conv3s2p1,tconv4s2p1"
    g = rfa.geometry(net, 64)
    assert g.rows[3].note.startswith("output phases differ")
    assert "any unit's exact field" in str(g)
    for unit, (lo, hi) in [(16, (25, 35)), (17, (29, 39))]:
        support = np.flatnonzero(rfa.routes(net, (64,), unit=(unit,)))
        assert (support[0], support[-1]) == (lo, hi)
    assert rfa.receptive_field(net).center(16)[0] == 31
    assert rfa.geometry("conv3p1,tconv3p1").rows[2].note == ""  # stride 1: one phase


def test_windowed_attention_has_its_window_field_without_an_input_size():
    # a 3x3 convolution, then windows of 4 tokens: 3 + (4 - 1) = 6 pixels, at any size that
    # the windows split (and with no size at all)
    net = [rfa.Conv(3), rfa.Attention(window_size=4)]
    assert rfa.geometry(net).rows[-1].rf_size == (6, 6)
    assert rfa.geometry(net, (64, 64)).rows[-1].rf_size == (6, 6)
    assert rfa.receptive_field(net).size == (6, 6)
