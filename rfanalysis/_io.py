"""Spec files: JSON and TOML.

Schema (the same in both formats). A sequence of layers, with blocks for branches::

    {"format": "rfanalysis-network", "version": 2, "name": "optional",
     "layers": [{"type": "conv", "kernel_size": 3, "padding": 1},
                {"type": "res", "body": [...], "shortcut": [...]},
                {"type": "cat", "branches": [[...], [...]]},
                {"type": "mul", "branches": [[], [...]]}]}

or any graph, as nodes that name their inputs. A node is known by its ``id``, or by its
layer's ``name`` where it has no ``id``; ``"input"`` is the network's input; a node without
``inputs`` reads the node before it; the last node is the output unless ``output`` names
another::

    {"nodes": [{"name": "a", "type": "conv", "kernel_size": 3, "padding": 1},
               {"name": "b", "type": "conv", "kernel_size": 3, "padding": 1},
               {"id": "sum", "type": "add", "inputs": ["input", "a", "b"]}]}

``layers`` may also be replaced by ``"spec": "conv3p1*10"`` (the compact grammar). Layer keys
are the constructor arguments of the layer classes; tuples are written as lists. Types are
the operations' names (``conv lc pool tconv up fc add mul cat``, and the blocks ``res``,
``cat``, ``add``, ``mul`` with branches); version 1 files, which spelled some of them
differently (``conv_transpose``, ``locally_connected``, ``upsample``, ``dense``,
``residual``, ``concat``), still load. ``"ndim": 2`` fixes the number of input axes of a
network whose layers give one value for every axis (the zoo's image models).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import tomllib
from dataclasses import MISSING, replace
from pathlib import Path
from typing import Any

from ._graph import (
    Block,
    Concat,
    Network,
    Node,
    Parallel,
    Residual,
    _arity,
    _graph_ndim,
)
from ._ops import REGISTRY, Layer, Pool
from ._parse import parse
from ._suggest import did_you_mean

FORMAT = "rfanalysis-network"
VERSION = 2

#: version-1 type names
_LEGACY = {
    "conv_transpose": "tconv",
    "locally_connected": "lc",
    "upsample": "up",
    "dense": "fc",
    "residual": "res",
    "concat": "cat",
}
#: blocks: type -> (class, keys)
_BLOCKS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "res": (Residual, ("body", "shortcut", "name")),
    "cat": (Concat, ("branches", "name")),
    "add": (Parallel, ("branches", "name")),
    "mul": (Parallel, ("branches", "name", "gates")),
}


def _type_names() -> list[str]:
    return list(dict.fromkeys([*REGISTRY, "res"]))


# --------------------------------------------------------------------------- to / from dict
def to_dict(net: Network) -> dict[str, Any]:
    """The network as plain data (lists, numbers, strings), defaults left out: a ``layers``
    list where nested blocks can write the graph, else a ``nodes`` list."""
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if net.name:
        out["name"] = net.name
    if net.ndim is not None and net.ndim != _graph_ndim(net.nodes):
        out["ndim"] = net.ndim  # fixed by the network, not by per-axis layer values
    if net._tree is not None:  # built from blocks: written as blocks
        out["layers"] = [_layer_dict(layer) for layer in net.layers]
        return out
    ids = _node_ids(net.nodes)
    nodes = []
    for i, node in enumerate(net.nodes[1:], start=1):
        assert node.layer is not None
        d = _layer_dict(node.layer)
        if ids[i] != node.layer.name:
            d = {"id": ids[i], **d}
        if node.inputs != (i - 1,):
            d["inputs"] = [ids[j] for j in node.inputs]
        nodes.append(d)
    out["nodes"] = nodes
    return out


def _node_ids(nodes: tuple[Node, ...]) -> list[str]:
    """Unique ids: a layer's own name where it is unique, else ``n<index>``."""
    ids = ["input"]
    names = [n.layer.name for n in nodes[1:] if n.layer is not None and n.layer.name]
    taken = {"input"} | set(names)
    for i, node in enumerate(nodes[1:], start=1):
        name = node.layer.name if node.layer is not None else None
        if not name or names.count(name) > 1:
            name = f"n{i}"
            while name in taken:
                name += "_"
            taken.add(name)
        ids.append(name)
    return ids


