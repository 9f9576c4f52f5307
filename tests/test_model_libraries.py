"""Models from libraries the rest of the suite does not import, wrapped as their users wrap
them: Hugging Face transformers vision models (built from their config classes, random
weights, nothing downloaded), MONAI's HighResNet, and Keras 3 applications on the torch
backend (channels-last), which run in a subprocess because the backend is chosen when Keras
is first imported.

Each is checked as the real-model suite checks torchvision and timm: ``from_torch`` verifies
itself, and then, independently, the support of the autograd gradient of an output unit
(the centre and a corner), with the model's own weights and a random input, must lie inside
the support of that unit's routes. Sizes and configurations are small to keep the run short.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rfanalysis as rfa

from .real_models import build, gradient_support, torchvision

pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("transformers", "monai", "keras")


def test_the_model_libraries_are_installed():
    missing = [m for m in PACKAGES if importlib.util.find_spec(m) is None]
    assert not missing, f"this suite needs {missing}: pip install -e '.[test,torch]'"


def _units(net, shape):
    out = rfa.output_shape(net, shape)
    return [tuple((m - 1) // 2 for m in out), (0,) * len(out)]


def _check(model, shape, in_channels=3, **kwargs):
    """Convert, then compare with autograd independently; returns the network."""
    net = rfa.from_torch(model, shape, **kwargs)
    units = _units(net, shape)
    grid = rfa.output_shape(net, shape)
    for unit, support in zip(units, gradient_support(model, shape, in_channels, units, grid)):
        routes = rfa.routes(net, shape, unit, log=True) > -np.inf
        missed = support & ~routes
        assert not missed.any(), f"unit {unit}: {int(missed.sum())} pixels with no route"
    return net


# --------------------------------------------------------------------------- transformers
def _transformers():
    torchvision()  # transformers imports torchvision: see tests/real_models.py
    import transformers

    return transformers


def _wrap(model, pick):
    """A torch module that returns one map of a Hugging Face model, as a user writes it:
    the model's output object, then the field that holds the map."""
    import torch.nn as nn

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return pick(self.model(pixel_values=x))

    return Wrapped()


def _dinov2_map(out):
    tokens = out.last_hidden_state[:, 1:]  # the patch tokens, without the class token
    b, n, c = tokens.shape
    side = round(n**0.5)
    return tokens.transpose(1, 2).reshape(b, c, side, side)


