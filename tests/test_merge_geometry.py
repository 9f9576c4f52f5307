"""The receptive field of merged branches, by hand.

A merged unit's field is the span of its operands' fields (DESIGN section 9: routes through
every operand add up), so its size is measured from the first pixel any operand reads to the
last, not the largest operand's size. Operands whose units are spaced differently (jumps
differ) have no single (size, jump, start): the table gives unit 0's span and the largest
jump, and says so. An operand of one unit broadcast over several makes that axis global.
Every expected value below is worked out in the comments from the layers' definitions.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

import rfanalysis as rfa


def _merge_row(net, shape, kind="add"):
    (row,) = [r for r in rfa.geometry(net, shape).rows if r.kind == kind]
    return row


def _triple(row):
    return row.rf_size, row.jump, row.start


def test_span_of_shifted_operands_not_the_largest_field():
    # a = conv3 padded (2, 0): unit u reads u-2..u (size 3, centre u-1);
    # b = conv2 padded (0, 1): unit u reads u..u+1 (size 2, centre u+1/2);
    # a + b: unit u reads u-2..u+1: size 4 (not 3, a's size), centre u - 1/2, jump 1
    x = rfa.Input()
    net = rfa.Network(
        rfa.Add()(rfa.Conv(3, padding=((2, 0),))(x), rfa.Conv(2, padding=((0, 1),))(x))
    )
    row = _merge_row(net, (8,))
    assert _triple(row) == ((4,), (1,), (Fraction(-1, 2),))
    assert (
        row.note == "axis 0: branches misaligned, unit 0 centred at conv3p(2,0) -1, conv2p(0,1) 1/2"
    )
    # unit 3 by hand: a reads 1, 2, 3; b reads 3, 4
    assert rfa.routes(net, (8,), (3,)).tolist() == [0, 1, 1, 2, 1, 0, 0, 0]
    assert rfa.receptive_field(net, (8,)).size == (4,)


def test_three_operands_of_different_starts():
    # cat(conv3 p(2,0), identity, conv1(conv3 p(0,2))): unit u reads u-2..u, u, u..u+2:
    # size 5, centre u; the note gives the three centres -1, 0, 1 and their spread
    x = rfa.Input()
    right = rfa.Conv(1)(rfa.Conv(3, padding=((0, 2),))(x))
    net = rfa.Network(rfa.Cat()(rfa.Conv(3, padding=((2, 0),))(x), x, right))
    row = _merge_row(net, (8,), "cat")
    assert _triple(row) == ((5,), (1,), (0,))
    assert "centred at conv3p(2,0) -1, input 0, conv1 1 (spread 2)" in row.note


def test_strided_operands_with_different_starts_and_a_layer_after():
    # n = 8. a = conv3s2p1: unit u reads 2u-1..2u+1 (size 3, centre 2u);
    # b = conv3s2 padded (0, 1): unit u reads 2u..2u+2 (size 3, centre 2u+1); 4 units each.
    # a + b: unit u reads 2u-1..2u+2: size 4, jump 2, centre of unit 0 at 1/2.
    x = rfa.Input()
    merged = rfa.Add()(rfa.Conv(3, 2, 1)(x), rfa.Conv(3, 2, ((0, 1),))(x))
    net = rfa.Network(rfa.Conv(3, padding=1)(merged))
    rows = rfa.geometry(net, (8,)).rows
    assert _triple(rows[3]) == ((4,), (2,), (Fraction(1, 2),))
    # conv3p1 after it: unit u reads merged u-1..u+1, i.e. 2(u-1)-1 .. 2(u+1)+2 = 2u-3..2u+4:
    # size 8, jump 2, centre of unit 0 at 1/2
    assert _triple(rows[4]) == ((8,), (2,), (Fraction(1, 2),))
    # merged unit 1 by hand: a reads 1, 2, 3; b reads 2, 3, 4
    assert rfa.routes(rfa.Network(merged), (8,), (1,)).tolist() == [0, 1, 2, 2, 1, 0, 0, 0]


def test_operands_of_different_jumps():
    # n = 8. a = maxpool1s2: unit u reads 2u (size 1, jump 2); b = conv5: unit u reads
    # u..u+4 (size 5, jump 1); both 4 units. a + b: unit 0 reads 0..4 (size 5, centre 2),
    # unit 3 reads 3..7 and 6: the units are not evenly spaced by one field. The table gives
    # unit 0's span and the larger jump, 2, and names both jumps.
    x = rfa.Input()
    net = rfa.Network(rfa.Add()(rfa.Pool(1, 2)(x), rfa.Conv(5)(x)))
    row = _merge_row(net, (8,))
    assert _triple(row) == ((5,), (2,), (2,))
    assert "branch jumps differ (maxpool1s2 2, conv5 1)" in row.note
    support = [np.flatnonzero(rfa.routes(net, (8,), (u,))).tolist() for u in range(4)]
    assert support == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7]]


def test_larger_jump_first_or_second():
    # n = 16. c = conv5 then maxpool1s3: unit u reads 3u..3u+4 (jump 3; 12 units, then 4);
    # b = maxpool1s4: unit u reads 4u (jump 4; 4 units). The largest jump, whatever the
    # operands' order.
    x = rfa.Input()
    c = rfa.Pool(1, 3)(rfa.Conv(5)(x))
    b = rfa.Pool(1, 4)(x)
    for operands in ((c, b), (b, c)):
        row = _merge_row(rfa.Network(rfa.Add()(*operands)), (16,))
        # unit 0: c reads 0..4, b reads 0: size 5, centre 2; jumps 3 and 4
        assert _triple(row) == ((5,), (4,), (2,))


def test_global_axis_and_local_axis():
    # 8 x 8. c = conv3s2p1: unit (u, v) reads rows 2u-1..2u+1, columns 2v-1..2v+1 (4 x 4
    # units); m = avgpool (1, 4) of c: one unit per row of c. c + m: along axis 0 unit u
    # reads c's row u (size 3, jump 2, centre 0 for u = 0); along axis 1 every unit reads
    # m, which reads all of c's columns: global. A conv3p1 after it: axis 0 size 3 + 2*2 =
    # 7, still global on axis 1.
    x = rfa.Input()
    c = rfa.Conv(3, 2, 1)(x)
    net = rfa.Network(rfa.Conv(3, padding=1)(rfa.Add()(c, rfa.Pool((1, 4), kind="avg")(c))))
    rows = rfa.geometry(net, (8, 8)).rows
    assert _triple(rows[3]) == ((3, "global"), (2, None), (0, None))
    assert rows[3].note == "axis 1: an operand of one unit is read by every unit (global)"
    assert _triple(rows[4]) == ((7, "global"), (2, None), (0, None))
    # unit (0, 0) of the merge by hand: c's unit (0, 0) reads rows 0-1, columns 0-1; m's
    # unit (0, 0) reads c's row 0, i.e. rows 0-1, every column
    support = rfa.routes(rfa.Network(rfa.Add()(c, rfa.Pool((1, 4), kind="avg")(c))), (8, 8), (0, 0))
    assert np.array_equal(np.flatnonzero(support.any(axis=1)), [0, 1])
    assert np.array_equal(np.flatnonzero(support.any(axis=0)), np.arange(8))


def test_global_on_every_axis_and_a_one_unit_map():
    # a squeeze-and-excitation gate: conv3p1(x) * maxpool8(x) on 8 x 8: every unit reads the
    # whole input through the pooled operand, on both axes
    x = rfa.Input()
    gate = rfa.Network(rfa.Mul()(rfa.Conv(3, padding=1)(x), rfa.Pool(8)(x)))
    assert _triple(_merge_row(gate, (8, 8), "mul")) == (
        ("global", "global"),
        (None, None),
        (None, None),
    )
    # operands that both have one unit on an axis are not broadcast: p = maxpool (8, 1) is a
    # 1 x 8 map whose unit reads a whole column (size 8, jump 8, centre 7/2 on axis 0); a
    # conv (1, 3) padded (0, 2) on axis 1 shifts it: unit v reads columns v..v+2. Their sum:
    # axis 0 as p; axis 1 columns v..v+2 (size 3, jump 1, centre 1).
    p = rfa.Pool((8, 1))(x)
    net = rfa.Network(rfa.Add()(p, rfa.Conv((1, 3), padding=((0, 0), (0, 2)))(p)))
    assert _triple(_merge_row(net, (8, 8))) == ((8, 3), (8, 1), (Fraction(7, 2), 1))
