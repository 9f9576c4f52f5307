"""The architecture zoo against published facts, hand derivations and torch autograd.

Every expected value below is either published (the source is cited next to it) or derived
by hand in a comment; none comes from running the code under test. Published receptive-field
numbers test only the layout they were computed on: TF-Slim's tables test the ``*_tfslim``
entries, and a torchvision entry only where its layout is the TF-Slim layout layer for layer
(the comment says why).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import rfanalysis as rfa
from rfanalysis.cli import main

from .cli_checks import assert_one_line_error
from .oracles import as_graph, torch_grad
from .strategies import layer_output

ALL = rfa.zoo.names()


def _features(net):
    """The network without its classifier head (the global pool before a dense layer, and
    the dense layers), whose pool kernel fits only the standard input size."""
    return rfa.zoo.get(net.name, trunk=True)


@pytest.mark.parametrize(
    ("name", "dropped"),
    [
        ("resnet50", ["avgpool", "fc"]),  # torchvision: AdaptiveAvgPool2d((1, 1)), fc
        ("inception_v3", ["avgpool", "fc"]),
        ("mobilenet_v2", ["avgpool", "classifier"]),
        ("vgg16", ["fc6", "fc7", "fc8"]),  # pool5 (7x7 output) is part of the features
        ("lenet", ["fc"]),  # pool1 (12x12 output) too
        ("wav2vec2_feature_encoder", []),
    ],
)
def test_trunk_drops_exactly_the_classifier(name, dropped):
    full, trunk = rfa.zoo.get(name), rfa.zoo.get(name, trunk=True)
    assert [x.name for x in full.layers[len(trunk) :]] == dropped
    assert trunk.layers == full.layers[: len(full) - len(dropped)]


def test_trunks_run_at_other_input_sizes():
    with pytest.raises(ValueError, match=r"layer 19 \(avgpool: avgpool7\): output size 0"):
        rfa.coverage(rfa.zoo.get("resnet50"), 64)
    assert rfa.output_shape(rfa.zoo.get("resnet50", trunk=True), 1024) == (32, 32)
    with pytest.raises(TypeError, match="`trunk` must be a bool"):
        rfa.zoo.get("resnet50", trunk="no")


def _row(table, name):
    """The geometry row of the layer or block called ``name``."""
    rows = [r for r in table.rows if r.layer == name or r.layer.startswith(name + ": ")]
    assert len(rows) == 1, f"{len(rows)} rows named {name!r}"
    return rows[0]


# --------------------------------------------------------------------------- registry
def test_names_sorted_and_complete():
    names = rfa.zoo.names()
    assert names == sorted(names)
    required = {
        "lenet",
        "alexnet",
        "vgg11",
        "vgg16",
        "vgg19",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "mobilenet_v2",
        "inception_v3",
        "unet",
        "wav2vec2_feature_encoder",
        "wavenet",
    }
    assert required <= set(names)


@pytest.mark.parametrize("name", ALL)
def test_describe_names_a_source(name):
    text = rfa.zoo.describe(name)
    # a paper (author and year) or the defining source file
    assert re.search(r"(19|20)\d\d|\w+\.py", text), text
    assert rfa.zoo.get(name).name == name


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ValueError, match=r"unknown zoo network 'resnet05'.*'resnet50'"):
        rfa.zoo.get("resnet05")
    with pytest.raises(ValueError, match=r"did you mean 'inception_v3'"):
        rfa.zoo.describe("inception_v2")
    with pytest.raises(ValueError, match=r"unknown zoo network 'unett'.*'unet'"):
        rfa.zoo.standard_input("unett")
    with pytest.raises(ValueError, match=r"unknown zoo network 'xyz' \(rfanalysis"):
        rfa.zoo.get("xyz")
    with pytest.raises(TypeError, match="zoo name must be a string, got int"):
        rfa.zoo.get(50)


# --------------------------------------------------------------------------- published RFs
# google-research/receptive_field, receptive_field/RECEPTIVE_FIELD_TABLE.md (the table of
# Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks",
# Distill 2019), computed on the TF-Slim models: (end point, resolution, RF, effective
# stride, effective padding). Row names map TF-Slim end points to the zoo's layer names.
TFSLIM_TABLE = [
    # alexnet_v2
    ("alexnet_v2_tfslim", 224, "conv1", 11, 4, 0),
    ("alexnet_v2_tfslim", 224, "pool1", 19, 8, 0),
    ("alexnet_v2_tfslim", 224, "conv2", 51, 8, 16),
    ("alexnet_v2_tfslim", 224, "conv3", 99, 16, 32),
    ("alexnet_v2_tfslim", 224, "conv4", 131, 16, 48),
    ("alexnet_v2_tfslim", 224, "conv5", 163, 16, 64),
    ("alexnet_v2_tfslim", 224, "pool5", 195, 32, 64),
    ("alexnet_v2_tfslim", 321, "pool5", 195, 32, 64),
    # vgg_a and vgg_16: torchvision's VGG-11 / VGG-16 features are these layouts layer for
    # layer (3x3 stride-1 SAME pads 1 on both sides at every size, like padding=1; 2x2/2
    # VALID max pools are MaxPool2d(2, 2))
    ("vgg11", 224, "conv1_1", 3, 1, 1),
    ("vgg11", 224, "pool1", 4, 2, 1),
    ("vgg11", 224, "conv3_2", 26, 4, 11),
    ("vgg11", 224, "pool4", 70, 16, 27),
    ("vgg11", 224, "pool5", 150, 32, 59),
    ("vgg11", 321, "pool5", 150, 32, 59),
    ("vgg16", 224, "pool1", 6, 2, 2),
    ("vgg16", 224, "conv3_2", 32, 4, 14),
    ("vgg16", 224, "pool3", 44, 8, 18),
    ("vgg16", 224, "conv5_1", 132, 16, 58),
    ("vgg16", 224, "pool5", 212, 32, 90),
    ("vgg16", 321, "pool5", 212, 32, 90),
    # inception_v3: torchvision ports TF-Slim's Inception-v3 and its trunk is the same layout
    # (VALID stem and stride-2 layers; stride-1 SAME layers of odd size pad symmetrically);
    # no padding depends on the input size, so the resolution-None rows hold at 299 too
    ("inception_v3", 224, "Conv2d_1a_3x3", 3, 2, 0),
    ("inception_v3", 224, "Conv2d_2b_3x3", 11, 2, 2),
    ("inception_v3", 224, "Conv2d_4a_3x3", 23, 4, 2),
    ("inception_v3", 224, "maxpool2", 31, 8, 2),  # MaxPool_5a_3x3
    ("inception_v3", 224, "Mixed_5b", 63, 8, 18),
    ("inception_v3", 224, "Mixed_5d", 127, 8, 50),
    ("inception_v3", 224, "Mixed_6a", 159, 16, 58),
    ("inception_v3", 224, "Mixed_6b", 351, 16, 154),
    ("inception_v3", 224, "Mixed_6e", 927, 16, 442),
    ("inception_v3", 224, "Mixed_7a", 1055, 32, 490),
    ("inception_v3", 224, "Mixed_7b", 1183, 32, 554),
    ("inception_v3", 224, "Mixed_7c", 1311, 32, 618),
    ("inception_v3", 321, "Mixed_7c", 1311, 32, 618),
    ("inception_v3", 299, "Mixed_7c", 1311, 32, 618),
    # mobilenet_v1: TF SAME with stride 2 depends on the input size (224 vs 321)
    ("mobilenet_v1_tfslim", 224, "Conv2d_0", 3, 2, 0),
    ("mobilenet_v1_tfslim", 224, "Conv2d_1_pointwise", 7, 2, 2),
    ("mobilenet_v1_tfslim", 224, "Conv2d_3_pointwise", 19, 4, 6),
    ("mobilenet_v1_tfslim", 224, "Conv2d_6_pointwise", 59, 16, 14),
    ("mobilenet_v1_tfslim", 224, "Conv2d_11_pointwise", 219, 16, 94),
    ("mobilenet_v1_tfslim", 224, "Conv2d_12_pointwise", 251, 32, 94),
    ("mobilenet_v1_tfslim", 224, "Conv2d_13_pointwise", 315, 32, 126),
    ("mobilenet_v1_tfslim", 321, "Conv2d_0", 3, 2, 1),
    ("mobilenet_v1_tfslim", 321, "Conv2d_1_pointwise", 7, 2, 3),
    ("mobilenet_v1_tfslim", 321, "Conv2d_13_pointwise", 315, 32, 157),
    # resnet_v1_50/101/152: block k ends with its last unit
    ("resnet50_tfslim", 224, "block1.unit_3", 35, 8, 15),
    ("resnet50_tfslim", 224, "block2.unit_4", 99, 16, 47),
    ("resnet50_tfslim", 224, "block3.unit_6", 291, 32, 143),
    ("resnet50_tfslim", 224, "block4.unit_3", 483, 32, 239),
    ("resnet50_tfslim", 321, "block1.unit_3", 35, 8, 17),
    ("resnet50_tfslim", 321, "block4.unit_3", 483, 32, 241),
    ("resnet101_tfslim", 224, "block3.unit_23", 835, 32, 415),
    ("resnet101_tfslim", 224, "block4.unit_3", 1027, 32, 511),
    ("resnet101_tfslim", 321, "block4.unit_3", 1027, 32, 513),
    ("resnet152_tfslim", 224, "block2.unit_8", 163, 16, 79),
    ("resnet152_tfslim", 224, "block3.unit_36", 1315, 32, 655),
    ("resnet152_tfslim", 224, "block4.unit_3", 1507, 32, 751),
    ("resnet152_tfslim", 321, "block4.unit_3", 1507, 32, 753),
]


@pytest.mark.parametrize(("name", "size", "row", "rf", "stride", "padding"), TFSLIM_TABLE)
def test_published_tfslim_receptive_fields(name, size, row, rf, stride, padding):
    r = _row(rfa.geometry(_features(rfa.zoo.get(name)), size), row)
    assert (r.rf_size, r.jump, r.eff_padding) == ((rf, rf), (stride, stride), (padding, padding))


def test_published_tfslim_summary_is_the_whole_entry():
    # google-research/receptive_field README table: the end points of these entries
    for name, rf, stride, padding in [
        ("alexnet_v2_tfslim", 195, 32, 64),
        ("mobilenet_v1_tfslim", 315, 32, 126),
        ("resnet50_tfslim", 483, 32, 239),
        ("resnet101_tfslim", 1027, 32, 511),
        ("resnet152_tfslim", 1507, 32, 751),
    ]:
        got = rfa.receptive_field(rfa.zoo.get(name), 224)
        assert (got.size, got.stride, got.padding) == ((rf,) * 2, (stride,) * 2, (padding,) * 2)


def test_published_audio_receptive_fields():
    # Baevski et al. 2020 (wav2vec 2.0), section 4.2: "a receptive field of 400 input samples
    # or 25ms of audio", "a stride of about 20ms" = 320 samples at 16 kHz
    rf = rfa.receptive_field(rfa.zoo.get("wav2vec2_feature_encoder"))
    assert rf.size == (400,) and rf.stride == (320,)
    # van den Oord et al. 2016 (WaveNet), section 2.1: "each 1, 2, 4, ..., 512 block has
    # receptive field of size 1024"; three blocks add 1023 each to one sample: 3070
    net = rfa.zoo.get("wavenet")
    assert rfa.receptive_field(net.layers[:10]).size == (1024,)
    assert rfa.receptive_field(net).size == (3 * 1023 + 1,)
    # causal: unit 0 is centred left of sample 0 by half the field, so only the present and
    # past reach it: effective padding is the whole field minus one (every pad is on the left)
    assert rfa.receptive_field(net).padding == (3069,)


# --------------------------------------------------------------------------- hand-derived RFs
# torchvision layouts with no published table. Per axis r += (k - 1) j, j *= s, effective
# padding P += p_before j (before the layer's stride). ResNet stem: conv7/2 p3 -> r 7, j 2,
# P 3; maxpool3/2 p1 -> r 11, j 4, P 3 + 2 = 5. A 3x3 at jump j adds 2j to r and j to P; every
# padding is symmetric and centred, so P = (r - 1) / 2 at the end.
#   resnet18: layer1 4 convs at j4 (+32) = 43; layer2 +8 (j8) +3*16 = 99; layer3 +16 (j16)
#             +3*32 = 211; layer4 +32 (j32) +3*64 = 435
#   resnet34: layer1 6*8 -> 59; layer2 8 + 7*16 -> 179; layer3 16 + 11*32 -> 547;
#             layer4 32 + 5*64 -> 899
#   bottleneck (one 3x3 per block): resnet50 layer1 3*8 -> 35; layer2 8 + 3*16 -> 91;
#             layer3 16 + 5*32 -> 267; layer4 32 + 2*64 -> 427
#   resnet101: layer3 16 + 22*32 -> 811; layer4 -> 971
#   resnet152: layer2 8 + 7*16 -> 155; layer3 16 + 35*32 -> 1291; layer4 -> 1451
#   mobilenet_v2: stem 3 (j2); one 3x3 depthwise per block: 16: +4 -> 7; 24: +4 (j4) +8 -> 19;
#             32: +8 (j8) +2*16 -> 59; 64: +16 (j16) +3*32 -> 171; 96: +3*32 -> 267;
#             160: +32 (j32) +2*64 -> 427; 320: +64 -> 491
#   alexnet: conv11/4 -> 11 (j4); pool3/2 -> 19 (j8); conv5 -> 51; pool -> 67 (j16); 3 convs
#             -> 163; pool -> 195 (j32); P = 2*1 + 2*8 + 3*1*16 = 66 (not centred: 195 != 133)
#   vgg19: blocks of 2, 2, 4, 4, 4 convs: r = 1 + 4*1 + 1 + 4*2 + 2 + 8*4 + 4 + 8*8 + 8
#             + 8*16 + 16 = 268, P = 2*1 + 2*2 + 4*4 + 4*8 + 4*16 = 118
HAND_RF = [
    ("resnet18", "layer4.1", 435, 32, 217),
    ("resnet34", "layer4.2", 899, 32, 449),
    ("resnet50", "layer4.2", 427, 32, 213),
    ("resnet101", "layer4.2", 971, 32, 485),
    ("resnet152", "layer4.2", 1451, 32, 725),
    ("mobilenet_v2", "features.18", 491, 32, 245),
    ("alexnet", "pool5", 195, 32, 66),
    ("vgg19", "pool5", 268, 32, 118),
]


@pytest.mark.parametrize(("name", "row", "rf", "stride", "padding"), HAND_RF)
def test_hand_derived_torchvision_receptive_fields(name, row, rf, stride, padding):
    r = _row(rfa.geometry(rfa.zoo.get(name), 224), row)
    assert (r.rf_size, r.jump, r.eff_padding) == ((rf, rf), (stride, stride), (padding, padding))


def test_same_name_different_layout():
    # DESIGN section 8: torchvision's ResNet-50 (stride on the first block's 3x3) and
    # TF-Slim's resnet_v1_50 (stride on the last unit's 3x3) differ: 427 (above) vs 483
    # (published); AlexNet: padding 66 vs 64
    tv = rfa.geometry(rfa.zoo.get("resnet50"), 224)
    slim = rfa.geometry(rfa.zoo.get("resnet50_tfslim"), 224)
    assert _row(tv, "layer4.2").rf_size == (427, 427)
    assert _row(slim, "block4.unit_3").rf_size == (483, 483)


# --------------------------------------------------------------------------- published shapes
def _out(table, row):
    r = _row(table, row)
    return r.output, r.channels


def test_resnet_stage_shapes():
    # He et al. 2016, Table 1: output sizes 112 (conv1), 56 (conv2_x), 28, 14, 7 (conv5_x)
    # at 224; widths 64/128/256/512 (x4 for bottlenecks)
    for name, last, wide in [
        ("resnet18", (1, 1, 1, 1), 1),
        ("resnet34", (2, 3, 5, 2), 1),
        ("resnet50", (2, 3, 5, 2), 4),
        ("resnet101", (2, 3, 22, 2), 4),
        ("resnet152", (2, 7, 35, 2), 4),
    ]:
        g = rfa.geometry(rfa.zoo.get(name), 224)
        assert _out(g, "conv1") == ((112, 112), 64)
        for stage, (size, width, i) in enumerate(zip((56, 28, 14, 7), (64, 128, 256, 512), last)):
            assert _out(g, f"layer{stage + 1}.{i}") == ((size, size), width * wide)
        assert rfa.output_shape(rfa.zoo.get(name), 224) == (1000,)


def test_classifier_input_shapes():
    # torchvision: VGG's classifier starts with Linear(512 * 7 * 7, 4096), AlexNet's with
    # Linear(256 * 6 * 6, 4096) - the features are 7x7x512 / 6x6x256 at 224
    for name in ("vgg11", "vgg16", "vgg19"):
        assert _out(rfa.geometry(rfa.zoo.get(name), 224), "pool5") == ((7, 7), 512)
    assert _out(rfa.geometry(rfa.zoo.get("alexnet"), 224), "pool5") == ((6, 6), 256)
    # Sandler et al. 2018, Table 2: 7^2 x 1280 before the average pool
    assert _out(rfa.geometry(rfa.zoo.get("mobilenet_v2"), 224), "features.18") == ((7, 7), 1280)
    # Howard et al. 2017, Table 1: 7x7x1024 after the last depthwise-separable layer
    g = rfa.geometry(rfa.zoo.get("mobilenet_v1_tfslim"), 224)
    assert _out(g, "Conv2d_13_pointwise") == ((7, 7), 1024)


def test_inception_v3_shapes():
    # torchvision/models/inception.py shape comments (N x C x H x W at 299 x 299), and
    # Szegedy et al. 2016, Table 1: 8 x 8 x 2048 before the pool
    g = rfa.geometry(rfa.zoo.get("inception_v3"), 299)
    expected = {
        "Conv2d_1a_3x3": (32, 149),
        "Conv2d_2a_3x3": (32, 147),
        "Conv2d_2b_3x3": (64, 147),
        "maxpool1": (64, 73),
        "Conv2d_3b_1x1": (80, 73),
        "Conv2d_4a_3x3": (192, 71),
        "maxpool2": (192, 35),
        "Mixed_5b": (256, 35),
        "Mixed_5c": (288, 35),
        "Mixed_5d": (288, 35),
        "Mixed_6a": (768, 17),
        "Mixed_6e": (768, 17),
        "Mixed_7a": (1280, 8),
        "Mixed_7b": (2048, 8),
        "Mixed_7c": (2048, 8),
    }
    for row, (channels, size) in expected.items():
        assert _out(g, row) == ((size, size), channels), row


def test_tfslim_resnet_output_sizes():
    # resnet_v1.py docstring: 224 x 224 inputs give 7 x 7 maps after the last block; inputs
    # 32 k + 1 give (n - 1) / 32 + 1 (321 -> 11)
    net = rfa.zoo.get("resnet50_tfslim")
    assert rfa.output_shape(net, 224) == (7, 7)
    assert rfa.output_shape(net, 321) == (11, 11)


def test_unet_shapes():
    # Ronneberger et al. 2015, Fig. 1: 572 -> 570, 568 | 284 ... 280 | 140 ... 136 | 68 ... 64
    # | 32, 30, 28 | up 56, 54, 52 | 104 ... 100 | 200 ... 196 | 392, 390, 388 x 2 classes
    g = rfa.geometry(rfa.zoo.get("unet"), 572)
    expected = {
        "enc1.conv1": (570, 64),
        "enc1.conv2": (568, 64),
        "enc2.conv2": (280, 128),
        "enc3.conv2": (136, 256),
        "enc4.conv2": (64, 512),
        "bottleneck.conv1": (30, 1024),
        "bottleneck.conv2": (28, 1024),
        "up4": (56, 512),
        "cat4": (56, None),  # the crop has no channel count (it has no weights)
        "dec4.conv2": (52, 512),
        "dec3.conv2": (100, 256),
        "dec2.conv2": (196, 128),
        "up1": (392, 64),
        "dec1.conv2": (388, 64),
        "final": (388, 2),
    }
    for row, (size, channels) in expected.items():
        assert _out(g, row) == ((size, size), channels), row
    # the padded variant keeps the size
    assert rfa.output_shape(rfa.zoo.get("unet_padded"), 512) == (512, 512)


def test_wav2vec2_frames_per_second():
    # Baevski et al. 2020, section 4.2: "an encoder output frequency of 49 hz"; by hand,
    # floor((n - k) / s) + 1: 16000 -> 3199 -> 1599 -> 799 -> 399 -> 199 -> 99 -> 49
    assert rfa.output_shape(rfa.zoo.get("wav2vec2_feature_encoder"), 16000) == (49,)
    assert rfa.output_shape(rfa.zoo.get("wavenet"), 16000) == (16000,)  # causal, same length


# --------------------------------------------------------------------------- parameters
# torchvision's published totals (weights tables, ``meta["num_params"]`` in
# torchvision/models/{alexnet,vgg,resnet,mobilenetv2,inception}.py)
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "mobilenet_v2": 3_504_872,
    "inception_v3": 27_161_264,
}


def _resnet_bn_channels(blocks, bottleneck):
    """Output channels of every BatchNorm2d in torchvision's ResNet, from the architecture
    table: bn1 (64); per block one BN per conv (BasicBlock: planes, planes; Bottleneck:
    planes, planes, 4 planes); plus the downsample BN of each stage's first block where the
    stride or width changes (stages 2-4; stage 1 too for bottlenecks, 64 -> 256)."""
    total = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        per_block = 6 * planes if bottleneck else 2 * planes
        out = 4 * planes if bottleneck else planes
        total += n * per_block + (out if (stage > 0 or bottleneck) else 0)
    return total


def _mobilenet_v2_bn_channels():
    """torchvision MobileNetV2: BN after the stem (32), after expand (hidden = t cin, when
    t != 1), depthwise (hidden) and project (c) of every block, and after the last conv."""
    total, cin = 32, 32
    for t, c, n, _ in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for _ in range(n):
            hidden = cin * t
            total += (hidden if t != 1 else 0) + hidden + c
            cin = c
    return total + 1280


# Inception3: every BasicConv2d has a BN with its output channels. Stem 32+32+64+80+192 = 400;
# InceptionA(pf) 64 + (48+64) + (64+96+96) + pf = 432 + pf: 464 + 496 + 496; InceptionB
# 384 + 64+96+96 = 640; InceptionC(c7) 192 + (c7+c7+192) + (4 c7 + 192) + 192 = 768 + 6 c7:
# 1536 + 1728 + 1728 + 1920; InceptionD 192+320 + 4*192 = 1280; InceptionE 320 + 384*3 +
# 448 + 384*3 + 192 = 3264 (twice); AuxLogits conv0 128 + conv1 768 = 896. Total 18,112.
INCEPTION_BN_CHANNELS = 400 + 1456 + 640 + 6912 + 1280 + 6528 + 896
# AuxLogits weights (not in the zoo network, a training-only second output): conv0 1x1
# 768 -> 128: 98,304; conv1 5x5 128 -> 768: 2,457,600; fc 768 -> 1000: 769,000
INCEPTION_AUX_WEIGHTS = 98_304 + 2_457_600 + 769_000


def test_params_without_batch_norm_match_torchvision_exactly():
    for name in ("alexnet", "vgg11", "vgg16", "vgg19"):
        assert rfa.geometry(rfa.zoo.get(name), 224).params == TORCHVISION_PARAMS[name], name


@pytest.mark.parametrize(
    ("name", "blocks", "bottleneck", "bn_channels"),
    [
        # the BN channel totals written out: resnet18 64 + 256 + 640 + 1280 + 2560 = 4800;
        # resnet50 64 + 1408 + 3584 + 10240 + 11264 = 26,560
        ("resnet18", (2, 2, 2, 2), False, 4800),
        ("resnet34", (3, 4, 6, 3), False, None),
        ("resnet50", (3, 4, 6, 3), True, 26_560),
        ("resnet101", (3, 4, 23, 3), True, None),
        ("resnet152", (3, 8, 36, 3), True, None),
    ],
)
def test_resnet_params_plus_batch_norm_match_torchvision(name, blocks, bottleneck, bn_channels):
    bn = _resnet_bn_channels(blocks, bottleneck)
    if bn_channels is not None:
        assert bn == bn_channels
    # BatchNorm2d(C) has 2 C parameters (weight and bias; running stats are buffers)
    params = rfa.geometry(rfa.zoo.get(name), 224).params
    assert params + 2 * bn == TORCHVISION_PARAMS[name]


def test_mobilenet_v2_and_inception_params_plus_batch_norm_match_torchvision():
    assert _mobilenet_v2_bn_channels() == 17_056
    params = rfa.geometry(rfa.zoo.get("mobilenet_v2"), 224).params
    assert params + 2 * _mobilenet_v2_bn_channels() == TORCHVISION_PARAMS["mobilenet_v2"]
    assert INCEPTION_BN_CHANNELS == 18_112
    params = rfa.geometry(rfa.zoo.get("inception_v3"), 299).params
    total = params + INCEPTION_AUX_WEIGHTS + 2 * INCEPTION_BN_CHANNELS
    assert total == TORCHVISION_PARAMS["inception_v3"]


def test_other_published_and_hand_counted_params():
    # TF-Slim mobilenet_v1.py module docstring: "100% Mobilenet V1 (base) with input size
    # 224x224 ... Total: 3,185,088" (weights only; BN follows every convolution)
    assert rfa.geometry(rfa.zoo.get("mobilenet_v1_tfslim"), 224).params == 3_185_088
    # wav2vec 2.0 BASE encoder, no conv bias: 512*10 + 4*512*512*3 + 2*512*512*2
    assert rfa.geometry(rfa.zoo.get("wav2vec2_feature_encoder"), 16000).params == 4_199_424
    # U-Net, 3x3 convs with bias 9 cin cout + cout, 2x2 up-convs 4 cin cout + cout:
    # enc1 640 + 36,928; enc2 73,856 + 147,584; enc3 295,168 + 590,080;
    # enc4 1,180,160 + 2,359,808; bottleneck 4,719,616 + 9,438,208;
    # up4 2,097,664; dec4 4,719,104 + 2,359,808; up3 524,544; dec3 1,179,904 + 590,080;
    # up2 131,200; dec2 295,040 + 147,584; up1 32,832; dec1 73,792 + 36,928; final 130
    unet_weights = 31_030_658
    assert rfa.geometry(rfa.zoo.get("unet_padded"), 512).params == unet_weights
    g = rfa.geometry(rfa.zoo.get("unet"), 572)
    unknown = [r.layer for r in g.rows[1:] if r.params is None]
    assert unknown == [f"crop{i}: tconv1p{c}" for i, c in ((1, 88), (2, 40), (3, 16), (4, 4))]
    assert g.params is None
    assert sum(r.params for r in g.rows[1:] if r.params is not None) == unet_weights


# --------------------------------------------------------------------------- every entry
_WINDOWS = (rfa.Conv, rfa.LocallyConnected, rfa.Pool, rfa.ConvTranspose, rfa.Upsample)


def _assert_window_rows_follow_torch_rule(net, shape, g):
    """Every window row's output size is torch's rule applied to its input row's (the
    independent ``strategies.layer_output``), and a merge's that of its operands; rows are
    the graph's nodes in order."""
    nodes = as_graph(net, len(shape))
    assert len(g.rows) == len(nodes)
    outputs = [row.output for row in g.rows]
    assert outputs[0] == shape
    checked = 0
    for j, node in enumerate(nodes[1:], 1):
        ins = [outputs[i] for i in node.inputs]
        if isinstance(node.layer, _WINDOWS):
            assert outputs[j] == layer_output(node.layer, ins[0]), (j, node)
            checked += 1
        elif isinstance(node.layer, (rfa.Add, rfa.Cat)) and len(set(ins)) == 1:
            assert outputs[j] == ins[0], (j, node)
    assert checked, "no window row"


