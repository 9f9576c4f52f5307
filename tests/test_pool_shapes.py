"""Pooling windows exactly as torch lays them out, ceil mode included.

torch's rule (``pooling_output_shape``): ``floor((n + 2p - d(k - 1) - 1 + (s - 1 if ceil)) / s)
+ 1``, less one in ceil mode where the last window would start in the trailing padding. A window
larger than the input is allowed in ceil mode (HF EfficientNet pools a 7x7 map with
``AvgPool2d(1280, ceil_mode=True)`` and gets 1x1). Expected sizes here are torch's own: the
module is run on a tensor of the drawn size. Routes are checked against torch autograd on the
pool's window sums (a ones-weight network, DESIGN section 2), laid out by torch's own output
size and nothing of this package.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rfanalysis as rfa

from .strategies import stack_settings

pytestmark = pytest.mark.torch


@st.composite
def windows(draw, kind):
    """Per-axis kernel, stride, padding (torch: at most half the kernel) and dilation, for
    inputs of 1 to 12 units and kernels up to twice that: windows larger than the input."""
    ndim = draw(st.sampled_from([1, 2]))
    shape = tuple(draw(st.integers(1, 12)) for _ in range(ndim))
    k = tuple(draw(st.integers(1, 2 * n + 2)) for n in shape)
    s = tuple(draw(st.one_of(st.just(kk), st.integers(1, 4))) for kk in k)
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    d = tuple(draw(st.integers(1, 3)) for _ in k) if kind == "max" else (1,) * ndim
    return shape, k, s, p, d, draw(st.booleans())


def _torch_module(kind, k, s, p, d, ceil_mode, count_include_pad=True):
    import torch.nn as nn

    nd = len(k)
    if kind == "max":
        cls = nn.MaxPool1d if nd == 1 else nn.MaxPool2d
        return cls(k, s, p, d, ceil_mode=ceil_mode)
    cls = nn.AvgPool1d if nd == 1 else nn.AvgPool2d
    return cls(k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def _torch_size(module, shape):
    """The spatial size torch gives, or None where torch refuses the input."""
    import torch

    try:
        return tuple(module(torch.zeros((1, 1, *shape), dtype=torch.float64)).shape[2:])
    except RuntimeError:  # "Invalid computed output size" / "Output size is too small"
        return None


def _our_size(layer, shape):
    try:
        return rfa.output_shape([layer], shape)
    except ValueError as e:
        assert "output size 0" in str(e), e  # refused for the same reason torch refuses
        return None


@stack_settings(300)
@given(w=windows("max"))
def test_max_pool_sizes_are_torchs(w):
    shape, k, s, p, d, ceil_mode = w
    expected = _torch_size(_torch_module("max", k, s, p, d, ceil_mode), shape)
    assert _our_size(rfa.Pool(k, s, p, d, kind="max", ceil_mode=ceil_mode), shape) == expected


@stack_settings(300)
@given(w=windows("avg"), count_include_pad=st.booleans())
def test_avg_pool_sizes_are_torchs(w, count_include_pad):
    shape, k, s, p, d, ceil_mode = w
    module = _torch_module("avg", k, s, p, d, ceil_mode, count_include_pad)
    expected = _torch_size(module, shape)
    assert _our_size(rfa.Pool(k, s, p, kind="avg", ceil_mode=ceil_mode), shape) == expected


def _window_sum_grad(shape, k, s, p, d, ceil_mode, unit):
    """Autograd of one unit of the pool's window sums (ones weights): a convolution over the
    input padded with zeros far enough for every window torch keeps, cropped to the number of
    windows torch's own max pool gives."""
    import torch
    import torch.nn.functional as F

    nd = len(shape)
    out = _torch_size(_torch_module("max", k, s, p, d, ceil_mode), shape)
    assert out is not None
    x = torch.ones((1, 1, *shape), dtype=torch.float64, requires_grad=True)
    pads = []
    for n, m, kk, ss, dd, pp in zip(shape, out, k, s, d, p):
        pads = [pp, max(pp, (m - 1) * ss + dd * (kk - 1) + 1 - n - pp), *pads]
    conv = F.conv1d if nd == 1 else F.conv2d
    ones = torch.ones((1, 1, *k), dtype=torch.float64)
    y = conv(F.pad(x, pads), ones, stride=s, dilation=d)
    y = y[(0, 0, *(slice(0, m) for m in out))]
    (g,) = torch.autograd.grad(y[unit] if unit is not None else y.sum(), x)
    return out, g[0, 0].numpy()


@stack_settings(150)
@given(w=windows("max"), data=st.data())
def test_routes_of_ceil_mode_windows_match_autograd(w, data):
    shape, k, s, p, d, _ = w
    layer = rfa.Pool(k, s, p, d, ceil_mode=True)
    out = _our_size(layer, shape)
    if out is None:
        return  # torch refuses it too (the size test above)
    unit = tuple(data.draw(st.integers(0, m - 1)) for m in out)
    expected_out, g = _window_sum_grad(shape, k, s, p, d, True, unit)
    assert out == expected_out
    np.testing.assert_array_equal(rfa.routes([layer], shape, unit), g)
    np.testing.assert_array_equal(
        rfa.coverage([layer], shape), _window_sum_grad(shape, k, s, p, d, True, None)[1]
    )


def test_efficientnet_pooler_window_larger_than_the_map():
    # HF EfficientNet: AvgPool2d(hidden_dim=1280, ceil_mode=True) on the 7x7 last map; torch
    # gives 1x1, the one window reading every pixel once
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AvgPool2d(1280, ceil_mode=True))
    assert model(torch.zeros(1, 3, 7, 7)).shape == (1, 8, 1, 1)
    net = rfa.from_torch(model, (7, 7))
    assert rfa.output_shape(net, (7, 7)) == (1, 1)
    # a 3x3 conv, then a sum over the map: pixel (i, j) reaches it through the taps that land
    # on it, 3 per axis inside, 2 at an edge
    per_axis = np.array([2, 3, 3, 3, 3, 3, 2])
    np.testing.assert_array_equal(rfa.routes(net, (7, 7)), np.outer(per_axis, per_axis))


def test_a_last_window_starting_in_the_padding_is_dropped():
    # n=5, k=2, s=2, p=1, ceil: windows start at -1, 1, 3 and would start at 5 (the trailing
    # padding); torch keeps 3
    import torch
    import torch.nn as nn

    assert nn.MaxPool1d(2, 2, 1, ceil_mode=True)(torch.zeros(1, 1, 5)).shape[-1] == 3
    layer = rfa.Pool(2, 2, 1, ceil_mode=True)
    assert rfa.output_shape([layer], (5,)) == (3,)
    np.testing.assert_array_equal(rfa.coverage([layer], (5,)), [1, 1, 1, 1, 1])
