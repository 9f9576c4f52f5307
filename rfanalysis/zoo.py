"""Architecture zoo: exact layer-for-layer definitions of networks people use.

An architecture name is not a definition: each entry's docstring names the exact layout it
follows (torchvision's unless stated), and published receptive-field numbers are only a test
for the layout they were computed on. Entries named ``*_tfslim`` follow the TF-Slim model
library, the layout behind the receptive-field table of Araujo, Norris & Sim (Distill, 2019).

Entries: LeNet; torchvision's AlexNet, VGG-11/16/19, ResNet-18/34/50/101/152, MobileNetV2,
Inception-v3, MobileNetV3-Large, EfficientNet-B0, ConvNeXt-T, RegNetY-400MF, DenseNet-121 and
Swin-T; TF-Slim's AlexNet v2, ResNet-50/101/152 v1 and MobileNet v1; the U-Net (valid and
padded); the wav2vec 2.0 feature encoder and a WaveNet stack.

What the layer model leaves out, every entry leaves out the same way: batch normalisation,
layer normalisation over the channels of a position, activations, dropout, stochastic depth
and layer scales are not layers here (they change neither routes nor geometry; their
parameters are not counted). A linear layer over the channels of each position (ConvNeXt's
and Swin's) is the 1x1 convolution it is; squeeze-and-excitation is a product whose scale is
a gate (:class:`~rfanalysis.Mul`); DenseNet is a graph. torchvision's ``AdaptiveAvgPool2d``
before a classifier is a :class:`~rfanalysis.GlobalPool` in the entries from
MobileNetV3-Large on, and the fixed pooling it performs at the standard input in the older
ones (see :func:`standard_input`).

>>> "lenet" in names()
True
>>> get("lenet").spec()
'conv5,maxpool2,fc10'
>>> standard_input("resnet50")
(224, 224)
"""

from __future__ import annotations

from collections.abc import Callable

from ._graph import Concat, Input, Network, Parallel, Residual
from ._ops import (
    Attention,
    Cat,
    Conv,
    ConvTranspose,
    Dense,
    GlobalPool,
    Layer,
    Mul,
    Pool,
)
from ._suggest import did_you_mean

_REGISTRY: dict[str, Callable[[], Network]] = {}
_STANDARD_INPUT: dict[str, tuple[int, ...]] = {}


def _entry(
    name: str, standard_input: tuple[int, ...]
) -> Callable[[Callable[[], Network]], Callable[[], Network]]:
    def register(build: Callable[[], Network]) -> Callable[[], Network]:
        if name in _REGISTRY:  # pragma: no cover - programming error
            raise RuntimeError(f"zoo entry {name!r} defined twice")
        _REGISTRY[name] = build
        _STANDARD_INPUT[name] = standard_input
        return build

    return register


def names() -> list[str]:
    """Names of all zoo entries.

    Returns
    -------
    list of str
        Sorted alphabetically.

    Examples
    --------
    >>> names()[:2]
    ['alexnet', 'alexnet_v2_tfslim']
    """
    return sorted(_REGISTRY)


#: the suffix that names an entry's feature trunk (the network without its classifier head)
TRUNK = ":trunk"


def _split(name: object) -> tuple[str, bool]:
    """The one validator of every entry point: ``(registered name, trunk?)`` for ``"name"``
    or ``"name:trunk"``, or a clear error."""
    if not isinstance(name, str):
        raise TypeError(f"zoo name must be a string, got {type(name).__name__}")
    base, sep, part = name.partition(":")
    if base not in _REGISTRY:
        raise ValueError(
            f"unknown zoo network {base!r}{did_you_mean(base, names())} "
            "(rfanalysis.zoo.names() lists all)"
        )
    if sep and part != TRUNK[1:]:
        raise ValueError(
            f"unknown part {part!r} of zoo network {base!r}: write {base!r} for the whole "
            f"network or '{base}{TRUNK}' for it without its classifier head"
        )
    return base, bool(sep)


def _check_name(name: object) -> str:
    return _split(name)[0]


def is_name(text: str) -> bool:
    """Whether ``text`` names a zoo entry (``"resnet50"`` or ``"resnet50:trunk"``)."""
    base, sep, part = text.partition(":")
    return base in _REGISTRY and (not sep or part == TRUNK[1:])


def get(name: str, *, trunk: bool = False) -> Network:
    """The network registered as ``name``.

    Parameters
    ----------
    name : str
        One of :func:`names`, or ``"NAME:trunk"`` for its feature trunk.
    trunk : bool
        ``True`` (or the ``:trunk`` suffix) drops the classifier head: the trailing dense
        layers and the pool before them if it reduces the standard input to one unit (a
        :class:`~rfanalysis.GlobalPool`, or the fixed pool some entries write for
        torchvision's adaptive average pool). The trunk accepts input sizes that such a
        fixed pool, exact only at :func:`standard_input`, does not.

    Returns
    -------
    Network
        A new, exact layer-for-layer definition; layers carry names (``layer4.2.conv2``) and
        channel counts, so :func:`rfanalysis.geometry` tables read well and count parameters.

    Raises
    ------
    ValueError
        For an unknown name, with the closest matches.
    TypeError
        If ``name`` is not a string.

    Examples
    --------
    >>> get("alexnet").spec()
    'conv11s4p2,maxpool3s2,conv5p2,maxpool3s2,conv3p1*3,maxpool3s2,fc4096*2,fc1000'
    >>> [layer.name for layer in get("resnet50:trunk").layers[-2:]]
    ['layer4.1', 'layer4.2']
    """
    base, suffix = _split(name)
    if not isinstance(trunk, bool):
        raise TypeError(f"`trunk` must be a bool, got {trunk!r}")
    net = _REGISTRY[base]()
    return _trunk(net, _STANDARD_INPUT[base]) if trunk or suffix else net


def _trunk(net: Network, standard_input: tuple[int, ...]) -> Network:
    """``net`` without its head: the chain of dense layers that ends it, and the pool before
    them if that pool leaves one unit at the standard input (a :class:`GlobalPool`, or a
    fixed pool written for torchvision's ``AdaptiveAvgPool2d((1, 1))``)."""
    nodes = net.nodes
    last = end = len(nodes) - 1  # the trunk ends at node ``end``

    def chained(i: int, kinds: tuple[type, ...]) -> bool:
        return isinstance(nodes[i].layer, kinds) and nodes[i].inputs == (i - 1,)

    while chained(end, (Dense,)):
        end -= 1
    if end < last and chained(end, (Pool, GlobalPool)):
        from ._engine import output_shape

        pooled = output_shape(Network.from_nodes(nodes[: end + 1]), standard_input)
        if pooled == (1,) * len(standard_input):
            end -= 1
    if end == last:
        return net
    name = f"{net.name}{TRUNK}"
    if net.is_tree:  # keep the sequence and its blocks: the head is its last layers
        return Network(net.layers[: end - last], name=name)
    return Network.from_nodes(nodes[: end + 1], name=name)


