"""Real models through ``from_torch``: every torchvision classification model, torchvision's
segmentation models, timm models across its families and MONAI's 2-D and 3-D U-Nets.

For each model: trace at its input size (``from_torch`` checks itself against autograd; these
tests check it again, independently, with their own gradients: the support of the gradient
of an output unit, with the model's own weights and a random input, lies inside the support
of the unit's routes), for the centre unit and a corner unit. Receptive fields of conv-only
models equal published values where they exist.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

import rfanalysis as rfa

from .real_models import build, gradient_support, timm, torchvision

pytestmark = [pytest.mark.torch, pytest.mark.slow]

MODEL_PACKAGES = ("torchvision", "timm", "monai")
HAVE_MODELS = all(importlib.util.find_spec(m) for m in MODEL_PACKAGES)


def test_the_model_definitions_are_installed():
    # without them the suite below would collect no models: a failure, not a silent pass
    missing = [m for m in MODEL_PACKAGES if importlib.util.find_spec(m) is None]
    assert not missing, f"the real-model suite needs {missing}: pip install -e '.[test,torch]'"


def _units(net, shape):
    """The centre unit and the first unit of the traced network's output."""
    out = rfa.output_shape(net, shape)
    return [tuple((m - 1) // 2 for m in out), (0,) * len(out)]


def _check(model, shape, in_channels=3, **kwargs):
    """Trace, then compare with autograd independently; returns the network."""
    net = rfa.from_torch(model, shape, **kwargs)
    units = _units(net, shape)
    grid = rfa.output_shape(net, shape)
    for unit, support in zip(units, gradient_support(model, shape, in_channels, units, grid)):
        routes = rfa.routes(net, shape, unit, log=True) > -np.inf  # counts pass 1e308
        missed = support & ~routes
        assert not missed.any(), f"unit {unit}: {int(missed.sum())} pixels with no route"
    return net


# --------------------------------------------------------------------------- torchvision
def _torchvision_names(module: str) -> list[str]:
    if not HAVE_MODELS:
        return []
    tv = torchvision()
    return list(tv.models.list_models(module=getattr(tv.models, module, tv.models)))


@pytest.mark.parametrize("name", _torchvision_names("models"))
def test_every_torchvision_classification_model(name):
    tv = torchvision()
    model = build(lambda: tv.models.get_model(name))
    size = 299 if name == "inception_v3" else 224
    net = _check(model, (size, size))
    assert rfa.output_shape(net, size) == (1000,)  # one unit per class


@pytest.mark.parametrize("name", _torchvision_names("segmentation"))
def test_torchvision_segmentation_models(name):
    tv = torchvision()
    model = build(lambda: tv.models.get_model(name, weights_backbone=None))
    net = _check(model, (96, 96), output="out")
    assert rfa.output_shape(net, 96) == (96, 96)  # upsampled back to the input
    # every output pixel sees the whole image through the global pooling of ASPP / LR-ASPP
    # (FCN has none: its field is large but finite)
    if "fcn" not in name:
        assert rfa.receptive_field(net, 96).is_global


def test_published_receptive_fields_of_torchvision_models():
    # Araujo, Norris & Sim (Distill 2019), table computed on TF-Slim's vgg_16 and
    # inception_v3, whose layouts torchvision's VGG-16 features and Inception-v3 follow layer
    # for layer (see tests/test_zoo.py): pool5 212 / 32 / 90 and Mixed_7c 1311 / 32 / 618
    tv = torchvision()
    vgg = rfa.from_torch(build(tv.models.vgg16), 224, output="features")
    rf = rfa.receptive_field(vgg, 224)
    assert (rf.size, rf.stride, rf.padding) == ((212, 212), (32, 32), (90, 90))
    inception = rfa.from_torch(build(tv.models.inception_v3), 299, output="Mixed_7c")
    rf = rfa.receptive_field(inception, 299)
    assert (rf.size, rf.stride, rf.padding) == ((1311, 1311), (32, 32), (618, 618))
    # torchvision's ResNet-50 (stride on the 3x3 convolutions), summed by hand in
    # tests/test_entry_points.py: 427; the module itself, traced where the call needs it
    resnet = build(tv.models.resnet50)
    assert rfa.receptive_field(rfa.from_torch(resnet, 224, output="layer4")).size == (427, 427)
    assert rfa.receptive_field(resnet, 224).is_global  # with its head


# --------------------------------------------------------------------------- timm
#: one or two models of every family, with what their output is (a map of units, or the
#: pooled feature vector where the family's trunk ends in tokens)
TIMM = [
    # plain, squeeze-and-excitation and attention CNNs
    "resnet18", "seresnet18", "ecaresnet26t", "skresnet18", "resnest14d", "res2net50_26w_4s",
    "res2next50", "regnety_002", "nf_resnet26", "gernet_s", "repvgg_a0", "selecsls42b",
    "tresnet_m", "xception41", "inception_v3", "vgg11", "darknet53",
    # DenseNet, DLA, DPN, HRNet, CSP
    "densenet121", "dla34", "dpn68", "hrnet_w18_small", "cspdarknet53", "cspresnet50",
    # mobile nets
    "efficientnet_b0", "mixnet_s", "mobilenetv3_small_050", "ghostnet_100", "rexnet_100",
    "hardcorenas_a", "fbnetc_100", "mnasnet_050", "tinynet_e", "lcnet_050", "repvit_m1",
    "fastvit_t8", "efficientvit_b0",
    # ConvNeXt, attention-augmented and lambda CNNs
    "convnext_atto", "inception_next_tiny", "botnet26t_256", "halonet26t",
    "sebotnet33ts_256", "lambda_resnet26t",
    # ViT / DeiT and friends
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "beit_base_patch16_224",
    "cait_xxs24_224", "pit_ti_224", "convit_tiny", "crossvit_tiny_240", "xcit_nano_12_p16_224",
    "levit_128s", "tnt_s_patch16_224", "volo_d1_224",
    # Swin, MaxViT / CoAtNet, other windowed and hierarchical transformers
    "swin_tiny_patch4_window7_224", "maxvit_tiny_tf_224", "coatnet_0_rw_224",
    "twins_svt_small", "davit_tiny", "gcvit_xxtiny", "focalnet_tiny_srf", "nextvit_small",
    "coat_lite_tiny", "efficientformer_l1", "visformer_tiny", "edgenext_xx_small",
    "mobilevit_xxs",
    # MLP-Mixer, ResMLP, PoolFormer
    "mixer_s16_224", "resmlp_12_224", "poolformer_s12",
]  # fmt: skip


def _timm_model(name):
    tm = timm()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = build(lambda: tm.create_model(name, num_classes=0, global_pool=""))
        except AssertionError:  # a family that always pools
            model = build(lambda: tm.create_model(name, num_classes=0))
    size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224))[1:])
    return model, size


