"""shift_invariance: hand-computed cases, exact equivariance of circular networks, periodicity
in the shift, the two backends, torch modules, and its argument checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rfanalysis as rfa

SMALL = dict(channels=4, trials=4)


# --------------------------------------------------------------------------- by hand
def test_max_pool_by_hand_circular():
    # maxpool2 on 4 pixels, two trials; each trial's unrelated input is the other's.
    # x0 = 3 1 0 0 -> 3 0, x1 = 0 0 2 0 -> 0 2; both trials weigh 1 / (9/2 + 4/2).
    # pooled means 1.5 and 1: scale (0.25 + 0.25). Shift 1: x0 -> 0 3 1 0 -> 3 1 (mean 2,
    # change 0.25), x1 -> 0 0 0 2 -> 0 2 (no change): 1 - 0.25 / 0.5 = 0.5. Shift 2 moves
    # both maps by one unit: 1.
    # Map: unrelated changes (9 + 4) / 2 = 6.5 per trial, scale 2 after weighting. Shift 1
    # against the map moved by 0 units: (0 + 1) / 2 = 0.5 and 0 -> 1 - (0.5 / 6.5) / 2.
    x = np.array([[[3.0, 1, 0, 0]], [[0.0, 0, 2, 0]]])
    r = rfa.shift_invariance("maxpool2", (4,), (0, 1, 2), inputs=x)
    assert r.similarity == (1.0, 0.5, 1.0)
    assert r.map_offset == (0, 0, 1)
    np.testing.assert_allclose(r.map_similarity, [1.0, 25 / 26, 1.0], rtol=1e-15)
    assert (r.stride, r.trials) == (2, 2)


def test_max_pool_by_hand_crop():
    # the windows of shift 0 and 1 are x[1:5] and x[0:4] of a 5-pixel input
    # x0 = 5 3 1 0 0: 3 1 0 0 -> 3 0 and 5 3 1 0 -> 5 1; x1 = 0 0 0 2 0: 0 2 both times.
    # Weights and scales as in the circular case. Pooled: (3 - 1.5)^2 = 2.25 against 0.5.
    # Map moved by 0: ((5-3)^2 + (1-0)^2) / 2 = 2.5 (moved by 1 compares 1 unit: 4 and 4).
    x = np.array([[[5.0, 3, 1, 0, 0]], [[0.0, 0, 0, 2, 0]]])
    r = rfa.shift_invariance("maxpool2", (4,), (0, 1), mode="crop", inputs=x)
    assert r.similarity == (1.0, 1 - 2.25 / 0.5)
    assert r.map_offset == (0, 0)
    np.testing.assert_allclose(r.map_similarity, [1.0, 21 / 26], rtol=1e-15)


# --------------------------------------------------------------------------- exact properties
def test_stride_one_circular_network_is_exactly_invariant():
    net = "conv3p1:circular,conv5p2:circular,conv3p1:circular,conv1"
    r = rfa.shift_invariance(net, (12, 10), 13, **SMALL)
    assert r.stride == 1 and r.shifts == tuple(range(14))
    assert r.similarity == (1.0,) * 14
    assert r.map_similarity == (1.0,) * 14
    assert r.map_offset == r.shifts  # the map moves with the input
    # along the other axis, and for a zero-padded network (which is not invariant)
    assert rfa.shift_invariance(net, (12, 10), 3, axis=0, **SMALL).similarity == (1.0,) * 4
    zeros = rfa.shift_invariance("conv3p1*3,conv1", (12, 10), 3, **SMALL)
    assert max(zeros.similarity[1:]) < 0.999


def test_strided_circular_network_is_periodic_in_the_shift():
    # total stride 4: maxpool2, then a stride-2 convolution; every map divides evenly
    net = "conv3p1:circular,maxpool2,conv3s2p1:circular,conv3p1:circular,conv1"
    r = rfa.shift_invariance(net, (16, 16), 12, **SMALL)
    assert r.stride == 4
    sim, maps = np.array(r.similarity), np.array(r.map_similarity)
    np.testing.assert_allclose(sim[4:], sim[:-4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(maps[4:], maps[:-4], rtol=0, atol=1e-12)
    assert sim[0] == sim[4] == sim[8] == sim[12] == 1.0
    assert maps[4] == maps[8] == 1.0 and r.map_offset[4:9:4] == (1, 2)
    assert max(sim[1:4]) < 0.99 and max(maps[1:4]) < 0.9  # aliasing in between
    # a shift by -1 is a shift by 3 for a circular network whose maps divide evenly
    back = rfa.shift_invariance(net, (16, 16), [-1, 3], **SMALL)
    assert back.similarity[0] == pytest.approx(back.similarity[1], abs=1e-12)
    assert back.similarity[1] == pytest.approx(sim[3], abs=1e-12)


def test_blur_pool_is_closer_to_invariant_than_max_pool():
    kw = dict(channels=8, trials=8)
    blur = rfa.shift_invariance(
        "conv3p1:circular,blurpool3p1:circular,conv3p1:circular,conv1", 16, 1, **kw
    )
    maxp = rfa.shift_invariance("conv3p1:circular,maxpool2,conv3p1:circular,conv1", 16, 1, **kw)
    assert blur.similarity[1] > maxp.similarity[1]
    assert blur.map_similarity[1] > maxp.map_similarity[1]


# --------------------------------------------------------------------------- backends, seeds
@pytest.mark.torch
def test_numpy_and_torch_backends_agree():
    net = "conv3p1,maxpool3s2p1,conv3s2p1:reflect,blurpool4p1,avgpool2s1,conv1"
    for mode in ("circular", "crop"):
        a = rfa.shift_invariance(net, (21, 19), 5, mode=mode, rng=3, **SMALL)
        b = rfa.shift_invariance(net, (21, 19), 5, mode=mode, rng=3, backend="torch", **SMALL)
        np.testing.assert_allclose(b.similarity, a.similarity, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.map_similarity, a.map_similarity, rtol=1e-10, atol=1e-12)
        assert b.map_offset == a.map_offset
        assert min(a.similarity) < 0.99  # not a trivial agreement


def test_same_seed_same_numbers_other_seed_other_numbers():
    net = "conv3p1,maxpool2,conv3p1"
    a = rfa.shift_invariance(net, 8, 2, rng=1, **SMALL)
    assert rfa.shift_invariance(net, 8, 2, rng=1, **SMALL).to_dict() == a.to_dict()
    assert rfa.shift_invariance(net, 8, 2, rng=2, **SMALL).similarity != a.similarity
    seq = np.random.SeedSequence(7)
    assert (
        rfa.shift_invariance(net, 8, 2, rng=seq, **SMALL).similarity
        == rfa.shift_invariance(net, 8, 2, rng=seq, **SMALL).similarity
    )


def test_dense_output_compares_features_only():
    r = rfa.shift_invariance("conv3p1,maxpool2,fc5", (8, 8), **SMALL)
    assert r.stride == 2 and r.shifts == (0, 1, 2, 3, 4)
    assert r.map_similarity is None and r.map_offset is None
    assert r.similarity[0] == 1.0 and len(r.similarity) == 5
    assert "map" not in str(r).splitlines()[4]


def test_result_prints_a_table_and_converts_to_json():
    r = rfa.shift_invariance("conv3p1:circular,avgpool2", (8,), 2, **SMALL)
    lines = str(r).splitlines()
    assert lines[0] == "shift invariance of conv3p1:circular,avgpool2 at input 8"
    assert lines[1] == (
        "circular shifts along axis 0 (total stride 2); normal weights, relu, 4 channels, "
        "4 trials, numpy"
    )
    assert lines[4].split() == ["shift", "pooled", "map", "map", "moved", "by"]
    assert lines[6].split() == ["0", "1.0000", "1.0000", "0"]
    data = json.loads(json.dumps(r.to_dict()))
    assert data["shifts"] == [0, 1, 2] and data["map_offset"] == [0, 0, 1]
    assert data["weights"] == "normal" and data["seed"] == 0
    nan = rfa.ShiftInvariance("n", (4,), 0, "circular", 1, (0,), (float("nan"),), None, None, 2, {})
    assert nan.to_dict()["similarity"] == [None]


# --------------------------------------------------------------------------- torch modules
@pytest.mark.torch
def test_torch_module_matches_the_same_spec_network():
    import torch
    from torch import nn

    module = nn.Sequential(
        nn.Conv1d(1, 1, 3, 2, 1, padding_mode="circular", bias=False),
        nn.Conv1d(1, 1, 3, 1, 1, padding_mode="circular", bias=False),
        nn.Conv1d(1, 1, 1, bias=False),
    ).double()
    with torch.no_grad():
        for m in module:
            m.weight.fill_(1.0)
    module.train()
    ones = dict(weights="ones", activation=None, channels=1, trials=5, rng=4)
    spec = rfa.shift_invariance("conv3s2p1:circular,conv3p1:circular,conv1", (10,), **ones)
    mine = rfa.shift_invariance(module, (10,), trials=5, rng=4)
    assert mine.stride == spec.stride == 2 and mine.shifts == spec.shifts
    np.testing.assert_allclose(mine.similarity, spec.similarity, rtol=1e-12)
    np.testing.assert_allclose(mine.map_similarity, spec.map_similarity, rtol=1e-12)
    assert module.training  # its mode is restored
    assert mine.settings == {"module": "Sequential", "seed": 4}


@pytest.mark.torch
def test_a_module_that_shrinks_without_striding_has_stride_one():
    # two valid 5x5 convolutions: the map shrinks by 8, it is not strided. Cropped windows
    # shifted by d give output maps shifted by exactly d: unit by unit the same numbers
    from torch import nn

    module = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5))
    r = rfa.shift_invariance(module, (32, 32), mode="crop", trials=3)
    assert r.stride == 1 and r.shifts == (0, 1, 2)
    assert r.map_offset == (0, 1, 2)
    np.testing.assert_allclose(r.map_similarity, 1.0, rtol=1e-12)


@pytest.mark.torch
def test_torch_module_with_a_feature_output_needs_shifts():
    from torch import nn

    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match=r"returns features without spatial axes.*give `shifts`"):
        rfa.shift_invariance(module, (8, 8))
    r = rfa.shift_invariance(module, (8, 8), 2, trials=3)
    assert r.map_similarity is None and len(r.similarity) == 3 and r.stride is None
    assert "(total stride unknown)" in str(r)
    with pytest.raises(ValueError, match=r"`channels` applies to network specs"):
        rfa.shift_invariance(module, (8, 8), 2, channels=3)


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(shifts=[]), ValueError, r"`shifts` must not be empty"),
        (dict(shifts=-2), ValueError, r"`shifts` as one number is the largest shift .* got -2"),
        (dict(shifts=1.5), TypeError, r"`shifts` must be an int or a sequence of ints, got 1.5"),
        (dict(axis=2), ValueError, r"`axis` must lie in \[-2, 2\) for a 2-D input, got 2"),
        (dict(axis=True), TypeError, r"`axis` must be an integer, got True"),
        (dict(mode="wrap"), ValueError, r"`mode` must be one of circular, crop; got 'wrap'"),
        (dict(weights="he"), ValueError, r"`weights` must be one of ones, normal, uniform"),
        (dict(activation="tanh"), ValueError, r"`activation` must be None or 'relu'"),
        (dict(trials=1), ValueError, r"`trials` must be >= 2, got 1"),
        (dict(rng=-1), ValueError, r"`rng` seed must be >= 0, got -1"),
        (dict(rng=0.5), TypeError, r"`rng` must be an int seed"),
        (dict(backend="jax"), ValueError, r"`backend` must be one of numpy, torch; got 'jax'"),
        (dict(inputs=np.zeros((3, 1, 8))), ValueError, r"`inputs` must have shape \(3, 1, 8, 8\)"),
        (dict(inputs=np.zeros((1, 1, 8, 8))), ValueError, r"at least 2 inputs"),
        (dict(inputs=np.zeros((3, 1, 8, 8)), trials=4), ValueError, r"`trials` is 4 but"),
        (dict(shifts=[9]), ValueError, r"shift 9 moves the output map by more than its 4 units"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, error, message):
    kw = {"mode": "crop", **kwargs} if "moves" in message else kwargs
    with pytest.raises(error, match=message):
        rfa.shift_invariance("conv3p1,maxpool2", 8, **kw)
