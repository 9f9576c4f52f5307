"""The rule table: what every torch module, function and Tensor method does to units.

Each operation family is a module of this package (windows, layout, pointwise, reductions
and norms, products, attention) that registers its rules here by target: a torch.nn layer by
its class name (subclasses inside torch.nn match too), a function or Tensor method by its
name (``softmax``, ``permute``), or a function by its object (``torch.nn.functional.conv2d``,
named by its path under ``torch``) where its name alone would be ambiguous. Adding an
operation is one decorated function in its family's module.

A rule takes a :class:`Call` and returns the output's :class:`~.units.Value` (or a container
of them, or None for a constant); it raises :class:`~.units.Unmapped` where it does not apply,
which leaves the operation to the module's own recording, ``unknown=`` and the error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ...._graph import Network
from ...._ops import Layer
from ..converter import Converter
from ..interpreter import record, run_graph
from ..units import NONE, NeedsValues, Unmapped, Value, first_line

Rule = Callable[["Call"], Any]

#: torch.nn class name -> rule
MODULES: dict[str, Rule] = {}
#: function or Tensor method name (as :func:`op_name` gives it) -> rule
FUNCTIONS: dict[str, Rule] = {}
#: a function's path under ``torch`` -> rule (matched by identity, before names)
TARGETS: dict[str, Rule] = {}
#: torch.nn class names whose output has their input's shape and that need no values to
#: convert (activations, eval-mode norms): the shape run does not run them
KEEPS_SHAPE: set[str] = set()


def _register(table: dict[str, Rule], keys: tuple[str, ...]) -> Callable[[Rule], Rule]:
    def add(rule: Rule) -> Rule:
        for key in keys:
            if key in table:  # pragma: no cover - a programming error
                raise RuntimeError(f"two torch rules for {key!r}")
            table[key] = rule
        return rule

    return add


def module_rule(*names: str, keeps_shape: bool = False) -> Callable[[Rule], Rule]:
    """Register a rule for the torch.nn layers of these class names."""
    if keeps_shape:
        KEEPS_SHAPE.update(names)
    return _register(MODULES, names)


def function_rule(*names: str) -> Callable[[Rule], Rule]:
    """Register a rule for the functions and Tensor methods of these names."""
    return _register(FUNCTIONS, names)


def target_rule(*paths: str) -> Callable[[Rule], Rule]:
    """Register a rule for these functions, by their path under ``torch``
    (``"nn.functional.conv2d"``); a path that this torch lacks is skipped."""
    return _register(TARGETS, paths)


@dataclass
class Call:
    """One operation to convert: the rules, the interpreter run, the fx node, its real output
    and its label; for a module, the module."""

    rules: Rules
    run: Any
    n: Any
    out: Any
    label: str
    module: Any = None

    @property
    def torch(self) -> Any:
        return self.rules.torch

    @property
    def F(self) -> Any:
        return self.rules.F

    @cached_property
    def real(self) -> tuple[Any, dict]:
        """The real arguments and keyword arguments."""
        return self.rules.real_args(self.run, self.n)

    @property
    def args(self) -> Any:
        return self.real[0]

    @property
    def kwargs(self) -> dict:
        return self.real[1]

    @cached_property
    def values(self) -> list[Value]:
        """The Values of the arguments that depend on the input, in order."""
        return self.rules.values(self.run, (self.n.args, self.n.kwargs))

    @property
    def value(self) -> Value:
        return self.values[0]

    @property
    def name(self) -> str:
        return op_name(self.n.target)

    @property
    def nd(self) -> int:
        """Spatial axes of the first operand (``(B, C, *spatial)``)."""
        return self.value.units.ndim - 2

    def structured(self, layers: list[Layer], axes: Any = None) -> Value:
        """``layers`` applied to the first operand (see :meth:`Converter.structured`)."""
        return self.run.conv.structured(self.value, layers, self.out, self.label, axes)


#: Tensor operator methods that mean their operation with the operands swapped
_REFLECTED = {"radd": "add", "rmul": "mul", "rsub": "rsub", "rtruediv": "div", "rdiv": "div"}


def op_name(target: Any) -> str:
    """A function's or method's name: ``Tensor.__add__`` -> ``add``, ``__getitem__`` ->
    ``getitem``; a property getter (``.T``, ``.real``) -> ``__get__``."""
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    if name.startswith("__") and name.endswith("__") and name != "__get__":
        core = name[2:-2]
        return _REFLECTED.get(core, core)
    return name


class Rules:
    """What every module, function and Tensor method does to units (see the module
    docstring). One instance per model; ``overrides`` and ``unknown`` as in ``from_torch``."""

    def __init__(
        self,
        torch: Any,
        overrides: dict,
        unknown: str,
        describe: Callable,
        prefix: str = "",
        owner: tuple[str, type] | None = None,
    ) -> None:
        self.torch = torch
        self.F = torch.nn.functional
        self.overrides = overrides
        self.unknown = unknown
        # (fx node, module or None, owner, whether the identity would fit) -> one-line message
        self.describe = describe
        self.prefix = prefix  # of node names, inside a module recorded on its own
        self.owner = owner  # that module: (path, type)
        self.targets = _resolve_targets(torch)
        self.keeps_shape = tuple(
            getattr(torch.nn, k) for k in sorted(KEEPS_SHAPE) if hasattr(torch.nn, k)
        )

    # -- entry ----------------------------------------------------------------------------
    def apply(self, run: Any, n: Any, out: Any) -> Any:
        module = run.module.get_submodule(n.target) if n.op == "call_module" else None
        label = self.label(n)
        override = self.override(n, module)
        if override is not NONE:
            return self.apply_layers(run, n, out, override, label)
        try:
            if module is not None and not _builtin(self.torch, module):
                return self.nested(run, n, module, out, label)
            if module is not None:
                try:
                    return self.module_rule(run, n, module, out, label)
                except Unmapped:
                    # a torch.nn module without a rule of its own (a transformer layer, an
                    # RNN): what it computes, recorded as it runs
                    if type(module).forward is self.torch.nn.Module.forward:
                        raise
                    return self.nested(run, n, module, out, label)
            return self.function_rule(run, n, out, label)
        except Unmapped:
            pass
        try:
            value: Value | None = self.first_value(run, n)
        except Unmapped:
            value = None
        keeps = (
            value is not None
            and is_tensor(self.torch, out)
            and broadcasts(value.units.shape, out.shape)
        )
        if self.unknown == "identity" and keeps:
            assert value is not None
            return Value(value.node, value.units.expand(out.shape), value.gate)
        raise ValueError(self.describe(n, module, self.owner, keeps))

    def label(self, n: Any) -> str:
        return self.prefix + (n.target if n.op == "call_module" else n.name)

    def nested(self, run: Any, n: Any, module: Any, out: Any, label: str) -> Any:
        """A module without a built-in rule (one fx could not trace, or a library's subclass
        of a torch layer with its own forward): record it as it runs and convert that."""
        torch = self.torch
        args, kwargs = self.real_args(run, n)
        if run.shapes_only:
            raise NeedsValues(label)  # recording runs the module's own Python on values
        srcs = list(n.args)
        tracked = {id(a) for a, s in zip(args, srcs) if isinstance(run.vals.get(s), Value)}
        if not tracked or (
            kwargs and any(isinstance(run.vals.get(v), Value) for v in n.kwargs.values())
        ):
            raise Unmapped
        bound = module if not kwargs else _Bound(torch, module, kwargs)
        try:
            (root, graph), _ = record(torch, bound, tuple(args), tracked)
        except Exception as exc:  # the module's own error, as it ran
            raise ValueError(
                f"from_torch: running module {label!r} ({type(module).__name__}) failed "
                f"({type(exc).__name__}: {first_line(exc)})"
            ) from None
        inner = Rules(torch, self.overrides, self.unknown, self.describe, f"{label}.",
                      (label, type(module)))  # fmt: skip
        values = [run.vals.get(s) if isinstance(run.vals.get(s), Value) else None for s in srcs]
        sub = Converter(torch, inner, run.conv.graph, run.conv.name)
        return run_graph(torch, root, sub, values, list(args), graph).result

    # -- overrides ------------------------------------------------------------------------
    def override(self, n: Any, module: Any) -> Any:
        for key, value in self.overrides.items():
            if isinstance(key, str):
                hit = key == n.target if n.op != "call_function" else False
            elif isinstance(key, type):
                hit = module is not None and isinstance(module, key)
            else:
                hit = n.op == "call_function" and key is n.target
            if hit:
                if callable(value) and not isinstance(value, Layer) and not _is_network(value):
                    value = value(module if module is not None else n)
                return _as_layers(value, key)
        return NONE

    def apply_layers(self, run: Any, n: Any, out: Any, layers: list[Layer], label: str) -> Any:
        value = self.first_value(run, n)
        if not layers:  # keeps every position in place
            if is_tensor(self.torch, out) and broadcasts(value.units.shape, out.shape):
                return Value(value.node, value.units.expand(out.shape), value.gate)
            raise ValueError(
                f"from_torch: the override None for {label!r} keeps positions in place, but it "
                f"maps {tuple(value.units.shape)} to {tuple(getattr(out, 'shape', ()))}"
            )
        nd = value.units.ndim - 2
        named = [x if x.name else _named(x.expand(nd), label) for x in layers]
        return run.conv.structured(value, named, out, label)

    # -- helpers --------------------------------------------------------------------------
    def values(self, run: Any, args: Any) -> list[Value]:
        found: list[Value] = []

        def visit(a: Any) -> Any:
            v = run.vals.get(a)
            if isinstance(v, Value):
                found.append(v)
            return a

        self.torch.fx.node.map_arg(args, visit)
        return found

    def first_value(self, run: Any, n: Any) -> Value:
        found = self.values(run, (n.args, n.kwargs))
        if not found:
            raise Unmapped
        return found[0]

    def real_args(self, run: Any, n: Any) -> tuple[Any, dict]:
        return run.fetch_args_kwargs_from_env(n)

    def call(self, n: Any, args: Any, kwargs: dict) -> Any:
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        return n.target(*args, **kwargs)

    # -- modules --------------------------------------------------------------------------
    # -- dispatch -------------------------------------------------------------------------
    def module_rule(self, run: Any, n: Any, m: Any, out: Any, label: str) -> Any:
        """The rule of a torch.nn layer: that of its class, or of the nearest torch.nn class
        it derives from."""
        call = Call(self, run, n, out, label, m)
        self.first_value(run, n)  # a layer that reads nothing of the input has no rule
        for cls in type(m).__mro__:
            if cls.__module__.startswith("torch.nn.") and cls.__name__ in MODULES:
                return MODULES[cls.__name__](call)
        raise Unmapped

    def function_rule(self, run: Any, n: Any, out: Any, label: str) -> Any:
        """The rule of a function or Tensor method: by the function's identity, else by its
        name."""
        torch = self.torch
        call = Call(self, run, n, out, label)
        call.value  # noqa: B018 - an operation of the input's tensors only
        if n.op == "call_function" and n.target is getattr:
            # .real, .T: the elements (or a view of them); .shape, .dtype: not a map
            return FUNCTIONS["getitem"](call) if is_tensor(torch, out) else None
        if not holds_tensor(torch, out):
            return None  # sizes, counts, shapes: not maps
        if call.name in ("detach", "detach_") or call.name in NO_GRADIENT:
            return None  # no gradient flows back through it: a constant
        if n.op == "call_function":
            try:
                rule = self.targets.get(n.target)
            except TypeError:  # an unhashable callable
                rule = None
            if rule is not None:
                return rule(call)
        rule = FUNCTIONS.get(call.name)
        if rule is None:
            raise Unmapped
        return rule(call)


def _resolve_targets(torch: Any) -> dict[Any, Rule]:
    found: dict[Any, Rule] = {}
    for path, rule in TARGETS.items():
        obj: Any = torch
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            found[obj] = rule
    return found


#: operations whose result carries no gradient (comparisons, indices, rounding to classes)
NO_GRADIENT = (
    "gt lt ge le eq ne isnan isinf isfinite argmax argmin argsort logical_and logical_or "
    "logical_not logical_xor bitwise_and bitwise_or bitwise_not any all nonzero zeros_like "
    "ones_like empty_like full_like randn_like rand_like sort_indices"
).split()


# --------------------------------------------------------------------------- helpers
def is_tensor(torch: Any, x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def reduced_axes(dim: Any, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(sorted(d % ndim for d in dim))


def _builtin(torch: Any, module: Any) -> bool:
    """A torch.nn layer as torch defines it (not a subclass with its own forward)."""
    return type(module).__module__.startswith(("torch.nn.", "torch.ao.nn."))


class _Bound:
    """A module called with fixed keyword arguments."""

    def __init__(self, torch: Any, module: Any, kwargs: dict) -> None:
        self.module, self.kwargs = module, kwargs

    def __call__(self, *args: Any) -> Any:
        return self.module(*args, **self.kwargs)


def bind(names: tuple[str, ...], args: Any, kwargs: dict) -> dict[str, Any]:
    """Positional and keyword arguments by name."""
    out = dict(zip(names, args))
    out.update(kwargs)
    return out


def as_tuple(value: Any, nd: int) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value) if len(value) == nd else tuple(value) * nd
    return (value,) * nd


def broadcasts(a: Any, b: Any) -> bool:
    try:
        return tuple(np.broadcast_shapes(tuple(a), tuple(b))) == tuple(b)
    except ValueError:
        return False


def holds_tensor(torch: Any, x: Any) -> bool:
    """A tensor, or a container with one (not a torch.Size or a tuple of numbers)."""
    if isinstance(x, torch.Tensor):
        return True
    if isinstance(x, (tuple, list)) and not isinstance(x, torch.Size):
        return any(holds_tensor(torch, v) for v in x)
    return False


def _is_network(value: Any) -> bool:
    return isinstance(value, Network)


def _as_layers(value: Any, key: Any) -> list[Layer]:
    if value is None:
        return []
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, Network):
        return list(value.layers)
    if isinstance(value, (list, tuple)) and all(isinstance(v, Layer) for v in value):
        return list(value)
    raise TypeError(
        f"`overrides` value for {key!r} must be a layer, a list of layers, a Network, None, "
        f"or a callable returning one; got {value!r}"
    )


def _named(layer: Layer, name: str) -> Layer:
    from dataclasses import replace

    try:
        return replace(layer, name=name)  # type: ignore[type-var]
    except (TypeError, ValueError):
        return layer
