"""``rfa.connections`` against the brute-force enumerator's edges (tests/oracles.py).

Every connection with a source (``source >= 0``) is one edge ``(out, source)`` of the
oracle, repeats included, and every oracle edge is one such connection; for windows the
``position`` a tap reads is ``o*s + t*d - p_before`` from the layer's own fields. Random 1-D
chains draw asymmetric padding ``(before, after)`` in every padding mode, strides,
dilations, ceil-mode pools, transposed convolutions and upsampling.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

import rfanalysis as rfa

from .oracles import _pads, layer_edges
from .strategies import MODES, layer_output, stack_settings


def _edges(c):
    """The connections that reach an input unit, as a multiset of (out, source)."""
    keep = c.source >= 0
    return Counter(zip(c.out[keep].tolist(), c.source[keep].tolist()))


def _oracle(layer, n):
    out_shape, edges = layer_edges(layer.expand(1), (n,))
    return out_shape[0], Counter((o[0], i[0]) for o, i in edges)


def _check_chain(layers, n):
    found = rfa.connections(rfa.Network(layers), (n,))
    assert len(found) == len(layers)
    for layer, c in zip(layers, found):
        m, expected = _oracle(layer, c.n_in)
        assert (c.n_in, c.n_out) == (n, m)
        assert _edges(c) == expected, (layer, n)
        one = layer.expand(1)
        if not isinstance(one, (rfa.ConvTranspose, rfa.Upsample)):
            k, s, d = one.kernel_size[0], one.stride[0], one.dilation[0]
            pb, _ = _pads(one, 0, c.n_in)
            assert sorted(zip(c.out.tolist(), c.tap.tolist())) == [
                (o, t) for o in range(m) for t in range(k)
            ]
            assert (c.position == c.out * s + c.tap * d - pb).all(), layer
        n = m


def test_asymmetric_padding_by_hand():
    # conv3 padded (2, 0) on 4 units: output unit o reads o-2, o-1, o; 4 outputs
    (c,) = rfa.connections([rfa.Conv(3, padding=((2, 0),))], (4,))
    expected = [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3)]
    assert _edges(c) == Counter(expected)
    assert c.position.tolist() == [-2, -1, 0, -1, 0, 1, 0, 1, 2, 1, 2, 3]
    # and the route engine counts the same connections: pixel 0 is read by units 0, 1, 2
    assert rfa.coverage([rfa.Conv(3, padding=((2, 0),))], (4,)).tolist() == [3, 3, 2, 1]
    # reflect padded (0, 2) on 4 units (c b | a b c d | c b): unit 2 reads c, d, c;
    # unit 3 reads d, c, b
    (c,) = rfa.connections([rfa.Conv(3, padding=((0, 2),), padding_mode="reflect")], (4,))
    assert c.source.tolist() == [0, 1, 2, 1, 2, 3, 2, 3, 2, 3, 2, 1]


@st.composite
def _layer(draw):
    kind = draw(st.sampled_from(["conv", "conv", "pool", "tconv", "up"]))
    if kind == "up":
        return rfa.Upsample(draw(st.integers(1, 3)))
    k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    if kind == "tconv":
        p = draw(st.integers(0, k - 1))
        return rfa.ConvTranspose(k, s, p, draw(st.integers(0, max(s, d) - 1)), d)
    if kind == "pool":
        pb = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans())
        return rfa.Pool(k, s, pb, 1 if ceil else d, ceil_mode=ceil)
    pads = ((draw(st.integers(0, 3)), draw(st.integers(0, 3))),)
    return rfa.Conv(k, s, pads, d, draw(st.sampled_from(MODES)))


@st.composite
def _chains(draw):
    n = draw(st.integers(2, 12))
    layers, size = [], n
    for _ in range(draw(st.integers(1, 4))):
        layer = draw(_layer())
        out = layer_output(layer, (size,))
        if out is None or not 1 <= out[0] <= 40:
            continue
        layers.append(layer)
        size = out[0]
    if not layers:
        layers = [rfa.Conv(1)]
    return layers, n


@stack_settings(150, derandomize=True)
@given(chain=_chains())
def test_random_chains_match_the_oracle_edges(chain):
    _check_chain(*chain)
