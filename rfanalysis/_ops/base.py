"""The base of every operation: normalisation, the op registry and the rule interface.

An operation (a *layer*) is a frozen, hashable value object. Each concrete kind keeps all of
its rules on its class, beside its definition, the way a JAX primitive keeps its
implementation, shape and derivative rules together:

========================  ==========================================================
``op_name``               its name in specs, spec files, geometry tables and errors
``arity``                 how many inputs it takes (``(min, max)``; ``max`` None: any)
``resolve``               shape rule: output shape and resolved data for given inputs
``channel_rule``          how output channels follow from the inputs
``routes_back``           route rule: counts per output unit -> counts per input unit
``reach``                 support rule: which output units some input unit reaches
``field``                 geometry rule: receptive field size, jump and start
``local_*``               the same rules in context "local" (operations whose routes partly
                          only modulate: gates, norms over space, global attention)
``params``                parameter counts (as given, shared, locally connected, dense)
``weight_shape``          weights of the empirical backends (torch layout) and fan-in
``np_forward``            numpy forward pass (and what the backward pass needs)
``np_backward``           numpy backward pass (input gradients)
``torch_forward``         torch forward pass (autograd gives the backward pass)
``on_axis``               the 1-D operation along one axis (separable operations)
========================  ==========================================================

Subclassing :class:`Layer` with an ``op_name`` registers the operation: the planner, the route
engine, geometry, blind spots, both influence backends, spec files and the graph builder then
use it without further edits.

Parameters are normalised once, at construction: per-axis parameters become tuples, padding
becomes per-axis ``(before, after)`` pairs or the word ``"same"`` (which depends on the input
size and is resolved by the planner). A parameter given as a plain int is stored as a 1-tuple
and the layer's ``ndim`` is None: it applies to any number of spatial axes; a tuple fixes
``ndim``. :meth:`Layer.expand` writes an ndim-free layer out for a given number of axes.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

PADDING_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")
POOL_KINDS = ("max", "avg", "lp")
PADDING_WORDS = ("same", "valid", "full")

Ints = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]
Padding = Pairs | str
Shape = tuple[int, ...]

#: every concrete operation kind, by its name (filled by ``Layer.__init_subclass__``)
REGISTRY: dict[str, type[Layer]] = {}


class OpError(ValueError):
    """A rule found its inputs invalid; the planner adds the node's name and position."""


class TooSmall(OpError):
    """The input is too small for the layer (no output unit, or more padding than a padding
    mode can mirror); the planner adds the smallest input size that works."""


# --------------------------------------------------------------------------- normalisers
def as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"`{what}` must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"`{what}` must be an integer, got {value!r}") from None


