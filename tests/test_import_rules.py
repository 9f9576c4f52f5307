"""Every rule of the torch importer, counted by hand.

Each test traces a module of one or two layers at a small size (1-D length 3-8, 2-D up to
4x5) and compares ``rfa.coverage`` / ``rfa.routes`` with numbers written here, derived in
the comment beside them from the operation's definition in torch's documentation. Nothing
on the expected side is computed by the code under test, so a rule that adds, drops or
moves routes fails here even where the gradient's support (what ``verify`` checks) does not
change: padding that routes to unit 0 instead of nowhere gives pixel 0 the padding's taps.

Notation in the comments: input pixels ``a b c d ...``; ``0`` a constant (no route);
``oK`` output unit K and the pixels its taps read.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import rfanalysis as rfa

pytestmark = pytest.mark.torch


class Fn(nn.Module):
    """A module whose forward is ``fn``, with optional layers before and after it."""

    def __init__(self, fn, before=None, after=None):
        super().__init__()
        self.fn = fn
        self.before = before if before is not None else nn.Identity()
        self.after = after if after is not None else nn.Identity()

    def forward(self, x):
        return self.after(self.fn(self.before(x)))


def cov(model, shape, context="global", **kw):
    net = rfa.from_torch(model, shape, **kw)
    return rfa.coverage(net, shape, context=context)


def rts(model, shape, unit, context="global", **kw):
    net = rfa.from_torch(model, shape, **kw)
    return rfa.routes(net, shape, unit, context=context)


def eq(got, expected):
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=float))


def conv1(k=3, **kw):
    return nn.Conv1d(1, 1, k, **kw)


def conv2(k=3, cin=1, cout=1, **kw):
    return nn.Conv2d(cin, cout, k, **kw)


# --------------------------------------------------------------------------- padding
# F.pad(x, (2, 0)) then conv3 on length 3 (a b c), output 3 units:
#   constant  [0 0 a b c]: o0 00a, o1 0ab, o2 abc          -> a 3, b 2, c 1
#   reflect   [c b a b c]: o0 cba, o1 bab, o2 abc          -> a 3, b 4, c 2
#   replicate [a a a b c]: o0 aaa, o1 aab, o2 abc          -> a 6, b 2, c 1
#   circular  [b c a b c]: o0 bca, o1 cab, o2 abc          -> a 3, b 3, c 3
# F.pad(x, (1, 2)) then conv3 on length 4 (a b c d), output 5 units:
#   constant  [0 a b c d 0 0]: 0ab abc bcd cd0 d00         -> a 2, b 3, c 3, d 3
#   reflect   [b a b c d c b]: bab abc bcd cdc dcb         -> a 2, b 5, c 5, d 3
#   replicate [a a b c d d d]: aab abc bcd cdd ddd         -> a 3, b 3, c 3, d 6
#   circular  [d a b c d a b]: dab abc bcd cda dab         -> a 4, b 4, c 3, d 4
F_PAD_1D = [
    ((2, 0), 3, "constant", [3, 2, 1]),
    ((2, 0), 3, "reflect", [3, 4, 2]),
    ((2, 0), 3, "replicate", [6, 2, 1]),
    ((2, 0), 3, "circular", [3, 3, 3]),
    ((1, 2), 4, "constant", [2, 3, 3, 3]),
    ((1, 2), 4, "reflect", [2, 5, 5, 3]),
    ((1, 2), 4, "replicate", [3, 3, 3, 6]),
    ((1, 2), 4, "circular", [4, 4, 3, 4]),
]


@pytest.mark.parametrize(("pad", "n", "mode", "expected"), F_PAD_1D)
def test_f_pad_1d_every_mode_by_hand(pad, n, mode, expected):
    model = Fn(lambda x: F.pad(x, pad, mode=mode), after=conv1())
    eq(cov(model, n), expected)


def test_a_constant_pad_of_any_value_routes_nowhere():
    # F.pad(x, (1, 0), value=1.0): the padded unit o0 holds a constant: no route at all, and
    # the pixels keep one route each (the bug this guards: the pad reading pixel 0)
    model = Fn(lambda x: F.pad(x, (1, 0), value=1.0), before=conv1(1))
    eq(rts(model, 3, (0,)), [0, 0, 0])
    eq(rts(model, 3, (1,)), [1, 0, 0])
    eq(cov(model, 3), [1, 1, 1])


# 2-D, F.pad(x, (1, 1, 1, 1), mode) then conv3 on 4x4: each axis as in 1-D, n = 4, pad (1, 1):
#   constant  [0 a b c d 0]: 0ab abc bcd cd0               -> 2 3 3 2
#   reflect   [b a b c d c]: bab abc bcd cdc               -> 2 4 4 2
#   replicate [a a b c d d]: aab abc bcd cdd               -> 3 3 3 3
#   circular  [d a b c d a]: dab abc bcd cda               -> 3 3 3 3
# and unit 0's taps along an axis: constant a b -> 1 1 0 0; reflect b a b -> 1 2 0 0;
# replicate a a b -> 2 1 0 0; circular d a b -> 1 1 0 1. A 2-D unit's routes are the
# product of its axes' (separable windows), and so is the coverage.
PAD_2D = {
    "constant": ([2, 3, 3, 2], [1, 1, 0, 0]),
    "reflect": ([2, 4, 4, 2], [1, 2, 0, 0]),
    "replicate": ([3, 3, 3, 3], [2, 1, 0, 0]),
    "circular": ([3, 3, 3, 3], [1, 1, 0, 1]),
}
PAD_MODULES = {
    "constant": nn.ZeroPad2d,
    "reflect": nn.ReflectionPad2d,
    "replicate": nn.ReplicationPad2d,
    "circular": nn.CircularPad2d,
}


@pytest.mark.parametrize("mode", list(PAD_2D))
@pytest.mark.parametrize("how", ["F.pad", "module"])
def test_2d_padding_every_mode_by_hand(mode, how):
    if how == "module":
        model = nn.Sequential(PAD_MODULES[mode](1), conv2())
    else:
        model = Fn(lambda x: F.pad(x, (1, 1, 1, 1), mode=mode), after=conv2())
    axis, unit0 = PAD_2D[mode]
    eq(cov(model, (4, 4)), np.outer(axis, axis))
    eq(rts(model, (4, 4), (0, 0)), np.outer(unit0, unit0))


def test_asymmetric_zero_pad_2d_by_hand():
    # nn.ZeroPad2d((left 1, right 0, top 2, bottom 0)) then conv3 on 4x4: output 4 x 3.
    # rows (pad 2 before): o reads o-2..o -> pixel i is read by o in [i, i+2] & [0, 3]:
    #   3 3 2 1; columns (pad 1 before): o reads o-1..o+1, o in [0, 2]: 2 3 2 1
    model = nn.Sequential(nn.ZeroPad2d((1, 0, 2, 0)), conv2())
    eq(cov(model, (4, 4)), np.outer([3, 3, 2, 1], [2, 3, 2, 1]))
    # unit (0, 0) reads rows -2..0 and columns -1..1: pixels (0, 0) and (0, 1) only
    expected = np.zeros((4, 4))
    expected[0, :2] = 1
    eq(rts(model, (4, 4), (0, 0)), expected)


# 1-D padding modules, conv3 after them:
#   ReflectionPad1d(2), n 4:  [c b a b c d c b]: cba bab abc bcd cdc dcb  -> 3 6 6 3
#   ReplicationPad1d((2, 1)): [a a a b c d d]:   aaa aab abc bcd cdd      -> 6 3 3 3
#   CircularPad1d((1, 2)):    [d a b c d a b]:   as F.pad circular        -> 4 4 3 4
#   ZeroPad1d((0, 2)):        [a b c d 0 0]:     abc bcd cd0 d00          -> 1 2 3 3
#   ConstantPad1d(1, 2.5):    [0 a b c d 0]:     0ab abc bcd cd0          -> 2 3 3 2
@pytest.mark.parametrize(
    ("pad", "expected"),
    [
        (nn.ReflectionPad1d(2), [3, 6, 6, 3]),
        (nn.ReplicationPad1d((2, 1)), [6, 3, 3, 3]),
        (nn.CircularPad1d((1, 2)), [4, 4, 3, 4]),
        (nn.ZeroPad1d((0, 2)), [1, 2, 3, 3]),
        (nn.ConstantPad1d(1, 2.5), [2, 3, 3, 2]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None,
)
def test_1d_padding_modules_by_hand(pad, expected):
    eq(cov(nn.Sequential(pad, conv1()), 4), expected)


def test_a_pad_alone_gives_its_padded_units_no_routes():
    # ZeroPad2d((1, 0, 0, 0)) on 2x2: output 2x3, column 0 constant
    model = nn.Sequential(conv2(1), nn.ZeroPad2d((1, 0, 0, 0)))
    eq(rts(model, (2, 2), (0, 0)), np.zeros((2, 2)))
    eq(rts(model, (2, 2), (1, 2)), [[0, 0], [0, 1]])
    eq(cov(model, (2, 2)), np.ones((2, 2)))


# --------------------------------------------------------------------------- pools
# MaxPool1d(2, 2, ceil_mode) on 5: ceil((5-2)/2)+1 = 3 units: {0,1} {2,3} {4}
#   (the last window hangs over the end: its missing element is no route)  -> 1 1 1 1 1
# MaxPool1d(3, 2, padding 1, ceil_mode) on 6: ceil((6+2-3)/2)+1 = 4; the last window starts
#   at 6 - 1 = 5 < 6, so it stays: windows -1..1 1..3 3..5 5..7 -> {0,1} {1,2,3} {3,4,5} {5}
#                                                                          -> 1 2 1 2 1 2
# MaxPool1d(2, 1, dilation 2) on 5: 3 units reading {0,2} {1,3} {2,4}      -> 1 1 2 1 1
# MaxPool1d(3, 2, dilation 2, ceil_mode) on 8: span 5, ceil(3/2)+1 = 3 units reading
#   {0,2,4} {2,4,6} {4,6,(8)}                                              -> 1 0 2 0 3 0 2 0
# AvgPool1d(2, 2, ceil_mode) on 5: as the max pool                         -> 1 1 1 1 1
# AvgPool1d(3, 2, padding 1, ceil_mode, count_include_pad=False) on 6: as the max pool above
# LPPool1d(2, 3, stride 2, ceil_mode) on 6: windows {0,1,2} {2,3,4} {4,5}  -> 1 1 2 1 2 1
POOLS_1D = [
    (nn.MaxPool1d(2, 2, ceil_mode=True), 5, [1, 1, 1, 1, 1]),
    (nn.MaxPool1d(3, 2, padding=1, ceil_mode=True), 6, [1, 2, 1, 2, 1, 2]),
    (nn.MaxPool1d(2, 1, dilation=2), 5, [1, 1, 2, 1, 1]),
    (nn.MaxPool1d(3, 2, dilation=2, ceil_mode=True), 8, [1, 0, 2, 0, 3, 0, 2, 0]),
    (nn.AvgPool1d(2, 2, ceil_mode=True), 5, [1, 1, 1, 1, 1]),
    (
        nn.AvgPool1d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        6,
        [1, 2, 1, 2, 1, 2],
    ),
    (nn.LPPool1d(2, 3, stride=2, ceil_mode=True), 6, [1, 1, 2, 1, 2, 1]),
]


@pytest.mark.parametrize(("pool", "n", "expected"), POOLS_1D, ids=str)
def test_pools_with_dilation_and_ceil_mode_by_hand(pool, n, expected):
    eq(cov(nn.Sequential(conv1(1), pool), n), expected)


def test_functional_pools_with_dilation_and_ceil_mode_by_hand():
    # F.max_pool2d(x, 3, 2, 0, dilation (1, 2), ceil_mode) on 4x8: rows windows {0,1,2}
    # (ceil((4-3)/2)+1 = 2 units, the second window 2..4 starts inside: {2,3});
    # columns as MaxPool1d(3, 2, dilation 2, ceil_mode) on 8 above
    model = Fn(lambda x: F.max_pool2d(x, 3, 2, 0, (1, 2), ceil_mode=True), before=conv2(1))
    eq(cov(model, (4, 8)), np.outer([1, 1, 2, 1], [1, 0, 2, 0, 3, 0, 2, 0]))
    # unit (1, 2): rows {2, 3}, columns {4, 6}
    expected = np.zeros((4, 8))
    expected[2:4, [4, 6]] = 1
    eq(rts(model, (4, 8), (1, 2)), expected)


# --------------------------------------------------------------------------- adaptive pools
# torch's adaptive window of unit i, n inputs to m outputs: floor(i n / m) to
# ceil((i + 1) n / m) - 1.  n 5 -> m 3: {0,1} {1,2,3} {3,4};  n 5 -> 2: {0,1,2} {2,3,4};
# n 4 -> 1: every row;  n 8 -> 3: {0,1,2} {2,3,4,5} {5,6,7}
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pools_to_one_by_k_by_hand(kind):
    pool = nn.AdaptiveAvgPool2d if kind == "avg" else nn.AdaptiveMaxPool2d
    model = nn.Sequential(conv2(1), pool((1, 3)))
    eq(cov(model, (4, 5)), np.tile([1, 2, 1, 2, 1], (4, 1)))
    # unit (0, 1): every row, columns 1..3
    expected = np.zeros((4, 5))
    expected[:, 1:4] = 1
    eq(rts(model, (4, 5), (0, 1)), expected)
    model = nn.Sequential(conv2(1), pool((1, 2)))
    eq(cov(model, (3, 5)), np.tile([1, 1, 2, 1, 1], (3, 1)))
    # None keeps an axis: (None, 2) on 3x4 reads {0,1} {2,3} of its own row
    model = nn.Sequential(conv2(1), pool((None, 2)))
    eq(cov(model, (3, 4)), np.ones((3, 4)))
    eq(rts(model, (3, 4), (1, 1)), [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]])


def test_adaptive_pool_windows_of_unequal_size_by_hand():
    # AdaptiveAvgPool2d(3) on 8x8 (replaces a support-only check): windows per axis
    # {0,1,2} {2,3,4,5} {5,6,7}; coverage per axis 1 1 2 1 1 2 1 1
    axis = [1, 1, 2, 1, 1, 2, 1, 1]
    model = nn.Sequential(conv2(1), nn.AdaptiveAvgPool2d(3))
    eq(cov(model, (8, 8)), np.outer(axis, axis))
    windows = [[0, 1, 2], [2, 3, 4, 5], [5, 6, 7]]
    for unit in [(0, 0), (1, 1), (2, 0), (1, 2)]:
        expected = np.zeros((8, 8))
        expected[np.ix_(windows[unit[0]], windows[unit[1]])] = 1
        eq(rts(model, (8, 8), unit), expected)
    # 1-D, 5 -> 3: {0,1} {1,2,3} {3,4}
    eq(cov(nn.Sequential(conv1(1), nn.AdaptiveMaxPool1d(3)), 5), [1, 2, 1, 2, 1])


# --------------------------------------------------------------------------- interpolation
# Each output unit reads the inputs with a non-zero weight (a set: two taps clamped onto
# one pixel are one route).
# nearest, 3 -> 6 (scale 2): src floor(o / 2): 0 0 1 1 2 2                  -> 2 2 2
# nearest, 3 -> 5 (size): src floor(o * 3 / 5): 0 0 1 1 2                   -> 2 2 1
# nearest-exact, 3 -> 5: src floor((o + 0.5) * 3 / 5): 0 0 1 2 2            -> 2 1 2
# linear, align_corners=False, 3 -> 6: src (o + 0.5) / 2 - 0.5 clamped at 0:
#   0 | .25 | .75 | 1.25 | 1.75 | 2.25 -> {0} {0,1} {0,1} {1,2} {1,2} {2}  -> 3 4 3
#   (o0 sits on pixel 0, o5 past the last pixel: one pixel each)
# linear, align_corners=True, 3 -> 5: src o * 2 / 4: 0 .5 1 1.5 2
#   -> {0} {0,1} {1} {1,2} {2}                                             -> 2 3 2
# linear, 4 -> 3, where align_corners parts:
#   True:  src o * 3 / 2: 0 1.5 3 -> {0} {1,2} {3}                          -> 1 1 1 1
#   False: src (o + 0.5) * 4 / 3 - 0.5: .17 1.5 2.83 -> {0,1} {1,2} {2,3}   -> 1 2 2 1
# area, 5 -> 3: adaptive average windows {0,1} {1,2,3} {3,4}                -> 1 2 1 2 1
INTERP_1D = [
    (dict(scale_factor=2, mode="nearest"), 3, [2, 2, 2]),
    (dict(size=5, mode="nearest"), 3, [2, 2, 1]),
    (dict(size=5, mode="nearest-exact"), 3, [2, 1, 2]),
    (dict(scale_factor=2, mode="linear", align_corners=False), 3, [3, 4, 3]),
    (dict(size=5, mode="linear", align_corners=True), 3, [2, 3, 2]),
    (dict(size=3, mode="linear", align_corners=True), 4, [1, 1, 1, 1]),
    (dict(size=3, mode="linear", align_corners=False), 4, [1, 2, 2, 1]),
    (dict(size=3, mode="area"), 5, [1, 2, 1, 2, 1]),
]


@pytest.mark.parametrize(("kwargs", "n", "expected"), INTERP_1D, ids=str)
def test_interpolation_1d_by_hand(kwargs, n, expected):
    model = Fn(lambda x: F.interpolate(x, **kwargs), before=conv1(1))
    eq(cov(model, n), expected)


def test_interpolation_2d_by_hand():
    # bilinear: each axis as linear above
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    eq(cov(nn.Sequential(conv2(1), up), (3, 3)), np.outer([3, 4, 3], [3, 4, 3]))
    model = Fn(lambda x: F.interpolate(x, size=(5, 6), mode="bilinear", align_corners=True),
               before=conv2(1))  # fmt: skip
    eq(cov(model, (3, 3)), np.outer([2, 3, 2], [3, 4, 3]))
    # unit (1, 2) of that: rows {0,1} (src .5), columns {0,1} (src .8)
    eq(rts(model, (3, 3), (1, 2)), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    # 4x4 -> 3x3, each axis as linear 4 -> 3: align_corners=True reads the corners alone
    for corners, axis in ((True, [1, 1, 1, 1]), (False, [1, 2, 2, 1])):
        kwargs = dict(size=(3, 3), mode="bilinear", align_corners=corners)
        model = Fn(lambda x, kw=kwargs: F.interpolate(x, **kw), before=conv2(1))
        eq(cov(model, (4, 4)), np.outer(axis, axis))
    # nearest 2x on 2x3: every pixel read by its 2x2 block
    eq(cov(nn.Sequential(conv2(1), nn.Upsample(scale_factor=2)), (2, 3)), np.full((2, 3), 4))
    # bicubic, align_corners=False, 1x4 -> 2x8. Columns: src (o + .5) / 2 - .5 (not clamped
    # for cubic), taps floor(src) - 1 .. floor(src) + 2 clamped into 0..3:
    #   o0 -.25: -2..1 -> {0,1};  o1 .25, o2 .75: -1..2 -> {0,1,2};  o3, o4: 0..3 -> all;
    #   o5 2.25, o6 2.75: 1..4 -> {1,2,3};  o7 3.25: 2..5 -> {2,3}   -> 5 7 7 5 per row.
    # Rows: 1 -> 2, both output rows read row 0                      -> times 2
    model = Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bicubic"), before=conv2(1))
    eq(cov(model, (1, 4)), [[10, 14, 14, 10]])


# --------------------------------------------------------------------------- layout
def test_permute_and_transpose_move_routes_with_positions():
    # transposing H and W: output unit (r, c) is pixel (c, r)
    for fn in (lambda x: x.permute(0, 1, 3, 2), lambda x: x.transpose(2, 3)):
        model = Fn(fn, before=conv2(1))
        expected = np.zeros((2, 3))
        expected[1, 0] = 1
        eq(rts(model, (2, 3), (0, 1)), expected)
        expected = np.zeros((2, 3))
        expected[0, 2] = 1
        eq(rts(model, (2, 3), (2, 0)), expected)
    # a (1, 3) convolution between two transposes runs along H: rows 1 2 2 1 on 4 rows,
    # every column alike
    model = Fn(lambda x: x.transpose(2, 3), after=nn.Sequential(conv2((1, 3)), _T()))
    eq(cov(model, (4, 4)), np.tile([[1], [2], [2], [1]], (1, 4)))


class _T(nn.Module):
    def forward(self, x):
        return x.transpose(2, 3)


def test_reshape_view_flatten_unflatten_follow_the_flat_order():
    # view (1, 1, 2, 8) of a 4x4 map, then a (1, 3) conv: along each row of 8 (flat indices
    # 0-7 and 8-15) the counts are 1 2 3 3 3 3 2 1, back on the 4x4 grid in row-major order
    row = [1, 2, 3, 3, 3, 3, 2, 1]
    expected = np.asarray(row + row).reshape(4, 4)
    for fn in (lambda x: x.view(1, 1, 2, 8), lambda x: x.reshape(1, 1, 2, 8)):
        eq(cov(Fn(fn, after=conv2((1, 3))), (4, 4)), expected)
    # flatten(2), conv1d 3 over the 16 flat positions (14 units), unflatten to 2 x 7: flat
    # index f is read by units max(0, f-2)..min(13, f): 1 2 3 ... 3 2 1
    model = Fn(lambda x: x.flatten(2), after=nn.Sequential(conv1(), nn.Unflatten(2, (2, 7))))
    expected = np.full(16, 3)
    expected[[0, 15]], expected[[1, 14]] = 1, 2
    eq(cov(model, (4, 4)), expected.reshape(4, 4))
    # unit (1, 0) of the 2 x 7 output is conv unit 7: flat 7, 8, 9 = pixels (1,3) (2,0) (2,1)
    got = rts(model, (4, 4), (1, 0))
    expected = np.zeros((4, 4))
    expected[1, 3] = expected[2, 0] = expected[2, 1] = 1
    eq(got, expected)


class _SplitAdd(nn.Module):
    def forward(self, x):
        top, rest = x.split([1, 3], dim=2)
        return rest + top  # top broadcasts over rest's 3 rows


class _ChunkSwap(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=3)
        return torch.cat([b, a], dim=3)


def test_chunk_split_and_broadcast_by_hand():
    # split rows [1, 3] of 4x4, rest + top: unit (r, c) of the 3x4 output reads (r + 1, c)
    # and (0, c); row 0 is read by all 3 output rows
    model = nn.Sequential(conv2(1), _SplitAdd())
    eq(cov(model, (4, 4)), [[3] * 4, [1] * 4, [1] * 4, [1] * 4])
    eq(rts(model, (4, 4), (1, 2)), [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    # halves of the columns swapped: unit (r, c) reads (r, (c + 2) % 4)
    model = nn.Sequential(conv2(1), _ChunkSwap())
    eq(rts(model, (2, 4), (1, 0)), [[0, 0, 0, 0], [0, 0, 1, 0]])
    eq(rts(model, (2, 4), (0, 3)), [[0, 1, 0, 0], [0, 0, 0, 0]])


def test_slicing_by_hand():
    # x[:, :, 1:, ::2] of 4x5: rows 1..3, columns 0, 2, 4
    model = Fn(lambda x: x[:, :, 1:, ::2], before=conv2(1))
    expected = np.zeros((4, 5))
    expected[1:, ::2] = 1
    eq(cov(model, (4, 5)), expected)
    expected = np.zeros((4, 5))
    expected[3, 2] = 1
    eq(rts(model, (4, 5), (2, 1)), expected)
    # x[..., 1:-1] in 1-D then conv2: pixels b c d of a b c d e -> units (bc) (cd)
    model = Fn(lambda x: x[..., 1:-1], before=conv1(1), after=conv1(2))
    eq(cov(model, 5), [0, 1, 2, 1, 0])


def test_roll_by_hand():
    # roll by +1 of a b c d: d a b c, then conv2 reads (d a) (a b) (b c) -> a 2 b 2 c 1 d 1
    eq(cov(Fn(lambda x: torch.roll(x, 1, -1), after=conv1(2)), 4), [2, 2, 1, 1])
    # by -1: b c d a -> (b c) (c d) (d a)                                -> a 1 b 1 c 2 d 2
    eq(cov(Fn(lambda x: x.roll(-1, 2), after=conv1(2)), 4), [1, 1, 2, 2])
    # 2-D roll by (1, 1): output unit (0, 0) is pixel (3, 3)
    model = Fn(lambda x: torch.roll(x, (1, 1), (2, 3)), before=conv2(1))
    expected = np.zeros((4, 4))
    expected[3, 3] = 1
    eq(rts(model, (4, 4), (0, 0)), expected)


def test_repeat_and_expand_by_hand():
    # repeat 2x along columns of 2x3: a b c a b c, then conv (1, 2) reads (ab) (bc) (ca)
    # (ab) (bc): a 3, b 4, c 3 in every row
    model = Fn(lambda x: x.repeat(1, 1, 1, 2), before=conv2(1), after=conv2((1, 2)))
    eq(cov(model, (2, 3)), [[3, 4, 3], [3, 4, 3]])
    # expand a 1x4 map to 3x4: every output row reads row 0
    model = Fn(lambda x: x.expand(-1, -1, 3, -1), before=conv2(1))
    eq(cov(model, (1, 4)), [[3, 3, 3, 3]])
    eq(rts(model, (1, 4), (2, 1)), [[0, 1, 0, 0]])


def test_pixel_shuffle_and_unshuffle_by_hand():
    # pixel_shuffle(2) of (4 channels, 2x2) -> 4x4: output (r, c) reads unit (r // 2, c // 2)
    model = nn.Sequential(conv2(1, 4, 4), nn.PixelShuffle(2))
    eq(cov(model, (2, 2)), np.full((2, 2), 4))
    eq(rts(model, (2, 2), (3, 0)), [[0, 0], [1, 0]])
    # then a 2x2 conv: unit (0, 0) reads shuffled rows 0-1, columns 0-1: unit (0, 0) 4 times
    model = nn.Sequential(conv2(1, 4, 4), nn.PixelShuffle(2), conv2(2))
    eq(rts(model, (2, 2), (0, 0)), [[4, 0], [0, 0]])
    # pixel_unshuffle(2) of 4x4 -> 2x2 (4 channels): unit (1, 0) reads the block rows 2-3,
    # columns 0-1, whether a layer follows or the map is the output (a unit stands for all
    # its channels, DESIGN section 2: the output is 2x2, not 4x2x2)
    expected = np.zeros((4, 4))
    expected[2:, :2] = 1
    for after in (conv2(1, 4, 1), None):
        model = Fn(lambda x: F.pixel_unshuffle(x, 2), before=conv2(1), after=after)
        eq(rts(model, (4, 4), (1, 0)), expected)
        eq(cov(model, (4, 4)), np.ones((4, 4)))


class _ShuffleByView(nn.Module):
    """ShuffleNet's channel shuffle, written out: view, transpose, reshape."""

    def forward(self, x):
        b, c, h, w = x.shape
        return x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize("shuffle", [nn.ChannelShuffle(2), _ShuffleByView()], ids=str)
