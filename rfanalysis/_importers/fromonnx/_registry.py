"""The rule table: one converter per ONNX operator type, registered with :func:`rule`.

A converter takes a :class:`Ctx` (the node, its inputs as the importer holds them, the graph
under construction) and returns one entry per node output: a numpy array (a constant), a
:class:`~._units.Value` (a tensor that depends on the input), an :class:`~._units.Opaque`
(computed from the input, no gradient) or None (an output nobody reads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConversionError
from ._units import Converter, Opaque, Value

#: operator type -> converter
RULES: dict[str, Callable[[Ctx], list[Any]]] = {}


def rule(*op_types: str) -> Callable:
    """Register a converter for ``op_types`` (default domain)."""

    def register(fn: Callable) -> Callable:
        for op in op_types:
            RULES[op] = fn
        return fn

    return register


class NoRule(Exception):
    """The operator has no rule for these inputs (the loop turns it into the one-line
    error)."""


def shape_of(x: Any) -> tuple[int, ...]:
    if isinstance(x, Value):
        return x.shape
    if isinstance(x, Opaque):
        return x.shape
    return tuple(np.shape(x))


@dataclass
class Ctx:
    """What a converter sees of one node."""

    node: Any  # onnx.NodeProto
    label: str
    inputs: list[Any]  # per input: an array, a Value, an Opaque or None (absent)
    attrs: dict[str, Any]
    conv: Converter
    evaluate: Callable[[Any, list[Any]], list[np.ndarray]]  # the node's own reference op

    @property
    def op(self) -> str:
        return str(self.node.op_type)

    @property
    def graph(self) -> Any:
        return self.conv.graph

    def values(self) -> list[Value]:
        return [x for x in self.inputs if isinstance(x, Value)]

    def input(self, k: int) -> Any:
        return self.inputs[k] if k < len(self.inputs) else None

    def const(self, k: int, default: Any = None) -> Any:
        """Input ``k`` as a constant array (``default`` where absent)."""
        x = self.input(k)
        if x is None:
            return default
        if isinstance(x, (Value, Opaque)):
            raise ConversionError(
                f"from_onnx: node {self.label!r} ({self.op}) reads input {k} "
                f"({self.node.input[k]!r}) as a constant, but it is computed from the model's "
                "input"
            )
        return np.asarray(x)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def run(self, feeds: list[Any], node: Any = None) -> list[np.ndarray]:
        """This node's operator (or ``node``) on numpy ``feeds``."""
        return self.evaluate(node if node is not None else self.node, feeds)

    def fail(self, why: str) -> ConversionError:
        return ConversionError(f"from_onnx: node {self.label!r} ({self.op}): {why}")
