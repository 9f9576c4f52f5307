"""The trained networks of the write-up's part III (experiments/train.py).

Training every model takes minutes; here each kind of model trains for a few steps, and the
committed weights are run again to check that they give the committed numbers.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

pytestmark = pytest.mark.torch

import torch  # noqa: E402 - after the marker on purpose: torch tests are required

from experiments import train  # noqa: E402

RESULTS = train.RESULTS
#: the JSON keeps 6 significant digits (PSNRs of 20 to 40 dB: at most 5e-4 dB of rounding);
#: float32 convolutions summed in another order on another CPU move an MSE by ~1e-6 relative,
#: ~5e-6 dB
DB = 1e-3


@pytest.fixture(scope="module")
def committed():
    numbers = json.loads((RESULTS / "results.json").read_text())
    with np.load(RESULTS / "maps.npz") as stored:
        maps = {name: stored[name] for name in stored.files}
    return numbers, maps


@pytest.fixture(scope="module")
def test_images():
    return train.photographs(train.TEST_IMAGES)


def test_bundled_photographs_load_without_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access during the experiments")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    images = train.photographs(train.TRAIN_IMAGES + train.TEST_IMAGES)
    assert len(images) == len(train.TRAIN_IMAGES) + len(train.TEST_IMAGES) + 1  # a stereo pair
    for image in images:
        assert image.dtype == np.float32 and image.ndim == 2
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01
    faces, labels = train.faces()
    assert faces.shape == (200, 25, 25) and labels.sum() == 100


def test_the_split_is_seeded_and_disjoint():
    first, second = train.face_split(), train.face_split()
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert len(first[0]) == 140 and len(first[1]) == 60
    assert not set(first[0]) & set(first[1])


@pytest.mark.parametrize(
    "config",
    [train.DenoiserConfig(5, mode, residual) for mode in train.PADDINGS for residual in (0, 1)],
    ids=lambda c: c.name,
)
def test_each_denoiser_trains_deterministically(config):
    images = [np.random.default_rng(0).random((64, 64), dtype=np.float32)]
    model, losses = train.train_denoiser(config, images, steps=3)
    again, _ = train.train_denoiser(config, images, steps=3)
    initial = config.build()
    assert len(losses) == 3 and np.isfinite(losses).all()
    for (name, trained), reference, init in zip(
        model.state_dict().items(), again.state_dict().values(), initial.state_dict().values()
    ):
        assert torch.equal(trained, reference), name
        assert not torch.equal(trained, init), name
    # the spec the figures and the write-up count routes on is the model's own graph
    train.check_spec(model, config.spec, (17, 17))


def test_the_classifier_trains_deterministically():
    model, losses = train.train_classifier(steps=3)
    again, _ = train.train_classifier(steps=3)
    assert len(losses) == 3 and np.isfinite(losses).all()
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    train.check_spec(model, train.CLASSIFIER_SPEC, (25, 25), unit=(1,))


def test_a_spec_that_is_not_the_model_is_refused():
    model = train.DenoiserConfig(5, "zeros", True).build()
    with pytest.raises(RuntimeError, match="does not have the routes"):
        train.check_spec(model, "res(conv3p1:reflect*5)", (17, 17))


def test_committed_files_are_small_and_complete(committed):
    numbers, maps = committed
    weights = sorted(p.stem for p in (RESULTS / "weights").glob("*.npz"))
    assert weights == sorted([*numbers["denoisers"], "classifier"])
    assert sorted(numbers["denoisers"]) == sorted(c.name for c in train.GRID)
    total = sum(p.stat().st_size for p in RESULTS.rglob("*") if p.is_file())
    assert total < 5e6
    for name, found in numbers["denoisers"].items():
        # outputs whose field lies inside the crop read no padding: both runs agree
        assert found["border"]["max_change_beyond_field"] < 1e-5, name
        assert np.all(np.asarray(found["border"]["deficit_db"])[found["depth"] :] == 0), name
        assert maps[f"{name}/erf_trained"].shape == (train.ERF_SIZE, train.ERF_SIZE)


def test_committed_denoiser_reproduces_its_numbers(committed, test_images):
    numbers, maps = committed
    config = train.DenoiserConfig(5, "zeros", True)
    expected = numbers["denoisers"][config.name]
    model = train.trained_denoiser(config)
    assert train.psnr_on_images(model, test_images) == pytest.approx(expected["psnr_test"], abs=DB)
    border = train.border_profile(model, *train.border_crops(test_images), config.depth)
    np.testing.assert_allclose(border["deficit_db"], expected["border"]["deficit_db"], atol=DB)
    assert border["width"] == expected["border"]["width"]
    erf = train.erf(model, train.erf_patches(test_images))
    np.testing.assert_allclose(erf, maps[f"{config.name}/erf_trained"], rtol=1e-4, atol=1e-7)
    metrics = train.erf_metrics(train.rfa.routes(config.spec, erf.shape), erf)
    for key in ("tv_routes", "tv_sqrt_routes", "sigma"):
        assert metrics[key] == pytest.approx(expected["erf_trained"][key], rel=1e-4), key


def test_committed_border_study_reproduces_for_another_padding(committed, test_images):
    numbers, _ = committed
    config = train.DenoiserConfig(10, "reflect", False)
    expected = numbers["denoisers"][config.name]["border"]
    model = train.trained_denoiser(config)
    border = train.border_profile(model, *train.border_crops(test_images), config.depth)
    np.testing.assert_allclose(border["psnr_alone"], expected["psnr_alone"], atol=DB)
    np.testing.assert_allclose(border["deficit_db"], expected["deficit_db"], atol=DB)


def test_committed_classifier_reproduces_its_numbers(committed):
    numbers, _ = committed
    model = train.trained_classifier()
    found, _ = train.measure_classifier(model, train.build_classifier().eval())
    expected = numbers["classifier"]
    # the same test images classified correctly (the JSON rounds the fraction)
    correct = found["accuracy"] * found["test_size"]
    assert round(correct) == round(expected["accuracy"] * expected["test_size"]) == 59
    for key in ("occlusion_vs_coverage", "occlusion_faces_vs_coverage"):
        for metric, value in found[key].items():
            assert value == pytest.approx(expected[key][metric], rel=1e-4), (key, metric)
    assert found["erf_trained"]["tv_routes"] == pytest.approx(
        expected["erf_trained"]["tv_routes"], rel=1e-4
    )
