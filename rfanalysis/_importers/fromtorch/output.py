"""Which map is analysed: ``output=`` resolved against the module and its capture.

A name is, first, a submodule's qualified name (``"layer4"``, ``"model.15"``), followed by an
optional path into what the submodule returns (``"encoder.0"`` where ``encoder`` returns a
tuple); else a path into what the model returns (``"0"``, ``"logits"``,
``"feature_maps.-1"``: keys, attributes and indices, dotted); else, only where neither fits,
an fx node's name. A name that is both a submodule and a path into the model's result is
refused, listing both. The module's own value of the selection (a forward hook on the
submodule, or the path into its result) is what verification compares the capture with.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from ..._suggest import did_you_mean
from ..errors import ConversionError


class NotFound(Exception):
    """The capture has no node for the selection (an fx trace inlines a submodule whose
    output it cannot tell): the model is recorded as it runs instead (never seen by users)."""


@dataclass(frozen=True)
class Output:
    """An ``output=`` name: ``module`` (a qualified submodule name, or None for the model
    itself) and ``path`` (keys and indices into what it returns)."""

    text: str | None
    module: str | None = None
    path: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.text or ""


def parse(module: Any, text: str | None) -> Output:
    """Resolve ``text`` against the module's submodules (the longest prefix of dotted parts
    that names one)."""
    if text is None:
        return Output(None)
    if not text:
        raise ValueError("`output` must be a non-empty name, got ''")
    parts = tuple(text.split("."))
    named = dict(module.named_modules())
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in named:
            return Output(text, prefix, parts[k:])
    return Output(text, None, parts)


def navigate(value: Any, path: tuple[str, ...]) -> Any:
    """``value`` indexed by ``path`` (dict keys, attributes, list and tuple indices);
    KeyError where a step does not fit."""
    for step in path:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, (list, tuple)):
            try:
                value = value[int(step)]
            except (ValueError, IndexError):
                raise KeyError(step) from None
        elif not isinstance(value, (dict, list, tuple)) and hasattr(value, "__dataclass_fields__"):
            if not hasattr(value, step):
                raise KeyError(step)
            value = getattr(value, step)
        else:
            raise KeyError(step)
    return value


def _keys(value: Any) -> str:
    if isinstance(value, dict):
        return f" (its keys: {', '.join(map(repr, value))})"
    if isinstance(value, (list, tuple)):
        return f" (a {type(value).__name__} of {len(value)})"
    return ""


def select(torch: Any, program: Any, out: Output, name: str) -> Any:
    """The fx node of the capture that holds the selected map."""
    graph = program.graph
    nodes = list(graph.nodes)
    (end,) = [n for n in nodes if n.op == "output"]
    returned = end.args[0]
    if out.module is not None:
        ambiguous = _fits(returned, tuple(out.label.split(".")))
        if ambiguous:
            raise ConversionError(
                f"from_torch: output={out.label!r} of {name} is ambiguous: the submodule "
                f"{out.module!r} or the entry {out.label!r} of what {name} returns"
            )
        rec = program.recording
        if rec is not None:
            if out.module not in rec.produced and out.path:
                modules = [q for q, _ in program.root.named_modules() if q]
                raise ConversionError(
                    f"from_torch: {name} has no submodule {out.label!r}"
                    f"{did_you_mean(out.label, modules)}"
                )
            if out.module not in rec.produced:
                raise ConversionError(
                    f"from_torch: output={out.label!r}: {name} never ran its submodule "
                    f"{out.module!r} on this input"
                )
            produced = rec.produced[out.module]
        else:
            produced = _fx_module_output(nodes, out.module)
        try:
            src = navigate(produced, out.path)
        except KeyError as exc:
            raise ConversionError(
                f"from_torch: output={out.label!r}: submodule {out.module!r} of {name} "
                f"returns no entry {exc.args[0]!r}{_keys(produced)}"
            ) from None
        return _one(src, out, name, f"submodule {out.module!r}")
    if out.text is None:
        if isinstance(returned, dict):
            raise ConversionError(
                f"from_torch: {name} returns a dict ({', '.join(map(repr, returned))}); pass "
                "output= with the key to analyse"
            )
        if not hasattr(returned, "op"):
            raise ConversionError(
                f"from_torch: {name} returns {type(returned).__name__}; pass output= with a "
                'submodule\'s name ("model.15") or a path into what it returns ("0", '
                '"logits", "feature_maps.-1") to pick the map to analyse'
            )
        return returned
    try:
        src = navigate(returned, out.path)
    except KeyError:
        byname = [n for n in nodes if n.name == out.text]
        if byname and program.recording is None:
            return byname[0]
        modules = [q for q, _ in program.root.named_modules() if q]
        raise ConversionError(
            f"from_torch: {name} has no submodule {out.text!r}, nor an entry {out.text!r} in "
            f"what it returns{_keys(returned)}{did_you_mean(out.text, modules)}"
        ) from None
    return _one(src, out, name, "the entry")


def _fits(returned: Any, path: tuple[str, ...]) -> bool:
    if not isinstance(returned, (dict, list, tuple)):
        return False
    try:
        navigate(returned, path)
    except KeyError:
        return False
    return True


def _one(src: Any, out: Output, name: str, what: str) -> Any:
    if src is None or hasattr(src, "op"):
        return src  # None: a constant, reported by the caller
    raise ConversionError(
        f"from_torch: output={out.label!r} of {name}: {what} gives a "
        f"{type(src).__name__}{_keys(src)}; add the key or index of the map to analyse "
        f"({out.label + '.0'!r})"
    )


def _fx_module_output(nodes: list[Any], qualname: str) -> Any:
    """What the submodule ``qualname`` returns in an fx trace: its last call where it is a
    leaf; else the last node computed inside it that is read outside it (fx inlines it)."""
    calls = [n for n in nodes if n.op == "call_module" and n.target == qualname]
    if calls:
        last = calls[-1]
        items = {
            u.args[1]: u
            for u in last.users
            if u.op == "call_function" and u.target is operator.getitem
        }
        if items:  # a tuple or list: its entries as far as the trace reads them
            return [items.get(i) for i in range(max(i for i in items if isinstance(i, int)) + 1)]
        return last

    def inside(n: Any) -> bool:
        return qualname in (n.meta.get("nn_module_stack") or {})

    leaving = [n for n in nodes if inside(n) and any(not inside(u) for u in n.users)]
    if not leaving:
        raise NotFound(qualname)
    return leaving[-1]


def references(torch: Any, module: Any, x: Any, outputs: list[Output]) -> list[Any]:
    """The module's own value of every selection on input ``x``: the submodule's output (a
    forward hook, its last call) or the path into what the model returns."""
    seen: dict[str, Any] = {}
    handles = []
    for out in outputs:
        if out.module is not None and out.module not in seen:
            sub = module.get_submodule(out.module)

            def hook(_m: Any, _a: Any, y: Any, q: str = out.module) -> None:
                seen[q] = y

            handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            result = module(x)
    finally:
        for h in handles:
            h.remove()
    found = []
    for out in outputs:
        try:
            if out.module is not None:
                found.append(navigate(seen[out.module], out.path) if out.module in seen else None)
            elif out.text is None:
                found.append(result)
            else:
                found.append(navigate(result, out.path))
        except KeyError:
            found.append(None)
    return found