def _layer_dict(layer: Layer) -> dict[str, Any]:
    if isinstance(layer, Block):
        d: dict[str, Any] = {"type": "res" if isinstance(layer, Residual) else None}
        if isinstance(layer, Residual):
            d["body"] = [_layer_dict(x) for x in layer.body]
            if layer.shortcut:
                d["shortcut"] = [_layer_dict(x) for x in layer.shortcut]
        else:
            d["type"] = "cat" if isinstance(layer, Concat) else layer.merge.op_name  # type: ignore[attr-defined]
            d["branches"] = [[_layer_dict(x) for x in b] for b in layer.branches]
            if isinstance(layer, Parallel):  # the merge's own fields (a product's gates)
                merge = _layer_dict(layer.merge)
                d.update((k, v) for k, v in merge.items() if k not in ("type", "name"))
        if layer.name:
            d["name"] = layer.name
        return d
    d = {"type": layer.op_name}
    defaults = type(layer).__dataclass_fields__  # type: ignore[attr-defined]
    required = _required(type(layer))
    for key, value in layer.file_fields().items():
        if value is None or (key not in required and _is_default(layer, key, defaults[key])):
            continue
        d[key] = _plain(value, layer.ndim, key in type(layer)._axis_fields)
    return d


def _required(cls: Any) -> tuple[str, ...]:
    return tuple(
        name
        for name, f in cls.__dataclass_fields__.items()
        if f.init and f.default is MISSING and f.default_factory is MISSING
    )


def _is_default(layer: Layer, key: str, f: Any) -> bool:
    """Whether a field equals its default once normalised the same way."""
    if f.default is MISSING:
        return False
    if isinstance(layer, Pool) and key == "stride":
        return layer.stride == layer.kernel_size
    try:
        probe = replace(layer, **{key: f.default})  # type: ignore[type-var]
    except (ValueError, TypeError):
        return False
    return getattr(probe, key) == getattr(layer, key)  # type: ignore[no-any-return]


def _plain(value: Any, ndim: int | None, per_axis: bool = True) -> Any:
    """Tuples as lists; for per-axis fields, an ndim-free layer's 1-tuples as scalars (so
    ndim survives a round trip) and symmetric padding pairs as one number."""
    if not isinstance(value, tuple):
        return value
    if not per_axis:  # a tuple of another kind (a product's gates) stays a list
        return list(value)
    items = [(v[0] if v[0] == v[1] else list(v)) if isinstance(v, tuple) else v for v in value]
    return items[0] if ndim is None else items


