"""The zoo's modern torchvision classifiers against torchvision itself, the papers and hand
derivations: MobileNetV3-Large, EfficientNet-B0, ConvNeXt-T, RegNetY-400MF, DenseNet-121 and
Swin-T.

The main oracle is torchvision's own model: ``from_torch`` traces it at 224 x 224 (checking
the trace against the model's autograd), and the zoo's torch-free definition must give the
same routes and coverage, exactly, in both contexts; its weighted layers must be the
model's Conv2d and Linear modules one for one. Published tables and hand derivations give
shapes, parameter totals and receptive fields; no expected number comes from the code under
test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from click.testing import CliRunner

import rfanalysis as rfa
from rfanalysis.cli import main

from .real_models import torchvision as import_torchvision

NAMES = [
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "regnet_y_400mf",
    "densenet121",
    "swin_t",
]


def _row(table, name):
    """The geometry row of the layer or block called ``name``."""
    rows = [r for r in table.rows if r.layer == name or r.layer.startswith(name + ": ")]
    assert len(rows) == 1, f"{len(rows)} rows named {name!r}"
    return rows[0]


def test_entries_are_registered_at_224():
    assert set(NAMES) <= set(rfa.zoo.names())
    assert {rfa.zoo.standard_input(n) for n in NAMES} == {(224, 224)}


# --------------------------------------------------------------------------- heads
@pytest.mark.parametrize(
    ("name", "head"),
    [
        # torchvision's modules after ``features`` (or ``trunk_output``): AdaptiveAvgPool2d(1)
        # and the Linear layers of the classifier (DenseNet's pool is F.adaptive_avg_pool2d)
        ("mobilenet_v3_large", ["avgpool", "classifier.0", "classifier.3"]),
        ("efficientnet_b0", ["avgpool", "classifier.1"]),
        ("convnext_tiny", ["avgpool", "classifier.2"]),
        ("regnet_y_400mf", ["avgpool", "fc"]),
        ("densenet121", ["avgpool", "classifier"]),
        ("swin_t", ["avgpool", "head"]),
    ],
)
def test_trunk_drops_the_global_pool_and_the_classifier(name, head):
    full, trunk = rfa.zoo.get(name), rfa.zoo.get(f"{name}:trunk")
    n = len(trunk.nodes)
    assert [node.layer.name for node in full.nodes[n:]] == head
    assert trunk.nodes == full.nodes[:n]
    assert trunk.is_tree == full.is_tree == (name != "densenet121")
    # a global pool, unlike a fixed one, runs at any size: 256 = 224 + 32 keeps every
    # stride-2 map even; the trunk ends at 256 / 32 = 8 units per axis
    assert rfa.output_shape(full, 256) == (1000,)
    assert rfa.output_shape(trunk, 256) == (8, 8)


# --------------------------------------------------------------------------- published shapes
# (entry, layer, output size, channels) at 224 x 224, from each paper's architecture table
PUBLISHED_SHAPES = [
    # Howard et al. 2019 (MobileNetV3), Table 1 (Large): 112^2 x 16 after the stem, then the
    # bneck outputs 16, 24 (56^2), 40 (28^2), 80, 112 (14^2), 160 (7^2), and 7^2 x 960
    ("mobilenet_v3_large", "features.0", 112, 16),
    ("mobilenet_v3_large", "features.1", 112, 16),
    ("mobilenet_v3_large", "features.3", 56, 24),
    ("mobilenet_v3_large", "features.6", 28, 40),
    ("mobilenet_v3_large", "features.10", 14, 80),
    ("mobilenet_v3_large", "features.12", 14, 112),
    ("mobilenet_v3_large", "features.15", 7, 160),
    ("mobilenet_v3_large", "features.16", 7, 960),
    # Tan & Le 2019 (EfficientNet), Table 1 (B0): a stage's input resolution is the previous
    # stage's output: stem 112^2 x 32, then 16 (112^2), 24 (56^2), 40 (28^2), 80 (14^2),
    # 112 (14^2), 192 (7^2), 320 (7^2), 1280 (7^2); the last block of each stage
    ("efficientnet_b0", "features.0", 112, 32),
    ("efficientnet_b0", "features.1.0.block.2", 112, 16),
    ("efficientnet_b0", "features.2.1", 56, 24),
    ("efficientnet_b0", "features.3.1", 28, 40),
    ("efficientnet_b0", "features.4.2", 14, 80),
    ("efficientnet_b0", "features.5.2", 14, 112),
    ("efficientnet_b0", "features.6.3", 7, 192),
    ("efficientnet_b0", "features.7.0.block.3", 7, 320),
    ("efficientnet_b0", "features.8", 7, 1280),
    # Liu et al. 2022 (ConvNeXt), section 2.6: ConvNeXt-T C = (96, 192, 384, 768),
    # B = (3, 3, 9, 3); a 4x4 stride-4 stem, then 2x2 stride-2 downsampling: 56, 28, 14, 7
    ("convnext_tiny", "features.0", 56, 96),
    ("convnext_tiny", "features.1.2", 56, 96),
    ("convnext_tiny", "features.3.2", 28, 192),
    ("convnext_tiny", "features.5.8", 14, 384),
    ("convnext_tiny", "features.7.2", 7, 768),
    # Huang et al. 2017 (DenseNet), Table 1: 112 after the 7x7 convolution, 56 after the
    # pool and in block 1, 28, 14, 7 after the transitions. Channels by hand (growth rate
    # 32, compression 0.5): 64 + 6 x 32 = 256 -> 128; 128 + 12 x 32 = 512 -> 256;
    # 256 + 24 x 32 = 1024 -> 512; 512 + 16 x 32 = 1024
    ("densenet121", "features.conv0", 112, 64),
    ("densenet121", "features.pool0", 56, 64),
    ("densenet121", "features.denseblock1", 56, 256),
    ("densenet121", "features.transition1.pool", 28, 128),
    ("densenet121", "features.denseblock2", 28, 512),
    ("densenet121", "features.transition2.pool", 14, 256),
    ("densenet121", "features.denseblock3", 14, 1024),
    ("densenet121", "features.transition3.pool", 7, 512),
    ("densenet121", "features.denseblock4", 7, 1024),
    # Liu et al. 2021 (Swin), Table 7 (Swin-T): 4x (56 x 56) 96-d, 2 blocks; 8x (28 x 28)
    # 192-d, 2; 16x (14 x 14) 384-d, 6; 32x (7 x 7) 768-d, 2
    ("swin_t", "features.0", 56, 96),
    ("swin_t", "features.1.1", 56, 96),
    ("swin_t", "features.2.norm", 28, 192),
    ("swin_t", "features.3.1", 28, 192),
    ("swin_t", "features.5.5", 14, 384),
    ("swin_t", "features.7.1", 7, 768),
    # RegNet: stem 3x3 stride 2 to 32 channels, every stage halves (Radosavovic et al. 2020,
    # section 3.1); widths from the formula (test below)
    ("regnet_y_400mf", "stem", 112, 32),
    ("regnet_y_400mf", "trunk_output.block1.block1-0", 56, 48),
    ("regnet_y_400mf", "trunk_output.block2.block2-2", 28, 104),
    ("regnet_y_400mf", "trunk_output.block3.block3-5", 14, 208),
    ("regnet_y_400mf", "trunk_output.block4.block4-5", 7, 440),
]


@pytest.mark.parametrize("name", NAMES)
def test_published_stage_shapes(name):
    table = rfa.geometry(rfa.zoo.get(name), 224)
    for entry, layer, size, channels in PUBLISHED_SHAPES:
        if entry == name:
            r = _row(table, layer)
            assert (r.output, r.channels) == ((size, size), channels), layer
    assert table.rows[-1].output == (1000,)


def test_regnet_y_400mf_stages_follow_the_regnet_formula():
    # Radosavovic et al. 2020, section 3.3 (and torchvision's BlockParams.from_init_params):
    # block j < d has u_j = w_0 + w_a j, s_j = round(log(u_j / w_0) / log(w_m)) and width
    # w_0 w_m^s_j rounded to a multiple of 8; a stage is a run of equal widths. RegNetY-400MF
    # (torchvision's regnet_y_400mf): d 16, w_0 48, w_a 27.89, w_m 2.09. The exponents sit
    # far from the rounding points (0.62, 1.63, 2.60 for j = 1, 4, 10), so float64 agrees
    # with torchvision's float32.
    d, w0, wa, wm = 16, 48, 27.89, 2.09
    exps = [round(math.log((w0 + wa * j) / w0) / math.log(wm)) for j in range(d)]
    widths = [round(w0 * wm**s / 8) * 8 for s in exps]
    stages = [(w, len(list(run))) for w, run in itertools.groupby(widths)]
    assert stages == [(48, 1), (104, 3), (208, 6), (440, 6)]
    net = rfa.zoo.get("regnet_y_400mf")
    blocks = [x.name.split(".")[1] for x in net.layers if x.name.startswith("trunk_output")]
    assert [(s, len(list(run))) for s, run in itertools.groupby(blocks)] == [
        (f"block{stage}", depth) for stage, (_, depth) in enumerate(stages, start=1)
    ]
    table = rfa.geometry(net, 224)
    layers = {n.layer.name: n.layer for n in net.nodes[1:]}
    for stage, (width, depth) in enumerate(stages, start=1):
        assert _row(table, f"trunk_output.block{stage}.block{stage}-{depth - 1}").channels == width
        # group width 8 (the configuration above): the 3x3 convolution has width / 8 groups
        assert layers[f"trunk_output.block{stage}.block{stage}-0.f.b"].groups == width // 8


# --------------------------------------------------------------------------- parameters
# torchvision's published totals (meta["num_params"] of the ImageNet weights in
# torchvision/models/{mobilenetv3,efficientnet,convnext,regnet,densenet,swin_transformer}.py)
# less what is not a convolution or linear weight or bias, counted by hand:
#   mobilenet_v3_large: BatchNorm (2 per channel) after the stem (16), each block's expand
#     (if any), depthwise and project convs: 16+16 | 64+64+24 | 72+72+24 | 72+72+40 |
#     2 x (120+120+40) | 240+240+80 | 200+200+80 | 2 x (184+184+80) | 480+480+112 |
#     672+672+112 | 672+672+160 | 2 x (960+960+160), and the last conv (960): 12,200
#   efficientnet_b0: stem 32; blocks (expand, depthwise, project) 32+16 | 96+96+24,
#     144+144+24 | 144+144+40, 240+240+40 | 240+240+80, 2 x (480+480+80) |
#     480+480+112, 2 x (672+672+112) | 672+672+192, 3 x (1152+1152+192) | 1152+1152+320;
#     last conv 1280: 21,008
#   convnext_tiny: LayerNorms (2 per channel) and layer scales (1 per channel): stem 2 x 96;
#     per block 3 x dim: 3 x 288 + 3 x 576 + 9 x 1152 + 3 x 2304; downsampling norms
#     2 x (96 + 192 + 384); head norm 2 x 768: 192 + 19,872 + 1,344 + 1,536 = 22,944
#   regnet_y_400mf: BatchNorm after the stem (32) and each block's a, b, c (and proj in the
#     first block of a stage): 4 x 48 + (4 + 3 + 3) x 104 + (4 + 5 x 3) x 208
#     + (4 + 5 x 3) x 440 = 32 + 192 + 1,040 + 3,952 + 8,360 = 13,576
#   densenet121: BatchNorm channels 41,824 (tests/test_graph_models.py)
#   swin_t: LayerNorms (2 per channel): patch embedding 96, per block norm1 and norm2,
#     patch merging over 4 C, the final norm 768; relative position bias tables of
#     (2 x 7 - 1)^2 = 169 entries per head (3, 6, 12, 24 heads):
#     192 + 2 x (384 + 507) + 2 x (768 + 1,014) + 6 x (1,536 + 2,028) + 2 x (3,072 + 4,056)
#     + 8 x (96 + 192 + 384) + 1,536 = 48,090
PARAMS = {
    "mobilenet_v3_large": 5_483_032 - 2 * 12_200,
    "efficientnet_b0": 5_288_548 - 2 * 21_008,
    "convnext_tiny": 28_589_128 - 22_944,
    "regnet_y_400mf": 4_344_144 - 2 * 13_576,
    "densenet121": 7_978_856 - 2 * 41_824,
    "swin_t": 28_288_354 - 48_090,
}


@pytest.mark.parametrize("name", NAMES)
def test_params_are_the_published_totals_less_normalisation(name):
    assert rfa.geometry(rfa.zoo.get(name), 224).params == PARAMS[name]


# --------------------------------------------------------------------------- receptive fields
# Per axis r += (k - 1) j, j *= s; every padding is (k - 1) / 2 and centred, so the effective
# padding is (r - 1) / 2, except after even windows (ConvNeXt, DenseNet: below).
#   mobilenet_v3_large, depthwise kernels and strides by block: stem 3/2 -> r 3, j 2;
#     3: +4 -> 7; 3/2: +4 -> 11, j 4; 3: +8 -> 19; 5/2: +16 -> 35, j 8; 5, 5: +64 -> 99;
#     3/2: +16 -> 115, j 16; 3 x 5: +160 -> 275; 5/2: +64 -> 339, j 32; 5, 5: +256 -> 595
#   efficientnet_b0: stem 3; 3: 7; 3/2, 3: 11, 19 (j 4); 5/2, 5: 35, 67 (j 8);
#     3/2, 3, 3: 83, 115, 147 (j 16); 5 x 3: 339; 5/2, 5 x 3: 403, 787 (j 32); 3: 851
#   regnet_y_400mf, one 3x3 per block, stride 2 in each stage's first: stem 3 (j 2); 7 (j 4);
#     15 (j 8), +2 x 16 -> 47; 63 (j 16), +5 x 32 -> 223; 255 (j 32), +5 x 64 -> 575
#   convnext_tiny: stem 4/4 -> r 4, j 4, unit 0 centred at 1.5; 3 blocks of 7x7: +72 -> 76;
#     2/2: 80, j 8, centre +0.5 x 4 -> 3.5; +144 -> 224; 232, j 16, 7.5; +864 -> 1096;
#     1112, j 32, 15.5; +576 -> 1688; effective padding (1688 - 1) / 2 - 15.5 = 828
#   densenet121: 2071, jump 32, effective padding 1021 (tests/test_graph_models.py)
#   swin_t, context local (attention within 7-unit windows adds 6 j; stage 4's window is the
#     whole 7 x 7 map, beyond any window: nothing): 4 (j 4); 2 x 24 -> 52; merge 2/2: 56,
#     j 8; +96 -> 152; 160, j 16; +6 x 96 -> 736; 752, j 32; stage 4 -> 752
# SE gates read the whole map, as does Swin's stage-4 attention: global in context "global".
HAND_RF = [
    ("mobilenet_v3_large", "global", (595, 32, 297)),
    ("efficientnet_b0", "global", (851, 32, 425)),
    ("convnext_tiny", (1688, 32, 828), (1688, 32, 828)),
    ("regnet_y_400mf", "global", (575, 32, 287)),
    ("densenet121", (2071, 32, 1021), (2071, 32, 1021)),
    ("swin_t", "global", (752, 32, None)),  # fields depend on the window position
]


@pytest.mark.parametrize(("name", "global_", "local"), HAND_RF)
def test_hand_derived_receptive_fields(name, global_, local):
    trunk = rfa.zoo.get(name, trunk=True)
    for context, expected in (("global", global_), ("local", local)):
        rf = rfa.receptive_field(trunk, 224, context=context)
        if expected == "global":
            assert rf.size == ("global", "global")
        else:
            size, jump, padding = expected
            assert (rf.size, rf.stride, rf.padding) == ((size,) * 2, (jump,) * 2, (padding,) * 2)


# --------------------------------------------------------------------------- torchvision
@pytest.fixture(scope="module")
def torchvision_model():
    """``get(name)``: torchvision's model and its trace at 224 x 224, each made once.

    ``verify=False``: from_torch's check of its trace against the model's autograd support
    (its own contract, tests/test_from_torch.py; it passes for all six) costs up to twice
    the trace here; the trace is compared with an independent definition, exactly."""
    tv = import_torchvision()
    import torch

    made = {}

    def get(name):
        if name not in made:
            torch.manual_seed(0)  # the weights do not change routes; fixed for determinism
            model = getattr(tv.models, name)().eval()
            made[name] = (model, rfa.from_torch(model, 224, verify=False))
        return made[name]

    return get


def _before_global_pool(traced):
    """The traced graph up to the node its head's global pool reads (the model's features):
    the last global pool (squeeze-and-excitation pools come earlier), then dense layers."""
    nodes = traced.nodes
    pool = max(i for i, n in enumerate(nodes) if isinstance(n.layer, rfa.GlobalPool))
    assert nodes[pool].inputs == (pool - 1,)
    assert all(isinstance(n.layer, rfa.Dense) for n in nodes[pool + 1 :])
    return rfa.Network.from_nodes(nodes[:pool])


def _assert_same(ours, theirs):
    assert ours.shape == theirs.shape
    assert ours.tolist() == theirs.tolist()  # Python integers: exact beyond 2**53


@pytest.mark.torch
@pytest.mark.parametrize("context", ["global", "local"])
@pytest.mark.parametrize("name", NAMES)
def test_routes_and_coverage_are_torchvisions(name, context, torchvision_model):
    _, traced = torchvision_model(name)
    ours, trunk = rfa.zoo.get(name), rfa.zoo.get(name, trunk=True)
    theirs = _before_global_pool(traced)
    assert rfa.output_shape(theirs, 224) == rfa.output_shape(trunk, 224) == (7, 7)

    def exact(f, net, *args):
        return f(net, 224, *args, exact=True, context=context)

    # the centre logit reads every unit of the last map through the global pool
    _assert_same(exact(rfa.routes, ours), exact(rfa.routes, traced))
    for unit in ["center", (0, 0)]:
        _assert_same(exact(rfa.routes, trunk, unit), exact(rfa.routes, theirs, unit))
    _assert_same(exact(rfa.coverage, trunk), exact(rfa.coverage, theirs))


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
def test_counts_are_autograd_of_the_ones_weight_graph(name):
    # DESIGN section 9: gates as sums, global pools and norms over space as sums over the
    # map, attention as sums over each token's (shifted) window; 96 = 4 * 24 leaves Swin's
    # last stage windows wider than its map
    from .oracles import torch_grad

    for net in (rfa.zoo.get(name), rfa.zoo.get(name, trunk=True)):
        shape = (96, 96)
        coverage = rfa.coverage(net, shape)
        assert coverage.max() > 2**53  # the oracle's float64 rounds: compare to rounding
        np.testing.assert_allclose(torch_grad(net, shape), coverage, rtol=1e-13, atol=0)
        np.testing.assert_allclose(
            torch_grad(net, shape, "center"), rfa.routes(net, shape), rtol=1e-13, atol=0
        )


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
def test_weighted_layers_are_torchvisions_one_for_one(name, torchvision_model):
    # every Conv2d and Linear module of torchvision's model is one weighted layer of the
    # entry, named by its module path (a Conv2dNormActivation's convolution, its child 0, by
    # the block's path), with the same weights; Conv2d windows equal; a Linear's inputs are
    # the layer's fan-in (a 1x1 convolution's input channels per group, or the 2x2 patch
    # merging's four taps of C channels)
    from torch import nn

    model, _ = torchvision_model(name)
    theirs = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    net = rfa.zoo.get(name)
    params = {r.layer.split(": ")[0]: r.params for r in rfa.geometry(net, 224).rows[1:]}
    matched = []
    for node in net.expand(2).nodes[1:]:
        layer = node.layer
        if not isinstance(layer, (rfa.Conv, rfa.Dense)):
            continue
        path = layer.name if layer.name in theirs else f"{layer.name}.0"
        m = theirs[path]
        matched.append(path)
        assert params[layer.name] == sum(p.numel() for p in m.parameters()), path
        assert layer.bias == (m.bias is not None), path
        if isinstance(m, nn.Conv2d):
            window = (layer.kernel_size, layer.stride, layer.dilation, layer.groups)
            assert window == (m.kernel_size, m.stride, m.dilation, m.groups), path
            assert tuple(p for p, _ in layer.padding) == m.padding, path
            assert (layer.in_channels, layer.out_channels) == (m.in_channels, m.out_channels)
        elif isinstance(layer, rfa.Dense):
            assert layer.out_features == m.out_features, path
        else:
            fan_in = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
            assert (fan_in, layer.out_channels) == (m.in_features, m.out_features), path
    assert sorted(matched) == sorted(theirs)
    weights = sum(p.numel() for m in theirs.values() for p in m.parameters())
    assert rfa.geometry(net, 224).params == weights == PARAMS[name]


@pytest.mark.torch
def test_patch_merging_is_torchvisions_where_the_blocks_are_whole():
    # swin_t's first patch merging (features.2, 96 channels) against torchvision's
    # PatchMerging(96) alone: equal at even sizes in both contexts; at an odd size in context
    # local only, as the zoo's docstring says: torchvision pads the last row and column of
    # blocks, whose pixels reach their token along as many routes as the block has pixels
    # (2, and 1 in the corner), where the gates count 4
    from torch import nn

    tv = import_torchvision()
    merge = [x for x in rfa.zoo.get("swin_t").layers if x.name.startswith("features.2.")]
    assert [x.name for x in merge] == ["features.2.reduction", "features.2.norm"]
    ours = rfa.Network([rfa.Conv(1, in_channels=1, out_channels=96), *merge])
    model = nn.Sequential(
        nn.Conv2d(1, 96, 1),
        tv.ops.misc.Permute([0, 2, 3, 1]),
        tv.models.swin_transformer.PatchMerging(96),
        tv.ops.misc.Permute([0, 3, 1, 2]),
    )
    for shape in [(8, 10), (7, 9)]:
        theirs = rfa.from_torch(model, shape)
        for context in ("global", "local"):
            got = rfa.coverage(ours, shape, exact=True, context=context)
            want = rfa.coverage(theirs, shape, exact=True, context=context)
            if shape == (7, 9) and context == "global":
                more = np.zeros(shape, dtype=int)
                more[6, :] = more[:, 8] = 2
                more[6, 8] = 3
                assert (got - want).tolist() == more.tolist()
            else:
                _assert_same(got, want)


# --------------------------------------------------------------------------- CLI
def test_cli_summaries_read_gates_attention_and_graphs():
    runner = CliRunner()

    def summary(name):
        result = runner.invoke(main, ["zoo", name])
        assert result.exit_code == 0, result.output
        return result.output

    # hand-derived fields and totals above; SE products and attention counted by kind
    out = summary("mobilenet_v3_large")
    assert (
        "(features.16, 7x7x960) at 224x224: global; in context 'local': size 595, jump 32, "
        "effective padding 297" in out
    )
    # by kind: 62 convolutions (the stem, 2 in the first block, 3 in each of the other 14,
    # 2 in each of the 8 SE, the last), 9 global pools (8 SE and the head), 2 dense
    assert "layers: 73 (62 conv, 9 global pool, 2 fc); merges: 10 additions, 8 products" in out
    assert f"parameters: {PARAMS['mobilenet_v3_large']:,}" in out
    out = summary("swin_t")
    assert "global; in context 'local': size 752, jump 32\n" in out
    # 12 blocks of 2 residual additions, 3 patch mergings (products), 12 attention layers
    assert "12 attention" in out and "merges: 24 additions, 3 products" in out
    out = summary("densenet121")
    assert "spec: none (a graph the compact grammar cannot write)" in out
    # each of the 58 dense layers reads a concatenation (the first of its block, of one
    # map), and each of the 4 blocks ends in one
    assert "merges: 62 concatenations" in out
    assert "(features.denseblock4, 7x7x1024) at 224x224: size 2071, jump 32" in out