@pytest.mark.parametrize("name", ALL)
def test_geometry_and_coverage_at_the_standard_input(name):
    net = rfa.zoo.get(name)
    shape = rfa.zoo.standard_input(name)
    g = rfa.geometry(net, shape)
    assert g.input_shape == shape
    _assert_window_rows_follow_torch_rule(net, shape, g)
    if name not in ("unet", "wavenet"):  # documented: a crop and channel-free layers
        assert g.params is not None and g.params > 0
    counts = rfa.coverage(net, shape, log=True)
    assert counts.shape == shape
    assert not np.isnan(counts).any() and np.isfinite(counts.max())


@pytest.mark.parametrize("name", ALL)
def test_spec_files_round_trip(name, tmp_path):
    net = rfa.zoo.get(name)
    rfa.save(net, tmp_path / "net.json")
    assert rfa.load(tmp_path / "net.json") == net


# --------------------------------------------------------------------------- DAG fidelity
def _exact_equal(net, shape, unit=None):
    """Engine (exact integers) against torch autograd on the ones-weight graph; the counts
    stay below 2**53 so float64 autograd is exact too."""
    if unit is None:
        ours = rfa.coverage(net, shape, exact=True)
    else:
        ours = rfa.routes(net, shape, unit, exact=True)
    assert int(ours.max()) < 2**53
    np.testing.assert_array_equal(ours.astype(np.float64), torch_grad(net, shape, unit))


