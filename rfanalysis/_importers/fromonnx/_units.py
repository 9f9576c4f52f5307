"""Units of tensors and the graph they build, on numpy (the ONNX importer runs no torch).

Beside every tensor that depends on the input the importer keeps a :class:`Value`: the graph
node whose units the tensor's elements belong to, and for every element which unit (an int64
array of the tensor's shape; -1 where an element is a constant). Layout operators run on the
units themselves; structured layers bring their input to a grid first (a
:class:`~rfanalysis._ops.reads.Reads` node where elements moved); relations (products,
reductions, softmax, norms) read sets of units. This is the scheme of the torch importer,
written for numpy arrays; the helpers both importers share are in
:mod:`rfanalysis._importers.units`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import numpy as np

from ..._ops import Layer
from ..._ops.reads import Reads
from ..errors import ConversionError
from ..units import Graph as BaseGraph
from ..units import (
    Read,
    channels,
    compact,
    fiber_sets,
    gather_node,
    graph_read,
    identity_relation,
    norm_relation,
    relation_node,
    varying_axes,
)

_ORIGINS = count()


@dataclass(eq=False)
class Value:
    """A tensor that depends on the input: its elements' units in ``node``."""

    node: int
    units: np.ndarray  # int64, the tensor's shape (often a broadcast view); -1: a constant
    gate: bool = False  # made by a gating non-linearity (sigmoid family)
    neg: np.ndarray | None = None  # elements pushed to -inf by an additive constant mask
    # the tensor this one is a pointwise function or a layout of: operands of one origin
    # are one tensor (x * sigmoid(x)); a layer's output is a tensor of its own, even where
    # it keeps the units (a convolution of a single-unit map)
    origin: int = field(default_factory=lambda: next(_ORIGINS))
    # attention written out (as every export writes it): scores ``q @ k^T`` remember their
    # factors ``(q, k^T)``; their softmax remembers ``(q, k^T, allowed)`` for the product
    # with the values, which then reads as attention does (DESIGN section 9)
    scores: Any = None
    attn: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.units.shape)


@dataclass(eq=False)
class Opaque:
    """A tensor computed from the input that carries no gradient (a comparison, an index):
    a constant whose values are unknown."""

    shape: tuple[int, ...]
    dtype: Any


@dataclass
class Graph(BaseGraph):
    """The network graph under construction."""

    def refusal(self, label: str, layer: Layer, exc: ValueError) -> Exception:
        return ConversionError(f"from_onnx: node {label!r} ({layer.label}): {exc}")