def test_channel_shuffle_is_the_identity_of_space(shuffle):
    # conv1x1 to 4 channels, shuffle, conv3 valid on 4x4: per axis 1 2 2 1
    model = nn.Sequential(conv2(1, 1, 4), shuffle, conv2(3, 4, 1))
    eq(cov(model, (4, 4)), np.outer([1, 2, 2, 1], [1, 2, 2, 1]))


# --------------------------------------------------------------------------- norms
# conv1x1 to 4 channels, a norm, conv (1, 2) valid on a 1x4 map: 3 output units.
# global: a norm unit reads every position of the map once, so each conv unit (two norm
#   units) reaches every pixel along 2 routes: routes 2 2 2 2, coverage 3 units x 2 = 6
# local: the statistics only modulate, the norm is the identity: unit 1 reads b c,
#   coverage 1 2 2 1
NORMS = {
    "group": nn.GroupNorm(2, 4),
    "instance": nn.InstanceNorm2d(4, affine=True),
    "layer over C, H, W": nn.LayerNorm([4, 1, 4]),
}


@pytest.mark.parametrize("norm", list(NORMS))
def test_norms_over_space_in_both_contexts_by_hand(norm):
    model = nn.Sequential(conv2(1, 1, 4), NORMS[norm], conv2((1, 2), 4, 1))
    eq(rts(model, (1, 4), (0, 1)), [[2, 2, 2, 2]])
    eq(cov(model, (1, 4)), [[6, 6, 6, 6]])
    eq(rts(model, (1, 4), (0, 1), context="local"), [[0, 1, 1, 0]])
    eq(cov(model, (1, 4), context="local"), [[1, 2, 2, 1]])