@pytest.mark.torch
@pytest.mark.parametrize("shape", [(37, 37), (32, 29)])
def test_resnet18_trunk_matches_autograd(shape):
    # residual blocks with identity and projection (1x1 stride-2) shortcuts; 37 is odd, so
    # the stride-2 layers drop rows; the head (7x7 pool, dense) needs 224 and is left out
    trunk = _features(rfa.zoo.get("resnet18"))
    _exact_equal(trunk, shape)
    _exact_equal(trunk, shape, "center")


@pytest.mark.torch
@pytest.mark.parametrize("block", ["Mixed_5b", "Mixed_6a", "Mixed_6b", "Mixed_7a", "Mixed_7b"])
def test_inception_blocks_match_autograd(block):
    # InceptionA-E: concat branches with pools, strided VALID layers, 1x7/7x1 convolutions
    # and (E) concats nested in a branch
    layer = next(x for x in rfa.zoo.get("inception_v3").layers if x.name == block)
    net = rfa.Network([layer])
    for shape in [(9, 9), (10, 11)]:
        _exact_equal(net, shape)
        _exact_equal(net, shape, "center")


@pytest.mark.torch
def test_unet_matches_autograd():
    # the valid U-Net with its crops (1-tap transposed convolutions) and nested concats at
    # the smallest valid size, 16 * 4 + 124 = 188, in 1-D (2-D counts exceed 2**53), and the
    # padded U-Net in 2-D
    unet = rfa.zoo.get("unet")
    assert rfa.output_shape(unet, (188,)) == (4,)
    _exact_equal(unet, (188,))
    _exact_equal(unet, (188,), "center")
    _exact_equal(unet, (204,), (1,))
    padded = rfa.zoo.get("unet_padded")
    _exact_equal(padded, (16, 16))
    _exact_equal(padded, (32, 32), "center")


