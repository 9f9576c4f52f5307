"""The bad-input catalogue: every way a user can ask for something impossible.

Each case states what the API raises (type and a message fragment naming the thing) and, where
the CLI can express it, the arguments that must exit with status 2, print exactly one line
``Error: ...`` with the same fragment, show no traceback and leave no output file behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

import rfanalysis as rfa
from rfanalysis.cli import main

from .cli_checks import assert_one_line_error


@dataclass(frozen=True)
class Case:
    id: str
    api: Callable[[], Any] | None
    error: type[Exception]
    message: str
    cli: tuple[str, ...] | None = None


CASES = [
    # ---- kernel, stride, dilation, padding
    Case(
        "kernel zero",
        lambda: rfa.Conv(0),
        ValueError,
        "`kernel_size` must be >= 1, got 0",
        ("coverage", "conv0", "--input", "8"),
    ),
    Case(
        "kernel negative",
        lambda: rfa.Conv(-3),
        ValueError,
        "`kernel_size` must be >= 1",
        ("coverage", "conv-3", "--input", "8"),
    ),
    Case(
        "kernel non-integer",
        lambda: rfa.Conv(2.5),
        TypeError,
        "`kernel_size` must be an integer, got 2.5",
        ("coverage", "conv2.5", "--input", "8"),
    ),
    Case("kernel bool", lambda: rfa.Conv(True), TypeError, "must be an integer, got True"),
    Case(
        "stride zero",
        lambda: rfa.Conv(3, 0),
        ValueError,
        "`stride` must be >= 1, got 0",
        ("coverage", "conv3s0", "--input", "8"),
    ),
    Case(
        "dilation zero",
        lambda: rfa.Conv(3, dilation=0),
        ValueError,
        "`dilation` must be >= 1, got 0",
        ("coverage", "conv3d0", "--input", "8"),
    ),
    Case("padding negative", lambda: rfa.Conv(3, padding=-1), ValueError, "`padding` must be >= 0"),
    Case(
        "padding word",
        lambda: rfa.Conv(3, padding="half"),
        ValueError,
        "one of 'same', 'valid', 'full'; got 'half'",
    ),
    Case(
        "padding pair of three",
        lambda: rfa.Conv(3, padding=((1, 2, 3),)),
        ValueError,
        "pairs must be (before, after)",
    ),
    Case(
        "reflect padding too large",
        lambda: rfa.coverage("conv3p3:reflect", (3,)),
        ValueError,
        "layer 1 (conv3p3:reflect): reflect padding must be smaller than the input (pad < n); "
        "got padding 3 for input 3",
        ("coverage", "conv3p3:reflect", "--input", "3"),
    ),
    Case(
        "symmetric padding too large",
        lambda: rfa.coverage("conv5p4:symmetric", (3,)),
        ValueError,
        "symmetric padding must not exceed the input (pad <= n); got padding 4",
        ("coverage", "conv5p4:symmetric", "--input", "3"),
    ),
    Case(
        "circular padding too large",
        lambda: rfa.coverage("conv5p4:circular", (3,)),
        ValueError,
        "circular padding must not exceed the input",
    ),
    Case(
        "unknown padding mode",
        lambda: rfa.Conv(3, padding_mode="mirror"),
        ValueError,
        "`padding_mode` must be one of zeros, reflect, symmetric, replicate, circular; "
        "got 'mirror'",
        ("coverage", "conv3:mirror", "--input", "8"),
    ),
    Case(
        "padding mode on a pool",
        lambda: rfa.parse("maxpool2:reflect"),
        ValueError,
        "a padding mode applies to conv and blurpool only",
        ("coverage", "maxpool2:reflect", "--input", "8"),
    ),
    Case(
        "unknown pool kind",
        lambda: rfa.Pool(2, kind="median"),
        ValueError,
        "Pool `kind` must be one of max, avg, lp; got 'median'",
        ("coverage", "medianpool2", "--input", "8"),
    ),
    Case(
        "tconv output padding",
        lambda: rfa.ConvTranspose(3, 2, output_padding=2),
        ValueError,
        "`output_padding` (2) must be smaller than stride or dilation (2)",
        ("coverage", "tconv3s2o2", "--input", "8"),
    ),
    Case(
        "tconv crops everything",
        lambda: rfa.coverage("tconv3p3", (1,)),
        ValueError,
        "layer 1 (tconv3p3): output size -3 for input 1",
    ),
    Case(
        "upsample zero",
        lambda: rfa.Upsample(0),
        ValueError,
        "`scale_factor` must be a positive number, got 0",
        ("coverage", "up0", "--input", "8"),
    ),
    Case(
        "dense zero",
        lambda: rfa.Dense(0),
        ValueError,
        "`out_features` must be >= 1",
        ("coverage", "fc0", "--input", "8"),
    ),
    Case(
        "groups do not divide",
        lambda: rfa.Conv(3, in_channels=6, groups=4),
        ValueError,
        "`in_channels` (6) must be divisible by `groups` (4)",
    ),
    Case(
        "mismatched tuple lengths",
        lambda: rfa.Conv((3, 3), stride=(1, 1, 1)),
        ValueError,
        "`kernel_size` has 2, `stride` has 3",
    ),
    # ---- stacks and shapes
    Case(
        "output collapses",
        lambda: rfa.coverage("conv3,conv3s2,conv5", (8,)),
        ValueError,
        "layer 3 (conv5): output size 0 for input 2",
        ("coverage", "conv3,conv3s2,conv5", "--input", "8"),
    ),
    Case(
        "kernel larger than padded input",
        lambda: rfa.routes("conv9p2", (4,)),
        ValueError,
        "layer 1 (conv9p2): output size 0 for input 4",
        ("routes", "conv9p2", "--input", "4"),
    ),
    Case(
        "1-D network on 2-D input",
        lambda: rfa.coverage(rfa.Network([rfa.Conv((3,))]), (8, 8)),
        ValueError,
        "is 1-D but the input 8x8 has 2 spatial axes",
    ),
    Case(
        "2-D spec on 3-D input",
        lambda: rfa.coverage("conv3x3", (8, 8, 8)),
        ValueError,
        "is 2-D but the input 8x8x8 has 3 spatial axes",
        ("coverage", "conv3x3", "--input", "8,8,8"),
    ),
    Case(
        "layers of different ndim",
        lambda: rfa.parse("conv3x3,conv3x3x3"),
        ValueError,
        "layer 2 (conv3) is 3-D but layer 1 (conv3) is 2-D",
    ),
    Case(
        "spatial layer after dense",
        lambda: rfa.coverage("fc10,conv3", 8),
        ValueError,
        "layer 2 (conv3): a spatial layer cannot follow a dense layer",
        ("coverage", "fc10,conv3", "--input", "8"),
    ),
    Case(
        "residual branches disagree",
        lambda: rfa.coverage("res(conv3)", (8,)),
        ValueError,
        "branch outputs must have the same spatial shape to be merged; got body 6, shortcut 8",
        ("coverage", "res(conv3)", "--input", "8"),
    ),
    Case(
        "concat branches disagree",
        lambda: rfa.coverage("cat(conv1|conv3)", (8,)),
        ValueError,
        "got branch1 8, branch2 6",
    ),
    Case(
        "channel mismatch",
        lambda: rfa.geometry(
            rfa.Network([rfa.Conv(3, out_channels=8), rfa.Conv(3, in_channels=4)]), 16
        ),
        ValueError,
        "layer 2 (conv3): in_channels is 4 but the previous layer gives 8",
    ),
    Case(
        "input size zero",
        lambda: rfa.coverage("conv3", (0, 8)),
        ValueError,
        "`input_shape` sizes must be >= 1",
        ("coverage", "conv3", "--input", "0"),
    ),
    Case(
        "input size non-integer",
        lambda: rfa.coverage("conv3", (8.5, 8)),
        TypeError,
        "`input_shape` must contain integers, got 8.5",
        ("coverage", "conv3", "--input", "8.5"),
    ),
    Case(
        "net of the wrong type",
        lambda: rfa.coverage(42, 8),
        TypeError,
        "`net` must be a Network, a layer, a sequence of layers, a spec string, a zoo name, "
        "a spec file, a torch.nn.Module, an ONNX model or file, or a model reference "
        "('torchvision:resnet18', 'path/file.py:make_model'); got int",
    ),
    # ---- units
    Case(
        "unit out of range",
        lambda: rfa.routes("conv3", 8, unit=(9, 0)),
        ValueError,
        "`unit` (9, 0) is out of range on axis 0",
        ("routes", "conv3", "--input", "8", "--unit", "9,0"),
    ),
    Case(
        "unit with too few coordinates",
        lambda: rfa.routes("conv3", 8, unit=(1,)),
        ValueError,
        "`unit` (1,) has 1 coordinates but",
        ("routes", "conv3", "--input", "8", "--unit", "1"),
    ),
    Case(
        "unit non-integer",
        lambda: rfa.routes("conv3", 8, unit=(1.5, 2)),
        TypeError,
        "`unit` coordinates must be integers",
    ),
    Case(
        "unit unknown word",
        lambda: rfa.routes("conv3", 8, unit="middle"),
        ValueError,
        "`unit` must be 'center' or an index tuple, got 'middle'",
        ("routes", "conv3", "--input", "8", "--unit", "middle"),
    ),
    # ---- number systems and memory
    Case(
        "exact and log",
        lambda: rfa.coverage("conv3", 8, exact=True, log=True),
        ValueError,
        "`exact` and `log` are exclusive",
    ),
    Case(
        "float overflow",
        lambda: rfa.coverage("conv3p1*700", 9),
        ValueError,
        "route counts exceed the float64 range (about 1.8e308); use log=True",
        ("coverage", "conv3p1*700", "--input", "9", "--linear"),
    ),
    Case(
        "more memory than available",
        lambda: rfa.coverage("conv3p1", (10**6, 10**6)),
        ValueError,
        "of memory but only",
        ("coverage", "conv3p1", "--input", "1000000"),
    ),
    # ---- spec strings
    Case(
        "empty spec",
        lambda: rfa.parse(""),
        ValueError,
        "the spec is empty",
        ("coverage", "", "--input", "8"),
    ),
    Case(
        "unbalanced parenthesis",
        lambda: rfa.parse("res(conv3p1"),
        ValueError,
        "expected ')' to close 'res(' at position 11 (found end of spec)",
        ("coverage", "res(conv3p1", "--input", "8"),
    ),
    Case(
        "extra parenthesis",
        lambda: rfa.parse("conv3)"),
        ValueError,
        "expected ',' or the end of the spec at position 5 (found ')')",
    ),
    Case(
        "unknown token",
        lambda: rfa.parse("relu3"),
        ValueError,
        "at position 0 (found 'relu3')",
        ("coverage", "relu3", "--input", "8"),
    ),
    Case(
        "repeat zero",
        lambda: rfa.parse("conv3p1*0"),
        ValueError,
        "a repeat count must be at least 1 at position 8",
        ("coverage", "conv3p1*0", "--input", "8"),
    ),
    Case(
        "trailing comma",
        lambda: rfa.parse("conv3,"),
        ValueError,
        "expected a layer",
        ("coverage", "conv3,", "--input", "8"),
    ),
    Case(
        "cat with one branch",
        lambda: rfa.parse("cat(conv1)"),
        ValueError,
        "'cat(' needs at least two branches",
    ),
    Case("spec not a string", lambda: rfa.parse(3), TypeError, "`text` must be a spec string"),
    # ---- spec files
    Case("malformed JSON", None, ValueError, "not valid JSON"),
    Case("wrong-schema JSON", None, ValueError, "`type` must be one of conv"),
    Case("malformed TOML", None, ValueError, "not valid TOML"),
    Case("wrong-schema TOML", None, ValueError, "missing key(s) kernel_size"),
    Case("missing spec file", None, FileNotFoundError, "No such file"),
    # ---- influence, compare, blind spots, theory
    Case(
        "trials zero",
        lambda: rfa.influence("conv3", 8, trials=0),
        ValueError,
        "`trials` must be >= 1, got 0",
        ("compare", "conv3", "--input", "8", "--trials", "0"),
    ),
    Case(
        "channels zero",
        lambda: rfa.influence("conv3", 8, channels=0),
        ValueError,
        "`channels` must be >= 1, got 0",
        ("compare", "conv3", "--input", "8", "--channels", "0"),
    ),
    Case(
        "unknown weights",
        lambda: rfa.influence("conv3", 8, weights="zeros"),
        ValueError,
        "`weights` must be one of ones, normal, uniform or a callable",
    ),
    Case(
        "unknown activation",
        lambda: rfa.influence("conv3", 8, activation="tanh"),
        ValueError,
        "`activation` must be None or 'relu', got 'tanh'",
    ),
    Case(
        "unknown backend",
        lambda: rfa.influence("conv3", 8, backend="jax"),
        ValueError,
        "`backend` must be one of numpy, torch; got 'jax'",
    ),
    Case(
        "unknown reduction",
        lambda: rfa.influence("conv3", 8, reduction="max"),
        ValueError,
        "`reduction` must be one of abs, signed, square; got 'max'",
    ),
    Case(
        "influence unit out of range",
        lambda: rfa.influence("conv3", 8, unit=(9, 9)),
        ValueError,
        "`unit` (9, 9) is out of range on axis 0",
        ("compare", "conv3", "--input", "8", "--unit", "9,9"),
    ),
    Case(
        "compare shapes differ",
        lambda: rfa.compare([1, 2], [1, 2, 3]),
        ValueError,
        "`analytic` and `empirical` must have the same shape, got (2,) and (3,)",
    ),
    Case(
        "compare log10 input",
        lambda: rfa.compare([0.0, -float("inf")], [1, 1]),
        ValueError,
        "contains inf or NaN (pass counts, not log10 counts)",
    ),
    Case(
        "blind spots of a collapsing stack",
        lambda: rfa.blind_spots("conv9", 4),
        ValueError,
        "layer 1 (conv9): output size 0 for input 4",
        ("blindspots", "conv9", "--input", "4"),
    ),
    Case(
        "repeated layer must keep the size",
        lambda: rfa.theory.limit_profile("conv3", (8,)),
        ValueError,
        "a repeated layer must keep the size; it maps 8 to 6",
    ),
    Case(
        "theory outside its closed form",
        lambda: rfa.theory.gaussian_limit("res(conv3p1)"),
        ValueError,
        "the closed form covers chains of convolutions",
    ),
    # ---- zoo
    Case(
        "zoo head not a bool",
        lambda: rfa.zoo.get("resnet50", trunk="no"),
        TypeError,
        "`trunk` must be a bool, got 'no'",
    ),
    Case(
        "zoo head at another size",
        lambda: rfa.coverage(rfa.zoo.get("resnet50"), 64),
        ValueError,
        "layer 19 (avgpool: avgpool7): output size 0",
        ("coverage", "resnet50", "--input", "64"),
    ),
    Case(
        "unknown zoo name",
        lambda: rfa.zoo.get("lenett"),
        ValueError,
        "unknown zoo network 'lenett'; did you mean 'lenet'?",
        ("zoo", "lenett"),
    ),
    Case(
        "unknown part of a zoo network",
        None,
        ValueError,
        "unknown part 'head' of zoo network 'resnet50': write 'resnet50' for the whole network "
        "or 'resnet50:trunk'",
        ("blindspots", "resnet50:head", "--input", "225"),
    ),
    Case(
        "zoo typo as a spec",
        None,
        ValueError,
        "did you mean 'lenet'",
        ("coverage", "lenett", "--input", "28"),
    ),
]

FILES = {
    "malformed JSON": ("n.json", "{"),
    "wrong-schema JSON": ("n.json", '{"layers": [{"type": "convolution", "kernel_size": 3}]}'),
    "malformed TOML": ("n.toml", "layers = [ { type = 'conv' "),
    "wrong-schema TOML": ("n.toml", "layers = [ { type = 'conv' } ]"),
    "missing spec file": None,
}


def test_catalogue_is_large():
    assert len(CASES) >= 60
    assert sum(c.cli is not None for c in CASES) + len(FILES) >= 30


@pytest.mark.parametrize("case", [c for c in CASES if c.api is not None], ids=lambda c: c.id)
def test_api_raises_a_clear_error(case):
    with pytest.raises(case.error) as info:
        case.api()
    assert case.message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", FILES, ids=str)
def test_spec_file_errors(tmp_path, name):
    case = next(c for c in CASES if c.id == name)
    if FILES[name] is None:
        path = tmp_path / "missing.json"
    else:
        path = tmp_path / FILES[name][0]
        path.write_text(FILES[name][1])
    with pytest.raises(case.error) as info:
        rfa.load(path)
    assert case.message in str(info.value)
    result = CliRunner().invoke(
        main, ["coverage", str(path), "--input", "8", "-o", str(tmp_path / "out.npy")]
    )
    assert_one_line_error(result, case.message)
    assert not (tmp_path / "out.npy").exists()


def _cli_params():
    for case in CASES:
        if case.cli is None:
            continue
        writes = case.cli[0] in ("coverage", "routes")
        for suffix in (".npy", ".png", ".json") if writes else (None,):
            yield pytest.param(case, suffix, id=f"{case.id}{suffix or ''}")


@pytest.mark.parametrize(("case", "suffix"), list(_cli_params()))
def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, case, suffix):
    monkeypatch.chdir(tmp_path)
    args = list(case.cli) + (["-o", f"out{suffix}"] if suffix else [])
    result = CliRunner().invoke(main, args)
    assert_one_line_error(
        result, case.message if case.id not in _CLI_MESSAGE else _CLI_MESSAGE[case.id]
    )
    assert list(tmp_path.iterdir()) == []


# where the CLI catches a mistake before the library sees it, it says so in its own words
_CLI_MESSAGE = {
    "input size zero": "sizes must be >= 1",
    "input size non-integer": "expected integers like 224 or 224,224; got '8.5'",
    "unit with too few coordinates": "`unit` (1,) has 1 coordinates but",
    "unit unknown word": "expected 'center' or ROW,COL; got 'middle'",
    "zoo typo as a spec": "did you mean 'lenet'",
    "kernel negative": "cannot parse spec 'conv-3'",
    "kernel non-integer": "cannot parse spec 'conv2.5'",
    "unknown pool kind": "at position 0 (found 'medianpool2')",
    "unknown padding mode": "expected a padding mode (zeros, reflect, symmetric, replicate, "
    "circular) at position 6 (found 'mirror')",
    "residual branches disagree": "got body 6x6, shortcut 8x8 for input 8x8",
    # the advice names the CLI's options, not the API's (tests/test_cli_outputs.py)
    "float overflow": "route counts exceed the float64 range (about 1.8e308); ",
}


_CLI_MESSAGE.update(
    {
        "trials zero": "Invalid value for '--trials': 0 is not in the range x>=1",
        "channels zero": "Invalid value for '--channels': 0 is not in the range x>=1",
    }
)


@pytest.mark.torch
def test_torch_model_with_an_unsupported_layer():
    import torch
    from torch import nn

    class Spectrum(nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).real

    # a Fourier transform has no built-in rule
    model = nn.Sequential(nn.Conv2d(1, 4, 3), Spectrum())
    with pytest.raises(ValueError) as info:
        rfa.from_torch(model, (16, 16))
    assert "no mapping for torch.fft.fft2 at node 'fft_fft2' inside module '1'" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    from rfanalysis import _io

    target = tmp_path / "coverage.npy"

    class Broken:
        def __init__(self, fd, mode):
            self.fh = open(fd, mode)  # closed in __exit__

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io.os, "fdopen", Broken)
    result = CliRunner().invoke(main, ["coverage", "conv3", "--input", "8", "-o", str(target)])
    assert_one_line_error(result, "No space left on device")
    assert list(tmp_path.iterdir()) == []  # neither the file nor the temporary file


@pytest.mark.parametrize(
    ("spec", "shape", "smallest", "out"),
    [
        # n -> floor((n - 3) / 2) + 1 five times ends at 1 from 2**6 - 1 = 63 up
        ("conv3s2*5", (8, 8), "63x63", (1, 1)),
        # torchvision's ResNet-50 head pools 7x7 at jump 32: 193 -> 97 -> 49 -> 25 -> 13 -> 7
        ("resnet50", (16, 16), "193x193", (1000,)),
        # only the short axis is too small: 25 -> 13 -> 7 -> 3 -> 1 after the stem and two s2
        # (the long one: 40 -> 20 -> 10 -> 4 -> 1)
        (
            "conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*2,conv3s2,conv3s2",
            (10, 40),
            "25x40",
            (1, 1),
        ),
        # reflect padding 2 needs 3 pixels to mirror: 3 + 2 + 2 - 2 = 5 outputs
        ("conv3p2:reflect", (2,), "3", (5,)),
    ],
)
def test_too_small_says_the_smallest_input_that_works(spec, shape, smallest, out):
    with pytest.raises(ValueError, match=r"the input is too small|must be smaller") as info:
        rfa.coverage(spec, shape)
    assert str(info.value).endswith(f"; the smallest input that works is {smallest}")
    works = tuple(int(v) for v in smallest.split("x"))
    assert rfa.output_shape(spec, works) == out  # it does work, with the sizes above
    one_less = [tuple(v - (a == b) for b, v in enumerate(works)) for a in range(len(works))]
    for shape_below in one_less:
        if shape_below != tuple(max(v, w) for v, w in zip(shape_below, shape)):
            continue  # an axis the input was already large enough on
        with pytest.raises(ValueError):
            rfa.coverage(spec, shape_below)


@pytest.mark.torch
def test_wrong_in_channels_is_one_line_and_prints_nothing(capfd):
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3))
    with pytest.raises(ValueError) as info:
        rfa.from_torch(model, (16, 16), in_channels=1)
    message = str(info.value)
    assert "\n" not in message
    assert "expected input[1, 1, 16, 16] to have 3 channels, but got 1 channels" in message
    assert message.endswith("check `input_shape` and `in_channels`")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_too_small_before_a_global_operation_or_an_interpolation():
    # attention does not act axis by axis: the size search stops, the error stays a ValueError
    with pytest.raises(ValueError, match=r"layer 1 \(conv7\): output size 0 for input 3"):
        rfa.routes([rfa.Conv(7), rfa.Attention()], (3, 3))
    # 3x3 convolution then x0.1: floor(0.1 (n - 2)) >= 1 from n = 12
    net = [rfa.Conv(3), rfa.Interpolate(scale_factor=0.1)]
    with pytest.raises(ValueError, match=r"; the smallest input that works is 12x12$"):
        rfa.routes(net, (5, 5))
    assert rfa.output_shape(net, (12, 12)) == (1, 1)
    with pytest.raises(ValueError, match="output size 0 for input 9"):
        rfa.output_shape(net, (11, 11))


@pytest.mark.parametrize("context", ["global", "local"])
def test_gates_naming_missing_operands_are_refused_in_every_context(context):
    x = rfa.Input()
    net = rfa.Network(rfa.Mul(gates=(5,))(rfa.Conv(3, padding=1)(x), rfa.GlobalPool()(x)))
    message = r"layer 3 \(mul\): `gates` \[5\] name operands it does not have \(2\)"
    with pytest.raises(ValueError, match=message):
        rfa.routes(net, (8, 8), context=context)
    with pytest.raises(ValueError, match=message):
        rfa.geometry(net)
