"""Spec files: JSON and TOML.

Schema (the same in both formats)::

    {"format": "rfanalysis-network", "version": 1, "name": "optional",
     "layers": [{"type": "conv", "kernel_size": 3, "padding": 1},
                {"type": "residual", "body": [...], "shortcut": [...]},
                {"type": "concat", "branches": [[...], [...]]}]}

``layers`` may be replaced by ``"spec": "conv3p1*10"`` (the compact grammar). Layer keys are
the constructor arguments of the layer classes; tuples are written as lists.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from ._layers import (
    Concat,
    Conv,
    ConvTranspose,
    Dense,
    Layer,
    LocallyConnected,
    Network,
    Pool,
    Residual,
    Upsample,
    layer_fields,
)
from ._parse import parse

FORMAT = "rfanalysis-network"
VERSION = 1

_TYPES: dict[str, type[Layer]] = {
    "conv": Conv,
    "locally_connected": LocallyConnected,
    "pool": Pool,
    "conv_transpose": ConvTranspose,
    "upsample": Upsample,
    "dense": Dense,
    "residual": Residual,
    "concat": Concat,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}
_REQUIRED = {
    "conv": ("kernel_size",),
    "locally_connected": ("kernel_size",),
    "pool": ("kernel_size",),
    "conv_transpose": ("kernel_size",),
    "upsample": ("scale_factor",),
    "dense": ("out_features",),
    "residual": ("body",),
    "concat": ("branches",),
}


# --------------------------------------------------------------------------- to / from dict
def to_dict(net: Network) -> dict[str, Any]:
    """The network as plain data (lists, numbers, strings), defaults left out."""
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if net.name:
        out["name"] = net.name
    out["layers"] = [_layer_dict(layer) for layer in net.layers]
    return out


def _layer_dict(layer: Layer) -> dict[str, Any]:
    d: dict[str, Any] = {"type": _NAMES[type(layer)]}
    if isinstance(layer, Residual):
        d["body"] = [_layer_dict(x) for x in layer.body]
        if layer.shortcut:
            d["shortcut"] = [_layer_dict(x) for x in layer.shortcut]
    elif isinstance(layer, Concat):
        d["branches"] = [[_layer_dict(x) for x in b] for b in layer.branches]
    else:
        default = type(layer).__dataclass_fields__  # type: ignore[attr-defined]
        for key, value in layer_fields(layer).items():
            f = default[key]
            if value is None or (key not in _REQUIRED[d["type"]] and _is_default(layer, key, f)):
                continue
            d[key] = _plain(value, layer.ndim)
    if layer.name:
        d["name"] = layer.name
    return d


def _is_default(layer: Layer, key: str, f: Any) -> bool:
    """Whether a field equals its default once normalised the same way."""
    from dataclasses import MISSING, replace

    if f.default is MISSING:
        return False
    if isinstance(layer, Pool) and key == "stride":
        return layer.stride == layer.kernel_size
    try:
        probe = replace(layer, **{key: f.default})  # type: ignore[type-var]
    except (ValueError, TypeError):
        return False
    return getattr(probe, key) == getattr(layer, key)


def _plain(value: Any, ndim: int | None) -> Any:
    """Tuples as lists; an ndim-free layer's 1-tuples as scalars (so ndim survives a round
    trip); symmetric padding pairs as one number."""
    if not isinstance(value, tuple):
        return value
    items = [(v[0] if v[0] == v[1] else list(v)) if isinstance(v, tuple) else v for v in value]
    return items[0] if ndim is None else items


def from_dict(data: Any, source: str = "spec") -> Network:
    """Build a network from the plain-data schema; errors name the offending entry."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{source}: the top level must be a table/object, got {type(data).__name__}"
        )
    unknown = set(data) - {"format", "version", "name", "layers", "spec"}
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    if data.get("format", FORMAT) != FORMAT:
        raise ValueError(f"{source}: `format` must be {FORMAT!r}, got {data['format']!r}")
    if data.get("version", VERSION) != VERSION:
        raise ValueError(f"{source}: unsupported `version` {data['version']!r} (expected 1)")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{source}: `name` must be a string, got {name!r}")
    if ("layers" in data) == ("spec" in data):
        raise ValueError(f"{source}: give exactly one of `layers` (a list) or `spec` (a string)")
    if "spec" in data:
        if not isinstance(data["spec"], str):
            raise ValueError(f"{source}: `spec` must be a string, got {data['spec']!r}")
        try:
            return parse(data["spec"], name=name)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    return Network(_layers(data["layers"], f"{source}: layers"), name=name)


