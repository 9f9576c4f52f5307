"""Rules that models from further libraries need, each counted by hand on a small model:
norms over space (ConvNeXt V2's GRN: ``torch.linalg.vector_norm``; ``torch.norm``,
``F.normalize``), tensors made with ``torch.as_tensor`` / ``torch.tensor`` (MONAI's
HighResNet), the names Keras's torch backend calls (``torch.subtract``, ``torch.multiply``,
``torch.divide``) and a concatenation of channels-last maps (Keras's DenseNet).

Every model starts with a 3x3 convolution (padding 1) on a 7x7 map: unit ``u`` of its output
reads the 3x3 window around ``u`` (clipped at the border), and the windows of all units
together reach pixel ``(i, j)`` ``c[i] * c[j]`` times with ``c = [2, 3, 3, 3, 3, 3, 2]``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import rfanalysis as rfa

pytestmark = pytest.mark.torch

N = 7
CENTRE = (3, 3)
PER_AXIS = np.array([2, 3, 3, 3, 3, 3, 2])
ALL_WINDOWS = np.outer(PER_AXIS, PER_AXIS)  # every unit of the convolution, once each


def window(unit, k=3):
    out = np.zeros((N, N))
    r = k // 2
    out[max(0, unit[0] - r) : unit[0] + r + 1, max(0, unit[1] - r) : unit[1] + r + 1] = 1
    return out


def pixel(unit):
    out = np.zeros((N, N))
    out[unit] = 1
    return out


class _After(nn.Module):
    """A 3x3 convolution, then ``fn`` of its output."""

    def __init__(self, fn, channels=2):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x), x)


# --------------------------------------------------------------------------- norms over space
def _last(fn):
    """``fn`` applied to a channels-last view, as GRN is, and moved back."""
    return lambda y, x: fn(y.permute(0, 2, 3, 1), (1, 2)).permute(0, 3, 1, 2)


SCALED_BY_NORM = {
    "linalg.vector_norm": lambda y, x: y * torch.linalg.vector_norm(y, dim=(2, 3), keepdim=True),
    "linalg.norm": lambda y, x: y * torch.linalg.norm(y, dim=(2, 3), keepdim=True),
    "torch.norm": lambda y, x: y * torch.norm(y, p=2, dim=(2, 3), keepdim=True),
    "Tensor.norm": lambda y, x: y / y.norm(dim=(2, 3), keepdim=True),
    "GRN, channels last": _last(
        lambda y, d: y + y * torch.linalg.vector_norm(y, ord=2, dim=d, keepdim=True)
    ),
}


@pytest.mark.parametrize("how", list(SCALED_BY_NORM))
def test_a_map_scaled_by_its_norm_over_space(how):
    # a product: routes through the map (the window around u) plus routes through the norm
    # (every unit of the map, once); locally the norm, a gate, is dropped. GRN adds the map
    # once more: a second route through the window
    model = _After(SCALED_BY_NORM[how])
    net = rfa.from_torch(model, N)
    assert rfa.output_shape(net, N) == (N, N)
    own = window(CENTRE) * (2 if how.startswith("GRN") else 1)
    np.testing.assert_array_equal(rfa.routes(net, N), own + ALL_WINDOWS)
    np.testing.assert_array_equal(rfa.routes(net, N, context="local"), own)
    assert rfa.receptive_field(net, N).is_global
    assert rfa.receptive_field(net, N, context="local").size == (3, 3)


@pytest.mark.parametrize("dim", [(2, 3), (1, 2, 3)])
def test_normalize_over_space_is_a_norm_over_space(dim):
    # F.normalize divides by a norm its statistics take over the map: like SpatialNorm, a
    # unit reads every position once globally, itself locally
    model = _After(lambda y, x: F.normalize(y, dim=dim))
    net = rfa.from_torch(model, N)
    np.testing.assert_array_equal(rfa.routes(net, N), ALL_WINDOWS)
    np.testing.assert_array_equal(rfa.routes(net, N, context="local"), window(CENTRE))


def test_normalize_over_channels_keeps_positions():
    net = rfa.from_torch(_After(lambda y, x: F.normalize(y, dim=1)), N)
    np.testing.assert_array_equal(rfa.routes(net, N, unit=(0, 0)), window((0, 0)))


# --------------------------------------------------------------------------- torch.tensor
def test_as_tensor_of_a_map_is_the_map():
    # HighResNet's block: conv(x) + torch.as_tensor(pad(x)): the window plus the pixel itself
    model = _After(lambda y, x: y + torch.as_tensor(x), channels=1)
    net = rfa.from_torch(model, N)
    for unit in (CENTRE, (0, 6)):
        np.testing.assert_array_equal(rfa.routes(net, N, unit), window(unit) + pixel(unit))


def test_torch_tensor_of_a_map_is_a_constant():
    # torch.tensor copies the values into a new leaf: no gradient, so no route
    model = _After(lambda y, x: y + torch.tensor(x), channels=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "To copy construct from a tensor"
        net = rfa.from_torch(model, N)
    np.testing.assert_array_equal(rfa.routes(net, N), window(CENTRE))


# --------------------------------------------------------------------------- Keras's names
@pytest.mark.parametrize(
    "fn",
    [
        lambda y, x: torch.subtract(y, x),
        lambda y, x: torch.add(y, x),
        lambda y, x: torch.multiply(y, x),
        lambda y, x: torch.divide(y, x + 2.0),
        lambda y, x: torch.true_divide(y, torch.negative(x) - 2.0),
    ],
    ids=["subtract", "add", "multiply", "divide", "true_divide"],
)
def test_keras_backend_names_of_pointwise_operations(fn):
    # two operands: the window and the pixel itself
    net = rfa.from_torch(_After(fn, channels=1), N)
    np.testing.assert_array_equal(rfa.routes(net, N), window(CENTRE) + pixel(CENTRE))


def test_a_gate_through_multiply_is_dropped_locally():
    net = rfa.from_torch(_After(lambda y, x: torch.multiply(y, torch.sigmoid(x)), 1), N)
    np.testing.assert_array_equal(rfa.routes(net, N), window(CENTRE) + pixel(CENTRE))
    np.testing.assert_array_equal(rfa.routes(net, N, context="local"), window(CENTRE))


# --------------------------------------------------------------------------- channels last
class _ConcatLast(nn.Module):
    """A 3x3 and a 5x5 branch concatenated along the channels of channels-last maps."""

    def __init__(self):
        super().__init__()
        self.small, self.large = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 3, 5, padding=2)

    def forward(self, x):
        a, b = self.small(x).permute(0, 2, 3, 1), self.large(x).permute(0, 2, 3, 1)
        return torch.cat([a, b], dim=-1).permute(0, 3, 1, 2)


def test_a_concat_of_channels_last_maps_is_a_concat():
    net = rfa.from_torch(_ConcatLast(), N)
    assert rfa.output_shape(net, N) == (N, N)  # channels stay collapsed
    assert any(isinstance(node.layer, rfa.Concat) or type(node.layer).__name__ == "Cat"
               for node in net.nodes[1:])  # fmt: skip
    for unit in (CENTRE, (1, 0)):
        np.testing.assert_array_equal(rfa.routes(net, N, unit), window(unit) + window(unit, 5))


# --------------------------------------------------------------------------- keyword inputs
class _Branchy(nn.Module):
    """Control flow on values: fx cannot trace it, so it is recorded as it runs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, pixel_values, scale=None):
        if bool(pixel_values.sum() > -1e30):
            return self.conv(pixel_values)
        return pixel_values  # pragma: no cover


