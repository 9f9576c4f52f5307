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
2-D, dense layers and broadcast operands included) check geometry's table row by row against
fields spanned unit by unit (``oracles.field_spans``: size, jump and start equal, global axes
where the spans say so, merges of different jumps included), and those spans against the brute
force's support (equal where the field lies inside the input).
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
    GLOBAL_SPAN,
    as_graph,
    attention_groups,
    brute_coverage,
    brute_output_shape,
    brute_routes,
    enumerate_paths,
    field_spans,
    graph_edges,
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


def _oracle_jumps(net, shape, axis):
    """Per node, the distance in input pixels between neighbouring units along ``axis`` by
    the graph's structure: 1 at the input, times the stride of a window, over an upsampling
    factor, the operands' common jump at a merge. None where no single value describes the
    units: a dense layer, an operand of one unit broadcast over several (global), operands
    of different jumps meeting, or anything after those; at a merge of operands with
    different jumps, the tuple of theirs."""
    nodes = as_graph(net, len(shape))
    shapes = [s for _, s, _ in graph_edges(net, shape)]
    jumps: list = [Fraction(1)]
    for j, node in enumerate(nodes[1:], 1):
        layer, ins = node.layer, [jumps[i] for i in node.inputs]
        if isinstance(layer, rfa.Dense) or any(not isinstance(x, Fraction) for x in ins):
            jumps.append(None)
        elif isinstance(layer, (rfa.Add, rfa.Mul, rfa.Cat)):
            if any(shapes[i][axis] == 1 < shapes[j][axis] for i in node.inputs):
                jumps.append(None)
            else:
                jumps.append(ins[0] if len(set(ins)) == 1 else tuple(ins))
        elif isinstance(layer, rfa.Upsample):
            jumps.append(ins[0] / int(layer.scale_factor[axis]))
        else:
            jumps.append(ins[0] * layer.stride[axis])
    return jumps


def _check_fields(net, shape):
    """Geometry's table, row by row, against the unit-by-unit field spans of
    ``oracles.field_spans`` (and those against the brute force's support).

    Every node whose units are evenly spaced (``_oracle_jumps``) has, along each axis, the
    size, jump and start of its units' spans: the size and centre of unit 0's span, and the
    shift from one unit's span to the next (checked over the map and two units of padding
    either side). A merge of operands with different jumps has unit 0's span and the largest
    operand jump (no single value describes its units; the note says so); nodes after it
    make no claim. An axis is global exactly where the spans say so. At the output, the
    brute force's support of corner and centre units lies inside their span, and along an
    axis where every field lies inside the input (no route then passes through padding,
    whose fields reach outside) its first and last pixels are the span's ends.

    Returns how many (node, axis) pairs were checked and how many were merges of different
    jumps, so that the callers can see both kinds occur."""
    g = rfa.geometry(net, shape)
    nodes = as_graph(net, len(shape))
    assert len(g.rows) == len(nodes)
    out = brute_output_shape(net, shape)
    spans = [field_spans(net, shape, a) for a in range(len(shape))]
    shapes = [s for _, s, _ in graph_edges(net, shape)]
    checked = misaligned = 0
    for a in range(len(shape)):
        jumps = _oracle_jumps(net, shape, a)
        for j, row in enumerate(g.rows):
            first = spans[a][j](0)
            if first == GLOBAL_SPAN:
                assert row.rf_size[a] == "global", (j, a, row)
                continue
            assert row.rf_size[a] != "global", (j, a, row)
            jump = jumps[j]
            if jump is None:
                continue  # after a merge of different jumps: no claim
            lo, hi = first
            assert (row.rf_size[a], row.start[a]) == (hi - lo + 1, Fraction(lo + hi, 2)), (
                j,
                a,
                row,
                first,
            )
            checked += 1
            if isinstance(jump, tuple):
                assert row.jump[a] == max(jump), (j, a, row, jump)
                assert "jumps differ" in row.note
                misaligned += 1
                continue
            assert row.jump[a] == jump, (j, a, row, jump)
            m = shapes[j][a]
            for u in range(-2, m + 2):
                nxt, here = spans[a][j](u + 1), spans[a][j](u)
                assert (nxt[0] - here[0], nxt[1] - here[1]) == (jump, jump), (j, a, u)
    # the spans themselves against the brute force, at the output (a dense output: global)
    last = len(nodes) - 1
    if isinstance(nodes[last].layer, rfa.Dense):
        return checked, misaligned
    for unit in itertools.product(*(sorted({0, (m - 1) // 2, m - 1}) for m in out)):
        support = np.nonzero(brute_routes(net, shape, unit).astype(bool))
        span = [spans[a][last](unit[a]) for a in range(len(shape))]
        inside = all(s == GLOBAL_SPAN or (0 <= s[0] and s[1] < n) for s, n in zip(span, shape))
        for a, s in enumerate(span):
            if s == GLOBAL_SPAN or not support[a].size:
                continue
            assert s[0] <= support[a].min() and support[a].max() <= s[1], (unit, a, s)
            if inside:
                assert (support[a].min(), support[a].max()) == s, (unit, a, s)
    return checked, misaligned


@stack_settings(120, derandomize=True)
@given(
    graph=graphs(ndim=1, max_ops=7, modes=("zeros",), upsampling=False),
    graph_2d=graphs(ndim=2, max_ops=5, modes=("zeros",), upsampling=False),
)
def test_receptive_field_table_matches_field_spans(graph, graph_2d):
    # 120 + 120 random graphs with zeros padding and no transposed convolution (where padding
    # modes move routes, a route may leave the span); dense layers and broadcasting operands
    # make axes global
    for net, shape in (graph, graph_2d):
        _check_fields(net, shape)


def test_field_spans_see_every_kind_of_merge():
    # the random graphs above reach merges of different jumps and global axes; these small
    # ones make sure each kind is checked whatever hypothesis draws
    x = rfa.Input()
    differ = rfa.Network(rfa.Conv(3, padding=1)(rfa.Add()(rfa.Pool(1, 2)(x), rfa.Conv(5)(x))))
    assert _check_fields(differ, (8,)) == (4, 1)
    rows = rfa.Network(rfa.Conv(3, padding=1)(rfa.Add()(x, rfa.Pool((1, 3), kind="avg")(x))))
    assert _check_fields(rows, (4, 3)) == (6, 0)  # axis 0: 4 nodes; axis 1: 2 before the merge