def describe(name: str) -> str:
    """The first paragraph of the entry's docstring: its source and layout, on one line.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    str

    Examples
    --------
    >>> describe("wav2vec2_feature_encoder").startswith("The wav2vec 2.0 feature encoder")
    True
    """
    doc = _REGISTRY[_check_name(name)].__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def standard_input(name: str) -> tuple[int, ...]:
    """The input shape an entry is defined for, and its published numbers refer to.

    Parameters
    ----------
    name : str
        One of :func:`names`.

    Returns
    -------
    tuple of int
        One size per spatial axis. ImageNet classifiers: 224 x 224 (Inception-v3:
        299 x 299); LeNet: 28 x 28; U-Net: 572 x 572 (the paper's tile; 512 x 512 for the
        padded variant); the audio front ends: 16000 samples (one second at 16 kHz).

    Notes
    -----
    The older torchvision entries (AlexNet to Inception-v3) write the head's adaptive pooling
    as a pool whose kernel is the feature map's size here, exact at this size only; the
    newer ones write it as a :class:`~rfanalysis.GlobalPool`, exact at every size.

    Examples
    --------
    >>> standard_input("inception_v3"), standard_input("wavenet")
    ((299, 299), (16000,))
    """
    return _STANDARD_INPUT[_check_name(name)]


# --------------------------------------------------------------------------- building blocks
def _conv(
    cin: int,
    cout: int,
    kernel: int | tuple[int, ...],
    stride: int = 1,
    padding: object = 0,
    *,
    name: str,
    bias: bool = True,
    groups: int = 1,
) -> Conv:
    return Conv(
        kernel,
        stride,
        padding,
        in_channels=cin,
        out_channels=cout,
        groups=groups,
        bias=bias,
        name=name,
    )


def _crop(amount: int, name: str) -> ConvTranspose:
    """A centre crop of ``amount`` units on both sides of every axis.

    A transposed convolution with a 1-tap kernel, stride 1 and padding ``amount`` sends input
    unit ``i`` to output ``i - amount`` and drops the outermost ``amount`` units on each side:
    exactly a crop (one route per kept unit). Its channel counts are left unset: a crop has
    no weights, so the geometry table shows its parameter count as unknown rather than
    counting a kernel.
    """
    return ConvTranspose(1, 1, amount, name=name)


# --------------------------------------------------------------------------- LeNet
@_entry("lenet", (28, 28))
def lenet() -> Network:
    """The LeNet-style network of the classic tutorial (Nielsen, "Neural Networks and Deep
    Learning", 2015, chapter 6): a 28x28 input, a 5x5 convolution with 20 feature maps (24x24),
    2x2 max pooling (12x12) and a dense layer with 10 outputs.

    Parameters: 20 x (5 x 5 + 1) = 520 in the convolution, 2880 x 10 + 10 = 28,810 in the
    dense layer.
    """
    return Network(
        [
            Conv(5, in_channels=1, out_channels=20, name="conv1"),
            Pool(2, name="pool1"),
            Dense(10, name="fc"),
        ],
        name="lenet",
    )


# --------------------------------------------------------------------------- AlexNet
@_entry("alexnet", (224, 224))
def alexnet() -> Network:
    """AlexNet as torchvision defines it (torchvision/models/alexnet.py, the "one weird
    trick" variant of Krizhevsky 2014): conv11/4 pad 2, 3x3/2 max pools, 5x5 and 3x3 convs
    with padding, three dense layers.

    torchvision's ``AdaptiveAvgPool2d((6, 6))`` is the identity at 224 x 224 (the features
    are already 6 x 6) and is left out, so the first dense layer sees 256 x 6 x 6 inputs as in
    torchvision; at other input sizes it sees whatever the features give. Dropout and ReLU
    are not layers here. Receptive field of the last feature map: 195, jump 32, effective
    padding 66 (TF-Slim's ``alexnet_v2`` has 64: its first convolution is VALID).
    """
    return Network(
        [
            _conv(3, 64, 11, 4, 2, name="conv1"),
            Pool(3, 2, name="pool1"),
            _conv(64, 192, 5, 1, 2, name="conv2"),
            Pool(3, 2, name="pool2"),
            _conv(192, 384, 3, 1, 1, name="conv3"),
            _conv(384, 256, 3, 1, 1, name="conv4"),
            _conv(256, 256, 3, 1, 1, name="conv5"),
            Pool(3, 2, name="pool5"),
            Dense(4096, name="fc6"),
            Dense(4096, name="fc7"),
            Dense(1000, name="fc8"),
        ],
        name="alexnet",
    )


@_entry("alexnet_v2_tfslim", (224, 224))
def alexnet_v2_tfslim() -> Network:
    """TF-Slim's ``alexnet_v2`` (tensorflow/models research/slim/nets/alexnet.py) up to its
    ``pool5`` end point: conv1 11x11/4 VALID, 3x3/2 VALID max pools, SAME 5x5 and 3x3 convs.

    This is the layout of the ``alexnet_v2`` rows of Araujo, Norris & Sim (Distill 2019) and
    google-research/receptive_field RECEPTIVE_FIELD_TABLE.md (pool5: 195, stride 32,
    padding 64). The classifier (fc6 as a 5x5 VALID convolution, fc7, fc8) is omitted: the
    published numbers describe ``pool5``.
    """
    return Network(
        [
            _conv(3, 64, 11, 4, "valid", name="conv1"),
            Pool(3, 2, name="pool1"),
            _conv(64, 192, 5, 1, "same", name="conv2"),
            Pool(3, 2, name="pool2"),
            _conv(192, 384, 3, 1, "same", name="conv3"),
            _conv(384, 384, 3, 1, "same", name="conv4"),
            _conv(384, 256, 3, 1, "same", name="conv5"),
            Pool(3, 2, name="pool5"),
        ],
        name="alexnet_v2_tfslim",
    )


# --------------------------------------------------------------------------- VGG
_VGG_CFGS: dict[str, list[int | str]] = {
    # torchvision/models/vgg.py cfgs "A", "D", "E"; "M" is a 2x2/2 max pool
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", *[256] * 3, "M", *[512] * 3, "M", *[512] * 3, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", *[256] * 4, "M", *[512] * 4, "M", *[512] * 4, "M"],
}


def _vgg(name: str) -> Network:
    layers: list[Layer] = []
    cin, block, index = 3, 1, 1
    for v in _VGG_CFGS[name]:
        if isinstance(v, int):
            layers.append(_conv(cin, v, 3, 1, 1, name=f"conv{block}_{index}"))
            cin, index = v, index + 1
        else:
            layers.append(Pool(2, 2, name=f"pool{block}"))
            block, index = block + 1, 1
    layers += [Dense(4096, name="fc6"), Dense(4096, name="fc7"), Dense(1000, name="fc8")]
    return Network(layers, name=name)


@_entry("vgg11", (224, 224))
def vgg11() -> Network:
    """VGG-11 (configuration "A", Simonyan & Zisserman 2015) as torchvision defines it
    (torchvision/models/vgg.py, ``vgg11``, no batch norm): 3x3 convs with padding 1, 2x2/2
    max pools, three dense layers.

    torchvision's ``AdaptiveAvgPool2d((7, 7))`` is the identity at 224 x 224 and is left out
    (the first dense layer sees 512 x 7 x 7 inputs there). Up to ``pool5`` the layout equals
    TF-Slim's ``vgg_a`` (SAME 3x3 stride-1 convs pad 1 on both sides; VALID 2x2/2 pools).
    """
    return _vgg("vgg11")


@_entry("vgg16", (224, 224))
def vgg16() -> Network:
    """VGG-16 (configuration "D", Simonyan & Zisserman 2015) as torchvision defines it
    (torchvision/models/vgg.py, ``vgg16``, no batch norm): 3x3 convs with padding 1, 2x2/2
    max pools, three dense layers.

    torchvision's ``AdaptiveAvgPool2d((7, 7))`` is the identity at 224 x 224 and is left out.
    Up to ``pool5`` the layout equals TF-Slim's ``vgg_16``.
    """
    return _vgg("vgg16")


