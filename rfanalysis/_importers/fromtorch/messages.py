"""One-line messages of the torch importer: overrides checked, operations named as users
write them, and the error for an operation without a mapping."""

from __future__ import annotations

from typing import Any

from ..._graph import Network
from ..._ops import Layer


def check_overrides(overrides: Any) -> dict:
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise TypeError(
            f"`overrides` must be a dict mapping module types, qualified module names or "
            f"functions to layers; got {type(overrides).__name__}"
        )
    for key, value in overrides.items():
        if not (isinstance(key, (str, type)) or callable(key)):
            raise TypeError(
                f"`overrides` keys must be module types, qualified module names or functions; "
                f"got {key!r}"
            )
        if not (
            value is None or callable(value) or isinstance(value, (Layer, Network, list, tuple))
        ):
            raise TypeError(
                f"`overrides` value for {key!r} must be a layer, a list of layers, a Network, "
                f"None, or a callable returning one; got {value!r}"
            )
    return overrides


def describe(gm: Any, node: Any) -> str:
    if node.op == "call_module":
        try:
            return type(gm.get_submodule(node.target)).__name__
        except AttributeError:  # a node of a module recorded on its own
            return str(node.target)
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return public_name(node.target)


#: where torch's functions are documented, searched for the public name of a C function
_PUBLIC = ("torch", "torch.nn.functional", "torch.fft", "torch.linalg", "torch.special")


def public_name(target: Any) -> str:
    """``torch.fft.rfft2`` rather than ``torch._C._fft.fft_rfft2``: the name users write."""
    import importlib

    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    if module.startswith("torch._C") or (module == "" and callable(target)):
        for where in _PUBLIC:
            try:
                namespace = importlib.import_module(where)
            except ImportError:  # pragma: no cover - every torch has these
                continue
            for attr in (name, name.removeprefix("fft_"), name.removeprefix("linalg_"),
                         name.removeprefix("special_")):  # fmt: skip
                if getattr(namespace, attr, None) is target:
                    return f"{where}.{attr}"
    return f"{module}.{name}".lstrip(".")


def inside(node: Any) -> str:
    owner = owner_of(node)
    return "" if owner is None else f" inside module {owner[0]!r}"


def unmapped(gm: Any, node: Any, module: Any, owner: Any = None, keeps: bool = True) -> str:
    """The one-line error for an operation without a mapping (``owner``: the module it ran
    in, for an operation recorded inside a module traced on its own; ``keeps``: its output
    has its input's layout, so ``unknown='identity'`` could stand in for it)."""
    identity = ", or pass unknown='identity'" if keeps else ""
    if module is not None:
        kind = type(module).__name__
        return (
            f"from_torch: no mapping for module {node.target!r} ({kind}); map it with "
            f"overrides={{{kind}: lambda m: rfa.Conv(...)}} or "
            f"overrides={{{node.target!r}: ...}} (None for a layer that keeps every "
            f"position in place){identity}"
        )
    what = describe(gm, node)
    key = repr(node.target) if node.op == "call_method" else what
    owner = owner or owner_of(node)
    where, how = "", f"map it with overrides={{{key}: ...}}"
    if owner is not None:
        path, cls = owner
        where = f" inside module {path!r} ({cls.__name__})"
        how = (
            f"map the module with overrides={{{cls.__name__}: ...}} or the operation "
            f"with overrides={{{key}: ...}}"
        )
    return (
        f"from_torch: no mapping for {what} at node {node.name!r}{where}; {how} "
        f"(a layer, a list of layers, or None for identity){identity}"
    )


def owner_of(node: Any) -> tuple[str, type] | None:
    """The innermost module a traced operation belongs to. fx records no module for an
    attribute access such as ``.real``; it belongs where the function call it reads from
    does (a module's output, read outside the module, does not make it the module's)."""
    stack = node.meta.get("nn_module_stack")
    if not stack and node.op == "call_function" and node.target is getattr:
        source = node.all_input_nodes[0] if node.all_input_nodes else None
        if source is not None and source.op in ("call_function", "call_method"):
            stack = source.meta.get("nn_module_stack")
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    return path, cls