def canonical_units(shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Units of a tensor whose positions along ``axes`` are a grid's units (row-major) and
    whose other axes are channels."""
    grid = tuple(shape[a] for a in axes)
    view = [1] * len(shape)
    for a, n in zip(axes, grid):
        view[a] = n
    ids = np.arange(math.prod(grid), dtype=np.int64).reshape(grid)
    return np.broadcast_to(ids.reshape(view), shape)


def is_canonical(units: np.ndarray, axes: tuple[int, ...]) -> bool:
    """Whether ``units`` equal :func:`canonical_units` of their shape along ``axes``."""
    small = compact(units)
    shape = tuple(units.shape)
    if any(small.shape[a] != 1 for a in range(len(shape)) if a not in axes):
        return bool(np.array_equal(units, canonical_units(shape, axes)))
    if any(small.shape[a] != shape[a] for a in axes):
        return False
    return bool(np.array_equal(small, canonical_units(tuple(small.shape), axes)))


class Converter:
    """Makes graph nodes from values: brings a value to a grid, applies structured layers,
    and turns what elements read into merges or relations."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def grid(self, node: int) -> tuple[int, ...]:
        return self.graph.grid(node)

    def canonical(self, value: Value, axes: tuple[int, ...], label: str) -> int:
        """A node whose grid is ``value``'s tensor along ``axes``: ``value.node`` where the
        elements are its units in order, else a ``Reads`` node that gathers them."""
        shape = value.shape
        grid = tuple(shape[a] for a in axes) or (1,)
        node = value.node
        chans = channels(shape, axes)
        if self.grid(node) == grid and is_canonical(value.units, axes):
            if self.graph.channels_of(node) == chans:
                return node
            rel = identity_relation(math.prod(grid))
            layer = Reads((grid,), grid, (rel,), (rel,), "channels", out_channels=chans,
                          name=label)  # fmt: skip
            return self.graph.add(layer, (node,), label, chans)
        return gather_node(self.graph, node, value.units, axes, label)

    def structured(
        self,
        value: Value,
        layers: list[Layer],
        out_shape: tuple[int, ...],
        label: str,
        axes: tuple[int, ...] | None = None,
    ) -> Value:
        """Structured layers applied to ``value`` on its grid ``axes`` (default ``2..``)."""
        if axes is None:
            axes = tuple(range(2, value.units.ndim))
        if math.prod(self.grid(value.node)) == 1:
            present = np.unique(compact(value.units))
            present = present[present >= 0]
            if present.size == 1:
                # every element is one unit: whatever the layer mixes, its output is it
                return Value(value.node, np.broadcast_to(present[:1], out_shape))
        node = self.canonical(value, axes, label)
        chans = self.graph.channels_of(node)
        for k, layer in enumerate(layers):
            if k == len(layers) - 1:
                chans = channels(out_shape, axes)
            elif getattr(layer, "out_channels", None):
                chans = layer.out_channels  # type: ignore[attr-defined]
            node = self.graph.add(layer, (node,), label, chans)
        grid = tuple(out_shape[a] for a in axes) or (1,)
        if self.grid(node) != grid:
            got = "x".join(map(str, self.grid(node)))
            raise ConversionError(
                f"from_onnx: node {label!r} maps to "
                f"{','.join(x.spec() for x in layers)} with output {got}, but the model "
                f"gives {'x'.join(map(str, grid))}"
            )
        return Value(node, canonical_units(out_shape, axes))

    def read(self, value: Value, ids: np.ndarray, sets: list[np.ndarray]) -> Read:
        """What elements read of ``value``; a read of the whole map only modulates."""
        return graph_read(self.graph, value, ids, sets)

    def relate(
        self,
        reads: list[Read],
        shape: tuple[int, ...],
        what: str,
        label: str,
        merge: str | None = None,
        force: tuple[int, ...] = (),
    ) -> Value:
        """The output of an operation whose elements read sets of units of the operands
        (see the torch importer's ``Converter.relate``)."""
        arrays = [r.ids for r in reads]
        axes = tuple(sorted(set(varying_axes(arrays)) | set(force))) if arrays else force
        if len(reads) == 1 and reads[0].sets is None and reads[0].local == "same" and not force:
            r = reads[0]
            return Value(r.value.node, r.ids)
        node = relation_node(self.graph, reads, shape, axes, what, label, merge)
        units = canonical_units(shape, axes) if axes else np.zeros(shape, dtype=np.int64)
        return Value(node, units)

    def norm_over(self, value: Value, dims: tuple[int, ...], label: str) -> Value:
        """A normalisation whose statistics span ``dims``: every unit reads the units its
        statistics read (locally itself); over channels only, the identity of space."""
        units = value.units
        ids, sets = fiber_sets(units, dims)
        ids = np.broadcast_to(np.expand_dims(ids, dims), units.shape)
        if all(len(s) == 1 for s in sets):
            return Value(value.node, value.units)
        graph = self.graph
        grid = graph.grid(value.node)
        n = math.prod(grid)
        rel = norm_relation(units, ids, sets, n)
        chans = graph.channels_of(value.node)
        layer = Reads((grid,), grid, (rel,), (identity_relation(n),), "norm",
                      out_channels=chans, name=label)  # fmt: skip
        node = graph.add(layer, (value.node,), label, chans)
        return Value(node, value.units)