def ints(value: Any, what: str, minimum: int) -> tuple[Ints, bool]:
    """Normalise an int or a sequence of ints; return ``(values, was_scalar)``."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"`{what}` must not be empty")
        values = tuple(as_int(v, what) for v in value)
        scalar = False
    else:
        values = (as_int(value, what),)
        scalar = True
    for v in values:
        if v < minimum:
            raise ValueError(f"`{what}` must be >= {minimum}, got {value!r}")
    return values, scalar


def padding_arg(value: Any, what: str = "padding") -> tuple[Padding, bool]:
    """Normalise padding to per-axis ``(before, after)`` pairs or a padding word."""
    if isinstance(value, str):
        if value not in PADDING_WORDS:
            raise ValueError(
                f"`{what}` must be an int, a tuple, or one of 'same', 'valid', 'full'; "
                f"got {value!r}"
            )
        return value, True
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"`{what}` must not be empty")
        pairs = []
        for v in value:
            if isinstance(v, (tuple, list)):
                if len(v) != 2:
                    raise ValueError(f"`{what}` per-axis pairs must be (before, after), got {v!r}")
                pair = (as_int(v[0], what), as_int(v[1], what))
            else:
                p = as_int(v, what)
                pair = (p, p)
            if min(pair) < 0:
                raise ValueError(f"`{what}` must be >= 0, got {value!r}")
            pairs.append(pair)
        return tuple(pairs), False
    p = as_int(value, what)
    if p < 0:
        raise ValueError(f"`{what}` must be >= 0, got {value!r}")
    return ((p, p),), True


def common_ndim(lengths: dict[str, int], owner: str) -> int | None:
    """The one length shared by all per-axis parameters given as tuples (None if none was)."""
    if not lengths:
        return None
    distinct = set(lengths.values())
    if len(distinct) > 1:
        parts = ", ".join(f"`{k}` has {v}" for k, v in lengths.items())
        raise ValueError(f"{owner}: per-axis parameters disagree on the number of axes ({parts})")
    return distinct.pop()


def broadcast(values: tuple, ndim: int) -> tuple:
    return values * ndim if len(values) == 1 else values


def positive_number(value: Any, what: str) -> int | float:
    if isinstance(value, bool) or (
        not isinstance(value, (int, float)) and not hasattr(value, "__index__")
    ):
        raise TypeError(f"`{what}` must be a positive number, got {value!r}")
    if hasattr(value, "__index__"):
        value = operator.index(value)
    elif float(value).is_integer():
        value = int(value)
    if not (value > 0) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"`{what}` must be a positive number, got {value!r}")
    return value


def check_channels(owner: str, in_channels: Any, out_channels: Any, groups: Any) -> tuple:
    cin = None if in_channels is None else ints(in_channels, f"{owner} in_channels", 1)[0][0]
    cout = None if out_channels is None else ints(out_channels, f"{owner} out_channels", 1)[0][0]
    g = ints(groups, f"{owner} groups", 1)[0][0]
    for what, c in (("in_channels", cin), ("out_channels", cout)):
        if c is not None and c % g:
            raise ValueError(f"{owner}: `{what}` ({c}) must be divisible by `groups` ({g})")
    return cin, cout, g


# --------------------------------------------------------------------------- formatting
def fmt_axes(values: Sequence[Any]) -> str:
    """``(3, 3)`` -> ``"3"``; ``(3, 5)`` -> ``"3x5"`` (the spec grammar's per-axis form)."""
    if len(set(values)) == 1:
        return str(values[0])
    return "x".join(str(v) for v in values)


def fmt_padding(padding: Padding) -> str:
    if isinstance(padding, str):
        return padding
    if all(b == a for b, a in padding):
        return fmt_axes([b for b, _ in padding])
    return "x".join(f"({b},{a})" for b, a in padding)


def fmt_shape(shape: Sequence[int] | None) -> str:
    """``(224, 224)`` -> ``"224x224"``; None (unknown) -> ``"?"``; ``()`` -> ``"scalar"``."""
    if shape is None:
        return "?"
    return "x".join(str(n) for n in shape) if len(shape) else "scalar"


def repr_axes(values: tuple, ndim: int | None) -> str:
    return repr(values[0]) if ndim is None else repr(values)


def repr_padding(padding: Padding, ndim: int | None) -> str:
    if isinstance(padding, str):
        return repr(padding)
    if all(b == a for b, a in padding):
        return repr_axes(tuple(b for b, _ in padding), ndim)
    return repr(padding)


def weights_repr(layer: Layer) -> list[str]:
    """repr arguments of a weighted layer's channels, groups and bias (defaults left out)."""
    args = [
        f"{f}={getattr(layer, f)}"
        for f in ("in_channels", "out_channels")
        if getattr(layer, f, None) is not None
    ]
    if getattr(layer, "groups", 1) != 1:
        args.append(f"groups={layer.groups}")  # type: ignore[attr-defined]
    if not getattr(layer, "bias", True):
        args.append("bias=False")
    return args


# --------------------------------------------------------------------------- geometry state
@dataclass(frozen=True)
class Field:
    """Receptive field of a node's units along one axis (exact fractions).

    ``rf``: size in input pixels; ``jump``: input pixels between neighbouring units;
    ``start``: input coordinate of unit 0's centre (None when it depends on an input size that
    is not known). A field that is the whole input is :data:`GLOBAL`.
    """

    rf: Fraction
    jump: Fraction
    start: Fraction | None

    @property
    def eff_padding(self) -> Fraction | None:
        return None if self.start is None else (self.rf - 1) / 2 - self.start


#: the field of a unit that sees the whole input along an axis (after a dense layer, a global
#: pool, a norm over space or global attention)
GLOBAL: Any = None

IDENTITY_FIELD = Field(Fraction(1), Fraction(1), Fraction(0))


#: how a layer applied to graph values (``Conv(3)(x)``) builds its node: the graph module, a
#: layer above the op rules, installs it when it loads (DESIGN §7: nothing imports upward)
_NODE_BUILDER: list[Callable[[Any, tuple[Any, ...]], Any]] = []


def install_node_builder(build: Callable[[Any, tuple[Any, ...]], Any]) -> None:
    """Make ``layer(*values)`` call ``build(layer, values)``."""
    _NODE_BUILDER[:] = [build]


# --------------------------------------------------------------------------- base class
class Layer:
    """Base class of every operation. Layers are frozen, hashable value objects.

    A layer is also a node factory for the graph builder: ``Conv(3, padding=1)(x)`` applies
    it to the symbolic value ``x`` (see :func:`rfanalysis.Input`).
    """

    op_name: ClassVar[str] = ""
    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    #: "keep" (as the input), "weighted" (declared or free), "sum" (concat), "unify" (all
    #: inputs and the output agree), "gate" (as unify, but an input of 1 channel broadcasts),
    #: "one" (a single channel: a dense layer's features)
    channel_rule: ClassVar[str] = "keep"
    weighted: ClassVar[bool] = False
    #: reads its input as a spatial map (windows); a dense layer's output has no spatial layout
    needs_space: ClassVar[bool] = False
    #: its output has no spatial layout (a dense layer's features)
    flattens: ClassVar[bool] = False
    #: names of per-axis int-tuple fields and padding fields, used by expand()
    _axis_fields: ClassVar[tuple[str, ...]] = ()
    ndim: int | None
    name: str | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("op_name")
        if name:
            known = REGISTRY.get(name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise TypeError(f"operation {name!r} is already registered by {known}")
            REGISTRY[name] = cls

    # -- values ---------------------------------------------------------------------------
    def expand(self, ndim: int) -> Layer:
        """Return this layer with every per-axis parameter written out for ``ndim`` axes."""
        return _expand_cached(self, ndim)

    def _expand(self, ndim: int) -> Layer:
        if self.ndim is not None:
            if self.ndim != ndim:
                raise ValueError(
                    f"{self.label} is {self.ndim}-D but the input has {ndim} spatial axes"
                )
            return self
        changes = {}
        for f in self._axis_fields:
            value = getattr(self, f)
            if not isinstance(value, str):
                changes[f] = broadcast(value, ndim)
        return replace(self, **changes) if changes else self  # type: ignore[type-var]

    def spec(self) -> str:
        """The compact spec of this layer."""
        return self.op_name

    @property
    def label(self) -> str:
        """Display label: the compact spec, with the layer's name if it has one."""
        s = self.spec()
        return f"{self.name}: {s}" if getattr(self, "name", None) else s

    def __str__(self) -> str:
        return self.spec()

    def _repr_args(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        args = self._repr_args()
        if getattr(self, "name", None):
            args.append(f"name={self.name!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    def file_fields(self) -> dict[str, Any]:
        """Constructor arguments, as spec files store them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}  # type: ignore[arg-type]

    def __call__(self, *inputs: Any) -> Any:
        """Apply this layer to symbolic values of a graph under construction."""
        if not _NODE_BUILDER:  # pragma: no cover - loading the package installs it
            raise RuntimeError("layers build graph nodes once rfanalysis._graph is loaded")
        return _NODE_BUILDER[0](self, inputs)

    # -- rules (defaults) -----------------------------------------------------------------
    in_channels: int | None = None  # declared by weighted layers

    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, Any]:
        """Shape rule: ``(output shape, resolved data)`` for inputs of ``in_shapes`` (None:
        unknown). Raise :class:`OpError` for inputs this operation cannot take."""
        raise NotImplementedError(f"operation {self.op_name!r} has no shape rule")

    #: some of its routes only modulate the map (context "local" drops them)
    modulates: ClassVar[bool] = False

    def routes_back(self, step: Any, g: Any, alg: Any) -> tuple[Any, ...]:
        """Route rule: counts per output unit ``g`` -> counts per unit of each input (None
        for an input that no route reaches through this operation)."""
        raise NotImplementedError(f"operation {self.op_name!r} has no route rule")

    def reach(self, step: Any, inputs: tuple[Any, ...]) -> Any:
        """Support rule: boolean map of the output units that read some True unit of the
        inputs (one boolean map per input)."""
        raise NotImplementedError(f"operation {self.op_name!r} has no support rule")

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        """Geometry rule: per-axis :class:`Field` (or :data:`GLOBAL`) of the output units from
        those of the inputs, and a note (empty, or what the table should say)."""
        return tuple(GLOBAL for _ in inputs[0]), ""

    # context "local": the routes that carry the map (default: all of them)
    def local_routes_back(self, step: Any, g: Any, alg: Any) -> tuple[Any, ...]:
        return self.routes_back(step, g, alg)

    def local_reach(self, step: Any, inputs: tuple[Any, ...]) -> Any:
        return self.reach(step, inputs)

    def local_field(
        self, step: Any, inputs: tuple[tuple[Any, ...], ...]
    ) -> tuple[tuple[Any, ...], str] | None:
        """The field in context "local"; None when no carrying route is left (the unit then
        keeps its global field)."""
        return self.field(step, inputs)

    def params(self, step: Any) -> tuple[int | None, int | None, int | None, int | None]:
        """(as given, shared, locally connected, dense) parameter counts, where known."""
        return 0, None, None, None

    def weight_shape(self, node: Any) -> tuple[tuple[int, ...], int] | None:
        """Per-trial weight shape (torch layout) and fan-in, for weighted operations."""
        return None

    def np_forward(self, node: Any, xs: list[Any], w: Any) -> tuple[Any, Any]:
        raise NotImplementedError(f"operation {self.op_name!r} has no numpy backend")

    def np_backward(self, node: Any, gy: Any, saved: Any, w: Any) -> tuple[Any, ...]:
        raise NotImplementedError(f"operation {self.op_name!r} has no numpy backend")

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        raise NotImplementedError(f"operation {self.op_name!r} has no torch backend")

    def on_axis(self, axis: int) -> Layer:
        """The 1-D operation this one performs along ``axis`` (separable operations)."""
        raise NotImplementedError(f"operation {self.op_name!r} does not act axis by axis")

    def uneven(self, step: Any) -> list[Any]:
        """Axes whose windows use the padding unevenly (windowed operations)."""
        return []


class ReadsWholeMap(Layer):
    """An operation every output unit of which reads every input unit (a dense layer, a
    global pool, a norm's statistics): its routes are rank one, the total of the output's
    counts at every input unit, and its field is global (the default)."""

    def routes_back(self, step: Any, g: Any, alg: Any) -> tuple[Any, ...]:
        return (alg.full(step.in_shape, alg.total(g)),)

    def reach(self, step: Any, inputs: tuple[Any, ...]) -> Any:
        return np.full(step.out_shape, bool(inputs[0].any()))


@lru_cache(maxsize=4096)
def _expand_cached(layer: Layer, ndim: int) -> Layer:
    # layers are hashable values, so a stack of identical layers expands once
    return layer._expand(ndim)


def is_registered(layer: Any) -> bool:
    return isinstance(layer, Layer) and REGISTRY.get(layer.op_name) is type(layer)