class _CalledByKeyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = _Branchy()

    def forward(self, x):
        return self.inner(pixel_values=x, scale=2.0)  # as Hugging Face models are called


def test_a_module_given_its_input_by_keyword_is_recorded():
    net = rfa.from_torch(_CalledByKeyword(), N)
    np.testing.assert_array_equal(rfa.routes(net, N, (0, 6)), window((0, 6)))


# --------------------------------------------------------------------------- explicit padding
@pytest.mark.parametrize(
    "pad, value",
    [((1, 1, 1, 1), 0.0), ((0, 1, 0, 1), 0.0), ((2, 1, 0, 3), 0.0), ((1, 1, 1, 1), 1.0)],
)
def test_a_border_before_a_window_is_the_window_s_padding(pad, value):
    # F.pad(x, (left, right, top, bottom)) then a valid 3x3 stride-2 convolution (Keras's
    # ZeroPadding2D, TF's "same"): the convolution padded so, whatever the constant
    class Padded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, stride=2)

        def forward(self, x):
            return self.conv(F.pad(x, pad, value=value))

    left, right, top, bottom = pad
    net = rfa.from_torch(Padded(), 8)
    expected = rfa.Network([rfa.Conv(3, 2, ((top, bottom), (left, right)))])
    assert rfa.output_shape(net, 8) == rfa.output_shape(expected, 8)
    assert rfa.receptive_field(net, 8) == rfa.receptive_field(expected, 8)
    np.testing.assert_array_equal(rfa.coverage(net, 8), rfa.coverage(expected, 8))


def test_a_border_before_a_max_pool_is_its_padding():
    model = nn.Sequential(nn.ZeroPad2d(1), nn.MaxPool2d(3, 2))
    net = rfa.from_torch(model, 7)
    assert rfa.receptive_field(net, 7).size == (3, 3)
    # per axis the windows read pixels -1..1, 1..3, 3..5 and 5..7: the odd pixels twice
    per_axis = np.array([1, 2, 1, 2, 1, 2, 1])
    np.testing.assert_array_equal(rfa.coverage(net, 7), np.outer(per_axis, per_axis))