@_entry("vgg19", (224, 224))
def vgg19() -> Network:
    """VGG-19 (configuration "E", Simonyan & Zisserman 2015) as torchvision defines it
    (torchvision/models/vgg.py, ``vgg19``, no batch norm): 3x3 convs with padding 1, 2x2/2
    max pools, three dense layers.

    torchvision's ``AdaptiveAvgPool2d((7, 7))`` is the identity at 224 x 224 and is left out.
    """
    return _vgg("vgg19")


# --------------------------------------------------------------------------- ResNet
def _basic_block(cin: int, planes: int, stride: int, name: str) -> Residual:
    shortcut = None
    if stride != 1 or cin != planes:
        shortcut = [_conv(cin, planes, 1, stride, bias=False, name=f"{name}.downsample")]
    body = [
        _conv(cin, planes, 3, stride, 1, bias=False, name=f"{name}.conv1"),
        _conv(planes, planes, 3, 1, 1, bias=False, name=f"{name}.conv2"),
    ]
    return Residual(body, shortcut, name=name)


def _bottleneck(cin: int, planes: int, stride: int, name: str) -> Residual:
    # torchvision's Bottleneck strides the 3x3 convolution (the "ResNet v1.5" layout)
    out = planes * 4
    shortcut = None
    if stride != 1 or cin != out:
        shortcut = [_conv(cin, out, 1, stride, bias=False, name=f"{name}.downsample")]
    body = [
        _conv(cin, planes, 1, bias=False, name=f"{name}.conv1"),
        _conv(planes, planes, 3, stride, 1, bias=False, name=f"{name}.conv2"),
        _conv(planes, out, 1, bias=False, name=f"{name}.conv3"),
    ]
    return Residual(body, shortcut, name=name)


def _resnet(name: str, bottleneck: bool, blocks: tuple[int, int, int, int]) -> Network:
    make = _bottleneck if bottleneck else _basic_block
    expansion = 4 if bottleneck else 1
    layers: list[Layer] = [
        _conv(3, 64, 7, 2, 3, bias=False, name="conv1"),
        Pool(3, 2, 1, name="maxpool"),
    ]
    cin = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for i in range(n):
            stride = 2 if stage > 1 and i == 0 else 1
            layers.append(make(cin, planes, stride, f"layer{stage}.{i}"))
            cin = planes * expansion
    # AdaptiveAvgPool2d((1, 1)): a 7x7 average at 224 x 224, where layer4 is 7 x 7
    layers += [Pool(7, kind="avg", name="avgpool"), Dense(1000, name="fc")]
    return Network(layers, name=name)


_RESNET_DOC = """ResNet-{depth} (He et al. 2016) as torchvision defines it
    (torchvision/models/resnet.py, ``resnet{depth}``: {block}, blocks [{counts}]): stem
    conv7/2 pad 3 and max pool 3/2 pad 1, four stages, global average pool and a dense
    layer.

    Each block is a :class:`Residual`: body 3x3-3x3 (BasicBlock) or 1x1-3x3-1x1 with the
    stride on the 3x3 (Bottleneck, the layout also called ResNet v1.5); the shortcut is the
    identity or, where the stride or width changes, torchvision's ``downsample`` (a 1x1
    convolution with the block's stride, then BN). Convolutions have no bias (BN follows
    each; BN is not a layer here, so torchvision's parameter count exceeds the geometry's by
    two per BN channel). The head's ``AdaptiveAvgPool2d((1, 1))`` is a 7x7 average pool,
    exact at 224 x 224 (layer4 is 7 x 7 for inputs 193 to 224).
    """


def _doc(
    template: str, **fields: object
) -> Callable[[Callable[[], Network]], Callable[[], Network]]:
    """Give a builder a docstring made from a template shared by a family of entries."""

    def set_doc(build: Callable[[], Network]) -> Callable[[], Network]:
        build.__doc__ = template.format(**fields)
        return build

    return set_doc


@_entry("resnet18", (224, 224))
@_doc(_RESNET_DOC, depth=18, block="BasicBlock", counts="2, 2, 2, 2")
def resnet18() -> Network:
    return _resnet("resnet18", False, (2, 2, 2, 2))


@_entry("resnet34", (224, 224))
@_doc(_RESNET_DOC, depth=34, block="BasicBlock", counts="3, 4, 6, 3")
def resnet34() -> Network:
    return _resnet("resnet34", False, (3, 4, 6, 3))


@_entry("resnet50", (224, 224))
@_doc(_RESNET_DOC, depth=50, block="Bottleneck", counts="3, 4, 6, 3")
def resnet50() -> Network:
    return _resnet("resnet50", True, (3, 4, 6, 3))


@_entry("resnet101", (224, 224))
@_doc(_RESNET_DOC, depth=101, block="Bottleneck", counts="3, 4, 23, 3")
def resnet101() -> Network:
    return _resnet("resnet101", True, (3, 4, 23, 3))


@_entry("resnet152", (224, 224))
@_doc(_RESNET_DOC, depth=152, block="Bottleneck", counts="3, 8, 36, 3")
def resnet152() -> Network:
    return _resnet("resnet152", True, (3, 8, 36, 3))


def _slim_bottleneck(cin: int, base: int, stride: int, name: str) -> Residual:
    depth = base * 4
    shortcut: list[Layer] | None
    if cin != depth:
        shortcut = [_conv(cin, depth, 1, stride, bias=False, name=f"{name}.shortcut")]
    elif stride != 1:
        # resnet_utils.subsample: a 1x1 max pool with the unit's stride
        shortcut = [Pool(1, stride, "same", name=f"{name}.shortcut")]
    else:
        shortcut = None
    # resnet_utils.conv2d_same: SAME for stride 1, explicit symmetric padding for stride 2
    conv2_padding: object = "same" if stride == 1 else 1
    body = [
        _conv(cin, base, 1, bias=False, name=f"{name}.conv1"),
        _conv(base, base, 3, stride, conv2_padding, bias=False, name=f"{name}.conv2"),
        _conv(base, depth, 1, bias=False, name=f"{name}.conv3"),
    ]
    return Residual(body, shortcut, name=name)


def _resnet_tfslim(name: str, units: tuple[int, int, int, int]) -> Network:
    layers: list[Layer] = [
        _conv(3, 64, 7, 2, 3, bias=False, name="conv1"),
        Pool(3, 2, "same", name="pool1"),
    ]
    cin = 64
    strides = (2, 2, 2, 1)  # TF-Slim strides the *last* unit of blocks 1-3
    for block, (base, n, stride) in enumerate(zip((64, 128, 256, 512), units, strides), 1):
        for u in range(1, n + 1):
            unit_stride = stride if u == n else 1
            layers.append(_slim_bottleneck(cin, base, unit_stride, f"block{block}.unit_{u}"))
            cin = base * 4
    return Network(layers, name=name)


_TFSLIM_RESNET_DOC = """ResNet-{depth} v1 as TF-Slim defines it (tensorflow/models
    research/slim/nets/resnet_v1.py ``resnet_v1_{depth}`` with resnet_utils.py), up to the
    ``block4`` end point: the layout of the ``resnet_v1_{depth}`` rows of Araujo, Norris & Sim
    (Distill 2019) and google-research/receptive_field.

    Differences from torchvision's ResNet-{depth}: each block's stride sits in its *last* unit
    (blocks of {units} units), whose shortcut is then a 1x1 max pool with that stride
    (``subsample``); pool1 is a 3x3/2 max pool with TF "SAME" padding, which depends on the
    input size. The stride-2 3x3 convolutions use ``conv2d_same`` (explicit symmetric padding
    1), the others SAME. Global pooling and logits are omitted (``global_pool=False``,
    ``num_classes=None``).
    """


