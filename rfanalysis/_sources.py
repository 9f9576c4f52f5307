"""Model sources: whatever a user gives, as a :class:`~rfanalysis.Network` (DESIGN §10).

This layer sits above the engine, the analyses and the importers, and below the public
functions, which all resolve their model argument here:

* a ``Network``, a layer, a list of layers: itself;
* spec text (``"conv3p1*4"``): the grammar;
* a ``.json`` / ``.toml`` file: :func:`~rfanalysis.load`;
* a zoo name (``"resnet50"``, ``"resnet50:trunk"``): the zoo;
* a ``torch.nn.Module``: ``from_torch`` at the call's input size;
* an ``.onnx`` file or an ``onnx.ModelProto``: ``from_onnx``;
* a model reference, ``torchvision:NAME``, ``timm:NAME``, ``ultralytics:FILE.yaml``,
  ``path/file.py:CALLABLE`` or ``package.module:CALLABLE``: the module built with random
  weights (nothing is downloaded), then ``from_torch``.

Torch traces are cached per module and input size (by ``from_torch``); modules built from a
reference are cached per reference, so a reference analysed twice is built and traced once.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import zoo
from ._graph import Network, check_context, is_torch_module
from ._importers.fromonnx import from_onnx
from ._importers.fromtorch import from_torch
from ._io import load
from ._parse import parse
from ._plan import network_of
from ._suggest import close_matches, did_you_mean

#: libraries a model reference names, and how to build a model of each with random weights
LIBRARIES = ("torchvision", "timm", "ultralytics")
LAYOUTS = ("channels_first", "channels_last")
SPEC_SUFFIXES = (".json", ".toml")

_LIBRARY_REF = re.compile(r"(?P<lib>torchvision|timm|ultralytics):(?P<name>.+)\Z", re.I)
_FILE_REF = re.compile(r"(?P<path>.+\.py):(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\Z")
_MODULE_REF = re.compile(
    r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\Z"
)


class NeedsInputShape(TypeError):
    """A torch model given without the size to trace it at (the command line asks for
    ``--input``)."""


# --------------------------------------------------------------------------- what it is
def is_onnx_model(obj: Any) -> bool:
    """Whether ``obj`` is an ``onnx.ModelProto``, without importing onnx."""
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(obj, onnx.ModelProto)


def declared_size(module: Any) -> tuple[int, ...] | None:
    """The spatial input size a model declares of itself (timm's ``pretrained_cfg``)."""
    cfg = getattr(module, "pretrained_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if isinstance(size, (tuple, list)) and len(size) > 1 and all(isinstance(v, int) for v in size):
        return tuple(size[1:])
    return None


# --------------------------------------------------------------------------- networks
def network(
    obj: Any,
    input_shape: Any = None,
    *,
    what: str = "net",
    output: str | None = None,
    context: str | None = None,
    in_channels: int | None = None,
    layout: str | None = None,
    verify: bool = True,
) -> Network:
    """``obj`` (any model source of the module docstring) as a :class:`Network`.

    Parameters
    ----------
    obj
        The model source.
    input_shape : int or tuple of int, optional
        The size a torch model is traced at (default: the size it declares, e.g. timm's
        ``pretrained_cfg``); an ONNX file's size where its spatial dimensions are symbolic.
    what : str
        The parameter's name, for errors.
    output, in_channels, layout, verify
        Passed to the importer (``from_torch`` / ``from_onnx``); ``output``, ``in_channels``
        and ``layout`` are refused for a network that is not imported from a model.
    context : {"global", "local"}, optional
        The context the network's routes, coverage and geometry use by default.

    Returns
    -------
    Network

    Raises
    ------
    ValueError, TypeError
        For a model source that is not one, with what would be; ``ImportError`` naming the
        package to install; ``FileNotFoundError`` for a missing file.
    """
    if context is not None:
        check_context(context)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"`layout` must be 'channels_first' or 'channels_last', got {layout!r}")
    options: dict[str, Any] = {"output": output, "in_channels": in_channels, "layout": layout}
    model = _model_of(obj, what)
    if is_torch_module(model):
        return _from_module(model, input_shape, what, context, verify, **options)
    if is_onnx_model(model) or isinstance(model, Path):
        return _from_onnx(model, input_shape, what, context, verify, **options)
    given = [f"`{k}`" for k, v in options.items() if v is not None]
    if given:
        raise ValueError(
            f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} to a model that "
            "is imported (a torch module, an ONNX file or a model reference), not to "
            f"{_described(obj)}"
        )
    return model if context is None else model.with_context(context)


