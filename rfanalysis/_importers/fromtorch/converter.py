"""The converter: builds the network graph while an interpreter runs the model.

Operations fall into three kinds:

* **layout** (permute, view, reshape, flatten, transpose, slicing, chunk, pad, roll, repeat,
  expand, pixel shuffle, channel shuffle, concatenation along a non-channel axis, ...): the
  same operation applied to ``units`` says where every element went; no node is made;
* **structured layers** (convolutions, pools, interpolation, dense layers, global pooling,
  norms over space): the input is first brought to the layer's grid (its spatial axes; a
  :class:`~rfanalysis._ops.reads.Reads` node where elements moved), then the layer is a node;
* **relations** (pointwise products and sums of several tensors, reductions, softmax,
  normalisations, matrix products, attention): each output element reads sets of units of
  each operand; the output's units are the positions along the axes where what they read
  varies, and the relation becomes a structured merge where it is one (an add, a gated
  product) and a ``Reads`` node otherwise. An operation of one operand whose every element
  reads a single unit (a norm over channels, a per-token linear layer) is an identity of
  units and makes no node.

Context "local" is decided where the relation is made: the gate side of a product, the
statistics of a norm over space and reads that span every unit of an operand (global
attention, token mixing, global means) only modulate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..._ops import Layer
from ..._ops.reads import Reads
from ..units import (
    Read,
    compact,
    gather_node,
    graph_read,
    identity_relation,
    relation_node,
    varying_axes,
)
from ..units import channels as channels_of_shape
from .units import Graph, Value, as_units, canonical_units, is_canonical


class Converter:
    """Builds the graph while an fx interpreter runs the model (see the module docstring).

    ``rules`` (a :class:`Rules`) maps modules and functions to what they do; ``graph`` is
    shared with nested converters of submodules traced on their own.
    """

    def __init__(self, torch: Any, rules: Any, graph: Graph, name: str) -> None:
        self.torch = torch
        self.rules = rules
        self.graph = graph
        self.name = name

    # -- node factories -------------------------------------------------------------------
    def canonical(self, value: Value, axes: tuple[int, ...], label: str) -> int:
        """A node whose grid is ``value``'s tensor along ``axes`` (the other axes being
        channels): ``value.node`` itself where the elements are its units in order, else a
        new ``Reads`` node that gathers them."""
        torch = self.torch
        shape = tuple(value.units.shape)
        grid = tuple(shape[a] for a in axes) or (1,)
        node = value.node
        channels = channels_of_shape(shape, axes)
        if self.grid(node) == grid:
            if is_canonical(torch, value.units, axes):
                if self.graph.channels_of(node) == channels:
                    return node
                # the same units with other channels (a chunk or split of the channels)
                n = math.prod(grid)
                rel = identity_relation(n)
                layer = Reads((grid,), grid, (rel,), (rel,), "channels", out_channels=channels,
                              name=label)  # fmt: skip
                return self.graph.add(layer, (node,), label, channels)
        return gather_node(self.graph, node, value.np(), axes, label)

    def grid(self, node: int) -> tuple[int, ...]:
        return self.graph.grid(node)

    def structured(
        self, value: Value, layers: list[Layer], real: Any, label: str, axes: Any = None
    ) -> Value:
        """Structured layers applied to ``value`` on its spatial axes (default ``2..``); the
        result's units are the last layer's grid."""
        if axes is None:
            axes = tuple(range(2, value.units.ndim))
        present = np.zeros(0, dtype=np.int64)
        if math.prod(self.grid(value.node)) == 1:
            present = np.unique(compact(value.np()))
            present = present[present >= 0]
        if present.size == 1:
            # every element is one unit (a pooled gate's channels laid out as positions, as
            # ECA's 1-D convolution over channels does): whatever the layer mixes, its
            # output is that unit
            return Value(value.node, self.torch.full(tuple(real.shape), float(present[0]),
                                                     dtype=self.torch.float64))  # fmt: skip
        node = self.canonical(value, axes, label)
        channels = self.graph.channels_of(node)
        for k, layer in enumerate(layers):
            if k == len(layers) - 1:
                channels = channels_of_shape(tuple(real.shape), axes)
            elif getattr(layer, "out_channels", None):
                channels = layer.out_channels  # type: ignore[attr-defined]
            node = self.graph.add(layer, (node,), label, channels)
        grid = tuple(real.shape[a] for a in axes) or (1,)
        if self.grid(node) != grid:
            got = "x".join(map(str, self.grid(node)))
            raise ValueError(
                f"from_torch: {label!r} maps to {','.join(x.spec() for x in layers) or 'nothing'} "
                f"with output {got}, but the model gives {'x'.join(map(str, grid))}; map it with "
                "overrides= to layers that give the model's shape"
            )
        return Value(node, canonical_units(self.torch, tuple(real.shape), axes))

    def read(self, value: Value, ids: np.ndarray, sets: list[np.ndarray]) -> Read:
        """What elements read of ``value`` (see :func:`~rfanalysis._importers.units.graph_read`)."""
        return graph_read(self.graph, value, ids, sets)

    def relate(
        self,
        reads: list[Read],
        real: Any,
        what: str,
        label: str,
        merge: str | None = None,
        force: tuple[int, ...] = (),
    ) -> Value:
        """The output of an operation whose elements read sets of units of the operands.

        The output's units are its positions along the axes where what the elements read
        varies (and the ``force`` axes); a single operand read unit for unit keeps its node.
        In context "local" a unit reads what its elements read (a norm's elements themselves,
        which may be several units where channels hold positions). ``merge`` ("add" or
        "mul") lets several operands become a structured add or gated product where every
        operand is the output's grid or a single broadcast unit.
        """
        shape = tuple(real.shape)
        reads = [r for r in reads if r.value is not None]
        arrays = [r.ids for r in reads]
        axes = tuple(sorted(set(varying_axes(arrays)) | set(force))) if arrays else force
        if len(reads) == 1 and reads[0].sets is None and reads[0].local == "same" and not force:
            r = reads[0]
            return Value(r.value.node, as_units(self.torch, r.ids))
        node = relation_node(self.graph, reads, shape, axes, what, label, merge)
        return Value(node, canonical_units(self.torch, shape, axes) if axes else
                     self.torch.zeros(shape, dtype=self.torch.float64))  # fmt: skip
