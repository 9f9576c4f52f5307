"""The defining identity: for a single-channel, bias-free, float64 network with all weights 1
(pools as window sums), torch autograd's input gradient equals the route counts exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import rfanalysis as rfa

from .oracles import torch_grad
from .strategies import stack_output, stack_settings, stacks

pytestmark = pytest.mark.torch

SETTINGS = stack_settings(120)


@SETTINGS
@given(net=stacks(ndim=1, max_layers=5, asymmetric=True), n=st.integers(3, 14), data=st.data())
def test_autograd_equals_routes_1d(net, n, data):
    out = stack_output(net, (n,))
    assume(out is not None)
    unit = tuple(data.draw(st.integers(0, m - 1)) for m in out)
    np.testing.assert_array_equal(rfa.routes(net, (n,), unit), torch_grad(net, (n,), unit))
    np.testing.assert_array_equal(rfa.coverage(net, (n,)), torch_grad(net, (n,)))


@SETTINGS
@given(
    net=stacks(ndim=2, max_layers=4, asymmetric=True), h=st.integers(3, 10), w=st.integers(3, 10)
)
def test_autograd_equals_routes_2d(net, h, w):
    assume(stack_output(net, (h, w)) is not None)
    np.testing.assert_array_equal(rfa.routes(net, (h, w)), torch_grad(net, (h, w), "center"))
    np.testing.assert_array_equal(rfa.coverage(net, (h, w)), torch_grad(net, (h, w)))


@stack_settings(30)
@given(net=stacks(ndim=3, max_layers=3, ceil=False), n=st.integers(3, 6))
def test_autograd_equals_coverage_3d(net, n):
    assume(stack_output(net, (n, n, n)) is not None)
    np.testing.assert_array_equal(rfa.coverage(net, (n, n, n)), torch_grad(net, (n, n, n)))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "symmetric", "replicate", "circular"])
@pytest.mark.parametrize("shape", [(13,), (9, 12)])
def test_every_padding_mode_deep_stack(mode, shape):
    spec = f"conv3p1:{mode}*3,conv5s2p2:{mode},conv3d2p2:{mode}*2"
    np.testing.assert_array_equal(rfa.coverage(spec, shape), torch_grad(spec, shape))
    np.testing.assert_array_equal(rfa.routes(spec, shape), torch_grad(spec, shape, "center"))


@pytest.mark.parametrize("scale", [1.5, 2.5, 3, 7, 25])
def test_upsample_factors_follow_torch(scale):
    # torch computes the nearest source index in float32; non-integer and large factors
    # exercise that arithmetic
    net = rfa.Network([rfa.Conv(3, padding=1), rfa.Upsample(scale), rfa.Conv(2)])
    for shape in [(7,), (5, 6)]:
        np.testing.assert_array_equal(rfa.coverage(net, shape), torch_grad(net, shape))


def test_resnet_style_stack_with_projection_and_concat():
    spec = (
        "conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*2,res(conv3s2p1,conv3p1|conv1s2),"
        "cat(conv1|conv3p1|conv5p2),tconv4s2p1,up2,conv3p1:reflect"
    )
    for shape in [(37, 41), (64, 64)]:
        np.testing.assert_array_equal(rfa.coverage(spec, shape), torch_grad(spec, shape))
        np.testing.assert_array_equal(rfa.routes(spec, shape), torch_grad(spec, shape, "center"))