def _model_of(obj: Any, what: str) -> Any:
    """A Network, a torch module, an ONNX model (a ``Path`` to its file or a ModelProto)."""
    if isinstance(obj, Network) or is_torch_module(obj) or is_onnx_model(obj):
        return obj
    if isinstance(obj, os.PathLike):
        path = Path(obj)
        return path if path.suffix.lower() == ".onnx" else load(path)
    if isinstance(obj, str):
        return _from_text(obj)
    try:
        return network_of(obj, what)
    except TypeError:
        raise TypeError(
            f"`{what}` must be a Network, a layer, a sequence of layers, a spec string, a zoo "
            "name, a spec file, a torch.nn.Module, an ONNX model or file, or a model reference "
            f"('torchvision:resnet18', 'path/file.py:make_model'); got {type(obj).__name__}"
        ) from None


def _described(obj: Any) -> str:
    if isinstance(obj, str):
        return repr(obj)
    return f"a {type(obj).__name__}"


def _from_text(text: str) -> Any:
    stripped = text.strip()
    lower = stripped.lower()
    if lower.endswith(SPEC_SUFFIXES):
        return load(stripped)
    if lower.endswith(".onnx"):
        path = Path(stripped)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file {stripped!r}")
        return path
    if _LIBRARY_REF.match(stripped) or _FILE_REF.match(stripped):
        return built_module(stripped)
    if zoo.is_name(stripped) or zoo.is_name(stripped.partition(":")[0]):
        return zoo.get(stripped)  # the zoo's own errors for an unknown ':part'
    try:
        return parse(text)
    except ValueError as exc:
        parse_error = exc
    ref = _MODULE_REF.match(stripped)
    top = ref["module"].partition(".")[0] if ref is not None else None
    if top is not None and importlib.util.find_spec(top) is not None:
        return built_module(stripped)
    close = close_matches(stripped.partition(":")[0], zoo.names())
    if close:
        raise ValueError(
            f"unknown network {text!r}: not a zoo name (did you mean "
            f"{' or '.join(repr(c) for c in close)}?), a spec file or a valid spec"
        ) from None
    if top is not None:
        raise ValueError(
            f"{parse_error}; nor is it a model reference 'package.module:callable': no module "
            f"{top!r} to import"
        ) from None
    raise parse_error


# --------------------------------------------------------------------------- importers
def _from_module(
    module: Any,
    input_shape: Any,
    what: str,
    context: str | None,
    verify: bool,
    output: str | None,
    in_channels: int | None,
    layout: str | None,
) -> Network:
    if input_shape is None:
        input_shape = declared_size(module)
    if input_shape is None:
        raise NeedsInputShape(
            f"`{what}` is a torch module ({type(module).__name__}): give `input_shape` (the "
            "spatial size to trace it at, e.g. (224, 224)), or trace it once with "
            "rfa.from_torch(module, input_shape) and pass the network"
        )
    kwargs: dict[str, Any] = {"output": output, "context": context or "global", "verify": verify}
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    if layout is not None:
        kwargs["layout"] = layout
    return from_torch(module, input_shape, **kwargs)


def _from_onnx(
    model: Any,
    input_shape: Any,
    what: str,
    context: str | None,
    verify: bool,
    output: str | None,
    in_channels: int | None,
    layout: str | None,
) -> Network:
    if in_channels is not None or layout is not None:
        raise ValueError(
            f"`{'in_channels' if in_channels is not None else 'layout'}` applies to torch "
            "models; an ONNX file fixes its input channels and layout"
        )
    if isinstance(model, Path):
        stat = model.stat()
        key = (str(model.resolve()), stat.st_mtime_ns, stat.st_size)
        return _onnx_file(from_onnx, key, _hashable(input_shape), output, context, verify)
    return from_onnx(model, input_shape, output=output, context=context or "global", verify=verify)


@functools.lru_cache(maxsize=16)
def _onnx_file(
    from_onnx: Callable[..., Network],
    key: tuple[str, int, int],
    input_shape: Any,
    output: str | None,
    context: str | None,
    verify: bool,
) -> Network:
    """An ONNX file's network, once per file version (path, mtime, size) and arguments."""
    return from_onnx(key[0], input_shape, output=output, context=context or "global", verify=verify)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- references
