"""BlurPool (blurred downsampling): its routes, spec and file forms, and its backends against a
hand-written oracle (np.pad, then a binomial filter evaluated every ``stride`` pixels)."""

from __future__ import annotations

import numpy as np
import pytest

import rfanalysis as rfa
from rfanalysis._empirical._net import build
from rfanalysis._empirical._numpy import _Pass
from rfanalysis._plan import plan

from .oracles import NUMPY_MODE, assert_engine_matches_brute_force

MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")


def test_binomial_taps_are_rows_of_pascals_triangle():
    from rfanalysis._ops.blur import binomial_taps

    assert binomial_taps((3,)).tolist() == [1 / 4, 2 / 4, 1 / 4]
    assert binomial_taps((4,)).tolist() == [1 / 8, 3 / 8, 3 / 8, 1 / 8]
    assert (binomial_taps((2, 3)) * 8).tolist() == [[1, 2, 1], [1, 2, 1]]


def test_spec_repr_and_files_round_trip(tmp_path):
    layer = rfa.BlurPool(3, padding=1, padding_mode="circular")
    assert rfa.parse("blurpool3p1:circular").layers == (layer,)
    assert layer.stride == (2,)  # Zhang's default
    assert rfa.parse("blurpool4s1p1x2").layers[0].spec() == "blurpool4s1p1x2"
    assert repr(rfa.BlurPool(5, 3)) == "BlurPool(5, stride=3)"
    net = rfa.parse("conv3p1,blurpool3p1:reflect,blurpool4s3")
    for suffix in ("json", "toml"):
        rfa.save(net, tmp_path / f"n.{suffix}")
        assert rfa.load(tmp_path / f"n.{suffix}") == net
    with pytest.raises(ValueError, match="`padding_mode` must be one of"):
        rfa.BlurPool(3, padding_mode="wrap")


def test_routes_are_every_window_element():
    # windows centred on pixels 0, 2, 4, 6 of 8: even pixels read once, odd ones twice; with
    # zero padding the last pixel loses its second window (it would wrap to the first)
    assert rfa.coverage("blurpool3p1:circular", (8,)).tolist() == [1, 2] * 4
    assert rfa.coverage("blurpool3p1", (8,)).tolist() == [1, 2, 1, 2, 1, 2, 1, 1]
    for mode in MODES:
        assert_engine_matches_brute_force(f"conv3p1,blurpool3p1:{mode}*2", (13,))
        assert_engine_matches_brute_force(f"blurpool4s2p1x2:{mode}", (7, 6), routes=False)
        assert_engine_matches_brute_force([rfa.BlurPool(4, 3, ((2, 1),), padding_mode=mode)], (8,))


def test_geometry_has_no_parameters():
    row = rfa.geometry(rfa.parse("conv3p1,blurpool3p1"), (16, 16)).rows[2]
    assert (row.kind, row.params, row.rf_size, row.jump, row.output) == (
        "blurpool",
        0,
        (5, 5),
        (2, 2),
        (8, 8),
    )


def _blur_oracle(x, k, s, pads, mode):
    """1-D: pad with numpy, filter with C(k-1, t) / 2^(k-1), keep every s-th output."""
    taps = np.array([1, 2, 1]) / 4 if k == 3 else np.array([1, 3, 3, 1]) / 8
    padded = np.pad(x, pads, mode="constant" if mode == "zeros" else NUMPY_MODE[mode])
    full = np.array([padded[i : i + k] @ taps for i in range(len(padded) - k + 1)])
    return full[::s]


def _forward(spec, x, backend="numpy"):
    model = build(plan(spec, x.shape[2:]), 1, x.shape[1], False)
    if backend == "numpy":
        return _Pass(model, {}, lambda: None).forward(x)[0]
    import torch

    from rfanalysis._empirical._torch import run_model

    return run_model(torch, model, {}, torch.as_tensor(x)).numpy()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [3, 4])
def test_forward_and_gradient_equal_the_oracle(mode, k):
    rng = np.random.default_rng(5)  # fixed: a random signal of 9 samples
    x = rng.standard_normal(9)
    pads = (1, 2)
    spec = rfa.Network([rfa.BlurPool(k, padding=(pads,), padding_mode=mode)])
    expected = _blur_oracle(x, k, 2, pads, mode)
    np.testing.assert_allclose(_forward(spec, x[None, None])[0, 0], expected, rtol=1e-14)
    # the linear operator's rows: the oracle applied to unit vectors
    matrix = np.array([_blur_oracle(e, k, 2, pads, mode) for e in np.eye(9)]).T
    for o in range(len(expected)):
        grad = rfa.influence(spec, (9,), (o,), reduction="signed")
        np.testing.assert_allclose(grad, matrix[o], rtol=1e-14, atol=1e-15)


@pytest.mark.torch
@pytest.mark.parametrize("mode", MODES)
def test_torch_forward_equals_the_oracle_in_2d(mode):
    rng = np.random.default_rng(6)  # fixed: a random 2-channel 7x8 image
    x = rng.standard_normal((1, 2, 7, 8))
    spec = f"blurpool3p1:{mode}"
    rows = np.apply_along_axis(_blur_oracle, 2, x, 3, 2, (1, 1), mode)
    expected = np.apply_along_axis(_blur_oracle, 3, rows, 3, 2, (1, 1), mode)
    np.testing.assert_allclose(_forward(spec, x, "torch"), expected, rtol=1e-13)
    np.testing.assert_allclose(_forward(spec, x), expected, rtol=1e-13)
    kw = dict(weights="normal", activation="relu", channels=3, trials=2, rng=1)
    net = f"conv3p1,{spec},conv3p1:{mode},blurpool4s3p2"
    a = rfa.influence(net, (9, 10), **kw)
    b = rfa.influence(net, (9, 10), backend="torch", **kw)
    np.testing.assert_allclose(b, a, rtol=1e-10)
