"""Model sources (DESIGN §10): every public function and command takes the same things, and
each missing package, file or callable is one clear line.

The command matrix runs each command that takes a SPEC on each kind of model source; the
counts of an imported model are checked against the spec or zoo entry it equals, written
independently of the importer.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rfanalysis as rfa
from rfanalysis import _sources
from rfanalysis.cli import main

from . import real_models
from .cli_checks import assert_one_line_error

torch = pytest.importorskip("torch")
nn = torch.nn

pytestmark = pytest.mark.torch

#: the tiny model of the file and package references, and the spec it equals
TINY = """
import torch.nn as nn

VALUE = 3


def make():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2))


def make_last():
    # a channels-last model: takes (batch, H, W, C)
    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = make()

        def forward(self, x):
            return self.body(x.permute(0, 3, 1, 2))

    return Last()


def number():
    return 3
"""
TINY_SPEC = "conv3p1,conv3s2"
SIZE = 16

COMMANDS = {
    "coverage": [],
    "routes": [],
    "geometry": [],
    "blindspots": [],
    "compare": ["--trials", "1", "--channels", "2"],
    "shift": ["--trials", "2", "--channels", "2", "--shifts", "2"],
}


def _library(name: str) -> None:
    """Import a model library as the real-model tests do (torchvision without its compiled
    operators, which no model here needs), or skip saying why it does not import (it is
    pinned in the test extra)."""
    try:
        {"torchvision": real_models.torchvision, "timm": real_models.timm}.get(
            name, lambda: importlib.import_module(name)
        )()
    except Exception as exc:  # any failure to import: say which
        pytest.skip(f"{name} does not import here: {type(exc).__name__}: {exc}")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder with tiny.py, a package rfa_i21b_models.tiny, net.json and tiny.onnx."""
    root = tmp_path_factory.mktemp("models")
    (root / "tiny.py").write_text(TINY)
    package = root / "rfa_i21b_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(TINY)
    rfa.save(TINY_SPEC, root / "net.json")
    _write_onnx(root / "tiny.onnx")
    return root


