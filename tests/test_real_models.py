"""Real models through ``from_torch``: every torchvision classification model, torchvision's
segmentation models, timm models across its families and MONAI's 2-D and 3-D U-Nets.

Each model is analysed at a spatial map: its last feature map before global pooling
(``output=``), the segmentation map, the U-Net's output; a timm model whose trunk ends in
tokens, at its pooled feature vector. These tests check ``from_torch`` again, independently
and from both sides, with their own gradients (the model's own weights in float64, several
random inputs, a random weighting of the unit's channels): for the centre unit, a corner, the
opposite corner and an edge unit, the union over the inputs of the pixels the gradient
reaches must equal the support of the unit's routes. A gradient outside the routes is a
route the graph misses; a route pixel no gradient reaches is a route the graph invents
(padding read as a pixel, a window too wide). Where the model itself makes equality
unreachable, the share of route pixels no gradient reached is bounded per model in
``UNREACHED``, with the reason; everywhere else it must be 0. Input sizes are small (the
gradients are float64; the maps stay at least 2x2 where the model allows), and the
receptive fields of conv-only models equal published values where they exist.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

import rfanalysis as rfa

from .real_models import build, gradient_supports, timm, torchvision

pytestmark = [pytest.mark.torch, pytest.mark.slow]

MODEL_PACKAGES = ("torchvision", "timm", "monai")
HAVE_MODELS = all(importlib.util.find_spec(m) for m in MODEL_PACKAGES)

#: models whose own arithmetic leaves some route pixels without gradient for every input
#: tried, and the largest share of a sampled unit's route pixels that may stay unreached
#: (measured, then rounded up). Everything not listed must reach every route pixel.
UNREACHED: dict[str, float] = {
    # the stem max-pools 3x3 windows of only 10 ReLU channels: with three inputs, 34 of 4096
    # route pixels (0.83%, scattered, on the stride-2 lattice) are the maximum of no window;
    # eight inputs reach them all
    "dpn68": 0.02,
}


def test_the_model_definitions_are_installed():
    # without them the suite below would collect no models: a failure, not a silent pass
    missing = [m for m in MODEL_PACKAGES if importlib.util.find_spec(m) is None]
    assert not missing, f"the real-model suite needs {missing}: pip install -e '.[test,torch]'"


def _units(grid):
    """The centre unit, the first and the last corner, and the middle of the first edge."""
    centre = tuple((m - 1) // 2 for m in grid)
    units = [centre, (0,) * len(grid), tuple(m - 1 for m in grid), (0, *centre[1:])]
    return list(dict.fromkeys(units))


def _check(model, shape, name, in_channels=3, output=None, dtype="float64", **kwargs):
    """Trace, then compare with autograd independently from both sides; returns the
    network."""
    net = rfa.from_torch(model, shape, output=output, **kwargs)
    grid = rfa.output_shape(net, shape)
    units = _units(grid)
    supports = gradient_supports(model, shape, in_channels, units, grid, output=output, dtype=dtype)
    share = 0.0
    for unit, s in zip(units, supports):
        routes = rfa.routes(net, shape, unit, log=True) > -np.inf  # counts pass 1e308
        missed = s.reached & ~routes
        assert not missed.any(), f"unit {unit}: {int(missed.sum())} pixels with no route"
        unreached = routes & ~s.touched
        share = max(share, unreached.sum() / routes.sum())
    bound = UNREACHED.get(name, 0.0)
    assert share <= bound, (
        f"{name}: {share:.2%} of a unit's route pixels reached by no gradient (bound {bound:.2%})"
    )
    return net


# --------------------------------------------------------------------------- torchvision
def _torchvision_names(module: str) -> list[str]:
    if not HAVE_MODELS:
        return []
    tv = torchvision()
    return list(tv.models.list_models(module=getattr(tv.models, module, tv.models)))


#: the last feature map before the global pool, by name prefix (the first that matches)
TORCHVISION_MAPS = [
    ("resnet", "layer4"), ("resnext", "layer4"), ("wide_resnet", "layer4"),
    ("regnet", "trunk_output"), ("inception_v3", "Mixed_7c"), ("googlenet", "inception5b"),
    ("mnasnet", "layers"), ("shufflenet", "conv5"), ("maxvit", "blocks.3"),
    ("vit_", "encoder"),  # tokens (class token first): a 1-D map
    ("", "features"),  # AlexNet, VGG, DenseNet, SqueezeNet, MobileNet, EfficientNet,
    # ConvNeXt, Swin (channels last)
]  # fmt: skip

#: input sizes: 64 where the model runs at it; Inception-v3 needs at least 75 (96 here);
#: MaxViT's partitions fix 224; ViT is built for its size (``image_size``; 56 for 14-pixel
#: patches)
TORCHVISION_SIZES = {"inception_v3": 96, "maxvit_t": 224, "vit_h_14": 56}


def _torchvision_model(name):
    tv = torchvision()
    size = TORCHVISION_SIZES.get(name, 64)
    kwargs = {"image_size": size} if name.startswith("vit_") else {}
    model = build(lambda: tv.models.get_model(name, **kwargs))
    output = next(out for prefix, out in TORCHVISION_MAPS if name.startswith(prefix))
    return model, size, output


#: transformers of 300 million parameters and more, and MaxViT at 224: their gradients in
#: float32 (float64 takes several times as long there; the threshold for rounding follows
#: the dtype)
TORCHVISION_FLOAT32 = {"vit_h_14", "vit_l_16", "vit_l_32", "maxvit_t"}


@pytest.mark.parametrize("name", _torchvision_names("models"))
def test_every_torchvision_classification_model(name):
    model, size, output = _torchvision_model(name)
    dtype = "float32" if name in TORCHVISION_FLOAT32 else "float64"
    net = _check(model, (size, size), name, output=output, dtype=dtype)
    assert len(rfa.output_shape(net, size)) in (1, 2)  # a map (or ViT's token sequence)


@pytest.mark.parametrize("name", _torchvision_names("segmentation"))
def test_torchvision_segmentation_models(name):
    tv = torchvision()
    model = build(lambda: tv.models.get_model(name, weights_backbone=None))
    net = _check(model, (64, 64), name, output="out")
    assert rfa.output_shape(net, 64) == (64, 64)  # upsampled back to the input
    # every output pixel sees the whole image through the global pooling of ASPP / LR-ASPP
    # (FCN has none: its field is large but finite)
    if "fcn" not in name:
        assert rfa.receptive_field(net, 64).is_global


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


#: input sizes: 64 where the model runs at it, built for it (``img_size=64``) where the
#: constructor fixes a size; Inception-v3 needs 75 (96 here); HaloNet's halo blocks and
#: EfficientFormer's fixed attention keep their configured size
TIMM_BUILT_FOR_64 = {
    "botnet26t_256", "sebotnet33ts_256", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
    "beit_base_patch16_224", "cait_xxs24_224", "pit_ti_224", "convit_tiny", "levit_128s",
    "tnt_s_patch16_224", "volo_d1_224", "swin_tiny_patch4_window7_224", "maxvit_tiny_tf_224",
    "coatnet_0_rw_224", "gcvit_xxtiny", "coat_lite_tiny", "visformer_tiny", "mixer_s16_224",
    "resmlp_12_224",
}  # fmt: skip
TIMM_SIZES = {"inception_v3": 96, "halonet26t": None, "efficientformer_l1": None}


def _timm_model(name, pooled=False):
    tm = timm()
    kwargs = {"img_size": 64} if name in TIMM_BUILT_FOR_64 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if pooled:
                raise AssertionError
            model = build(lambda: tm.create_model(name, num_classes=0, global_pool="", **kwargs))
        except AssertionError:  # a family that always pools
            model = build(lambda: tm.create_model(name, num_classes=0, **kwargs))
    size = TIMM_SIZES.get(name, 64)
    if size is None:
        size = model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    return model, (size, size)


def _timm_dtype(name):
    """float64, but float32 at a configured size (224 or more: float64 takes several times
    as long there)."""
    return "float64" if TIMM_SIZES.get(name, 64) is not None else "float32"


@pytest.mark.parametrize("name", TIMM if HAVE_MODELS else [])
def test_timm_families(name):
    import torch

    model, size = _timm_model(name)
    with torch.no_grad():
        y = model(torch.zeros((1, 3, *size)))
    if y.ndim == 3:  # tokens: analyse the pooled feature vector
        model, size = _timm_model(name, pooled=True)
    _check(model, size, name, dtype=_timm_dtype(name))


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
    # float64 3-D convolutions have no fast kernel on CPU (VNet: 200 s against 15 s)
    dtype = "float32" if len(shape) == 3 else "float64"
    net = _check(model, shape, name, in_channels=1, dtype=dtype)
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
