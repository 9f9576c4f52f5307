"""Property tests at scale: many random stacks against both oracles, and a fuzz pass on the
spec parser. Marked ``slow``; the default run (and CI) includes them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rfanalysis as rfa

from .oracles import assert_engine_matches_brute_force, brute_routes, torch_grad
from .strategies import stack_output, stack_settings, stacks

pytestmark = pytest.mark.slow

MANY = stack_settings(400, derandomize=True)


# 400 (1-D) + 400 (2-D) + 200 (3-D) = 1000 stacks against the brute-force enumerator
@MANY
@given(net=stacks(ndim=1, max_layers=5, asymmetric=True), n=st.integers(2, 12), data=st.data())
def test_brute_force_1d_at_scale(net, n, data):
    out = stack_output(net, (n,))
    assume(out is not None)
    unit = tuple(data.draw(st.integers(0, m - 1)) for m in out)
    assert_engine_matches_brute_force(net, (n,), unit)


@MANY
@given(net=stacks(ndim=2, max_layers=3, asymmetric=True), h=st.integers(2, 7), w=st.integers(2, 7))
def test_brute_force_2d_at_scale(net, h, w):
    assume(stack_output(net, (h, w)) is not None)
    assert_engine_matches_brute_force(net, (h, w), routes=False)


@stack_settings(200, derandomize=True)
@given(net=stacks(ndim=3, max_layers=2, upsample=False), n=st.integers(2, 4))
def test_brute_force_3d_at_scale(net, n):
    assume(stack_output(net, (n, n, n)) is not None)
    assert rfa.routes(net, (n, n, n), exact=True).tolist() == brute_routes(net, (n, n, n)).tolist()


# 120 (1-D) + 80 (2-D) + 40 (3-D) = 240 stacks against torch autograd
@pytest.mark.torch
@stack_settings(120, derandomize=True)
@given(net=stacks(ndim=1, max_layers=6, asymmetric=True), n=st.integers(3, 16))
def test_torch_1d_at_scale(net, n):
    assume(stack_output(net, (n,)) is not None)
    np.testing.assert_array_equal(rfa.coverage(net, (n,)), torch_grad(net, (n,)))
    np.testing.assert_array_equal(rfa.routes(net, (n,)), torch_grad(net, (n,), "center"))


@pytest.mark.torch
@stack_settings(80, derandomize=True)
@given(net=stacks(ndim=2, max_layers=5), h=st.integers(3, 12), w=st.integers(3, 12))
def test_torch_2d_at_scale(net, h, w):
    assume(stack_output(net, (h, w)) is not None)
    np.testing.assert_array_equal(rfa.coverage(net, (h, w)), torch_grad(net, (h, w)))


@pytest.mark.torch
@stack_settings(40, derandomize=True)
@given(net=stacks(ndim=3, max_layers=3, ceil=False), n=st.integers(3, 6))
def test_torch_3d_at_scale(net, n):
    assume(stack_output(net, (n, n, n)) is not None)
    np.testing.assert_array_equal(rfa.coverage(net, (n, n, n)), torch_grad(net, (n, n, n)))


# --------------------------------------------------------------------------- parser fuzz
_ALPHABET = "convlcmaxpgltupfresidcat()|,*:xsodpf0123456789 reflectsymmetric"
_TOKENS = [
    "conv",
    "lc",
    "maxpool",
    "avgpool",
    "lppool",
    "tconv",
    "up",
    "fc",
    "res(",
    "cat(",
    "id",
    ")",
    "|",
    ",",
    "*",
    ":",
    "x",
    "s",
    "p",
    "d",
    "o",
    "c",
    "same",
    "valid",
    "full",
    "reflect",
    "circular",
    "0",
    "1",
    "2",
    "3",
    "17",
]


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(
    text=st.one_of(
        st.text(max_size=30),
        st.text(alphabet=_ALPHABET, max_size=40),
        st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join),
    )
)
def test_parse_returns_a_network_or_raises_value_error(text):
    try:
        net = rfa.parse(text)
    except ValueError as exc:
        assert str(exc).startswith("cannot parse spec")
        assert "\n" not in str(exc)
        return
    assert isinstance(net, rfa.Network) and len(net) >= 1
    assert rfa.parse(net.spec()) == net
