"""``from_torch``'s padding and functional-pool rules, counted by hand.

Each model is one padding or pooling operation (with a 1 x k convolution where padding alone
moves nothing) on a 1 x n input, so every expected coverage is a short row written out in
the comments. Constant padding is no unit at all (no route), unlike a pixel of the input;
functional pools keep their padding and ceil mode.
"""

from __future__ import annotations

import pytest
from torch import nn
from torch.nn import functional as F

import rfanalysis as rfa

pytestmark = pytest.mark.torch


class _Fn(nn.Module):
    def __init__(self, fn, conv=None):
        super().__init__()
        self.fn = fn
        self.conv = conv

    def forward(self, x):
        y = self.fn(x)
        return y if self.conv is None else self.conv(y)


def _coverage(model, shape):
    return rfa.coverage(model.eval(), shape, exact=True).tolist()


@pytest.mark.parametrize(
    "pad", [nn.ZeroPad2d((1, 0, 0, 0)), nn.ConstantPad2d((1, 0, 0, 0), 3.0)], ids=type
)
def test_constant_padding_module_is_no_unit(pad):
    # [0 | a b c] then a 1 x 2 conv: outputs 0+a, a+b, b+c: coverage a 2, b 2, c 1
    # (a padded zero read as pixel a would give a 3)
    model = nn.Sequential(pad, nn.Conv2d(1, 1, (1, 2), bias=False))
    assert _coverage(model, (1, 3)) == [[2, 2, 1]]


@pytest.mark.parametrize(
    "mode, expected",
    [
        # [a b c | 0 0], 1 x 3 conv: outputs a+b+c, b+c+0, c+0+0: a 1, b 2, c 3
        ("constant", [[1, 2, 3]]),
        # [a b c | b a]: outputs abc, bcb, cba: a 2, b 4, c 3
        ("reflect", [[2, 4, 3]]),
        # [a b c | c c]: abc, bcc, ccc: a 1, b 2, c 6
        ("replicate", [[1, 2, 6]]),
        # [a b c | a b]: abc, bca, cab: 3 each
        ("circular", [[3, 3, 3]]),
    ],
)
def test_functional_pad_modes(mode, expected):
    model = _Fn(lambda x: F.pad(x, (0, 2, 0, 0), mode=mode), nn.Conv2d(1, 1, (1, 3), bias=False))
    assert _coverage(model, (1, 3)) == expected


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d], ids=lambda f: f.__name__)
def test_functional_pool_keeps_its_padding(pool):
    # 1 x 3 windows, stride 1, padding 1 along the row on 3 pixels: windows {a, b}, {a, b, c},
    # {b, c}: a 2, b 3, c 2 (without the padding: one window, 1 each)
    model = _Fn(lambda x: pool(x, (1, 3), stride=1, padding=(0, 1)))
    assert _coverage(model, (1, 3)) == [[2, 3, 2]]


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d], ids=lambda f: f.__name__)
def test_functional_pool_keeps_ceil_mode(pool):
    # 1 x 2 windows, stride 2, on 5 pixels with ceil_mode: {0, 1}, {2, 3} and {4} (the last
    # one past the end); without it pixel 4 would have no route
    model = _Fn(lambda x: pool(x, (1, 2), stride=2, ceil_mode=True))
    assert _coverage(model, (1, 5)) == [[1, 1, 1, 1, 1]]


def test_padding_mode_of_a_conv_module():
    # reflect padding 1 along the row: [b | a b c | b]: windows bab, abc, bcb: a 2, b 5, c 2
    conv = nn.Conv2d(1, 1, (1, 3), padding=(0, 1), padding_mode="reflect", bias=False)
    assert _coverage(conv, (1, 3)) == [[2, 5, 2]]


def test_avg_pool_module_keeps_its_padding():
    # as the functional pool above: windows {a, b}, {a, b, c}, {b, c}
    assert _coverage(nn.AvgPool2d((1, 3), stride=1, padding=(0, 1)), (1, 3)) == [[2, 3, 2]]


def test_adaptive_pool_to_sizes_that_do_not_divide():
    # 5 -> 2 along the row: torch's windows [0, 3) and [2, 5) share pixel 2
    assert _coverage(nn.AdaptiveAvgPool2d((1, 2)), (1, 5)) == [[1, 1, 2, 1, 1]]
    # 6 -> 3 divides: windows of 2, each pixel once
    assert _coverage(nn.AdaptiveMaxPool2d((1, 3)), (1, 6)) == [[1] * 6]
