"""Route counts and fields of the operations that read sets of units, by hand (DESIGN
section 9): adaptive pooling reads torch's windows ``floor(i n / m)`` to
``ceil((i + 1) n / m) - 1``, which overlap where ``m`` does not divide ``n``."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

import rfanalysis as rfa


def test_adaptive_pool_windows_by_hand():
    # 5 -> 2: windows [0, 3) and [2, 5) share pixel 2
    assert rfa.coverage([rfa.AdaptivePool(2)], (5,), exact=True).tolist() == [1, 1, 2, 1, 1]
    # 7 -> 3: [0, 3), [2, 5), [4, 7): pixels 2 and 4 twice
    assert rfa.coverage([rfa.AdaptivePool(3)], (7,), exact=True).tolist() == [1, 1, 2, 1, 2, 1, 1]
    assert rfa.routes([rfa.AdaptivePool(3)], (7,), (1,), exact=True).tolist() == [
        0, 0, 1, 1, 1, 0, 0
    ]  # fmt: skip
    # 4 x 5 -> 2 x 3: rows [0, 2), [2, 4) (once each); columns [0, 2), [1, 4), [3, 5)
    expected = np.outer([1, 1, 1, 1], [1, 2, 1, 2, 1])
    np.testing.assert_array_equal(rfa.coverage([rfa.AdaptivePool((2, 3))], (4, 5)), expected)


def test_adaptive_pool_field_by_hand():
    # 7 -> 3: every window is 3 pixels wide; unit 0 reads 0..2 (centre 1); units are 7/3
    # pixels apart on average
    row = rfa.geometry([rfa.AdaptivePool(3)], (7,)).rows[-1]
    assert (row.rf_size, row.jump, row.start) == ((3,), (Fraction(7, 3),), (1,))


def test_adaptive_pool_field_of_uneven_windows_by_hand():
    # 5 -> 3: windows [0, 2), [1, 4), [3, 5): widths 2, 3, 2; the table gives the widest, 3,
    # and unit 0's centre, 1/2
    row = rfa.geometry([rfa.AdaptivePool(3)], (5,)).rows[-1]
    assert (row.rf_size, row.jump, row.start) == ((3,), (Fraction(5, 3),), (Fraction(1, 2),))


def test_shifted_window_attention_by_hand():
    # 4 tokens per axis, windows of 2 shifted by 1 (torchvision's rule): per axis the groups
    # are tokens {1, 2}, {3} and {0} (see test_graph_oracles' check of the oracle itself)
    attention = [rfa.Attention(window_size=2, shift_size=1)]
    expected = np.zeros((4, 4), dtype=int)
    expected[1:3, 1:3] = 1
    assert rfa.routes(attention, (4, 4), (1, 1), exact=True).tolist() == expected.tolist()
    corner = np.zeros((4, 4), dtype=int)
    corner[0, 0] = 1
    assert rfa.routes(attention, (4, 4), (0, 0), exact=True).tolist() == corner.tolist()
    edge = np.zeros((4, 4), dtype=int)
    edge[3, 1:3] = 1  # row group {3}, column group {1, 2}
    assert rfa.routes(attention, (4, 4), (3, 2), exact=True).tolist() == edge.tolist()
    # coverage: each token is read by every token of its group: 2 x 2 in the middle block,
    # 1 x 2 or 2 x 1 on its edges, 1 at the corners
    per_axis = np.array([1, 2, 2, 1])
    assert (
        rfa.coverage(attention, (4, 4), exact=True).tolist()
        == np.outer(per_axis, per_axis).tolist()
    )


def test_global_pool_and_dense_by_hand():
    # conv1x2 (valid) then a global pool: 2 x 3 units read every pixel of their windows;
    # the pool reads all 6, so the pixel counts are the conv's coverage: columns 1, 2, 2, 1
    net = [rfa.Conv((1, 2)), rfa.GlobalPool()]
    assert rfa.coverage(net, (2, 4), exact=True).tolist() == [[1, 2, 2, 1]] * 2
    # a dense layer of 3 outputs after it: 3 routes per route into the conv map
    net = [rfa.Conv((1, 2)), rfa.Dense(3)]
    assert rfa.coverage(net, (2, 4), exact=True).tolist() == [[3, 6, 6, 3]] * 2