def built_module(reference: str) -> Any:
    """The torch module a model reference names, built with random weights (nothing is
    downloaded); one module per reference (and file version, for ``file.py:callable``)."""
    ref = _FILE_REF.match(reference)
    if ref is not None and not _LIBRARY_REF.match(reference):
        path = Path(ref["path"])
        if not path.is_file():
            raise FileNotFoundError(f"no file {ref['path']!r} (model reference {reference!r})")
        stat = path.stat()
        return _built(reference, (str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    return _built(reference, None)


@functools.lru_cache(maxsize=8)
def _built(reference: str, version: Any) -> Any:
    lib = _LIBRARY_REF.match(reference)
    if lib is not None:
        kind, name = lib["lib"].lower(), lib["name"]
        module = {"torchvision": _torchvision, "timm": _timm, "ultralytics": _ultralytics}[kind](
            name
        )
        return _checked(module, reference)
    file_ref = _FILE_REF.match(reference)
    if file_ref is not None:
        source = _load_file(Path(file_ref["path"]), reference)
        name, where = file_ref["name"], repr(file_ref["path"])
    else:
        mod_ref = _MODULE_REF.match(reference)
        assert mod_ref is not None
        source, name = _import(mod_ref["module"], reference), mod_ref["name"]
        where = f"module {mod_ref['module']!r}"
    return _checked(_call(source, name, where, reference), reference)


def _require(package: str, reference: str) -> Any:
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name != package.partition(".")[0]:
            raise  # the package is there but something it needs is not: its own error
        top = package.partition(".")[0]
        raise ImportError(
            f"{top} is not installed: pip install {top} (for {reference!r})"
        ) from None
    except (ImportError, RuntimeError, OSError) as exc:
        # installed but broken (a compiled extension built for another torch): say so in
        # one line, with the library's own first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ImportError(
            f"{package} is installed but does not import ({type(exc).__name__}: {first}); "
            f"reinstall it to match torch (for {reference!r})"
        ) from None


def _torchvision(name: str) -> Any:
    _require("torch", f"torchvision:{name}")
    _require("torchvision", f"torchvision:{name}")
    models = importlib.import_module("torchvision.models")
    available = models.list_models()
    if name not in available:
        raise ValueError(
            f"torchvision has no model {name!r}{did_you_mean(name, available)} "
            "(torchvision.models.list_models() lists them)"
        )
    return models.get_model(name, weights=None)


def _timm(name: str) -> Any:
    _require("torch", f"timm:{name}")
    timm = _require("timm", f"timm:{name}")
    if not timm.is_model(name):
        close = did_you_mean(name, timm.list_models(name.split("_")[0] + "*") or [])
        raise ValueError(f"timm has no model {name!r}{close} (timm.list_models() lists them)")
    return timm.create_model(name, pretrained=False)


def _ultralytics(name: str) -> Any:
    _require("torch", f"ultralytics:{name}")
    printing = np.get_printoptions()
    ultralytics = _require("ultralytics", f"ultralytics:{name}")
    np.set_printoptions(**printing)  # its import sets a float formatter for every numpy user
    if not name.lower().endswith((".yaml", ".yml")):
        raise ValueError(
            f"ultralytics:{name}: give a model definition (.yaml, e.g. 'ultralytics:yolov8n.yaml'"
            "); weight files (.pt) are not read, so that nothing is downloaded"
        )
    try:
        return ultralytics.YOLO(name, verbose=False).model
    except FileNotFoundError:
        raise FileNotFoundError(
            f"ultralytics has no model definition {name!r} (its cfg/models folder lists them)"
        ) from None


def _load_file(path: Path, reference: str) -> Any:
    name = f"_rfanalysis_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise ValueError(f"cannot import {str(path)!r} (model reference {reference!r})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import(module_name: str, reference: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the module exists but something it imports does not: its own error
        raise ImportError(
            f"no module {exc.name!r} to import (model reference {reference!r})"
        ) from None


def _call(source: Any, name: str, where: str, reference: str) -> Any:
    target = source
    for part in name.split("."):
        if not hasattr(target, part):
            public = [n for n in dir(source) if not n.startswith("_")]
            raise ValueError(f"{reference}: {where} has no {name!r}{did_you_mean(part, public)}")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{reference}: {name!r} is a {type(target).__name__}, not a callable")
    return target()


def _checked(module: Any, reference: str) -> Any:
    if not is_torch_module(module):
        raise TypeError(
            f"{reference} gave a {type(module).__name__}, not a torch.nn.Module (a model "
            "reference names a callable that returns one, called with no arguments)"
        )
    return module.eval()


# --------------------------------------------------------------------------- public functions
def takes_models(fn: Callable[..., Any], *, modules: bool = False) -> Callable[..., Any]:
    """``fn`` with its ``net`` argument resolved by :func:`network` at its ``input_shape``
    (``modules``: a torch module, or a module reference, is passed as the module itself).

    A torch module that declares its input size (timm's ``pretrained_cfg``) is analysed at
    that size when ``input_shape`` is left out.
    """
    signature = inspect.signature(fn)
    has_shape = "input_shape" in signature.parameters

    @functools.wraps(fn)
    def public(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        given = bound.arguments
        if "net" in given:
            shape = given.get("input_shape")
            found = _model_of(given["net"], "net")
            if has_shape and shape is None and is_torch_module(found):
                shape = declared_size(found)
                if shape is not None:
                    given["input_shape"] = shape
            if modules and is_torch_module(found):
                given["net"] = found
            else:
                given["net"] = network(found, shape)
        return fn(*bound.args, **bound.kwargs)

    return public