def test_layer_norm_over_the_last_spatial_axis_reads_its_row():
    # LayerNorm(3) on (B, C, 2, 3): statistics over each row's 3 positions. Globally unit
    # (0, 1) reads row 0; every pixel is read by the 3 units of its row. Locally: itself.
    model = nn.Sequential(conv2(1, 1, 2), nn.LayerNorm(3))
    eq(rts(model, (2, 3), (0, 1)), [[1, 1, 1], [0, 0, 0]])
    eq(cov(model, (2, 3)), np.full((2, 3), 3))
    eq(rts(model, (2, 3), (0, 1), context="local"), [[0, 1, 0], [0, 0, 0]])
    eq(cov(model, (2, 3), context="local"), np.ones((2, 3)))


class _ChannelsLastNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_layer_norm_over_channels_is_the_identity_of_space():
    # ConvNeXt's norm: channels last, LayerNorm(C): no spatial statistics in either context
    model = nn.Sequential(conv2(1, 1, 4), _ChannelsLastNorm(), conv2((1, 2), 4, 1))
    for context in ("global", "local"):
        eq(rts(model, (1, 4), (0, 1), context=context), [[0, 1, 1, 0]])
        eq(cov(model, (1, 4), context=context), [[1, 2, 2, 1]])


# --------------------------------------------------------------------------- gates
SQUEEZES = {
    "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 1),
    "mean": lambda x: x.mean((2, 3), keepdim=True),
    "amax": lambda x: torch.amax(x, dim=(-2, -1), keepdim=True),
    "sum over one axis": lambda x: x.sum(-1, keepdim=True),  # the map is one row
}


