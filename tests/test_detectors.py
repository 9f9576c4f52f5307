"""Detectors through ``from_torch``: ultralytics' YOLO family and RT-DETR, built from their
definitions (random weights, nothing downloaded).

``DetectionModel`` cannot be traced by torch.fx (it loops over its module list), so it is
recorded as it runs. The maps analysed are those the detection head reads (its ``f``
indices: P3, P4, P5), converted in one capture; the head itself, whose operations the maps do
not depend on, needs no rule. For each map, the support of the autograd gradient of the
centre unit and of a corner unit, with the model's own weights and a random input, must lie
inside the support of the unit's routes.
"""

from __future__ import annotations

import importlib.util
import socket
import warnings

import numpy as np
import pytest

import rfanalysis as rfa

pytestmark = [pytest.mark.torch, pytest.mark.slow]

torch = pytest.importorskip("torch")

HAVE_ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None
SIZE = 320
MODELS = ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml", "yolo11n-pose.yaml",
          "yolov10n.yaml", "rtdetr-l.yaml"]  # fmt: skip


@pytest.fixture
def offline(monkeypatch):
    """No connection leaves the process: the definitions build without downloading."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _build(cfg: str):
    from ultralytics.nn.tasks import (
        DetectionModel,
        PoseModel,
        RTDETRDetectionModel,
        SegmentationModel,
    )

    kind = DetectionModel
    if "seg" in cfg:
        kind = SegmentationModel
    elif "pose" in cfg:
        kind = PoseModel
    elif cfg.startswith("rtdetr"):
        kind = RTDETRDetectionModel
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = kind(cfg, verbose=False)
    return model.eval()


def _levels(model) -> list[str]:
    """The maps the head reads, P3 to P5."""
    head = model.model[-1]
    return [f"model.{i}" for i in head.f]


def _gradient_support(model, names, units):
    """For every map and unit, the input pixels its gradient reaches (a forward hook gives
    the map as the model computes it)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((1, 3, SIZE, SIZE), generator=gen).requires_grad_(True)
    seen = {}
    hooks = [
        model.get_submodule(q).register_forward_hook(lambda _m, _a, y, q=q: seen.__setitem__(q, y))
        for q in names
    ]
    try:
        with torch.enable_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for q in names:
        for unit in units[q]:
            (g,) = torch.autograd.grad(seen[q][(0, slice(None), *unit)].sum(), x,
                                       retain_graph=True)  # fmt: skip
            g = g[0].abs().sum(dim=0).numpy()
            out[q, unit] = g > 1e-5 * g.max()
    return out


@pytest.mark.skipif(not HAVE_ULTRALYTICS, reason="needs ultralytics")
@pytest.mark.parametrize("cfg", MODELS)
def test_the_maps_a_detection_head_reads(cfg, offline):
    model = _build(cfg)
    names = _levels(model)
    nets = rfa.from_torch(model, SIZE, output=names, verify=False)
    assert list(nets) == names
    units = {}
    for k, q in enumerate(names):
        out = rfa.output_shape(nets[q], SIZE)
        stride = 8 * 2**k  # P3, P4, P5
        assert out == (SIZE // stride, SIZE // stride)
        units[q] = [tuple((m - 1) // 2 for m in out), (0, 0)]
    support = _gradient_support(model, names, units)
    for q in names:
        for unit in units[q]:
            routes = rfa.routes(nets[q], SIZE, unit, log=True) > -np.inf
            missed = support[q, unit] & ~routes
            assert support[q, unit].any()
            assert not missed.any(), f"{q} unit {unit}: {int(missed.sum())} pixels, no route"


@pytest.mark.skipif(not HAVE_ULTRALYTICS, reason="needs ultralytics")
def test_yolov8n_converts_checked_against_itself_and_without_the_head(offline):
    model = _build("yolov8n.yaml")
    p3 = rfa.from_torch(model, SIZE, output="model.15")  # verified: the recording path
    assert rfa.receptive_field(p3).stride == (8, 8)

    # a user's wrapper that returns P3 through a forward hook: the head is not on its path
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m, self.seen = model, {}
            model.model[15].register_forward_hook(lambda m, a, y: self.seen.update(p3=y))

        def forward(self, x):
            self.m(x)
            return self.seen["p3"]

    hooked = rfa.from_torch(Wrapped(), SIZE)
    assert [x.layer.spec() for x in hooked.nodes[1:]] == [x.layer.spec() for x in p3.nodes[1:]]
    # the model returns a tuple: what to analyse must be named
    with pytest.raises(rfa.ConversionError, match=r"returns tuple; pass output="):
        rfa.from_torch(model, SIZE, verify=False)
    # the head on its own has operations without a rule only once its output is analysed
    with pytest.raises(rfa.ConversionError, match=r"has no submodule 'model\.99'"):
        rfa.from_torch(model, SIZE, output="model.99", verify=False)