@_entry("resnet50_tfslim", (224, 224))
@_doc(_TFSLIM_RESNET_DOC, depth=50, units="3, 4, 6, 3")
def resnet50_tfslim() -> Network:
    return _resnet_tfslim("resnet50_tfslim", (3, 4, 6, 3))


@_entry("resnet101_tfslim", (224, 224))
@_doc(_TFSLIM_RESNET_DOC, depth=101, units="3, 4, 23, 3")
def resnet101_tfslim() -> Network:
    return _resnet_tfslim("resnet101_tfslim", (3, 4, 23, 3))


@_entry("resnet152_tfslim", (224, 224))
@_doc(_TFSLIM_RESNET_DOC, depth=152, units="3, 8, 36, 3")
def resnet152_tfslim() -> Network:
    return _resnet_tfslim("resnet152_tfslim", (3, 8, 36, 3))


# --------------------------------------------------------------------------- MobileNet
@_entry("mobilenet_v2", (224, 224))
def mobilenet_v2() -> Network:
    """MobileNetV2 (Sandler et al. 2018) as torchvision defines it
    (torchvision/models/mobilenetv2.py, width 1.0): stem conv3/2 pad 1, 17 inverted residual
    blocks (1x1 expand, 3x3 depthwise with the stride, 1x1 linear projection; an identity
    shortcut when the stride is 1 and the width is unchanged), a 1x1 conv to 1280 channels,
    global average pool and a dense layer.

    Convolutions have no bias (BN follows each; BN is not a layer here). The head's
    ``adaptive_avg_pool2d(x, (1, 1))`` is a 7x7 average pool, exact at 224 x 224.
    """
    setting = [  # t, c, n, s (torchvision's inverted_residual_setting)
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    layers: list[Layer] = [_conv(3, 32, 3, 2, 1, bias=False, name="features.0")]
    cin, index = 32, 1
    for t, c, n, s in setting:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            name = f"features.{index}"
            body: list[Layer] = []
            if t != 1:
                body.append(_conv(cin, hidden, 1, bias=False, name=f"{name}.expand"))
            body += [
                _conv(hidden, hidden, 3, stride, 1, bias=False, groups=hidden, name=f"{name}.dw"),
                _conv(hidden, c, 1, bias=False, name=f"{name}.project"),
            ]
            if stride == 1 and cin == c:
                layers.append(Residual(body, name=name))
            else:
                layers += body
            cin, index = c, index + 1
    layers += [
        _conv(cin, 1280, 1, bias=False, name=f"features.{index}"),
        Pool(7, kind="avg", name="avgpool"),
        Dense(1000, name="classifier"),
    ]
    return Network(layers, name="mobilenet_v2")


@_entry("mobilenet_v1_tfslim", (224, 224))
def mobilenet_v1_tfslim() -> Network:
    """MobileNet v1 (Howard et al. 2017) as TF-Slim defines it (tensorflow/models
    research/slim/nets/mobilenet_v1.py ``mobilenet_v1_base``, depth multiplier 1.0) up to
    ``Conv2d_13_pointwise``: a 3x3/2 convolution and 13 depthwise-separable layers (3x3
    depthwise with the stride, 1x1 pointwise), every convolution TF "SAME".

    The layout of the ``mobilenet_v1`` rows of Araujo, Norris & Sim (Distill 2019). With
    stride 2, TF's SAME pads ``max(k - s, 0)`` in total on even inputs and ``k - 1`` on odd
    ones, the extra unit at the end, so the effective padding depends on the input size.
    Convolutions have no bias (BN follows each); the weights total 3,185,088 (the module
    docstring's table). The classifier (avg pool, 1x1 logits) is omitted.
    """
    # (stride, depth) of Conv2d_1 .. Conv2d_13 (_CONV_DEFS)
    defs = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)]
    defs += [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
    layers: list[Layer] = [_conv(3, 32, 3, 2, "same", bias=False, name="Conv2d_0")]
    cin = 32
    for i, (stride, depth) in enumerate(defs, start=1):
        layers += [
            _conv(
                cin, cin, 3, stride, "same", bias=False, groups=cin, name=f"Conv2d_{i}_depthwise"
            ),
            _conv(cin, depth, 1, 1, "same", bias=False, name=f"Conv2d_{i}_pointwise"),
        ]
        cin = depth
    return Network(layers, name="mobilenet_v1_tfslim")


# --------------------------------------------------------------------------- Inception-v3
def _bc(
    cin: int,
    cout: int,
    kernel: int | tuple[int, int],
    name: str,
    *,
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
) -> Conv:
    """torchvision's BasicConv2d: a bias-free convolution (then BN and ReLU)."""
    return _conv(cin, cout, kernel, stride, padding, bias=False, name=name)


def _avg3(name: str) -> Pool:
    # F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
    return Pool(3, 1, 1, kind="avg", name=name)


def _inception_a(cin: int, pool_features: int, n: str) -> Concat:
    return Concat(
        [_bc(cin, 64, 1, f"{n}.branch1x1")],
        [_bc(cin, 48, 1, f"{n}.branch5x5_1"), _bc(48, 64, 5, f"{n}.branch5x5_2", padding=2)],
        [
            _bc(cin, 64, 1, f"{n}.branch3x3dbl_1"),
            _bc(64, 96, 3, f"{n}.branch3x3dbl_2", padding=1),
            _bc(96, 96, 3, f"{n}.branch3x3dbl_3", padding=1),
        ],
        [_avg3(f"{n}.avg_pool"), _bc(cin, pool_features, 1, f"{n}.branch_pool")],
        name=n,
    )


def _inception_b(cin: int, n: str) -> Concat:
    return Concat(
        [_bc(cin, 384, 3, f"{n}.branch3x3", stride=2)],
        [
            _bc(cin, 64, 1, f"{n}.branch3x3dbl_1"),
            _bc(64, 96, 3, f"{n}.branch3x3dbl_2", padding=1),
            _bc(96, 96, 3, f"{n}.branch3x3dbl_3", stride=2),
        ],
        [Pool(3, 2, name=f"{n}.max_pool")],
        name=n,
    )


def _inception_c(cin: int, c7: int, n: str) -> Concat:
    row, col = (1, 7), (7, 1)  # kernel (height, width)
    prow, pcol = (0, 3), (3, 0)
    return Concat(
        [_bc(cin, 192, 1, f"{n}.branch1x1")],
        [
            _bc(cin, c7, 1, f"{n}.branch7x7_1"),
            _bc(c7, c7, row, f"{n}.branch7x7_2", padding=prow),
            _bc(c7, 192, col, f"{n}.branch7x7_3", padding=pcol),
        ],
        [
            _bc(cin, c7, 1, f"{n}.branch7x7dbl_1"),
            _bc(c7, c7, col, f"{n}.branch7x7dbl_2", padding=pcol),
            _bc(c7, c7, row, f"{n}.branch7x7dbl_3", padding=prow),
            _bc(c7, c7, col, f"{n}.branch7x7dbl_4", padding=pcol),
            _bc(c7, 192, row, f"{n}.branch7x7dbl_5", padding=prow),
        ],
        [_avg3(f"{n}.avg_pool"), _bc(cin, 192, 1, f"{n}.branch_pool")],
        name=n,
    )


def _inception_d(cin: int, n: str) -> Concat:
    return Concat(
        [_bc(cin, 192, 1, f"{n}.branch3x3_1"), _bc(192, 320, 3, f"{n}.branch3x3_2", stride=2)],
        [
            _bc(cin, 192, 1, f"{n}.branch7x7x3_1"),
            _bc(192, 192, (1, 7), f"{n}.branch7x7x3_2", padding=(0, 3)),
            _bc(192, 192, (7, 1), f"{n}.branch7x7x3_3", padding=(3, 0)),
            _bc(192, 192, 3, f"{n}.branch7x7x3_4", stride=2),
        ],
        [Pool(3, 2, name=f"{n}.max_pool")],
        name=n,
    )


def _inception_e(cin: int, n: str) -> Concat:
    def split(c: int, name: str) -> Concat:
        # torch.cat([1x3 conv, 3x1 conv]) of the same input
        return Concat(
            [_bc(c, 384, (1, 3), f"{name}a", padding=(0, 1))],
            [_bc(c, 384, (3, 1), f"{name}b", padding=(1, 0))],
            name=name,
        )

    return Concat(
        [_bc(cin, 320, 1, f"{n}.branch1x1")],
        [_bc(cin, 384, 1, f"{n}.branch3x3_1"), split(384, f"{n}.branch3x3_2")],
        [
            _bc(cin, 448, 1, f"{n}.branch3x3dbl_1"),
            _bc(448, 384, 3, f"{n}.branch3x3dbl_2", padding=1),
            split(384, f"{n}.branch3x3dbl_3"),
        ],
        [_avg3(f"{n}.avg_pool"), _bc(cin, 192, 1, f"{n}.branch_pool")],
        name=n,
    )


@_entry("inception_v3", (299, 299))
def inception_v3() -> Network:
    """Inception-v3 (Szegedy et al. 2016) as torchvision defines it
    (torchvision/models/inception.py, ``Inception3``): VALID stem convolutions and pools,
    Mixed_5b-5d (InceptionA), 6a (B), 6b-6e (C, with asymmetric 1x7/7x1 convolutions),
    7a (D), 7b-7c (E, whose 3x3 branches split into concatenated 1x3 and 3x1 convolutions),
    global average pool and a dense layer. Every block is a :class:`Concat` of its branches,
    average-pool branches included.

    The auxiliary classifier (``AuxLogits`` on Mixed_6e) is left out: it is a second output
    used only in training and does not feed the main output, which a single-output network
    cannot express (its 3,326,696 weights and BN parameters are in torchvision's count of
    27,161,264). Convolutions have no bias (BasicConv2d applies BN). The head's
    ``AdaptiveAvgPool2d((1, 1))`` is an 8x8 average pool, exact at 299 x 299. torchvision
    ports the TF weights and its trunk is layer for layer TF-Slim's ``inception_v3``
    (stride-1 SAME convolutions of odd size pad symmetrically, as torchvision's do).
    """
    layers: list[Layer] = [
        _bc(3, 32, 3, "Conv2d_1a_3x3", stride=2),
        _bc(32, 32, 3, "Conv2d_2a_3x3"),
        _bc(32, 64, 3, "Conv2d_2b_3x3", padding=1),
        Pool(3, 2, name="maxpool1"),
        _bc(64, 80, 1, "Conv2d_3b_1x1"),
        _bc(80, 192, 3, "Conv2d_4a_3x3"),
        Pool(3, 2, name="maxpool2"),
        _inception_a(192, 32, "Mixed_5b"),
        _inception_a(256, 64, "Mixed_5c"),
        _inception_a(288, 64, "Mixed_5d"),
        _inception_b(288, "Mixed_6a"),
        _inception_c(768, 128, "Mixed_6b"),
        _inception_c(768, 160, "Mixed_6c"),
        _inception_c(768, 160, "Mixed_6d"),
        _inception_c(768, 192, "Mixed_6e"),
        _inception_d(768, "Mixed_7a"),
        _inception_e(1280, "Mixed_7b"),
        _inception_e(2048, "Mixed_7c"),
        Pool(8, kind="avg", name="avgpool"),
        Dense(1000, name="fc"),
    ]
    return Network(layers, name="inception_v3")


# --------------------------------------------------------------------------- modern classifiers
def _make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible`` (models/_utils.py, from TF's mobilenet.py): round to
    the nearest multiple of ``divisor``, at least ``divisor``, and never down by over 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _squeeze_excitation(channels: int, squeeze: int, name: str) -> Parallel:
    """torchvision's ``SqueezeExcitation`` (ops/misc.py): ``x * sigmoid(fc2(act(fc1(avgpool
    (x)))))`` with 1x1 convolutions (biases) as ``fc1`` and ``fc2``. The scale is the gate
    (operand 1): context "local" drops its routes, which read the whole map."""
    return Parallel(
        [],
        [
            GlobalPool(name=f"{name}.avgpool"),
            _conv(channels, squeeze, 1, name=f"{name}.fc1"),
            _conv(squeeze, channels, 1, name=f"{name}.fc2"),
        ],
        merge=Mul(gates=(1,)),
        name=name,
    )


def _mbconv(
    cin: int, cout: int, kernel: int, stride: int, expanded: int, squeeze: int | None, name: str
) -> list[Layer]:
    """MobileNetV3's ``InvertedResidual`` and EfficientNet's ``MBConv`` (torchvision): a 1x1
    expansion (left out where it would keep the width), a depthwise ``kernel`` x ``kernel``
    convolution with the stride and padding ``(kernel - 1) // 2``, squeeze-and-excitation
    where ``squeeze`` is given, and a 1x1 projection, numbered ``block.0``, ``block.1``, ... as
    in ``nn.Sequential``; a residual block when the stride is 1 and the width is kept.
    Convolutions have no bias (BN follows each)."""
    body: list[Layer] = []

    def named() -> str:
        return f"{name}.block.{len(body)}"

    if expanded != cin:
        body.append(_conv(cin, expanded, 1, bias=False, name=named()))
    pad = (kernel - 1) // 2
    body.append(
        _conv(expanded, expanded, kernel, stride, pad, bias=False, groups=expanded, name=named())
    )
    if squeeze is not None:
        body.append(_squeeze_excitation(expanded, squeeze, named()))
    body.append(_conv(expanded, cout, 1, bias=False, name=named()))
    return [Residual(body, name=name)] if stride == 1 and cin == cout else body


@_entry("mobilenet_v3_large", (224, 224))
def mobilenet_v3_large() -> Network:
    """MobileNetV3-Large (Howard et al. 2019) as torchvision defines it
    (torchvision/models/mobilenetv3.py, ``mobilenet_v3_large``, width 1.0, not dilated): stem
    conv3/2 pad 1 to 16 channels, 15 inverted residual blocks (3x3 or 5x5 depthwise, eight
    with squeeze-and-excitation), a 1x1 conv to 960 channels, global average pool and two
    dense layers (1280, 1000).

    Each block is torchvision's ``InvertedResidual``: 1x1 expansion (absent in the first
    block, whose width stays 16), depthwise convolution with the stride, squeeze-and-excitation
    (a global pool and two 1x1 convolutions to ``_make_divisible(expanded // 4, 8)`` channels
    and back; their product with the map is a gate) and a 1x1 projection; a residual block
    when the stride is 1 and the width is kept. The SE convolutions have biases, the others
    none (BN follows each). Activations (ReLU, hard-swish, hard-sigmoid) are not layers here.
    The head's ``AdaptiveAvgPool2d(1)`` is a :class:`~rfanalysis.GlobalPool`, exact at every
    input size.

    Weights and biases: 5,458,632 (torchvision's 5,483,032 less two per BN channel). The
    field of ``features.16`` is global (SE reads the whole map); in context "local" it is
    595, jump 32, effective padding 297.
    """
    setting = [  # input, kernel, expanded, output, SE, stride (torchvision's bneck_conf)
        (16, 3, 16, 16, False, 1),
        (16, 3, 64, 24, False, 2),
        (24, 3, 72, 24, False, 1),
        (24, 5, 72, 40, True, 2),
        (40, 5, 120, 40, True, 1),
        (40, 5, 120, 40, True, 1),
        (40, 3, 240, 80, False, 2),
        (80, 3, 200, 80, False, 1),
        (80, 3, 184, 80, False, 1),
        (80, 3, 184, 80, False, 1),
        (80, 3, 480, 112, True, 1),
        (112, 3, 672, 112, True, 1),
        (112, 5, 672, 160, True, 2),
        (160, 5, 960, 160, True, 1),
        (160, 5, 960, 160, True, 1),
    ]
    layers: list[Layer] = [_conv(3, 16, 3, 2, 1, bias=False, name="features.0")]
    for i, (cin, k, expanded, cout, se, stride) in enumerate(setting, start=1):
        squeeze = _make_divisible(expanded // 4) if se else None
        layers += _mbconv(cin, cout, k, stride, expanded, squeeze, f"features.{i}")
    layers += [
        _conv(160, 960, 1, bias=False, name="features.16"),
        GlobalPool(name="avgpool"),
        Dense(1280, name="classifier.0"),
        Dense(1000, name="classifier.3"),
    ]
    return Network(layers, name="mobilenet_v3_large")


@_entry("efficientnet_b0", (224, 224))
def efficientnet_b0() -> Network:
    """EfficientNet-B0 (Tan & Le 2019) as torchvision defines it
    (torchvision/models/efficientnet.py, ``efficientnet_b0``: width and depth multipliers
    1.0): stem conv3/2 pad 1 to 32 channels, seven stages of 16 MBConv blocks (expansion 1
    then 6; 3x3 or 5x5 depthwise; squeeze-and-excitation in every block), a 1x1 conv to 1280
    channels, global average pool and a dense layer.

    Each block is torchvision's ``MBConv`` (``features.S.B``): 1x1 expansion (absent in
    stage 1, expansion ratio 1), depthwise convolution with the stage's stride on its first
    block, squeeze-and-excitation to ``max(1, input channels // 4)`` channels (a global pool
    and two 1x1 convolutions with biases; their product with the map is a gate) and a 1x1
    projection; a residual block when the stride is 1 and the width is kept (stochastic
    depth is an identity). Convolutions other than SE's have no bias (BN follows each);
    SiLU and sigmoid are not layers here. The head's ``AdaptiveAvgPool2d(1)`` is a
    :class:`~rfanalysis.GlobalPool`; dropout is not a layer.

    Weights and biases: 5,246,532 (torchvision's 5,288,548 less two per BN channel). The
    field of ``features.8`` is global (SE); in context "local" it is 851, jump 32, effective
    padding 425.
    """
    setting = [  # expansion, kernel, stride, input, output, blocks (torchvision's bneck_conf)
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ]
    layers: list[Layer] = [_conv(3, 32, 3, 2, 1, bias=False, name="features.0")]
    for stage, (t, k, s, cin, cout, n) in enumerate(setting, start=1):
        for b in range(n):
            stride, width = (s, cin) if b == 0 else (1, cout)
            expanded = _make_divisible(width * t)
            squeeze = max(1, width // 4)
            layers += _mbconv(width, cout, k, stride, expanded, squeeze, f"features.{stage}.{b}")
    layers += [
        _conv(320, 1280, 1, bias=False, name="features.8"),
        GlobalPool(name="avgpool"),
        Dense(1000, name="classifier.1"),
    ]
    return Network(layers, name="efficientnet_b0")


@_entry("convnext_tiny", (224, 224))
def convnext_tiny() -> Network:
    """ConvNeXt-T (Liu et al. 2022) as torchvision defines it (torchvision/models/convnext.py,
    ``convnext_tiny``): a 4x4 stride-4 patchify stem to 96 channels, four stages of 3, 3, 9
    and 3 blocks at widths 96, 192, 384 and 768, a 2x2 stride-2 convolution between stages,
    global average pool and a dense layer.

    Each block (``CNBlock``) is a residual block: a 7x7 depthwise convolution (padding 3),
    then two ``nn.Linear`` layers over the channels of each position (``block.3`` to 4x the
    width, ``block.5`` back), written here as the 1x1 convolutions they are (same routes,
    same weights). Every convolution and linear layer has a bias. The LayerNorms (over
    channels, including the head's), GELU, the layer scale (a per-channel constant factor)
    and stochastic depth are identities of space; the layer scale's 96 ... 768 parameters
    per block are not counted. The head's ``AdaptiveAvgPool2d(1)`` is a
    :class:`~rfanalysis.GlobalPool`.

    Weights and biases: 28,566,184 (torchvision's 28,589,128 less the LayerNorms' and layer
    scales' 22,944). The field of ``features.7.2``: 1688, jump 32, effective padding 828.
    """
    layers: list[Layer] = [_conv(3, 96, 4, 4, name="features.0")]
    for stage, (dim, depth) in enumerate(zip((96, 192, 384, 768), (3, 3, 9, 3))):
        index = 2 * stage + 1  # features.1, .3, .5, .7 hold the stages
        for b in range(depth):
            n = f"features.{index}.{b}"
            body = [
                _conv(dim, dim, 7, 1, 3, groups=dim, name=f"{n}.block.0"),
                _conv(dim, 4 * dim, 1, name=f"{n}.block.3"),
                _conv(4 * dim, dim, 1, name=f"{n}.block.5"),
            ]
            layers.append(Residual(body, name=n))
        if stage < 3:  # downsampling: LayerNorm2d, then the convolution
            layers.append(_conv(dim, 2 * dim, 2, 2, name=f"features.{index + 1}.1"))
    layers += [GlobalPool(name="avgpool"), Dense(1000, name="classifier.2")]
    return Network(layers, name="convnext_tiny")


@_entry("regnet_y_400mf", (224, 224))
def regnet_y_400mf() -> Network:
    """RegNetY-400MF (Radosavovic et al. 2020) as torchvision defines it
    (torchvision/models/regnet.py, ``regnet_y_400mf``: depth 16, w_0 48, w_a 27.89, w_m 2.09,
    group width 8, SE ratio 0.25): stem conv3/2 pad 1 to 32 channels, four stages of 1, 3, 6
    and 6 blocks at widths 48, 104, 208 and 440 (the widths and depths that
    ``BlockParams.from_init_params`` computes from those parameters), global average pool
    and a dense layer.

    Each block is a ``ResBottleneckBlock`` (``trunk_output.blockS.blockS-B``): body ``f`` is a
    1x1 convolution, a 3x3 grouped convolution (groups = width / 8) with the stride (2 in
    each stage's first block), squeeze-and-excitation to ``round(0.25 x the block's input
    width)`` channels (biases; a gate) and a 1x1 convolution; the shortcut is the identity
    or, in each stage's first block, ``proj``, a 1x1 convolution with the stride. Other
    convolutions have no bias (BN follows each); ReLU and sigmoid are not layers here. The
    head's ``AdaptiveAvgPool2d((1, 1))`` is a :class:`~rfanalysis.GlobalPool`.

    Weights and biases: 4,316,992 (torchvision's 4,344,144 less two per BN channel). The
    field of ``trunk_output.block4.block4-5`` is global (SE); in context "local" it is 575,
    jump 32, effective padding 287.
    """
    layers: list[Layer] = [_conv(3, 32, 3, 2, 1, bias=False, name="stem")]
    cin = 32
    for stage, (width, depth) in enumerate(zip((48, 104, 208, 440), (1, 3, 6, 6)), start=1):
        groups = width // 8
        for b in range(depth):
            n = f"trunk_output.block{stage}.block{stage}-{b}"
            stride = 2 if b == 0 else 1
            body = [
                _conv(cin, width, 1, bias=False, name=f"{n}.f.a"),
                _conv(width, width, 3, stride, 1, bias=False, groups=groups, name=f"{n}.f.b"),
                _squeeze_excitation(width, round(0.25 * cin), f"{n}.f.se"),
                _conv(width, width, 1, bias=False, name=f"{n}.f.c"),
            ]
            proj = None
            if stride != 1 or cin != width:
                proj = [_conv(cin, width, 1, stride, bias=False, name=f"{n}.proj")]
            layers.append(Residual(body, proj, name=n))
            cin = width
    layers += [GlobalPool(name="avgpool"), Dense(1000, name="fc")]
    return Network(layers, name="regnet_y_400mf")


@_entry("densenet121", (224, 224))
def densenet121() -> Network:
    """DenseNet-121 (Huang et al. 2017, DenseNet-BC) as torchvision defines it
    (torchvision/models/densenet.py, ``densenet121``: growth rate 32, blocks of 6, 12, 24 and
    16 layers, bottleneck width 4 x 32, 64 initial features): stem conv7/2 pad 3 and max pool
    3/2 pad 1, four dense blocks with transitions between them, global average pool and a
    dense layer.

    A graph, not a sequence: in each dense block every layer (a 1x1 convolution to 128
    channels, then a 3x3 convolution, padding 1, to 32) reads the concatenation of the
    block's input and all earlier layers' outputs, and the block's output concatenates them
    all (``torch.cat(features, 1)``). Transitions halve the channels with a 1x1 convolution
    and a 2x2 stride-2 average pool. Convolutions have no bias (BN precedes each; BN and
    ReLU are not layers here). The head's ``F.adaptive_avg_pool2d(out, (1, 1))`` is a
    :class:`~rfanalysis.GlobalPool`.

    Weights and biases: 7,895,208 (torchvision's 7,978,856 less two per BN channel). The
    field of ``features.denseblock4``: 2071, jump 32, effective padding 1021.
    """
    growth, bottleneck = 32, 4 * 32
    x = Input()
    y = _conv(3, 64, 7, 2, 3, bias=False, name="features.conv0")(x)
    y = Pool(3, 2, 1, name="features.pool0")(y)
    channels = 64
    for b, depth in enumerate((6, 12, 24, 16), start=1):
        block = f"features.denseblock{b}"
        maps = [y]
        for i in range(1, depth + 1):
            n = f"{block}.denselayer{i}"
            h = Cat(name=f"{n}.cat")(*maps)
            h = _conv(channels + growth * (i - 1), bottleneck, 1, bias=False, name=f"{n}.conv1")(h)
            h = _conv(bottleneck, growth, 3, 1, 1, bias=False, name=f"{n}.conv2")(h)
            maps.append(h)
        y = Cat(name=block)(*maps)
        channels += growth * depth
        if b < 4:
            t = f"features.transition{b}"
            y = _conv(channels, channels // 2, 1, bias=False, name=f"{t}.conv")(y)
            y = Pool(2, 2, kind="avg", name=f"{t}.pool")(y)
            channels //= 2
    y = GlobalPool(name="avgpool")(y)
    return Network(Dense(1000, name="classifier")(y), name="densenet121")


def _patch_merging(dim: int, name: str) -> list[Layer]:
    """torchvision's ``PatchMerging``: ``_patch_merging_pad`` (the tokens of each 2x2 block
    concatenated along the channels, after zero padding at the end of an odd axis), a
    LayerNorm over those 4 ``dim`` channels and a bias-free ``Linear(4 dim, 2 dim)``.

    The linear layer is a 2x2 stride-2 convolution with TF's "same" padding, which pads one
    unit at the end of an odd axis and none on an even one (``reduction``: the same taps and
    the same 8 dim^2 weights). The LayerNorm's statistics span the block's 4 units, a norm
    over space: in context "global" each of the 4 units reads all 4 once (itself and its
    statistics; DESIGN section 9), so every pixel of a block reaches the merged token along
    4 routes, and in context "local" along 1 (the statistics only modulate). Written as the
    reduced token gated by three copies of itself (``norm``: the statistics that the block's
    3 other units read, which read the block as the reduction does): exact wherever the
    blocks are whole, as at every stage of a 224 x 224 input (any multiple of 32); where
    torchvision pads an odd map, the last blocks' units read fewer statistics than these
    gates count.
    """
    return [
        _conv(dim, 2 * dim, 2, 2, "same", bias=False, name=f"{name}.reduction"),
        Parallel([], [], [], [], merge=Mul(gates=(1, 2, 3)), name=f"{name}.norm"),
    ]


@_entry("swin_t", (224, 224))
def swin_t() -> Network:
    """Swin-T (Liu et al. 2021) as torchvision defines it
    (torchvision/models/swin_transformer.py, ``swin_t``: patch 4, embedding 96, depths 2, 2,
    6, 2, heads 3, 6, 12, 24, window 7): a 4x4 stride-4 patch embedding, four stages of Swin
    blocks whose window attention alternates between shift 0 and shift 3, patch merging
    between stages, global average pool and a dense layer.

    Each block is two residual blocks: ``attn`` (linear ``qkv``, shifted-window attention
    with Swin's mask, linear ``proj``; :class:`~rfanalysis.Attention` follows torchvision's
    ``shifted_window_attention``, whose shift is 0 where a window covers the map, as in
    stage 4 at 224 x 224) and ``mlp`` (two linear layers, 4x the width and back). Linear
    layers act on the channels of each token and are written as 1x1 convolutions (same
    routes, same weights). An :class:`~rfanalysis.Attention` layer keeps its input's
    channels, here the 3 C of ``qkv``, where torchvision's attention returns the C of its
    values: ``proj`` is written in 3 groups, which reads those 3 C channels with
    ``proj``'s C x C weights. Patch merging (2x2 blocks concatenated along the channels,
    LayerNorm, ``Linear(4C, 2C)``) is a 2x2 stride-2 convolution with TF's "same" padding
    (torchvision pads an odd axis at the end), gated by three copies of its output: the
    LayerNorm's statistics span the block, so in context "global" each of its 4 units reads
    all 4, and a pixel reaches the merged token along 4 routes (1 in context "local"); exact
    where the blocks are whole, as at every multiple of 32. The other LayerNorms (over the
    channels of one token), GELU, dropout and stochastic depth are identities of space;
    LayerNorm parameters and the relative position bias tables are not counted. The head's
    ``AdaptiveAvgPool2d(1)`` is a :class:`~rfanalysis.GlobalPool`.

    Weights and biases: 28,240,264 (torchvision's 28,288,354 less the LayerNorms' and the
    relative position bias tables' 48,090). The field of ``features.7.1`` is global
    (stage 4's window is its whole 7 x 7 map); in context "local", where attention over the
    whole map reads only its own token, it is 752, jump 32 (the widest window's field).
    """
    layers: list[Layer] = [_conv(3, 96, 4, 4, name="features.0")]
    for stage, depth in enumerate((2, 2, 6, 2)):
        dim, index = 96 * 2**stage, 2 * stage + 1  # features.1, .3, .5, .7 hold the stages
        for b in range(depth):
            n = f"features.{index}.{b}"
            attention = [
                _conv(dim, 3 * dim, 1, name=f"{n}.attn.qkv"),
                Attention(7, 0 if b % 2 == 0 else 3, name=f"{n}.attn"),
                _conv(3 * dim, dim, 1, groups=3, name=f"{n}.attn.proj"),
            ]
            mlp = [
                _conv(dim, 4 * dim, 1, name=f"{n}.mlp.0"),
                _conv(4 * dim, dim, 1, name=f"{n}.mlp.3"),
            ]
            layers += [Residual(attention, name=f"{n}.attn_residual"), Residual(mlp, name=n)]
        if stage < 3:
            layers += _patch_merging(dim, f"features.{index + 1}")
    layers += [GlobalPool(name="avgpool"), Dense(1000, name="head")]
    return Network(layers, name="swin_t")


# --------------------------------------------------------------------------- U-Net
def _double_conv(cin: int, cout: int, padding: int, name: str) -> list[Layer]:
    return [
        _conv(cin, cout, 3, 1, padding, name=f"{name}.conv1"),
        _conv(cout, cout, 3, 1, padding, name=f"{name}.conv2"),
    ]


def _unet(name: str, padded: bool) -> Network:
    """Levels 1-4 (64..512 channels) around a 1024-channel bottleneck; each level is encoder
    convs, ``Concat(skip, deeper path)``, decoder convs, and the deeper path of level k is
    a max pool, level k + 1 and a 2x2 stride-2 up-convolution halving the channels."""
    p = 1 if padded else 0
    widths = {1: 64, 2: 128, 3: 256, 4: 512}
    # in the valid layout the skip map exceeds the upsampled one by 8, 32, 80 and 176 units at
    # levels 4..1, whatever the (valid) input size: crop half of that on each side
    crops = {4: 4, 3: 16, 2: 40, 1: 88}
    deeper: list[Layer] = [
        Pool(2, name="pool4"),
        *_double_conv(512, 1024, p, "bottleneck"),
        ConvTranspose(2, 2, in_channels=1024, out_channels=512, name="up4"),
    ]
    level_layers: list[Layer] = []
    for level in (4, 3, 2, 1):
        w = widths[level]
        skip: list[Layer] = [] if padded else [_crop(crops[level], f"crop{level}")]
        cin = widths[level - 1] if level > 1 else 1  # one input channel (grey images)
        level_layers = [
            *_double_conv(cin, w, p, f"enc{level}"),
            Concat(skip, deeper, name=f"cat{level}"),
            *_double_conv(2 * w, w, p, f"dec{level}"),
        ]
        if level > 1:
            up = ConvTranspose(2, 2, in_channels=w, out_channels=cin, name=f"up{level - 1}")
            deeper = [Pool(2, name=f"pool{level - 1}"), *level_layers, up]
    return Network([*level_layers, _conv(64, 2, 1, name="final")], name=name)


@_entry("unet", (572, 572))
def unet() -> Network:
    """U-Net as published (Ronneberger, Fischer & Brox 2015, Fig. 1): unpadded ("valid") 3x3
    convolutions, 2x2 max pools, 2x2 stride-2 up-convolutions halving the channels, skip
    connections concatenating the centre-cropped encoder map, a final 1x1 convolution to 2
    classes; 1 input channel. A 572 x 572 tile gives a 388 x 388 map.

    Each skip is ``Concat([crop], [pool, ..., up-conv])``, nested four deep. The crops
    (4, 16, 40 and 88 units per side at levels 4 to 1) are transposed convolutions with a
    1-tap kernel, padded by the crop, which is exactly a centre crop (see ``_crop``); they have
    no channel counts, so the geometry table lists their parameters as unknown and its total
    is None: the weights of all other layers total 31,030,658. Valid inputs are 16 b + 124
    for b >= 4 (the bottleneck map is b x b).
    """
    return _unet("unet", padded=False)


@_entry("unet_padded", (512, 512))
def unet_padded() -> Network:
    """The common padded U-Net: Ronneberger et al.'s layout (2015) with padding 1 in every
    3x3 convolution, so skips need no crop and the output has the input's size (for inputs
    divisible by 16), as in most PyTorch re-implementations (e.g. milesial/Pytorch-UNet with
    ``bilinear=False``, whose BatchNorm is not a layer here); 1 input channel, 2 classes.

    Same weights as ``unet`` (31,030,658); skips are ``Concat([], [pool, ..., up-conv])``.
    """
    return _unet("unet_padded", padded=True)


# --------------------------------------------------------------------------- audio
@_entry("wav2vec2_feature_encoder", (16000,))
def wav2vec2_feature_encoder() -> Network:
    """The wav2vec 2.0 feature encoder (Baevski et al. 2020, section 4.2; fairseq
    ``conv_feature_layers = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2``, BASE
    configuration with ``conv_bias=False``): seven 1-D convolutions with 512 channels, kernels
    10, 3, 3, 3, 3, 2, 2 and strides 5, 2, 2, 2, 2, 2, 2 on raw 16 kHz audio.

    Published: receptive field 400 samples (25 ms), stride 320 samples (20 ms), 49 frames per
    second. The group norm after the first convolution (``extractor_mode="default"``) is not
    a layer here.
    """
    layers: list[Layer] = [
        Conv((10,), (5,), in_channels=1, out_channels=512, bias=False, name="conv_layers.0")
    ]
    for i, k in enumerate((3, 3, 3, 3, 2, 2), start=1):
        layers.append(
            Conv((k,), (2,), in_channels=512, out_channels=512, bias=False, name=f"conv_layers.{i}")
        )
    return Network(layers, name="wav2vec2_feature_encoder")


@_entry("wavenet", (16000,))
def wavenet() -> Network:
    """A WaveNet-style stack of dilated causal convolutions (van den Oord et al. 2016,
    "WaveNet: A Generative Model for Raw Audio", section 2.1 and Fig. 3): kernel 2, dilations
    1, 2, 4, ..., 512 repeated three times, causal (padding (k - 1) d = d on the left only,
    so every output depends on the present and past samples and the length is kept).

    Published: each 1, 2, ..., 512 block has a receptive field of 1024 samples; three blocks
    give 3 x 1023 + 1 = 3070. The gated activations, residual and skip connections and
    channel widths of section 2.4 are not part of this stack (the paper gives no widths), so
    parameter counts are unknown.
    """
    dilations = [2**i for i in range(10)] * 3
    layers = [
        Conv((2,), dilation=(d,), padding=((d, 0),), name=f"block{i // 10 + 1}.dilation{d}")
        for i, d in enumerate(dilations)
    ]
    return Network(layers, name="wavenet")