@pytest.mark.parametrize("name", TIMM if HAVE_MODELS else [])
def test_timm_families(name):
    import torch

    model, size = _timm_model(name)
    with torch.no_grad():
        y = model(torch.zeros((1, 3, *size)))
    if y.ndim == 3:  # tokens: analyse the pooled feature vector
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build(lambda: timm().create_model(name, num_classes=0))
    _check(model, size)


# --------------------------------------------------------------------------- MONAI U-Nets
def _monai():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from monai.networks import nets

    return nets


UNETS = {
    # MONAI's UNet: residual units, instance norm by default
    "unet_2d": (lambda n: n.UNet(2, 1, 2, (8, 16, 32), (2, 2)), (64, 64)),
    "unet_3d": (lambda n: n.UNet(3, 1, 2, (4, 8, 16), (2, 2)), (32, 32, 32)),
    # Attention U-Net (Oktay et al. 2018): attention gates multiply skips by a map
    "attention_unet_2d": (lambda n: n.AttentionUnet(2, 1, 2, (8, 16, 32), (2, 2)), (64, 64)),
    "attention_unet_3d": (lambda n: n.AttentionUnet(3, 1, 2, (4, 8, 16), (2, 2)), (32,) * 3),
    "basic_unet_2d": (lambda n: n.BasicUNet(2, 1, 2, features=(4, 4, 8, 8, 16, 4)), (64, 64)),
    # nnU-Net's DynUNet with instance norm
    "dynunet_3d": (
        lambda n: n.DynUNet(3, 1, 2, [3, 3, 3], [1, 2, 2], [2, 2], norm_name="instance"),
        (32, 32, 32),
    ),
    # SegResNet: group norm
    "segresnet_2d": (lambda n: n.SegResNet(2, 8, 1, 2), (64, 64)),
    "segresnet_3d": (lambda n: n.SegResNet(3, 8, 1, 2), (32, 32, 32)),
    "vnet_3d": (lambda n: n.VNet(3, 1, 2), (32, 32, 32)),
    # transformer U-Nets
    "unetr_2d": (
        lambda n: n.UNETR(
            1,
            2,
            (64, 64),
            feature_size=8,
            hidden_size=48,
            mlp_dim=96,
            num_heads=4,
            spatial_dims=2,
        ),
        (64, 64),
    ),
    "swin_unetr_2d": (lambda n: n.SwinUNETR(1, 2, feature_size=12, spatial_dims=2), (64, 64)),
}


@pytest.mark.parametrize("name", list(UNETS) if HAVE_MODELS else [])
def test_medical_unets(name):
    make, shape = UNETS[name]
    model = build(lambda: make(_monai()))
    net = _check(model, shape, in_channels=1)
    assert rfa.output_shape(net, shape) == shape


def test_norms_over_space_are_global_and_locally_drop_their_statistics():
    # instance norm: every unit reads the whole map; locally, the convolutional field only.
    # The 2-D UNet's encoder: 3x3 convs, strides 2, 2 (MONAI: two residual units deep)
    model = build(lambda: _monai().UNet(2, 1, 2, (8, 16, 32), (2, 2)))
    net = rfa.from_torch(model, 64)
    assert rfa.receptive_field(net, 64).is_global
    local = rfa.receptive_field(net, 64, context="local")
    assert all(isinstance(s, int) and s < 64 for s in local.size)
    # the local field's support: the routes of the centre unit with statistics dropped
    routes = rfa.routes(net, 64, context="local", log=True) > -np.inf
    rows, cols = np.nonzero(routes)
    assert rows.max() - rows.min() + 1 <= local.size[0]
    assert cols.max() - cols.min() + 1 <= local.size[1]