def _trained_grn(model):
    """ConvNeXt V2 with its GRN scales set to 1: they start at 0, which makes every GRN the
    identity (no gradient reaches its statistics) until the model is trained."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ == "ConvNextV2GRN":
                m.weight.fill_(1.0)
    return model


def _hf(name):
    T = _transformers()
    small = {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 24, 32]}
    last = lambda o: o.last_hidden_state
    if name == "convnext":
        return T.ConvNextModel(T.ConvNextConfig(**small)), last
    if name == "convnextv2":  # GRN: torch.linalg.vector_norm over space
        return _trained_grn(T.ConvNextV2Model(T.ConvNextV2Config(**small))), last
    if name == "resnet":
        return T.ResNetModel(T.ResNetConfig(embedding_size=8, **small)), last
    if name == "mobilenetv2":
        return T.MobileNetV2Model(T.MobileNetV2Config(depth_multiplier=0.35)), last
    if name == "efficientnet":
        # its pooler, AvgPool2d(hidden_dim, ceil_mode=True), runs on a 2x2 map: torch gives 1x1
        cfg = T.EfficientNetConfig(width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320)
        return T.EfficientNetModel(cfg), last
    if name == "swin":
        cfg = T.SwinConfig(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], window_size=2,
                           num_heads=[1, 1, 1, 1], out_features=["stage4"])  # fmt: skip
        return T.SwinBackbone(cfg), lambda o: o.feature_maps[-1]
    if name == "segformer":
        cfg = T.SegformerConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                                num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
                                num_labels=3)  # fmt: skip
        return T.SegformerForSemanticSegmentation(cfg), lambda o: o.logits
    if name == "dinov2":
        cfg = T.Dinov2Config(image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=64)  # fmt: skip
        return T.Dinov2Model(cfg), _dinov2_map
    raise AssertionError(name)


#: the map each wrapped model returns at the size it is run at: (size, output grid)
HF = {
    "convnext": (64, (2, 2)),
    "convnextv2": (64, (2, 2)),
    "resnet": (64, (2, 2)),
    "mobilenetv2": (64, (2, 2)),
    "efficientnet": (64, (2, 2)),
    "swin": (64, (2, 2)),
    "segformer": (64, (16, 16)),
    "dinov2": (56, (4, 4)),
}


@pytest.mark.parametrize("name", list(HF))
def test_hugging_face_vision_models(name):
    size, grid = HF[name]

    def make():
        model, pick = _hf(name)
        return _wrap(model, pick)

    model = build(make)
    net = _check(model, (size, size))
    assert rfa.output_shape(net, size) == grid


def test_convnextv2_grn_is_global_context():
    # GRN divides every unit by a norm over the whole map: globally each unit of the first
    # block's output reads every pixel; locally (the statistics dropped) a 7x7 depthwise
    # convolution of the 4x4 patches, 28 pixels across
    T = _transformers()
    cfg = T.ConvNextV2Config(num_stages=1, depths=[1], hidden_sizes=[8], out_features=["stage1"])
    backbone = build(lambda: _trained_grn(T.ConvNextV2Backbone(cfg)))
    model = _wrap(backbone, lambda o: o.feature_maps[-1])
    net = rfa.from_torch(model, 64)
    assert rfa.output_shape(net, 64) == (16, 16)
    assert rfa.receptive_field(net, 64).is_global
    local = rfa.receptive_field(net, 64, context="local")
    assert local.size == (28, 28)


# --------------------------------------------------------------------------- MONAI
def test_monai_highresnet():
    # x + torch.as_tensor(chn_pad(x)) in every residual block
    from monai.networks.nets import HighResNet

    model = build(lambda: HighResNet(spatial_dims=2, in_channels=1, out_channels=2))
    net = _check(model, (32, 32), in_channels=1)
    assert rfa.output_shape(net, 32) == (32, 32)


# --------------------------------------------------------------------------- Keras
KERAS_SCRIPT = """
import os, sys
assert os.environ["KERAS_BACKEND"] == "torch"
sys.path.insert(0, {root!r})
import warnings
import keras
import numpy as np
import torch
import rfanalysis as rfa
from tests.real_models import gradient_support

class ChannelsFirst(torch.nn.Module):
    # the same model reading (B, C, H, W): its gradient, moved back, is the model's own
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.movedim(1, -1))

torch.manual_seed(0)
keras.utils.set_random_seed(0)
for name, size in {models!r}:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(keras.applications, name)(
            weights=None, include_top=False, input_shape=(size, size, 3)
        )
    assert isinstance(model, torch.nn.Module)
    net = rfa.from_torch(model, size)  # channels-last: Keras says so
    grid = rfa.output_shape(net, size)
    units = [tuple((m - 1) // 2 for m in grid), (0,) * len(grid)]
    for unit, support in zip(units, gradient_support(ChannelsFirst(model), (size, size), 3,
                                                     units, grid)):
        routes = rfa.routes(net, size, unit, log=True) > -np.inf
        missed = int((support & ~routes).sum())
        assert not missed, (name, unit, missed)
    # influence reads the layout from the model too: its map lies inside the routes
    shown = rfa.influence(model, size, unit=units[0]) > 0
    assert not (shown & ~(rfa.routes(net, size, units[0], log=True) > -np.inf)).any(), name
    print(name, grid, rfa.receptive_field(net, size).size[0])
"""

KERAS = [("MobileNetV3Small", 64), ("ResNet50", 64), ("DenseNet121", 64)]


def test_keras_applications_on_the_torch_backend():
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    script = KERAS_SCRIPT.format(root=str(ROOT), models=KERAS)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    fields = {line.split()[0]: line.split()[-1] for line in done.stdout.splitlines()}
    assert list(fields) == [n for n, _ in KERAS], done.stdout
    # Keras's ResNet50 strides the first 1x1 convolution of a stage, so the stage's 3x3
    # convolutions all run at the new jump: torchvision's 427 plus 2 (4 + 8 + 16) = 483, the
    # published field of ResNet-50 v1 (Araujo, Norris & Sim, Distill 2019); its explicit
    # ZeroPadding2D layers keep the geometry exact
    assert fields["ResNet50"] == "483"