def _write_onnx(path: Path) -> None:
    """Conv 3x3 pad 1, Relu, Conv 3x3 stride 2 (= TINY_SPEC), built with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Conv", ["b", "w2"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 7, 7])],
        initializer=[w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(path))


@pytest.fixture
def in_models(models, monkeypatch):
    """Run in the models folder, its package importable."""
    monkeypatch.chdir(models)
    monkeypatch.syspath_prepend(str(models))
    return models


# --------------------------------------------------------------------------- the matrix
#: reference -> (input size, extra options, what it equals: a spec or zoo name, or None)
KINDS = {
    "spec": (TINY_SPEC, SIZE, [], TINY_SPEC),
    "zoo": ("resnet18:trunk", 32, [], "resnet18:trunk"),
    "file": ("net.json", SIZE, [], TINY_SPEC),
    "file.py:callable": ("tiny.py:make", SIZE, [], TINY_SPEC),
    "package.module:callable": ("rfa_i21b_models.tiny:make", SIZE, [], TINY_SPEC),
    "onnx": ("tiny.onnx", SIZE, [], TINY_SPEC),
    # the torchvision layout is the zoo's (DESIGN §8); timm's resnet18 is the same network;
    # the trunk, since the zoo's head is a fixed 7x7 pool (torchvision's adaptive pool at 224)
    "torchvision:": ("torchvision:resnet18", 64, ["--output-node", "layer4"], "resnet18:trunk"),
    "timm:": ("timm:resnet18", 64, ["--output-node", "layer4"], "resnet18:trunk"),
    "ultralytics:": ("ultralytics:yolov8n.yaml", 64, ["--output-node", "model.15"], None),
}


def _needs(kind: str) -> None:
    if kind.endswith(":") and not kind.startswith("file"):
        _library(kind[:-1])


def _matrix() -> list:
    cells = []
    for kind in KINDS:
        for command in COMMANDS:
            cells.append(pytest.param(kind, command, id=f"{command}-{kind}"))
    return cells


@pytest.mark.parametrize(("kind", "command"), _matrix())
def test_every_command_takes_every_kind_of_model(in_models, kind, command):
    _needs(kind)
    ref, size, extra, _ = KINDS[kind]
    args = [command, ref, "--input", str(size), *extra, *COMMANDS[command]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Error" not in result.output and result.output.strip()


@pytest.mark.parametrize("kind", [k for k in KINDS if KINDS[k][3] is not None])
def test_an_imported_model_counts_as_the_network_it_is(in_models, kind):
    """``coverage REF -o out.npy`` equals the coverage of the spec or zoo entry the model
    is, written by hand."""
    _needs(kind)
    ref, size, extra, same = KINDS[kind]
    out = in_models / f"cov-{kind.replace(':', '_').replace('.', '_')}.npy"
    result = CliRunner().invoke(main, ["coverage", ref, "--input", str(size), *extra, "-o", out])
    assert result.exit_code == 0, result.output
    expected = rfa.coverage(rfa.zoo.get(same) if rfa.zoo.is_name(same) else same, size)
    np.testing.assert_array_equal(np.load(out), expected)
    out.unlink()


def test_an_ultralytics_reference_builds_the_model_and_reaches_from_torch(in_models, monkeypatch):
    _library("ultralytics")
    seen = []

    def spy(module, input_shape, **kwargs):
        seen.append((type(module).__name__, input_shape, kwargs["output"]))
        return rfa.parse("conv3")

    monkeypatch.setattr(_sources, "from_torch", spy)
    result = CliRunner().invoke(
        main, ["geometry", "ultralytics:yolov8n.yaml", "--input", "64", "--output-node", "model.15"]
    )
    assert result.exit_code == 0, result.output
    assert seen == [("DetectionModel", 64, "model.15")]


# --------------------------------------------------------------------------- options
def test_output_node_selects_a_submodule(in_models):
    result = CliRunner().invoke(
        main, ["coverage", "tiny.py:make", "--input", "8", "--output-node", "0", "-o", "a.npy"]
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load("a.npy"), rfa.coverage("conv3p1", 8))


def test_context_local_drops_the_gate(in_models):
    gated = "conv3p1,mul(id|gap,conv1)"
    for context in ("global", "local"):
        out = f"{context}.npy"
        args = ["coverage", gated, "--input", "9", "--context", context, "-o", out]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(np.load(out), rfa.coverage(gated, 9, context=context))
    # by hand: locally each of the 81 output units reads its own 3x3 window (a corner pixel
    # is read by 4 units); globally the gate adds the whole input to every unit
    assert np.load("local.npy")[0, 0] == 4
    assert np.load("global.npy")[0, 0] > 4


def test_in_channels_reaches_the_tracer(in_models, monkeypatch):
    seen = []
    real = _sources.from_torch

    def spy(module, input_shape, **kwargs):
        seen.append(kwargs.get("in_channels"))
        return real(module, input_shape, **kwargs)

    monkeypatch.setattr(_sources, "from_torch", spy)
    result = CliRunner().invoke(
        main, ["geometry", "tiny.py:make", "--input", "8", "--in-channels", "3"]
    )
    assert result.exit_code == 0, result.output
    assert seen == [3]


def test_channels_last_models(in_models):
    args = ["coverage", "tiny.py:make_last", "--input", "8", "--layout", "channels_last"]
    result = CliRunner().invoke(main, [*args, "-o", "last.npy"])
    if "layout" in inspect.signature(_sources.from_torch).parameters:
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(np.load("last.npy"), rfa.coverage(TINY_SPEC, 8))
    else:
        assert_one_line_error(result, "from_torch traces channels-first models only")
        assert not Path("last.npy").exists()


def test_a_torch_model_without_a_size_asks_for_input(in_models):
    result = CliRunner().invoke(main, ["geometry", "tiny.py:make"])
    assert_one_line_error(result, "tiny.py:make is a torch model: give --input")


def test_model_options_are_refused_for_a_network(in_models):
    result = CliRunner().invoke(main, ["geometry", "conv3", "--in-channels", "3"])
    assert_one_line_error(result, "`in_channels` applies to a model that is imported")


# --------------------------------------------------------------------------- what is missing
MISSING = {
    # reference -> part of the one-line error
    "nothing_here.py:make": "no file 'nothing_here.py'",
    "tiny.py:nothing": "'tiny.py' has no 'nothing'",
    "tiny.py:mak": "did you mean 'make'?",
    "tiny.py:number": "gave a int, not a torch.nn.Module",
    "tiny.py:VALUE": "'VALUE' is a int, not a callable",
    "rfa_i21b_models.tiny:nothing": "module 'rfa_i21b_models.tiny' has no 'nothing'",
    "no_such_package_i21b.models:make": "no module 'no_such_package_i21b' to import",
    "missing.onnx": "no ONNX file 'missing.onnx'",
    "missing.json": "No such file or directory",
    "ultralytics:yolov8n.pt": "give a model definition (.yaml",
}


@pytest.mark.parametrize("ref", sorted(MISSING))
@pytest.mark.parametrize("command", ["coverage", "geometry"])
def test_a_missing_file_or_callable_is_one_line(in_models, ref, command, tmp_path):
    if ref.startswith("ultralytics:"):
        _fake_library(sys.modules, "ultralytics")  # refused before anything is built
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(main, [command, ref, "--input", "8", "-o", str(out / "x.csv")])
    assert_one_line_error(result, MISSING[ref], out)


@pytest.mark.parametrize(
    ("library", "ref"),
    [("timm", "timm:resnet18"), ("torchvision", "torchvision:resnet18"),
     ("ultralytics", "ultralytics:yolov8n.yaml")],
)  # fmt: skip
def test_a_missing_package_is_one_line(in_models, monkeypatch, library, ref, tmp_path):
    _sources._built.cache_clear()
    monkeypatch.setitem(sys.modules, library, None)  # `import library` fails as if absent
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(main, ["coverage", ref, "--input", "64", "-o", str(out / "x.npy")])
    assert_one_line_error(result, f"{library} is not installed: pip install {library}", out)
    with pytest.raises(ImportError, match=f"^{library} is not installed: pip install {library}"):
        rfa.coverage(ref, 64)
    _sources._built.cache_clear()


# --------------------------------------------------------------------------- library builders
def _tiny_module() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2))


def _fake_library(modules, name: str) -> list:
    """A stand-in for a model library that records how models are built (the real ones are
    checked by the matrix where they import)."""
    calls: list = []
    fake = types.ModuleType(name)
    if name == "timm":
        fake.is_model = lambda n: n == "tiny"
        fake.list_models = lambda pattern="": ["tiny"]
        fake.create_model = lambda n, **kw: calls.append((n, kw)) or _tiny_module()
        modules[name] = fake
    elif name == "torchvision":
        sub = types.ModuleType("torchvision.models")
        sub.list_models = lambda: ["tiny"]
        sub.get_model = lambda n, **kw: calls.append((n, kw)) or _tiny_module()
        fake.models = sub
        modules[name], modules["torchvision.models"] = fake, sub
    else:

        class YOLO:
            def __init__(self, n, **kw):
                calls.append((n, kw))
                if n != "tiny.yaml":
                    raise FileNotFoundError(n)
                self.model = _tiny_module()

        fake.YOLO = YOLO
        modules[name] = fake
    return calls


@pytest.mark.parametrize(
    ("library", "ref", "random_weights"),
    [("timm", "timm:tiny", {"pretrained": False}),
     ("torchvision", "torchvision:tiny", {"weights": None}),
     ("ultralytics", "ultralytics:tiny.yaml", {"verbose": False})],
)  # fmt: skip
def test_library_models_are_built_with_random_weights(monkeypatch, library, ref, random_weights):
    _sources._built.cache_clear()
    modules = dict(sys.modules)
    calls = _fake_library(modules, library)
    monkeypatch.setattr(sys, "modules", modules)
    np.testing.assert_array_equal(rfa.coverage(ref, SIZE), rfa.coverage(TINY_SPEC, SIZE))
    assert calls == [(ref.split(":")[1], random_weights)]
    bad = ref.replace("tiny", "tinny")
    with pytest.raises((ValueError, FileNotFoundError), match="tinny"):
        rfa.coverage(bad, SIZE)
    _sources._built.cache_clear()


# --------------------------------------------------------------------------- Python API
def test_the_python_api_takes_references(in_models):
    ref = "tiny.py:make"
    for call in (rfa.coverage, rfa.routes, rfa.output_shape):
        a, b = call(ref, SIZE), call(TINY_SPEC, SIZE)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert rfa.receptive_field(ref, SIZE).size == (5, 5)  # 3 + (3 - 1) * 1: by hand
    assert rfa.geometry("rfa_i21b_models.tiny:make", SIZE).rows[-1].output == (7, 7)
    np.testing.assert_array_equal(
        rfa.blind_spots(ref, SIZE).zero_mask, rfa.blind_spots(TINY_SPEC, SIZE).zero_mask
    )


def test_references_are_built_once_per_file_version(in_models):
    path = in_models / "again.py"
    path.write_text(TINY)
    a = _sources.built_module("again.py:make")
    assert _sources.built_module("again.py:make") is a
    assert rfa.from_torch(a, SIZE) is rfa.from_torch(_sources.built_module("again.py:make"), SIZE)
    path.write_text(TINY + "\n# changed\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert _sources.built_module("again.py:make") is not a


def test_influence_runs_a_referenced_module_itself(in_models):
    """influence of a module reference is the module's own gradient map (its weights), not
    the random network of its trace."""
    module = _sources.built_module("tiny.py:make")
    got = rfa.influence("tiny.py:make", SIZE, trials=1)
    np.testing.assert_array_equal(got, rfa.influence(module, SIZE, trials=1))


def test_onnx_models_and_files(in_models):
    onnx = pytest.importorskip("onnx")
    expected = rfa.coverage(TINY_SPEC, SIZE)
    np.testing.assert_array_equal(rfa.coverage("tiny.onnx", SIZE), expected)
    np.testing.assert_array_equal(rfa.coverage(Path("tiny.onnx"), SIZE), expected)
    np.testing.assert_array_equal(rfa.coverage(onnx.load("tiny.onnx"), SIZE), expected)


def test_a_spec_with_a_mode_is_not_taken_for_a_module():
    """``conv3:reflect`` has the form of ``module:callable``; it is a spec."""
    np.testing.assert_array_equal(
        rfa.coverage("conv3p1:reflect", 5),
        rfa.coverage(rfa.Conv(3, padding=1, padding_mode="reflect"), 5),
    )


def test_onnx_sources_reach_from_onnx(in_models, monkeypatch):
    """What the sources hand the ONNX importer (a stand-in here, recording its calls): the
    file's path once per file version and arguments, a ModelProto as it is, and the
    command line's options."""
    onnx = pytest.importorskip("onnx")
    calls = []

    def from_onnx(model, input_shape=None, *, output=None, context="global", verify=True):
        calls.append((model, input_shape, output, context, verify))
        return rfa.parse(TINY_SPEC)

    monkeypatch.setattr(_sources, "from_onnx", from_onnx)
    _sources._onnx_file.cache_clear()
    path = str((in_models / "tiny.onnx").resolve())
    rfa.coverage("tiny.onnx", SIZE)
    rfa.routes(Path("tiny.onnx"), SIZE)  # the same file version and arguments: cached
    assert calls == [(path, SIZE, None, "global", True)]
    proto = onnx.load("tiny.onnx")
    rfa.geometry(proto)
    assert calls[-1] == (proto, None, None, "global", True)
    args = ["geometry", "tiny.onnx", "--output-node", "a", "--context", "local"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert calls[-1] == (path, None, "a", "local", True)
    result = CliRunner().invoke(main, ["geometry", "tiny.onnx", "--in-channels", "3"])
    assert_one_line_error(result, "`in_channels` applies to torch models")
    _sources._onnx_file.cache_clear()


def test_a_mistyped_zoo_name_with_a_part_is_not_taken_for_a_module():
    with pytest.raises(ValueError, match=r"did you mean 'resnet50'"):
        rfa.coverage("resnet5:trunk", 64)


def test_a_broken_library_is_one_line(in_models, monkeypatch):
    """A library that is installed but fails to import (a compiled extension built for
    another torch) is one line naming it and its own error."""
    _sources._built.cache_clear()
    real_import = importlib.import_module

    def broken(name, *args):
        if name == "timm":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args)

    monkeypatch.setattr(_sources.importlib, "import_module", broken)
    result = CliRunner().invoke(main, ["geometry", "timm:resnet18", "--input", "64"])
    assert_one_line_error(
        result, "timm is installed but does not import (RuntimeError: operator torchvision::nms"
    )
    _sources._built.cache_clear()
