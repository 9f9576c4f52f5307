"""``from_onnx`` of torch exports: both exporters (``dynamo=False``, the TorchScript one, and
``dynamo=True``) of models across torchvision, timm and MONAI give exactly the routes that
``from_torch`` gives for the same model at the same size (in both contexts), and pass
verification (onnxruntime run with the input changed outside the routes' support).

Exports are slow, so models are small (reduced configurations, small inputs) and every file is
written once into a temporary folder for the session; ``dynamo=True`` runs on a
representative subset (its export takes several seconds even for a tiny model).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import rfanalysis as rfa

from .real_models import build, timm, torchvision

pytestmark = pytest.mark.torch


# --------------------------------------------------------------------------- models
class OneD(nn.Module):
    """A 1-D net: dilation, a max pool, a stride, reflect padding, nearest upsampling (the
    dynamo exporter writes 1-D linear interpolation out as arithmetic on gathered
    neighbours, x0 + (x1 - x0) * w, whose operands' routes add: x0 twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(2, 4, 3, dilation=2, padding=2)
        self.b = nn.Conv1d(4, 4, 5, stride=2, padding=2, padding_mode="reflect")
        self.pool = nn.MaxPool1d(3, 2, 1)

    def forward(self, x):
        x = self.pool(F.relu(self.a(x)))
        x = self.b(x)
        return F.interpolate(x, scale_factor=2, mode="nearest")


class Shuffle(nn.Module):
    """PixelShuffle and PixelUnshuffle, asymmetric zero padding, circular padding, a
    dilated convolution, an average pool with ceil_mode, bicubic and nearest resizing."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))
        self.a = nn.Conv2d(3, 16, 3)
        self.up = nn.PixelShuffle(2)
        self.b = nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")
        self.down = nn.PixelUnshuffle(2)
        self.c = nn.Conv2d(16, 8, 3, dilation=2, padding=2)
        self.pool = nn.AvgPool2d(3, 2, ceil_mode=True, count_include_pad=False)

    def forward(self, x):
        x = self.down(self.b(self.up(self.a(self.pad(x)))))
        x = self.pool(self.c(x))
        x = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=True)
        return F.interpolate(x, size=(13, 11), mode="nearest")


class Out(nn.Module):
    """torchvision's segmentation models return a dict: the "out" map."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def _tv(name, **kw):
    return lambda: getattr(torchvision().models, name)(**kw)


def _timm(name, **kw):
    return lambda: timm().create_model(name, pretrained=False, **kw)


def _densenet():
    return torchvision().models.DenseNet(8, (2, 2, 2), 16, num_classes=10)


def _convnext():
    cfg = torchvision().models.convnext.CNBlockConfig
    return torchvision().models.ConvNeXt([cfg(16, 32, 1), cfg(32, None, 2)], num_classes=10)


def _swin():
    tv = torchvision().models
    return tv.SwinTransformer([4, 4], 16, [2, 2], [1, 2], [4, 4], num_classes=10)


def _vit():
    return torchvision().models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)


def _lraspp():
    tv = torchvision().models.segmentation
    return Out(tv.lraspp_mobilenet_v3_large(num_classes=3, weights_backbone=None))


def _unet(dims):
    from monai.networks.nets import UNet

    return lambda: UNet(dims, 1, 2, (4, 8, 16), (2, 2), num_res_units=1)


#: name -> (builder, input size, input channels)
MODELS = {
    "resnet18": (_tv("resnet18", num_classes=10), (32, 32), 3),
    "mobilenet_v3_small": (_tv("mobilenet_v3_small", num_classes=10), (32, 32), 3),
    "efficientnet_b0": (_tv("efficientnet_b0", num_classes=10), (32, 32), 3),
    "densenet": (_densenet, (32, 32), 3),
    "convnext": (_convnext, (32, 32), 3),
    "swin": (_swin, (64, 64), 3),
    "vit": (_vit, (32, 32), 3),
    "lraspp": (_lraspp, (64, 64), 3),
    "shufflenet_v2": (_tv("shufflenet_v2_x0_5", num_classes=10), (32, 32), 3),
    "regnet_y": (_tv("regnet_y_400mf", num_classes=10), (32, 32), 3),
    "squeezenet": (_tv("squeezenet1_1", num_classes=10), (32, 32), 3),
    "mnasnet": (_tv("mnasnet0_5", num_classes=10), (32, 32), 3),
    "timm_convnext_atto": (_timm("convnext_atto", num_classes=10), (32, 32), 3),
    "timm_tf_mobilenetv3": (
        _timm("tf_mobilenetv3_small_minimal_100", num_classes=10),
        (35, 29),
        3,
    ),
    "timm_vit": (
        _timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10),
        (32, 32),
        3,
    ),
    "timm_mobilevit": (_timm("mobilevit_xxs", num_classes=10), (64, 64), 3),
    "timm_seresnet": (_timm("seresnet18", num_classes=10), (32, 32), 3),
    "monai_unet_2d": (_unet(2), (16, 16), 1),
    "monai_unet_3d": (_unet(3), (8, 8, 8), 1),
    "one_d": (OneD, (40,), 2),
    "shuffle_pads": (Shuffle, (15, 14), 3),
}
#: the dynamo=True exporter on a subset: concatenations, attention, a 3-D U-Net with
#: transposed convolutions, resizing, layout operators, 1-D
DYNAMO = ["densenet", "vit", "monai_unet_3d", "shuffle_pads", "one_d"]


def _export(model, shape, cin, path, dynamo):
    x = torch.randn(1, cin, *shape)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False,
                              verbose=False)  # fmt: skip
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_exports")


def _same_routes(name, dynamo, folder):
    make, shape, cin = MODELS[name]
    model = build(make)
    path = folder / f"{name}_{'dynamo' if dynamo else 'ts'}.onnx"
    _export(model, shape, cin, path, dynamo)
    got = rfa.from_onnx(path)
    want = rfa.from_torch(model, shape, in_channels=cin)
    out = rfa.output_shape(want, shape)
    assert rfa.output_shape(got, shape) == out
    for unit in ("center", (0,) * len(out), tuple(m - 1 for m in out)):
        a = rfa.routes(got, shape, unit=unit, exact=True)
        b = rfa.routes(want, shape, unit=unit, exact=True)
        assert np.array_equal(a, b), f"{name}: routes of unit {unit} differ"
    np.testing.assert_array_equal(rfa.coverage(got, shape), rfa.coverage(want, shape))
    # the local field too: gates, norm statistics and attention beyond windows dropped alike
    a = rfa.routes(got, shape, exact=True, context="local")
    b = rfa.routes(want, shape, exact=True, context="local")
    assert np.array_equal(a, b), f"{name}: local routes differ"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchscript_export_has_the_routes_of_from_torch(name, folder):
    _same_routes(name, False, folder)


@pytest.mark.parametrize("name", DYNAMO)
def test_dynamo_export_has_the_routes_of_from_torch(name, folder):
    _same_routes(name, True, folder)