def from_dict(data: Any, source: str = "spec") -> Network:
    """Build a network from the plain-data schema; errors name the offending entry."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{source}: the top level must be a table/object, got {type(data).__name__}"
        )
    keys = {"format", "version", "name", "ndim", "layers", "spec", "nodes", "output"}
    unknown = set(data) - keys
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    if data.get("format", FORMAT) != FORMAT:
        raise ValueError(f"{source}: `format` must be {FORMAT!r}, got {data['format']!r}")
    if data.get("version", VERSION) not in (1, VERSION):
        raise ValueError(
            f"{source}: unsupported `version` {data['version']!r} (expected 1 or {VERSION})"
        )
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{source}: `name` must be a string, got {name!r}")
    ndim = data.get("ndim")
    if ndim is not None and (isinstance(ndim, bool) or not isinstance(ndim, int) or ndim < 1):
        raise ValueError(f"{source}: `ndim` must be a positive integer, got {ndim!r}")
    net = _network_of(data, source, name)
    if ndim is None:
        return net
    try:
        return net.with_ndim(ndim)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def _network_of(data: dict[str, Any], source: str, name: str | None) -> Network:
    given = [k for k in ("layers", "spec", "nodes") if k in data]
    if len(given) != 1:
        raise ValueError(
            f"{source}: give exactly one of `layers` (a list), `nodes` (a graph) or `spec` "
            "(a string)"
        )
    if "output" in data and "nodes" not in data:
        raise ValueError(f"{source}: `output` names a node of a `nodes` graph")
    if "spec" in data:
        if not isinstance(data["spec"], str):
            raise ValueError(f"{source}: `spec` must be a string, got {data['spec']!r}")
        try:
            return parse(data["spec"], name=name)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    if "nodes" in data:
        return _graph(data["nodes"], data.get("output"), f"{source}: nodes", name)
    return Network(_layers(data["layers"], f"{source}: layers"), name=name)


def _layers(items: Any, where: str) -> list[Layer]:
    if not isinstance(items, list):
        raise ValueError(f"{where} must be a list of layers, got {type(items).__name__}")
    return [_layer(item, f"{where}[{i}]") for i, item in enumerate(items)]


def _kind(item: Any, where: str) -> str:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be a table/object, got {item!r}")
    kind = item.get("type")
    kind = _LEGACY.get(kind, kind)  # type: ignore[arg-type]
    if kind not in REGISTRY and kind not in _BLOCKS:
        raise ValueError(
            f"{where}: `type` must be one of {', '.join(_type_names())}; got "
            f"{item.get('type')!r}{did_you_mean(str(item.get('type')), _type_names())}"
        )
    return kind  # type: ignore[return-value]


def _layer(item: Any, where: str) -> Layer:
    kind = _kind(item, where)
    args = {k: _tuples(v) for k, v in item.items() if k != "type"}
    if kind in _BLOCKS and ("branches" in args or "body" in args or kind == "res"):
        return _block(kind, item, args, where)
    return _op(kind, args, where)


def _block(kind: str, item: dict, args: dict, where: str) -> Layer:
    cls, keys = _BLOCKS[kind]
    extra = set(args) - set(keys)
    if extra:
        raise ValueError(f"{where} ({kind}): unknown key(s) {', '.join(sorted(extra))}")
    if cls is Residual:
        if "body" not in item:
            raise ValueError(f"{where} ({kind}): missing key(s) body")
        body = _layers(item["body"], f"{where}.body")
        shortcut = _layers(item["shortcut"], f"{where}.shortcut") if "shortcut" in item else None
        return _construct(Residual, where, kind, body, shortcut=shortcut, name=args.get("name"))
    if not isinstance(item["branches"], list):
        raise ValueError(f"{where}.branches must be a list of layer lists")
    branches = [_layers(b, f"{where}.branches[{i}]") for i, b in enumerate(item["branches"])]
    if cls is Concat:
        return _construct(Concat, where, kind, *branches, name=args.get("name"))
    fields = {k: v for k, v in args.items() if k not in ("branches", "name")}
    merge = _op(kind, fields, where) if fields else kind
    return _construct(Parallel, where, kind, *branches, merge=merge, name=args.get("name"))


def _op(kind: str, args: dict, where: str, node: bool = False) -> Layer:
    cls = REGISTRY[kind]
    fields_ = cls.__dataclass_fields__  # type: ignore[attr-defined]
    allowed = {f for f, spec in fields_.items() if spec.init}
    missing = [k for k in _required(cls) if k not in args]
    if missing:
        raise ValueError(f"{where} ({kind}): missing key(s) {', '.join(missing)}")
    extra = set(args) - allowed
    if extra:
        raise ValueError(
            f"{where} ({kind}): unknown key(s) {', '.join(sorted(extra))}; "
            f"allowed: {', '.join(sorted(allowed | ({'id', 'inputs'} if node else set())))}"
        )
    return _construct(cls, where, kind, **args)


def _construct(cls: Any, where: str, type_name: str, *args: Any, **kwargs: Any) -> Layer:
    try:
        return cls(*args, **kwargs)  # type: ignore[no-any-return]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where} ({type_name}): {exc}") from None


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _graph(items: Any, output: Any, where: str, name: str | None) -> Network:
    """A network from a ``nodes`` list (any order; inputs by name)."""
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where} must be a non-empty list of nodes")
    names: list[str] = []
    layers: list[Layer] = []
    reads: list[list[str]] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        kind = _kind(item, at)
        args = {k: _tuples(v) for k, v in item.items() if k not in ("type", "inputs", "id")}
        node_name = item.get("id", args.get("name", f"n{i + 1}"))
        if not isinstance(node_name, str) or not node_name or node_name == "input":
            raise ValueError(f"{at}: `id` must be a non-empty string other than 'input'")
        if node_name in names:
            raise ValueError(f"{at}: two nodes are known as {node_name!r} (give each an `id`)")
        at = f"{where}[{i}] {node_name!r}"
        if kind == "res":
            raise ValueError(f"{at}: a graph writes a residual add as an 'add' node")
        layers.append(_op(kind, args, at, node=True))
        inputs = item.get("inputs", [names[-1] if names else "input"])
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            raise ValueError(f"{at}: `inputs` must be a list of node names, got {inputs!r}")
        try:
            _arity(layers[-1], tuple(inputs), layers[-1].arity)
        except TypeError as exc:  # a user's file: name the node and say it as a schema error
            raise ValueError(f"{at}: {exc}") from None
        names.append(node_name)
        reads.append(inputs)
    known = set(names) | {"input"}
    for i, inputs in enumerate(reads):
        for x in inputs:
            if x not in known:
                raise ValueError(
                    f"{where}[{i}] {names[i]!r}: input {x!r} is not a node"
                    f"{did_you_mean(x, sorted(known))}"
                )
    out = names[-1] if output is None else output
    if out not in names:
        raise ValueError(f"{where}: `output` {out!r} is not a node{did_you_mean(str(out), names)}")
    order = _topological(names, reads, where)
    needed = {out}
    for i in reversed(order):
        if names[i] in needed:
            needed.update(reads[i])
    unused = [n for n in names if n not in needed]
    if unused:
        raise ValueError(f"{where}: node {unused[0]!r} does not lead to the output {out!r}")
    position = {"input": 0}
    nodes = [Node(None, (), "input")]
    for i in order:  # every node leads to the output, so the output comes last
        position[names[i]] = len(nodes)
        nodes.append(Node(layers[i], tuple(position[x] for x in reads[i]), str(len(nodes))))
    try:
        return Network.from_nodes(nodes, name=name)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _topological(names: list[str], reads: list[list[str]], where: str) -> list[int]:
    index = {n: i for i, n in enumerate(names)}
    state = [0] * len(names)  # 0 new, 1 on the stack, 2 done
    order: list[int] = []

    def visit(i: int, trail: list[str]) -> None:
        if state[i] == 2:
            return
        if state[i] == 1:
            cycle = [*trail[trail.index(names[i]) :], names[i]]
            raise ValueError(f"{where}: the nodes form a cycle ({' -> '.join(cycle)})")
        state[i] = 1
        for x in reads[i]:
            if x != "input":
                visit(index[x], [*trail, names[i]])
        state[i] = 2
        order.append(i)

    for i in range(len(names)):
        visit(i, [])
    return order


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


def save(net: Any, path: str | os.PathLike[str]) -> None:
    """Write ``net`` to a JSON or TOML spec file (chosen by the suffix), atomically."""
    if not isinstance(net, (Network, str)):
        raise TypeError(f"`net` must be a Network, got {type(net).__name__}")
    net = parse(net) if isinstance(net, str) else net
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
    key = "layers" if "layers" in data else "nodes"
    for k, value in data.items():
        if k != key:
            lines.append(f"{k} = {_toml_value(value)}")
    lines.append(f"{key} = [")
    for item in data[key]:
        lines.append(f"  {_toml_value(item)},")
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
