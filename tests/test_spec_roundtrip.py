"""What is printed parses back: ``parse(net.spec())`` is the network again, for random
networks of every layer and block the compact grammar writes (DESIGN §5), uneven padding
included (TF's "SAME" at stride 2 pads ``(0,1)``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rfanalysis as rfa

MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")


def _per_axis(draw, ndim, values):
    """One value for every axis, or (with ``ndim``) a tuple of one per axis."""
    if ndim is None or draw(st.booleans()):
        return draw(values)
    return tuple(draw(values) for _ in range(ndim))


def _padding(draw, ndim, words=True):
    choices = ["int", "axes", "pairs"] if ndim else ["int"]
    if words:
        choices.append("word")
    kind = draw(st.sampled_from(choices))
    if kind == "int":
        return draw(st.integers(0, 2))
    if kind == "word":
        return draw(st.sampled_from(["same", "valid", "full"]))
    if kind == "axes":
        return tuple(draw(st.integers(0, 2)) for _ in range(ndim))
    return tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))


@st.composite
def layers(draw, ndim):
    """One layer the grammar writes (no names or channel counts: specs do not hold them);
    None where the drawn arguments are not a valid layer."""
    kind = draw(st.sampled_from(["conv", "lc", "pool", "blurpool", "tconv", "up", "fc", "gpool"]))
    k = _per_axis(draw, ndim, st.integers(1, 4))
    s = _per_axis(draw, ndim, st.integers(1, 3))
    d = _per_axis(draw, ndim, st.integers(1, 2))
    try:
        if kind == "conv":
            mode = draw(st.sampled_from(MODES))
            return rfa.Conv(k, s, _padding(draw, ndim), d, mode)
        if kind == "lc":
            return rfa.LocallyConnected(k, s, _padding(draw, ndim, words=False), d)
        if kind == "pool":
            pool = draw(st.sampled_from(["max", "avg", "lp"]))
            return rfa.Pool(k, s, _padding(draw, ndim), d, pool, draw(st.booleans()))
        if kind == "blurpool":
            mode = draw(st.sampled_from(MODES))
            return rfa.BlurPool(k, s, _padding(draw, ndim), d, mode)
        if kind == "tconv":
            op = _per_axis(draw, ndim, st.integers(0, 2))
            return rfa.ConvTranspose(k, s, _padding(draw, ndim, words=False), op, d)
        if kind == "up":
            return rfa.Upsample(_per_axis(draw, ndim, st.integers(1, 3)))
        if kind == "fc":
            return rfa.Dense(draw(st.integers(1, 5)))
        return rfa.GlobalPool(draw(st.sampled_from(["avg", "max"])))
    except (ValueError, TypeError):
        return None


@st.composite
def items(draw, ndim, depth=2):
    """A layer, or (to ``depth``) a block of sequences: residual, concatenation, sum or
    product of branches."""
    if depth == 0 or draw(st.integers(0, 3)):
        return draw(layers(ndim))
    branch = st.lists(items(ndim, depth - 1), min_size=0, max_size=2)
    body = st.lists(items(ndim, depth - 1), min_size=1, max_size=2)
    block = draw(st.sampled_from(["res", "res2", "cat", "add", "mul"]))
    try:
        if block == "res":
            return rfa.Residual(draw(body))
        if block == "res2":
            return rfa.Residual(draw(body), draw(body))
        parts = [draw(branch) for _ in range(draw(st.integers(2, 3)))]
        if block == "cat":
            return rfa.Concat(*parts)
        return rfa.Parallel(*parts, merge=block)
    except (ValueError, TypeError):
        return None


@st.composite
def networks(draw):
    ndim = draw(st.sampled_from([None, 1, 2, 3]))
    drawn = draw(st.lists(items(ndim), min_size=1, max_size=5))
    assume(all(x is not None and _valid(x) for x in drawn))
    # a layer repeated (the grammar writes it once with '*N')
    if draw(st.booleans()):
        i = draw(st.integers(0, len(drawn) - 1))
        drawn[i + 1 : i + 1] = [drawn[i]] * draw(st.integers(1, 3))
    try:
        return rfa.Network(drawn)
    except (ValueError, TypeError):
        assume(False)


def _valid(item) -> bool:
    """No None layer inside a block."""
    for attr in ("body", "shortcut"):
        if any(x is None or not _valid(x) for x in getattr(item, attr, None) or ()):
            return False
    for branch in getattr(item, "branches", ()):
        if any(x is None or not _valid(x) for x in branch):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(networks())
def test_a_spec_parses_back_to_its_network(net):
    text = net.spec()
    back = rfa.parse(text)
    assert back.spec() == text
    if net.ndim is None:
        assert back == net, text
    else:
        # a network fixed to n axes is the same network whether a layer writes its sizes per
        # axis or once; a spec marks 3 or more axes (conv3x3x3), not 2 (the default) and not
        # 1 where every value is one number (no 'AxB' form has one axis)
        n = net.ndim
        assert back.expand(n) == net.expand(n), text
        assert back.ndim in {1: (1, None), 2: (2, None)}.get(n, (n,)), text


@pytest.mark.parametrize(
    ("layer", "text"),
    [
        # TF's "SAME" for a 3x3 stride-2 convolution of an even input: 0 before, 1 after
        (rfa.Conv(3, 2, ((0, 1), (0, 1))), "conv3s2p(0,1)x(0,1)"),
        (rfa.Conv(3, padding=((1, 0), (1, 0))), "conv3p(1,0)x(1,0)"),
        (rfa.Conv(3, padding=((1, 1), (0, 1))), "conv3p(1,1)x(0,1)"),
        (rfa.Pool(3, 2, ((0, 1), (1, 0)), ceil_mode=True), "maxpool3s2p(0,1)x(1,0)c"),
    ],
)
def test_uneven_padding_is_written_and_read_per_axis(layer, text):
    assert rfa.Network([layer]).spec() == text
    assert rfa.parse(text) == rfa.Network([layer])


def test_a_mixed_padding_reads_an_integer_as_both_sides():
    assert rfa.parse("conv3s2p1x(0,1)").layers[0].padding == ((1, 1), (0, 1))
    assert rfa.parse("conv3p1x2").layers[0].padding == rfa.Conv(3, padding=(1, 2)).padding


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("conv3p(1,0", "expected ')' after the padding before and after"),
        ("conv3p(1)", "expected ',' between the padding before and after"),
        ("conv3p(a,0)", "expected the padding before"),
        ("conv3px", "expected a number or '(before,after)' after 'p'"),
    ],
)
def test_a_malformed_padding_pair_names_the_position(text, message):
    with pytest.raises(ValueError, match=rf"{re.escape(message)}.* at position \d+"):
        rfa.parse(text)
