"""Blind spots: uneven padding, zero-coverage pixels, asymmetry and clean input sizes.

Every expected value below is derived by hand from the stride arithmetic (torch's output size
m = floor((n + p_before + p_after - d(k - 1) - 1) / s) + 1; window o reads padded positions
o*s + t*d), written out in the comments.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

import rfanalysis as rfa
from rfanalysis.cli import main

from .cli_checks import assert_one_line_error


def uneven_paths(report):
    return [(u.path, u.axis) for u in report.uneven]


# --------------------------------------------------------------------------- one layer by hand
def test_one_layer_3tap_stride2_pad1_on_8_and_9():
    # n = 8: padded length 10 (positions 0..9, input i at i + 1), m = floor((10 - 3) / 2) + 1 = 4
    # windows read padded [0..2], [2..4], [4..6], [6..8]; position 9 (the trailing padding) is
    # never read. Input i (padded i + 1) is read by 2 windows at even padded positions 2, 4, 6
    # and by 1 elsewhere: coverage 1 2 1 2 1 2 1 1.
    # n = 9: padded 11, m = floor(8 / 2) + 1 = 5, windows up to [8..10]: every padded position
    # read, coverage 1 2 1 2 1 2 1 2 1.
    assert rfa.coverage("conv3s2p1", (8,)).tolist() == [1, 2, 1, 2, 1, 2, 1, 1]
    assert rfa.coverage("conv3s2p1", (9,)).tolist() == [1, 2, 1, 2, 1, 2, 1, 2, 1]

    r8 = rfa.blind_spots("conv3s2p1", (8,))
    (u,) = r8.uneven
    assert (u.path, u.axis, u.input_size, u.output_size) == ("1", 0, 8, 4)
    assert (u.padding, u.effective_padding, u.dropped, u.dropped_input) == ((1, 1), (1, 0), 1, 0)
    assert u.where == "layer 1 (conv3s2p1)" and u.size_dependent
    assert r8.zero_count == 0 and not r8.clean
    # mirror of 1 2 1 2 1 2 1 1 is 1 1 2 1 2 1 2 1: |difference| sums to 6, 2 * total = 22
    assert r8.asymmetry == pytest.approx((6 / 22,))

    r9 = rfa.blind_spots("conv3s2p1", (9,))
    assert r9.uneven == () and r9.zero_count == 0 and r9.asymmetry == (0.0,) and r9.clean


def test_report_text_golden():
    # the values are those derived in the test above
    assert str(rfa.blind_spots("conv3s2p1", (8,))) == "\n".join(
        [
            "blind spots of conv3s2p1 at input 8",
            "zero coverage: none",
            "uneven padding: 1 layer",
            "  layer 1 (conv3s2p1), positions: input 8 -> 4, padding 1+1, effective 1+0; "
            "the last padding position never read",
            "asymmetry (0 = mirror-symmetric): start/end 0.2727",
            "nearest clean input sizes: 7 below, 9 above",
        ]
    )


# --------------------------------------------------------------------------- stride-2 stacks
def hand_chain(n, k):
    """Input sizes of k conv3s2p1 layers and which of them are uneven.

    A 3-tap stride-2 pad-1 layer on n has m = floor((n + 2 - 3) / 2) + 1 windows; the last reads
    padded positions up to 2(m - 1) + 2, so the last padded position n + 1 is read iff
    2(m - 1) + 2 = n + 1, i.e. iff n is odd (n odd: m = (n + 1) / 2; n even: m = n / 2 and the
    trailing padding is dropped).
    """
    sizes, uneven = [], []
    for _ in range(k):
        sizes.append(n)
        uneven.append(n % 2 == 0)
        n = (n - 1) // 2 + 1
    return sizes, uneven


def hand_nearest(n, k):
    # All k layers are even iff every layer input is odd. The last input n_{k-1} = 2j + 1; going
    # back, n_{i-1} = 2 n_i - 1 (the only odd size with m = n_i), so n_0 = 2^k j + 1: the clean
    # sizes are n = 2^k m + 1 (m >= 0), and the nearest ones strictly below and above n are these.
    period = 2**k
    below = max((c for c in range(1, n) if (c - 1) % period == 0), default=None)
    above = min(c for c in range(n + 1, n + period + 1) if (c - 1) % period == 0)
    return below, above


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        (1, 8, (7, 9)),
        (2, 100, (97, 101)),
        (3, 64, (57, 65)),
        (3, 33, (25, 41)),
        (4, 224, (209, 225)),
    ],
)
def test_stride2_stack_even_odd_rule(k, n, expected):
    assert hand_nearest(n, k) == expected  # the comment's rule, spelled out for these n
    spec = f"conv3s2p1*{k}"
    report = rfa.blind_spots(spec, (n,))
    sizes, uneven = hand_chain(n, k)
    assert [u.path for u in report.uneven] == [str(i + 1) for i in range(k) if uneven[i]]
    assert [u.input_size for u in report.uneven] == [s for s, e in zip(sizes, uneven) if e]
    assert all(u.effective_padding == (1, 0) and u.dropped_input == 0 for u in report.uneven)
    assert (report.sizes[0].below, report.sizes[0].above) == expected
    for size in expected:
        clean = rfa.blind_spots(spec, (size,))
        assert clean.uneven == () and clean.clean


def test_stride2_stack_even_input_detected_in_2d():
    # 64 -> 32 -> 16 -> 8: every layer input is even, so all three drop their trailing padding
    report = rfa.blind_spots("conv3s2p1*3", 64)
    assert uneven_paths(report) == [(p, a) for p in "123" for a in (0, 1)]
    assert report.nearest_below == (57, 57) and report.nearest_above == (65, 65)
    assert rfa.blind_spots("conv3s2p1*3", 65).uneven == ()


def test_3d_per_axis_sizes():
    # axis 0 has 8 (uneven: 8 -> 4 -> 2 -> 1, all even inputs), axes 1 and 2 have 9 = 8 + 1
    # (clean). Clean sizes are 8m + 1: 1, 9, 17.
    report = rfa.blind_spots("conv3s2p1*3", (8, 9, 9))
    assert {u.axis for u in report.uneven} == {0}
    assert [u.input_size for u in report.uneven] == [8, 4, 2]
    assert [(s.below, s.above) for s in report.sizes] == [(1, 9), (1, 17), (1, 17)]
    assert report.nearest_above == (9, 17, 17)
    assert report.asymmetry[1:] == (0.0, 0.0) and report.asymmetry[0] > 0


# --------------------------------------------------------------------------- zero coverage
def test_zero_coverage_trailing_rows_and_columns():
    # conv3s3 on 8: m = floor(5 / 3) + 1 = 2 windows [0..2], [3..5]; inputs 6 and 7 are never
    # read (2 input units dropped). In 2-D the zero pixels are the last two rows and columns:
    # 64 - 6 * 6 = 28 pixels.
    report = rfa.blind_spots("conv3s3", 8)
    expected = np.zeros((8, 8), dtype=bool)
    expected[6:, :] = expected[:, 6:] = True
    np.testing.assert_array_equal(report.zero_mask, expected)
    assert report.zero_lines == ((6, 7), (6, 7))
    assert report.zero_count == 28 and report.zero_fraction == 28 / 64
    assert report.zero_description == "28 of 64 pixels (43.75%): last 2 rows and columns (6-7)"
    assert [(u.axis, u.dropped, u.dropped_input, u.effective_padding) for u in report.uneven] == [
        (0, 2, 2, (0, -2)),
        (1, 2, 2, (0, -2)),
    ]
    # clean sizes: 3 taps, stride 3, no padding: every input read and none dropped iff n % 3 == 0
    assert (report.sizes[0].below, report.sizes[0].above) == (6, 9)


def test_zero_coverage_stride_gaps():
    # conv2s3 on 8: m = floor(6 / 3) + 1 = 3 windows [0,1], [3,4], [6,7]; positions 2 and 5 are
    # between windows. The last window ends at 7: nothing is dropped.
    report = rfa.blind_spots("conv2s3", (8,))
    assert report.zero_pixels.tolist() == [[2], [5]]
    assert report.zero_description == "2 of 8 pixels (25.00%): positions 2 and 5"
    assert report.uneven == ()
    # position 2 exists for every n >= 3 and is never read; n = 2 (one window) is clean, n = 1
    # is too small
    assert (report.sizes[0].below, report.sizes[0].above) == (2, None)
    assert "none within 64 above" in str(report)
    narrow = rfa.blind_spots("conv2s3", (8,), max_distance=5)
    assert (narrow.sizes[0].below, narrow.sizes[0].limit) == (None, 5)
    assert "none within 5 below, none within 5 above" in str(narrow)


def test_zero_coverage_dilated_conv():
    # conv2s2d2 on 9: taps at o*2 and o*2 + 2, m = floor((9 - 3) / 2) + 1 = 4 windows reading
    # {0,2}, {2,4}, {4,6}, {6,8}: the odd positions 1, 3, 5, 7 are never read; the last window
    # ends at 8, so the padding (none) is even. In 2-D: 81 - 5 * 5 = 56 zero pixels.
    report = rfa.blind_spots("conv2s2d2", 9)
    assert report.zero_lines == ((1, 3, 5, 7), (1, 3, 5, 7))
    assert report.zero_count == 56
    assert report.zero_description == (
        "56 of 81 pixels (69.14%): every 2nd row and column from 1 to 7 (4 rows and columns)"
    )
    assert report.uneven == () and report.to_dict()["zero_coverage"]["pixels"] == []


CROSSED = "cat(conv1x1s2x1,maxpool1x3s1x2p0x1|maxpool3x1s2x1p1x0,conv1x1s1x2)"


def test_isolated_zero_pixels_from_branches_with_gaps_on_different_axes():
    # On odd n (5): branch 1 reads rows 0, 2, 4 only (1x1 stride 2 on rows) and every column
    # (3-tap stride-2 pad-1 pool, even on odd n); branch 2 reads every row and columns 0, 2, 4.
    # Both give 3x3. A pixel has no route iff its row and its column are both odd.
    report = rfa.blind_spots(CROSSED, 5)
    assert report.zero_pixels.tolist() == [[1, 1], [1, 3], [3, 1], [3, 3]]
    assert report.zero_lines == ((), ())
    assert (
        report.zero_description
        == "4 of 25 pixels (16.00%): 4 pixels: (1, 1), (1, 3), (3, 1), (3, 3)"
    )
    assert report.uneven == () and not report.clean
    # per axis, odd sizes are even-padded and covered (the other branch fills the gaps), so
    # 3 and 7 are the nearest per-axis sizes; combined, 3x3 keeps (1, 1) and 7x7 keeps the 9
    # pixels with odd row and odd column
    assert [(s.below, s.above) for s in report.sizes] == [(3, 7), (3, 7)]
    assert report.nearest_below is None and report.nearest_above is None
    assert "combine into 3x3, which still has 1 zero-coverage pixel " in report.notes[0]
    assert "combine into 7x7, which still has 9 zero-coverage pixels" in report.notes[1]
    assert report.to_dict()["zero_coverage"]["pixels"] == [[1, 1], [1, 3], [3, 1], [3, 3]]


def test_to_dict_reconstructs_the_mask_and_is_json():
    for spec, shape in (("conv3s3", 8), (CROSSED, 5), ("conv2s3", (8,))):
        report = rfa.blind_spots(spec, shape)
        data = json.loads(json.dumps(report.to_dict()))
        mask = np.zeros(report.input_shape, dtype=bool)
        for axis, lines in enumerate(data["zero_coverage"]["lines"]):
            index = [slice(None)] * mask.ndim
            index[axis] = lines
            mask[tuple(index)] = True
        for pixel in data["zero_coverage"]["pixels"]:
            mask[tuple(pixel)] = True
        np.testing.assert_array_equal(mask, report.zero_mask)
        assert data["input_shape"] == list(report.input_shape)


def test_report_is_frozen():
    report = rfa.blind_spots("conv3s3", 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.network = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        report.zero_mask[0, 0] = False


# --------------------------------------------------------------------------- asymmetry
@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("conv3p1*3", (7, 9)),
        ("conv3s2p1*2", (9, 13)),  # 9 -> 5 -> 3 and 13 -> 7 -> 4: every layer input odd
        ("res(conv3p1,conv3p1),conv5s2p2", (11,)),
        ("conv3p1:reflect*2,maxpool2", (8, 8)),
    ],
)
def test_asymmetry_zero_for_symmetric_stacks(spec, shape):
    # every layer pads evenly (odd inputs to the stride-2 layers, stride 1 elsewhere, and a
    # 2-pool on even sizes), so each layer maps a mirror-symmetric map to a symmetric one
    report = rfa.blind_spots(spec, shape)
    assert report.uneven == ()
    assert report.asymmetry == (0.0,) * len(shape)


def test_asymmetry_hand_computed_conv2s2_on_5():
    # conv2s2 on 5: m = floor(3 / 2) + 1 = 2 windows [0,1], [2,3]: coverage 1 1 1 1 0, mirror
    # 0 1 1 1 1, |difference| sums to 2, 2 * total = 8: asymmetry 0.25. In 2-D (5, 4) the map is
    # the outer product with 1 1 1 1 along columns: 4 * 2 / (2 * 16) = 0.25 on axis 0, 0 on axis 1.
    assert rfa.blind_spots("conv2s2", (5,)).asymmetry == (0.25,)
    assert rfa.blind_spots("conv2s2", (5, 4)).asymmetry == (0.25, 0.0)


# --------------------------------------------------------------------------- ResNet-50 stem+stages
# torchvision's ResNet-50 (He et al. 2016, torchvision.models.resnet): conv1 7x7 s2 p3, maxpool
# 3x3 s2 p1, then Bottleneck blocks [3, 4, 6, 3] (1x1, 3x3 carrying the stride, 1x1) with a 1x1
# projection shortcut (stride 1 in layer1, stride 2 in layer2-4) on each stage's first block.
RESNET50 = (
    "conv7s2p3,maxpool3s2p1,"
    "res(conv1,conv3p1,conv1|conv1),res(conv1,conv3p1,conv1)*2,"
    "res(conv1,conv3s2p1,conv1|conv1s2),res(conv1,conv3p1,conv1)*3,"
    "res(conv1,conv3s2p1,conv1|conv1s2),res(conv1,conv3p1,conv1)*5,"
    "res(conv1,conv3s2p1,conv1|conv1s2),res(conv1,conv3p1,conv1)*2"
)


def test_resnet50_like_at_224_and_225():
    # Layers are numbered 1 conv1, 2 maxpool, 3-5 layer1, 6-9 layer2, 10-15 layer3, 16-18 layer4.
    # With s = 2 the last window ends at padded position 2(m - 1) + k - 1:
    #  conv1 7x7 p3 on 224: m = floor(223 / 2) + 1 = 112, ends at 228 of 0..229: the last
    #    padding row is dropped (effective padding 3+2);
    #  maxpool 3x3 p1 on 112: m = 56, ends at 112 of 0..113: trailing padding dropped (1+0);
    #  layer2.0 (6): 3x3 s2 p1 on 56 -> 28 drops its trailing padding; the 1x1 s2 shortcut
    #    reads rows 0, 2, ..., 54 and never row 55 (one input row dropped, effective 0+(-1));
    #  likewise layer3.0 (10) on 28 and layer4.0 (16) on 14.
    # At 225 every stride-2 layer gets an odd input (225 -> 113 -> 57 -> 29 -> 15 -> 8), and a
    # k-tap stride-2 layer with padding (k - 1) / 2 reads up to padded n + k - 2 iff n is odd.
    # Five stride-2 stages: clean sizes are 32m + 1, so 193 and 225 around 224.
    report = rfa.blind_spots(RESNET50, 224)
    expected = [
        ("1", 224, (3, 2), 0),
        ("2", 112, (1, 0), 0),
        ("6.body.2", 56, (1, 0), 0),
        ("6.shortcut.1", 56, (0, -1), 1),
        ("10.body.2", 28, (1, 0), 0),
        ("10.shortcut.1", 28, (0, -1), 1),
        ("16.body.2", 14, (1, 0), 0),
        ("16.shortcut.1", 14, (0, -1), 1),
    ]
    rows = [u for u in report.uneven if u.axis == 0]
    assert [(u.path, u.input_size, u.effective_padding, u.dropped_input) for u in rows] == expected
    assert [u.path for u in report.uneven if u.axis == 1] == [e[0] for e in expected]
    assert all(u.dropped == 1 for u in report.uneven)
    assert rows[3].where == "layer 6.shortcut.1 (conv1s2)"
    assert report.zero_count == 0  # the 3x3 bodies read every row the shortcuts skip
    assert report.asymmetry[0] > 0 and report.asymmetry[0] == report.asymmetry[1]
    assert report.nearest_below == (193, 193) and report.nearest_above == (225, 225)
    text = str(report)
    assert "uneven padding: 8 layers" in text
    assert "layer 6.shortcut.1 (conv1s2), rows and columns: input 56 -> 28" in text
    assert "193 below, 225 above (rows and columns)" in text

    clean = rfa.blind_spots(RESNET50, 225)
    assert rfa.output_shape(RESNET50, 225) == (8, 8)
    assert clean.uneven == () and clean.zero_count == 0 and clean.clean
    assert clean.asymmetry == (0.0, 0.0)
    assert clean.nearest_below == (193, 193) and clean.nearest_above == (257, 257)


# --------------------------------------------------------------------------- other layer kinds
def test_concat_with_transposed_conv():
    # cat(id | maxpool2, conv3p1, tconv2s2): on even n the pool halves exactly and the
    # transposed conv doubles back to n; on odd n the pool gives (n - 1) / 2 and the branch
    # returns n - 1, which cannot be concatenated with the n-pixel identity. The identity
    # branch covers every pixel: even sizes are clean, odd ones invalid.
    report = rfa.blind_spots("cat(id|maxpool2,conv3p1,tconv2s2)", 8)
    assert report.clean and report.uneven == ()
    assert report.nearest_below == (6, 6) and report.nearest_above == (10, 10)
    with pytest.raises(ValueError, match="branch outputs must have the same spatial shape"):
        rfa.blind_spots("cat(id|maxpool2,conv3p1,tconv2s2)", 9)


def test_dense_head_and_dropped_last_row():
    # conv5 on 29 -> 25; maxpool2 on 25 -> 12 windows [0,1] ... [22,23]: conv unit 24 is
    # dropped, and input row 28 reaches only conv unit 24. Clean sizes: n - 4 even.
    report = rfa.blind_spots("conv5,maxpool2,fc10", 29)
    assert report.zero_lines == ((28,), (28,))
    assert report.zero_description == "57 of 841 pixels (6.78%): last row and column (28)"
    assert [(u.path, u.input_size, u.dropped_input) for u in report.uneven if u.axis == 0] == [
        ("2", 25, 1)
    ]
    assert report.nearest_below == (28, 28) and report.nearest_above == (30, 30)


def test_size_independent_unevenness_is_reported_but_not_searched():
    # conv2psame (stride 1) pads 0+1 at every size; conv3s2psame follows TF: on 10 (even)
    # total = 3 - 2 = 1 -> 0+1, on odd n total = 3 - 1 = 2 -> 1+1 (and m = (n + 1) / 2 reaches
    # padded n + 1, so the windows use 1+1)
    report = rfa.blind_spots("conv2psame,conv3s2psame", (10,))
    first, second = report.uneven
    assert (first.path, first.effective_padding, first.size_dependent) == ("1", (0, 1), False)
    assert (second.path, second.padding, second.dropped) == ("2", (0, 1), 0)
    assert "(at every input size)" in str(report)
    assert (report.sizes[0].below, report.sizes[0].above) == (9, 11)
    odd = rfa.blind_spots("conv2psame,conv3s2psame", (11,))
    assert [u.path for u in odd.uneven] == ["1"] and odd.clean


def test_explicit_asymmetric_padding():
    # 3 taps, stride 2, padding 0+2 on 8: padded 10, m = floor(7 / 2) + 1 = 4, the last window
    # reads padded [6..8]: effective padding 0+1, one trailing padding unit (position 9) unread.
    # Odd n: m = (n + 1) / 2 reaches padded n + 2 (effective 0+2); even n: reaches n + 1
    # (0+1): the windows never use 0+0, so no size is clean.
    net = rfa.Conv(3, stride=2, padding=((0, 2),))
    report = rfa.blind_spots(net, (8,))
    (u,) = report.uneven
    assert (u.padding, u.effective_padding, u.dropped, u.dropped_input) == ((0, 2), (0, 1), 1, 0)
    assert (report.sizes[0].below, report.sizes[0].above) == (None, None)
    assert "none within 64 below, none within 64 above" in str(report)


def test_ceil_mode_pool_overhang():
    # maxpool3s2 with ceil_mode on 8: m = ceil(5 / 2) + 1 = 4, the last window [6..8] runs one
    # unit past the input: effective padding 0+1, nothing dropped
    (u,) = [u for u in rfa.blind_spots("maxpool3s2c", (8,)).uneven]
    assert (u.effective_padding, u.dropped) == ((0, 1), 0)
    assert "runs 1 past the padded input" in str(rfa.blind_spots("maxpool3s2c", (8,)))


def test_float_overflow_falls_back_to_log_counts():
    # 800 same-padded 3x3 layers overflow float64; zero detection must still be exact and the
    # asymmetry finite (9 is odd: the stride-2 layer is even, the map symmetric up to rounding)
    with pytest.raises(rfa.CountOverflowError):
        rfa.coverage("conv3p1*800,conv3s2p1", (9,))
    report = rfa.blind_spots("conv3p1*800,conv3s2p1", (9,))
    assert report.zero_count == 0 and report.uneven == ()
    assert report.asymmetry[0] == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input_shape": None}, ValueError, r"`input_shape` is required"),
        ({"input_shape": 0}, ValueError, r"`input_shape` sizes must be >= 1, got 0"),
        ({"input_shape": 8, "max_distance": 0}, ValueError, r"`max_distance` must be >= 1, got 0"),
        (
            {"input_shape": 8, "max_distance": 2.5},
            TypeError,
            r"`max_distance` must be an integer or None, got 2.5",
        ),
        (
            {"input_shape": 8, "max_distance": True},
            TypeError,
            r"`max_distance` must be an integer or None, got True",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        rfa.blind_spots("conv3", **kwargs)


def test_bad_network_names_the_layer():
    with pytest.raises(ValueError, match=r"layer 2 \(conv9\): output size 0 for input 6"):
        rfa.blind_spots("conv3,conv9", (8,))


# --------------------------------------------------------------------------- CLI
def test_cli_table_and_json():
    runner = CliRunner()
    table = runner.invoke(main, ["blindspots", "conv3s2p1", "--input", "8"])
    assert table.exit_code == 0, table.output
    assert "layer 1 (conv3s2p1), rows and columns: input 8 -> 4" in table.output
    assert "7 below, 9 above (rows and columns)" in table.output
    js = runner.invoke(main, ["blindspots", "conv3s3", "--input", "8", "--format", "json"])
    data = json.loads(js.output)
    assert data["zero_coverage"]["lines"] == [[6, 7], [6, 7]]
    assert data["uneven_padding"][0]["dropped_input"] == 2 and data["clean"] is False
    assert data["nearest_above"] == [9, 9]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["blindspots", "conv9", "--input", "4"], "layer 1 (conv9): output size 0 for input 4"),
        (["blindspots", "conv3"], "Missing option '--input'"),
        (["blindspots", "conv3,,", "--input", "8"], "cannot parse spec 'conv3,,'"),
        (["blindspots", "conv3", "--input", "0"], "sizes must be >= 1"),
        (
            ["blindspots", "conv3", "--input", "8", "--format", "csv"],
            "Invalid value for '--format'",
        ),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(CliRunner().invoke(main, args), message, tmp_path)


def test_a_clean_size_is_called_clean_not_given_neighbours():
    # causal padding is uneven at every size: nothing a different size would fix
    causal = rfa.Network([rfa.Conv((2,), padding=((1, 0),))] * 3)
    text = str(rfa.blind_spots(causal, (16,)))
    assert "input size: clean" in text and "nearest clean" not in text
    assert "nearest clean input sizes: 7 below, 9 above" in str(rfa.blind_spots("conv3s2p1", (8,)))


def _clean_by_brute_force(net, n):
    """A size is clean when every pixel has a route and no strided window pads unevenly, from
    the brute-force enumerator alone: the random networks below pad alike at both ends, so a
    layer is uneven at a size exactly when its last window reaches a different amount of
    padding past the end than its first reads before the start."""
    from .oracles import _pads, as_graph, brute_coverage, graph_edges

    try:
        graph = graph_edges(net, (n,))
    except ValueError:  # too small for the network
        return False
    if any(shape[0] < 1 for _, shape, _ in graph):
        return False
    for node, (inputs, (m,), _) in zip(as_graph(net, 1)[1:], graph[1:]):
        layer = node.layer
        if not hasattr(layer, "kernel_size") or layer.stride[0] == 1:
            continue
        (n_in,) = graph[inputs[0]][1]
        k, s, d = layer.kernel_size[0], layer.stride[0], layer.dilation[0]
        before, _ = _pads(layer, 0, n_in)
        if (m - 1) * s + d * (k - 1) + 1 - before - n_in != before:
            return False
    return min(brute_coverage(net, (n,))) > 0


def _random_window_network(rng):
    """Convolutions and pools (kernel, stride, dilation, padding drawn small), some inside
    residual blocks whose shortcut strides alike: windows joined by sums, where sizes clean
    alike repeat with the jump."""
    parts = []
    for _ in range(rng.integers(2, 5)):
        k, s, d = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        p = int(rng.integers(0, k))
        layer = f"conv{k}s{s}p{p}" + (f"d{d}" if d > 1 else "")
        if rng.random() < 0.25:
            layer = f"maxpool{k}s{s}p{min(p, k // 2)}"
        if rng.random() < 0.3 and k % 2 == 1:
            # a residual block: body keeps the size from the block's own strided entry
            layer = f"res(conv{k}s{s}p{k // 2},conv3p1|conv1s{s})"
        parts.append(layer)
    return ",".join(parts)


@pytest.mark.slow
def test_size_search_far_above_the_borders_matches_brute_force():
    # above twice the receptive field and a few jumps, a size and the size one jump away are
    # clean alike; the search checks those small sizes. Against the full map at every size.
    rng = np.random.default_rng(7)
    for _ in range(25):
        spec = _random_window_network(rng)
        geometry = rfa.geometry(spec)
        rf, jump = geometry.rows[-1].rf_size[0], geometry.rows[-1].jump[0]
        n = 2 * rf + 4 * jump + int(rng.integers(2 * jump, 6 * jump + 1))
        # n is far above the field: every layer fits, so no ValueError is expected
        report = rfa.blind_spots(spec, (n,), max_distance=3 * jump)
        (search,) = report.sizes
        below = next(
            (c for c in range(n - 1, n - 3 * jump - 1, -1) if _clean_by_brute_force(spec, c)),
            None,
        )
        above = next(
            (c for c in range(n + 1, n + 3 * jump + 1) if _clean_by_brute_force(spec, c)),
            None,
        )
        assert (search.below, search.above) == (below, above), spec
        # the property the search relies on, from the threshold up: clean alike one jump apart
        start = 2 * rf + 4 * jump
        for c in range(start, start + jump):
            assert _clean_by_brute_force(spec, c) == _clean_by_brute_force(spec, c + jump), spec


def test_combined_clean_sizes_use_each_axis_period():
    # strides 2x2 = 4 down the rows, 3x3 = 9 across the columns; a residual block makes the
    # combined size worth checking. 79x72 leaves every pixel covered (brute force below), so
    # the report must offer it rather than call it a gap between branches
    from .oracles import brute_coverage

    net = rfa.Network(
        [rfa.Conv((3, 3), stride=(2, 3)), rfa.Residual([rfa.Conv(3, padding=1)]),
         rfa.Conv((3, 3), stride=(2, 3))]
    )  # fmt: skip
    report = rfa.blind_spots(net, (80, 73))
    assert report.nearest_below == (79, 72)
    assert not (brute_coverage(net, (79, 72)) == 0).any()
    assert (brute_coverage(net, (80, 73)) == 0).any()
    assert report.nearest_above is not None
    assert not (brute_coverage(net, report.nearest_above) == 0).any()