@pytest.mark.torch
def test_tfslim_and_bottleneck_layouts_match_autograd():
    # TF SAME pools and 1x1 stride-2 subsampling shortcuts; torchvision bottlenecks and
    # inverted residuals (1-D keeps the counts exact)
    for name, size in [("resnet50_tfslim", 33), ("mobilenet_v1_tfslim", 40)]:
        _exact_equal(rfa.zoo.get(name), (size,))
    for name in ("resnet50", "mobilenet_v2"):
        _exact_equal(_features(rfa.zoo.get(name)), (35,))


# --------------------------------------------------------------------------- CLI
def test_cli_zoo_listing_and_summary():
    runner = CliRunner()
    listing = runner.invoke(main, ["zoo"])
    assert listing.exit_code == 0
    lines = listing.output.splitlines()
    assert [line.split()[0] for line in lines] == ALL
    assert "299x299" in next(line for line in lines if line.startswith("inception_v3 "))
    summary = runner.invoke(main, ["zoo", "resnet50"])
    assert summary.exit_code == 0
    out = summary.output
    assert "torchvision/models/resnet.py" in out and "standard input: 224x224" in out
    # hand-derived above: layer4 of torchvision's ResNet-50 is 7x7x2048 with field 427
    assert "(layer4.2, 7x7x2048) at 224x224: size 427, jump 32, effective padding 213" in out
    assert "parameters: 25,503,912" in out and "output: 1000" in out
    unet = runner.invoke(main, ["zoo", "unet"]).output
    assert "parameters: unknown: no channel counts for crop1, crop2, crop3, crop4" in unet
    assert_one_line_error(runner.invoke(main, ["zoo", "resnet05"]), "did you mean 'resnet50'")


def test_cli_accepts_zoo_names_as_specs():
    out = CliRunner().invoke(main, ["geometry", "wavenet", "--format", "json"]).output
    assert json.loads(out)["receptive_field"]["size"] == [3070]
