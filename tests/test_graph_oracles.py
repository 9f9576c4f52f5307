"""Route counts on arbitrary graphs against the two independent oracles.

Random DAGs (``strategies.graphs``: fan-out to several consumers, n-ary add / product /
concat of operands from different depths, broadcasting size-1 operands, strided and dilated
windows in every padding mode, transposed convolutions and upsampling, 1-D and 2-D) are
checked against the brute-force enumerator (exact integers) and against float64 torch
autograd of the single-channel ones-weight graph in which a product is the sum of its
operands. A few graphs small enough to count by hand check the oracles themselves.

Random graphs per run (derandomized): 240 in 1-D and 160 in 2-D, each against both oracles
(routes to a random unit and coverage), plus 80 small 1-D graphs on which the brute-force
counter is checked against literal route enumeration: 480 in all. Nearly half of them are
graphs that nested blocks cannot write (``net.is_tree`` False). Another 240 (120 1-D, 120
2-D) check that geometry's receptive field holds every route the brute force finds.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rfanalysis as rfa

from .oracles import (
    attention_groups,
    brute_coverage,
    brute_output_shape,
    brute_routes,
    enumerate_paths,
    torch_grad,
)
from .strategies import graphs, stack_settings


def _exact(values):
    return np.asarray(values, dtype=object).tolist()


def _not_a_tree():
    """x -> a = conv3p1(x); c = x + a; d = a + c: ``a`` feeds branches of two different
    merges, which nested blocks cannot write."""
    x = rfa.Input()
    a = rfa.Conv(3, padding=1)(x)
    c = rfa.Add()(x, a)
    return rfa.Network(rfa.Add()(a, c))


# --------------------------------------------------------------------------- by hand
def test_graph_that_is_not_a_tree_by_hand():
    net = _not_a_tree()
    assert not net.is_tree
    # d = 2a + x with a_o = x_{o-1} + x_o + x_{o+1} on 3 pixels (zeros padding):
    # d_1 = 2 (x_0 + x_1 + x_2) + x_1; sum_o d_o = 2 [2 3 2] + [1 1 1]
    for counts in (
        brute_routes(net, (3,)),
        enumerate_paths(net, (3,), (1,)),
        rfa.routes(net, (3,), exact=True),
    ):
        assert _exact(counts) == [2, 3, 2]
    assert _exact(brute_coverage(net, (3,))) == [5, 7, 5]
    assert _exact(rfa.coverage(net, (3,), exact=True)) == [5, 7, 5]


def test_broadcasting_product_by_hand():
    # y = x * rowsum(x) * colsum(x) on a 2x3 map: rowsum is 2x1, colsum 1x3 (pools whose
    # window covers an axis); every y unit reads its own pixel, its row and its column
    x = rfa.Input()
    rows = rfa.Pool((1, 3), kind="avg")(x)
    cols = rfa.Pool((2, 1))(x)
    net = rfa.Network(rfa.Mul()(x, rows, cols))
    # y[0, 1]: x[0, 1] directly, x[0, :] through the row, x[:, 1] through the column
    expected = [[1, 3, 1], [0, 1, 0]]
    assert _exact(brute_routes(net, (2, 3), (0, 1))) == expected
    assert _exact(enumerate_paths(net, (2, 3), (0, 1))) == expected
    assert _exact(rfa.routes(net, (2, 3), (0, 1), exact=True)) == expected
    # every pixel: 1 directly, 3 through its row (read by 3 units), 2 through its column
    assert _exact(brute_coverage(net, (2, 3))) == [[6] * 3] * 2
    assert _exact(rfa.coverage(net, (2, 3), exact=True)) == [[6] * 3] * 2


@pytest.mark.torch
def test_torch_oracle_by_hand():
    np.testing.assert_array_equal(torch_grad(_not_a_tree(), (3,), (1,)), [2, 3, 2])
    np.testing.assert_array_equal(torch_grad(_not_a_tree(), (3,)), [5, 7, 5])
    x = rfa.Input()
    net = rfa.Network(rfa.Mul()(x, rfa.Pool((1, 3), kind="avg")(x), rfa.Pool((2, 1))(x)))
    np.testing.assert_array_equal(torch_grad(net, (2, 3), (0, 1)), [[1, 3, 1], [0, 1, 0]])


def test_shifted_window_groups_by_hand():
    # 4 tokens per axis, windows of 2 shifted by 1: torchvision rolls the grid by -1, so
    # token p sits at q = (p - 1) mod 4; windows q // 2 = {0, 1} and {2, 3}; its mask cuts
    # the second window into q = 2 and q = 3 (slices (-2, -1) and (-1, None)). Per axis the
    # groups are tokens {1, 2}, {3} and {0}; in 2-D their products.
    labels, groups = attention_groups((4, 4), (2, 2), (1, 1))
    assert groups == 9
    axis = {0: "a", 1: "b", 2: "b", 3: "c"}
    pairs = {(axis[i], axis[j]) for i in range(4) for j in range(4)}
    for p in pairs:
        members = {labels[i, j] for i in range(4) for j in range(4) if (axis[i], axis[j]) == p}
        assert len(members) == 1
    # without a shift: four 2 x 2 windows; a window wider than the grid: no shift, one group
    assert attention_groups((4, 4), (2, 2), (0, 0))[1] == 4
    assert attention_groups((3, 3), (7, 7), (3, 3))[1] == 1


@pytest.mark.torch
def test_torch_oracle_reads_by_hand():
    # a token attends its shifted window: unit (1, 1) reads tokens {1, 2} x {1, 2}
    expected = np.zeros((4, 4))
    expected[1:3, 1:3] = 1
    attention = [rfa.Attention(window_size=2, shift_size=1)]
    np.testing.assert_array_equal(torch_grad(attention, (4, 4), (1, 1)), expected)
    # a global pool and a norm over space: every position once per unit that reads it
    np.testing.assert_array_equal(torch_grad([rfa.GlobalPool()], (2, 3), (0, 0)), np.ones((2, 3)))
    np.testing.assert_array_equal(
        torch_grad([rfa.SpatialNorm("layer")], (2, 3)), np.full((2, 3), 6)
    )
    # adaptive pooling of 5 to 2: windows [0, 3) and [2, 5) overlap at 2
    np.testing.assert_array_equal(torch_grad([rfa.AdaptivePool(2)], (5,)), [1, 1, 2, 1, 1])


def test_same_operand_twice_counts_twice():
    # y = cat(a, a) with a = conv2(x) on 3 pixels: y_0 reads a_0 twice, a_0 reads x_0 and x_1
    x = rfa.Input()
    a = rfa.Conv(2)(x)
    net = rfa.Network(rfa.Cat()(a, a))
    assert _exact(brute_routes(net, (3,), (0,))) == [2, 2, 0]
    assert _exact(rfa.routes(net, (3,), (0,), exact=True)) == [2, 2, 0]


# --------------------------------------------------------------------------- random graphs
def _check(net, shape, data):
    out = brute_output_shape(net, shape)
    assert rfa.output_shape(net, shape) == out
    unit = tuple(data.draw(st.integers(0, m - 1)) for m in out)
    routes = brute_routes(net, shape, unit)
    coverage = brute_coverage(net, shape)
    assert _exact(rfa.routes(net, shape, unit, exact=True)) == _exact(routes)
    assert _exact(rfa.coverage(net, shape, exact=True)) == _exact(coverage)
    with np.errstate(divide="ignore"):
        expected_log = np.log10(routes.astype(np.float64))
    np.testing.assert_allclose(rfa.routes(net, shape, unit, log=True), expected_log, rtol=1e-12)
    # the counts are far below 2**53: float64 is exact
    np.testing.assert_array_equal(rfa.routes(net, shape, unit), torch_grad(net, shape, unit))
    np.testing.assert_array_equal(rfa.coverage(net, shape), torch_grad(net, shape))


@pytest.mark.torch
@stack_settings(240, derandomize=True)
@given(graph=graphs(ndim=1, max_ops=8), data=st.data())
def test_random_graphs_match_both_oracles_1d(graph, data):
    _check(*graph, data)


@pytest.mark.torch
@stack_settings(160, derandomize=True)
@given(graph=graphs(ndim=2, max_ops=7), data=st.data())
def test_random_graphs_match_both_oracles_2d(graph, data):
    _check(*graph, data)


@stack_settings(80, derandomize=True)
@given(graph=graphs(ndim=1, max_ops=6, dense=False), data=st.data())
def test_brute_force_counter_matches_literal_path_enumeration(graph, data):
    net, shape = graph
    out = brute_output_shape(net, shape)
    unit = tuple(data.draw(st.integers(0, m - 1)) for m in out)
    assert _exact(brute_routes(net, shape, unit)) == _exact(enumerate_paths(net, shape, unit))


# --------------------------------------------------------------------------- geometry
def test_broadcast_operand_makes_its_axis_global():
    # y = conv3p1(x + rowmean(x)) on 2x3: along axis 0 a unit reads its own row and the
    # conv's neighbours (rf 3, jump 1, start 0); along axis 1 every unit reads the whole row
    # through the one-unit mean, wherever the unit lies: the field is the whole input. (The
    # union of fields used to take the mean's jump, 3, for a map whose units are 1 apart.)
    x = rfa.Input()
    net = rfa.Network(rfa.Conv(3, padding=1)(rfa.Add()(x, rfa.Pool((1, 3), kind="avg")(x))))
    rf = rfa.receptive_field(net, (2, 3))
    assert (rf.size, rf.stride, rf.start) == ((3, "global"), (1, None), (0, None))
    # unit (0, 0) reads z = x + rowmean(x) at rows 0-1, columns 0-1: pixel (r, c) directly
    # for c < 2, and every pixel of its row through the mean of each of the 2 columns
    assert brute_routes(net, (2, 3), (0, 0)).tolist() == [[3, 3, 2], [3, 3, 2]]
    (merge,) = [r for r in rfa.geometry(net, (2, 3)).rows if r.kind == "add"]
    assert merge.note == "axis 1: an operand of one unit is read by every unit (global)"
    # a squeeze-and-excitation gate: both axes
    gate = rfa.Network(rfa.Mul()(rfa.Conv(3, padding=1)(x), rfa.Pool(8)(x)))
    assert rfa.receptive_field(gate, 8).size == ("global", "global")


def _assert_field_holds_routes(net, shape):
    """Every pixel with a route to unit u (the brute force's support; corner and centre
    units) lies within the field that geometry gives u, centred on ``start + u * jump``.
    Not on an axis whose field is the whole input, nor on a graph in which operands of
    different jumps meet: no single (size, jump, start) describes such units, and the table
    says so in a note."""
    g = rfa.geometry(net, shape)
    if any("jumps differ" in row.note for row in g.rows):
        return
    rf = g.receptive_field
    out = brute_output_shape(net, shape)
    for unit in itertools.product(*(sorted({0, (m - 1) // 2, m - 1}) for m in out)):
        support = np.nonzero(brute_routes(net, shape, unit).astype(bool))
        for a, (size, jump, start) in enumerate(zip(rf.size, rf.stride, rf.start)):
            if size == "global" or not support[a].size:
                continue
            centre = start + unit[a] * jump
            assert centre - Fraction(size - 1, 2) <= support[a].min()
            assert support[a].max() <= centre + Fraction(size - 1, 2)


@stack_settings(120, derandomize=True)
@given(
    graph=graphs(ndim=1, max_ops=7, dense=False, modes=("zeros",), upsampling=False),
    graph_2d=graphs(ndim=2, max_ops=5, dense=False, modes=("zeros",), upsampling=False),
)
def test_receptive_field_holds_every_route(graph, graph_2d):
    # 120 + 120 random graphs with zeros padding and no upsampling (where padding modes
    # move routes and output phases differ, the table describes fields less tightly)
    _assert_field_holds_routes(*graph)
    _assert_field_holds_routes(*graph_2d)
