"""compare(): metrics against hand-computed values."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import rfanalysis as rfa


def test_identical_maps():
    c = rfa.compare([0, 1, 2, 1, 0], [0, 2, 4, 2, 0])  # the same distribution, scaled
    assert c.correlation == pytest.approx(1.0)
    assert c.total_variation == 0.0 and c.kl_divergence == 0.0
    assert c.center_shift == (0.0,) and c.center_analytic == (2.0,)


def test_two_deltas_one_pixel_apart():
    c = rfa.compare([0, 1, 0, 0], [0, 0, 1, 0])
    assert c.total_variation == 1.0
    assert c.center_shift == (1.0,) and c.center_distance == 1.0
    assert math.isinf(c.kl_divergence) and c.mass_outside_routes == 1.0
    assert c.to_dict()["kl_divergence"] == "inf"
    assert "empirical mass where no route exists: 1" in str(c)


def test_kl_by_hand():
    # KL(q || p) = 0.25 ln(0.25 / 0.5) + 0.75 ln(0.75 / 0.5)
    c = rfa.compare([1, 1], [1, 3])
    assert c.kl_divergence == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert c.total_variation == pytest.approx(0.25)
    assert c.correlation is None  # the analytic map is constant


def test_uniform_box_radii_and_sigma():
    # a box of 9 pixels centred at 4: distances 0 1 1 2 2 3 3 4 4, mass 1/9 each;
    # 5/9 >= 50 % within 2, all of it within 4; variance 2 (1 + 4 + 9 + 16) / 9 = 60 / 9
    box = np.zeros(15)
    box[0:9] = 1
    c = rfa.compare(box, box)
    assert c.radius50 == pytest.approx((2.0, 2.0)) and c.radius95 == pytest.approx((4.0, 4.0))
    assert c.sigma_analytic == pytest.approx((math.sqrt(60 / 9),))


def test_gaussian_sigma_and_2d_shift():
    x = np.arange(-40, 41)
    g = np.exp(-(x**2) / (2 * 3.0**2))
    c = rfa.compare(g, g)
    assert c.sigma_analytic[0] == pytest.approx(3.0, abs=1e-9)
    img = np.outer(g, g)
    moved = np.roll(np.roll(img, 1, axis=0), -2, axis=1)  # tails are ~1e-39: roll is a shift
    c2 = rfa.compare(img, moved)
    assert c2.center_shift == pytest.approx((1.0, -2.0))
    assert c2.sigma_empirical == pytest.approx((3.0, 3.0), abs=1e-9)
    assert c2.center_distance == pytest.approx(math.sqrt(5))


def test_exact_counts_beyond_float_range():
    exact = rfa.routes("conv2*1100", (1101,), exact=True)  # the centre count is ~1e330
    c = rfa.compare(exact, 10.0 ** (rfa.routes("conv2*1100", (1101,), log=True) - 300))
    assert c.total_variation < 1e-9
    assert c.center_analytic == pytest.approx((550.0,))


def test_outputs_are_readable_and_serialisable():
    c = rfa.compare(rfa.routes("conv3*4", 9), rfa.routes("conv3*3", 9))
    text = str(c)
    assert text.splitlines()[0].split() == ["metric", "analytic", "empirical", "difference"]
    assert "KL(empirical || analytic)" in text
    json.dumps(c.to_dict())
    assert repr(c).startswith("Comparison(shape=(9, 9), correlation=")


@pytest.mark.parametrize(
    ("a", "e", "error", "message"),
    [
        ([1, 2], [1, 2, 3], ValueError, r"must have the same shape, got \(2,\) and \(3,\)"),
        ([1, -1], [1, 1], ValueError, r"`analytic` must be non-negative"),
        ([0, 0], [1, 1], ValueError, r"`analytic` is zero everywhere"),
        ([1, 1], [1, np.nan], ValueError, r"`empirical` contains inf or NaN"),
        ([0.0, -np.inf], [1, 1], ValueError, r"contains inf or NaN \(pass counts, not log10"),
        (np.ones((2, 2, 2, 2)), np.ones((2, 2, 2, 2)), ValueError, r"1-D, 2-D or 3-D"),
        (["a", "b"], [1, 1], TypeError, r"must be a real-valued array"),
    ],
)
def test_bad_input(a, e, error, message):
    with pytest.raises(error, match=message):
        rfa.compare(a, e)


# --------------------------------------------------------------------------- the two laws
def test_sqrt_routes_law_by_hand():
    # |gradient| = sqrt(routes): 1 2 1 is the root of 1 4 1. Against the routes,
    # p = (1, 4, 1) / 6 and q = (1, 2, 1) / 4: TV = (1/12 + 1/6 + 1/12) / 2 = 1/6
    c = rfa.compare([1, 4, 1], [1, 2, 1])
    assert c.total_variation == pytest.approx(1 / 6)
    assert c.sqrt_routes.total_variation == pytest.approx(0.0, abs=1e-15)
    assert c.sqrt_routes.kl_divergence == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(c.sqrt_routes.analytic, [0.25, 0.5, 0.25])
    assert c.closer_law == "sqrt(routes)" and c.sqrt_routes.sqrt_routes is None
    # the routes themselves: the roles swap
    same = rfa.compare([1, 4, 1], [1, 4, 1])
    assert same.total_variation == 0.0
    assert same.sqrt_routes.total_variation == pytest.approx(1 / 6)
    assert same.closer_law == "routes"
    # routes constant where non-zero: their root is the same law
    assert rfa.compare([0, 3, 3, 0], [0, 1, 2, 0]).closer_law == "either"


def test_sqrt_routes_law_in_text_and_json():
    c = rfa.compare([1, 4, 1], [1, 2, 1])
    text = str(c)
    assert re.search(r"^empirical map against +routes +sqrt\(routes\)$", text, re.M), text
    assert re.search(r"^total variation +0\.1667 +0\.0000$", text, re.M), text
    assert "closer law: sqrt(routes), the law of independent zero-mean weights" in text
    data = json.loads(json.dumps(c.to_dict()))
    assert data["closer_law"] == "sqrt(routes)"
    assert data["sqrt_routes"]["total_variation"] == pytest.approx(0.0, abs=1e-15)
    assert "shape" not in data["sqrt_routes"] and "sqrt_routes" not in data["sqrt_routes"]
    assert "closer_law='sqrt(routes)'" in repr(c)


def test_exact_counts_beyond_float_range_have_a_root():
    # Pascal's row 1100 (routes of conv2*1100) peaks near 1e330; its root, scaled by 1e-150
    exact = np.array([math.comb(1100, i) for i in range(1101)], dtype=object)
    root = np.array([10.0 ** (math.log10(v) / 2 - 150) for v in exact])
    c = rfa.compare(exact, root)
    assert c.sqrt_routes.total_variation < 1e-9 and c.closer_law == "sqrt(routes)"
