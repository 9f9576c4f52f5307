"""Architecture zoo: exact layer-for-layer definitions of networks people use.

An architecture name is not a definition: each entry's docstring names the exact layout it
follows (torchvision's unless stated), and published receptive-field numbers are only a test
for the layout they were computed on. Entries named ``*_tfslim`` follow the TF-Slim model
library, the layout behind the receptive-field table of Araujo, Norris & Sim (Distill, 2019).

What the layer model leaves out, every entry leaves out the same way: batch/group/layer
normalisation, activations and dropout are not layers here (they change neither routes nor
geometry; their parameters are not counted), and a torchvision ``AdaptiveAvgPool2d`` is
written as the fixed pooling it performs at the entry's standard input (see
:func:`standard_input`).

>>> "lenet" in names()
True
>>> get("lenet").spec()
'conv5,maxpool2,fc10'
>>> standard_input("resnet50")
(224, 224)
"""

from __future__ import annotations

from collections.abc import Callable

from ._graph import Concat, Network, Residual
from ._ops import Conv, ConvTranspose, Dense, Layer, Pool
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
        layers and a global pool before them (a pool that reduces the standard input to one
        unit, torchvision's adaptive average pool). The trunk accepts other input sizes,
        which the head, exact only at :func:`standard_input`, does not.

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
    layers = list(net.layers)
    while layers and isinstance(layers[-1], Dense):
        layers.pop()
    if len(layers) < len(net.layers) and isinstance(layers[-1], Pool):
        from ._engine import output_shape

        if output_shape(Network(layers), standard_input) == (1,) * len(standard_input):
            layers.pop()  # the global pool belongs to the head
    return net if len(layers) == len(net.layers) else Network(layers, name=f"{net.name}{TRUNK}")


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
    A torchvision head written as adaptive pooling is exact at this size only: the zoo
    writes it as a pool whose kernel is the feature map's size here.

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