def _layers(items: Any, where: str) -> list[Layer]:
    if not isinstance(items, list):
        raise ValueError(f"{where} must be a list of layers, got {type(items).__name__}")
    return [_layer(item, f"{where}[{i}]") for i, item in enumerate(items)]


def _layer(item: Any, where: str) -> Layer:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be a table/object, got {item!r}")
    kind = item.get("type")
    if kind not in _TYPES:
        raise ValueError(f"{where}: `type` must be one of {', '.join(_TYPES)}; got {kind!r}")
    cls = _TYPES[kind]
    args = {k: _tuples(v) for k, v in item.items() if k != "type"}
    missing = [k for k in _REQUIRED[kind] if k not in args]
    if missing:
        raise ValueError(f"{where} ({kind}): missing key(s) {', '.join(missing)}")
    if cls is Residual:
        extra = set(args) - {"body", "shortcut", "name"}
        if extra:
            raise ValueError(f"{where} (residual): unknown key(s) {', '.join(sorted(extra))}")
        body = _layers(item["body"], f"{where}.body")
        shortcut = _layers(item["shortcut"], f"{where}.shortcut") if "shortcut" in item else None
        return _construct(Residual, where, kind, body, shortcut=shortcut, name=args.get("name"))
    if cls is Concat:
        extra = set(args) - {"branches", "name"}
        if extra:
            raise ValueError(f"{where} (concat): unknown key(s) {', '.join(sorted(extra))}")
        if not isinstance(item["branches"], list):
            raise ValueError(f"{where}.branches must be a list of layer lists")
        branches = [_layers(b, f"{where}.branches[{i}]") for i, b in enumerate(item["branches"])]
        return _construct(Concat, where, kind, *branches, name=args.get("name"))
    allowed = {f for f, spec in cls.__dataclass_fields__.items() if spec.init}  # type: ignore[attr-defined]
    extra = set(args) - allowed
    if extra:
        raise ValueError(
            f"{where} ({kind}): unknown key(s) {', '.join(sorted(extra))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return _construct(cls, where, kind, **args)


def _construct(cls: Any, where: str, type_name: str, *args: Any, **kwargs: Any) -> Layer:
    try:
        return cls(*args, **kwargs)  # type: ignore[no-any-return]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where} ({type_name}): {exc}") from None


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- files
def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ValueError(
            f"spec file {str(path)!r} must end in .json or .toml, got {suffix or 'no suffix'!r}"
        )
    return suffix[1:]


def load(path: str | os.PathLike[str]) -> Network:
    """Read a network from a JSON or TOML spec file.

    Raises
    ------
    ValueError
        For a malformed file or a schema error (the message names the file and entry).
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    fmt = _format_of(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ValueError(f"{path}: not valid {fmt.upper()}: {exc}") from None
    return from_dict(data, source=str(path))


def save(net: Network, path: str | os.PathLike[str]) -> None:
    """Write ``net`` to a JSON or TOML spec file (chosen by the suffix), atomically."""
    if not isinstance(net, Network):
        raise TypeError(f"`net` must be a Network, got {type(net).__name__}")
    path = Path(path)
    fmt = _format_of(path)
    data = to_dict(net)
    text = json.dumps(data, indent=2) + "\n" if fmt == "json" else _toml(data)
    write_atomic(path, text.encode("utf-8"))


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so
    that a failure never leaves a partial file behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _toml(data: dict[str, Any]) -> str:
    lines = []
    for key, value in data.items():
        if key == "layers":
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    lines.append("layers = [")
    for layer in data["layers"]:
        lines.append(f"  {_toml_value(layer)},")
    lines.append("]")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string uses the same escapes
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # pragma: no cover - layers reject these
            raise ValueError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")  # pragma: no cover