class _SE(nn.Module):
    """x * sigmoid(squeeze(x)): squeeze-and-excitation's gate."""

    def __init__(self, squeeze):
        super().__init__()
        self.squeeze = squeeze

    def forward(self, x):
        return x * torch.sigmoid(self.squeeze(x))


class _LocalGate(nn.Module):
    """x * sigmoid(avg_pool3(x)): a gate read from a 3-wide neighbourhood."""

    def forward(self, x):
        return torch.sigmoid(F.avg_pool1d(x, 3, 1, 1)) * x


@pytest.mark.parametrize("squeeze", list(SQUEEZES))
def test_squeeze_and_excitation_gate_in_both_contexts_by_hand(squeeze):
    # 1x4 map. A product's routes are the sum of its factors' (DESIGN section 9):
    # unit (0, 1) reads b through x (1) and every pixel through the pool (1 each):
    # routes 1 2 1 1; coverage 4 units through the pool + 1 through x = 5.
    # Locally the gate only modulates: routes 0 1 0 0, coverage 1.
    model = nn.Sequential(conv2(1, 1, 4), _SE(SQUEEZES[squeeze]))
    eq(rts(model, (1, 4), (0, 1)), [[1, 2, 1, 1]])
    eq(cov(model, (1, 4)), [[5, 5, 5, 5]])
    eq(rts(model, (1, 4), (0, 1), context="local"), [[0, 1, 0, 0]])
    eq(cov(model, (1, 4), context="local"), [[1, 1, 1, 1]])


def test_a_gate_from_a_local_pool_in_both_contexts_by_hand():
    # length 5, x * sigmoid(avgpool3p1(x)): the centre unit reads c through x and b c d
    # through the pool: 0 1 2 1 0; coverage 1 + (pool counts 2 3 3 3 2) = 3 4 4 4 3.
    # Locally the gate side drops: the identity.
    model = nn.Sequential(conv1(1), _LocalGate())
    eq(rts(model, 5, (2,)), [0, 1, 2, 1, 0])
    eq(cov(model, 5), [3, 4, 4, 4, 3])
    eq(rts(model, 5, (2,), context="local"), [0, 0, 1, 0, 0])
    eq(cov(model, 5, context="local"), [1, 1, 1, 1, 1])
