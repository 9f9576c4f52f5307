"""Channels-last models, ``(batch, *spatial, C)``: ``layout="channels_last"`` in every entry
point that takes a torch module, and the layout a model declares (a Keras model) read from the
model. Expected maps are counted by hand on ones-weight models, or are those of the same
model written channels-first."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import rfanalysis as rfa

pytestmark = pytest.mark.torch


class _Last(nn.Module):
    """A channels-first model ``inner`` behind a channels-last interface."""

    def __init__(self, inner, flat=False):
        super().__init__()
        self.inner = inner
        self.flat = flat

    def forward(self, x):
        y = self.inner(x.permute(0, 3, 1, 2))
        return y if self.flat or y.ndim == 2 else y.permute(0, 2, 3, 1)


def _ones_conv(k=3, cin=1, cout=1, **kwargs):
    conv = nn.Conv2d(cin, cout, k, bias=False, **kwargs)
    nn.init.ones_(conv.weight)
    return conv


def _window(n, unit, k):
    out = np.zeros((n, n))
    r = k // 2
    out[max(0, unit[0] - r) : unit[0] + r + 1, max(0, unit[1] - r) : unit[1] + r + 1] = 1
    return out


# --------------------------------------------------------------------------- influence
def test_influence_of_a_channels_last_model_counts_its_routes():
    # one channel, ones weights, no non-linearity: the gradient of unit u is 1 on each pixel
    # of its 3x3 window (DESIGN section 2); the input's channel axis is the last one
    model = _Last(_ones_conv(3, padding=1))
    for unit in ((3, 3), (0, 6)):
        got = rfa.influence(model, (7, 7), unit, layout="channels_last", reduction="signed")
        np.testing.assert_array_equal(got, _window(7, unit, 3))


def test_influence_channels_last_equals_the_channels_first_model():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 5, stride=2))
    x = np.random.default_rng(0).normal(size=(2, 3, 11, 11))
    first = rfa.influence(inner, (11, 11), inputs=x)
    last = _Last(inner)
    kw = {"layout": "channels_last", "in_channels": 3}
    for inputs in (np.moveaxis(x, 1, -1), [torch.as_tensor(np.moveaxis(x, 1, -1))]):
        np.testing.assert_array_equal(rfa.influence(last, (11, 11), inputs=inputs, **kw), first)
    drawn = rfa.influence(last, (11, 11), trials=3, **kw)
    np.testing.assert_array_equal(drawn, rfa.influence(inner, (11, 11), trials=3))


def test_influence_layout_errors():
    model = _Last(_ones_conv(3, padding=1))
    with pytest.raises(ValueError, match="`layout` must be 'channels_first' or 'channels_last'"):
        rfa.influence(model, 7, layout="nhwc")
    with pytest.raises(TypeError, match="`layout` says how a torch module"):
        rfa.influence("conv3", 7, layout="channels_last")
    with pytest.raises(ValueError, match=r"\(trials, 7, 7, 1\) \(channels last\); got \(2, 1, 7"):
        rfa.influence(model, 7, inputs=np.zeros((2, 1, 7, 5)), layout="channels_last")
    with pytest.raises(ValueError, match=r"batch 0 has shape \(1, 3, 7, 7\); expected"):
        bad = [torch.zeros(1, 3, 7, 7)]
        rfa.influence(model, 7, inputs=bad, layout="channels_last", in_channels=3)


# --------------------------------------------------------------------------- from_torch
def test_from_torch_channels_last_counts_routes_by_hand():
    # two ones-weight 3x3 convolutions: unit u reads pixel u + d through the 3 - |d| taps
    # pairs per axis, 1 2 3 2 1 across the 5x5 window (Pascal's triangle of 3-tap kernels)
    model = _Last(nn.Sequential(_ones_conv(3, padding=1), _ones_conv(3, padding=1)))
    net = rfa.from_torch(model, (9, 9), layout="channels_last")
    assert rfa.output_shape(net, 9) == (9, 9)
    row = np.array([0, 0, 1, 2, 3, 2, 1, 0, 0])
    np.testing.assert_array_equal(rfa.routes(net, 9), np.outer(row, row))


def test_from_torch_channels_last_equals_the_channels_first_model():
    torch.manual_seed(0)
    inner = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 4, 5, padding=2),
    )  # fmt: skip
    first = rfa.from_torch(inner, (33, 33))
    last = rfa.from_torch(_Last(inner), (33, 33), layout="channels_last", in_channels=3)
    assert rfa.output_shape(last, 33) == rfa.output_shape(first, 33) == (9, 9)
    np.testing.assert_array_equal(rfa.coverage(last, 33), rfa.coverage(first, 33))
    assert rfa.receptive_field(last).size == rfa.receptive_field(first).size


def test_a_channels_last_map_of_one_unit_is_one_unit():
    # (1, 1, 1, C): one unit with C channels, not a 1 x C map
    model = _Last(nn.Sequential(_ones_conv(3, 1, 4, padding=1), nn.AdaptiveAvgPool2d(1)))
    net = rfa.from_torch(model, 7, layout="channels_last")
    assert rfa.output_shape(net, 7) == (1, 1)
    assert rfa.receptive_field(net, 7).is_global


def test_a_channels_last_model_read_channels_first_fails_with_its_own_error():
    model = _Last(_ones_conv(3, cin=3, padding=1))
    with pytest.raises(ValueError, match=r"running _Last on an input of shape \(1, 3, 8, 8\)"):
        rfa.from_torch(model, 8, in_channels=3)
    with pytest.raises(ValueError, match="`layout` must be 'channels_first' or 'channels_last'"):
        rfa.from_torch(model, 8, layout="NHWC")


# --------------------------------------------------------------------------- shift_invariance
def test_shift_invariance_of_a_channels_last_model_is_that_of_the_model():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(4, 3, 3, padding=1))  # fmt: skip
    first = rfa.shift_invariance(inner, 12, trials=3)
    last = rfa.shift_invariance(_Last(inner), 12, trials=3, layout="channels_last", in_channels=2)
    assert last.shifts == first.shifts == (0, 1, 2, 3, 4)  # total stride 2, from the trace
    assert last.similarity == first.similarity
    assert last.map_similarity == first.map_similarity
    x = np.random.default_rng(1).normal(size=(3, 2, 12, 12))
    given = rfa.shift_invariance(_Last(inner), 12, inputs=np.moveaxis(x, 1, -1),
                                 layout="channels_last", in_channels=2)  # fmt: skip
    assert given.similarity == rfa.shift_invariance(inner, 12, inputs=x).similarity
    with pytest.raises(TypeError, match="`layout` says how a torch module"):
        rfa.shift_invariance("conv3", 12, layout="channels_last")
