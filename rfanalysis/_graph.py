"""Networks as graphs.

A network is a directed acyclic graph: node 0 is the input; every other node applies one
operation to the outputs of earlier nodes (its ``inputs``, by index); the last node is the
output. Nodes are stored in topological order, as ``torch.fx`` and jaxprs do.

Three ways build one:

* a sequence of layers, with :class:`Residual`, :class:`Concat` and :class:`Parallel` blocks
  for branches (the tree shorthand that specs and most zoo entries use);
* the functional builder: ``x = Input(); y = Add()(x, Conv(3, padding=1)(x));
  Network(y)``, which writes any DAG (DenseNet blocks, DLA trees, HRNet fusions, U-Nets);
* spec files with a ``nodes`` list (each node names its inputs).

A network built from a sequence keeps it (``net.layers``, ``net.spec()``); a graph that can be
written as nested blocks (series-parallel) is given the same form on request.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from ._ops import Add, Cat, Layer, Mul
from ._ops.base import REGISTRY

_ids = itertools.count()


# --------------------------------------------------------------------------- blocks
def _as_layers(value: Any, what: str) -> tuple[Layer, ...]:
    """A layer, a Network or a sequence of layers (nested Networks flattened) -> tuple."""
    if isinstance(value, Layer):
        return (value,)
    if isinstance(value, Network):
        return value.layers
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"`{what}` must be a layer or a sequence of layers, got {value!r}")
    out: list[Layer] = []
    for i, item in enumerate(value):
        if isinstance(item, Network):
            out.extend(item.layers)
        elif isinstance(item, Layer):
            out.append(item)
        else:
            raise TypeError(f"`{what}` item {i + 1} is not a layer: {item!r}")
    return tuple(out)


def _sequence_ndim(layers: Sequence[Layer], owner: str) -> int | None:
    ndim: int | None = None
    first = ""
    for i, layer in enumerate(layers):
        if layer.ndim is None:
            continue
        if ndim is None:
            ndim, first = layer.ndim, f"layer {i + 1} ({layer.label})"
        elif layer.ndim != ndim:
            raise ValueError(
                f"{owner}: layer {i + 1} ({layer.label}) is {layer.ndim}-D but {first} is {ndim}-D"
            )
    return ndim


def sequence_spec(layers: Sequence[Layer]) -> str:
    """Compact spec of a sequence, with runs of equal layers written ``item*N``."""
    if not layers:
        return "id"
    items: list[str] = []
    run_spec, run = "", 0
    for layer in layers:
        s = layer.spec()
        if s == run_spec:
            run += 1
            continue
        if run:
            items.append(run_spec if run == 1 else f"{run_spec}*{run}")
        run_spec, run = s, 1
    items.append(run_spec if run == 1 else f"{run_spec}*{run}")
    return ",".join(items)


class Block(Layer):
    """Branches applied to the same input, merged by one operation (the tree shorthand)."""

    branches: tuple[tuple[Layer, ...], ...]
    branch_names: tuple[str, ...]

    def merge_layer(self) -> Layer:  # pragma: no cover - every block overrides
        raise NotImplementedError

    def _expand_branches(self, ndim: int) -> tuple[tuple[Layer, ...], ...]:
        Layer._expand(self, ndim)  # checks a fixed ndim
        return tuple(tuple(x.expand(ndim) for x in b) for b in self.branches)


@dataclass(frozen=True, repr=False)
class Residual(Block):
    """``y = body(x) + shortcut(x)``; ``shortcut=None`` is the identity.

    Routes through the block are routes through the body plus routes through the shortcut.

    >>> import rfanalysis as rfa
    >>> rfa.Residual([rfa.Conv(3, padding=1), rfa.Conv(3, padding=1)]).spec()
    'res(conv3p1*2)'
    """

    body: Any
    shortcut: Any = None
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        body = _as_layers(self.body, "body")
        if not body:
            raise ValueError("Residual `body` must contain at least one layer")
        shortcut = None if self.shortcut is None else _as_layers(self.shortcut, "shortcut")
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "shortcut", shortcut or None)
        object.__setattr__(self, "ndim", _sequence_ndim(body + (shortcut or ()), "Residual"))

    @property
    def branches(self) -> tuple[tuple[Layer, ...], ...]:  # type: ignore[override]
        """``(body, shortcut)``; an identity shortcut is the empty tuple."""
        return (self.body, self.shortcut or ())

    branch_names = ("body", "shortcut")

    def merge_layer(self) -> Layer:
        return Add(name=self.name)

    def _expand(self, ndim: int) -> Layer:
        body, shortcut = self._expand_branches(ndim)
        return replace(self, body=body, shortcut=shortcut or None)

    def spec(self) -> str:
        inner = sequence_spec(self.body)
        if self.shortcut:
            inner += "|" + sequence_spec(self.shortcut)
        return f"res({inner})"

    def _repr_args(self) -> list[str]:
        args = [repr(list(self.body))]
        if self.shortcut:
            args.append(f"shortcut={list(self.shortcut)!r}")
        return args

    def file_fields(self) -> dict[str, Any]:
        return {"body": self.body, "shortcut": self.shortcut, "name": self.name}


@dataclass(frozen=True, repr=False, init=False)
class Parallel(Block):
    """Branches applied to the same input and merged by ``merge`` (an :class:`~rfanalysis.Add`,
    :class:`~rfanalysis.Mul` or :class:`~rfanalysis.Cat`; or its name). An empty branch is
    the identity.

    >>> import rfanalysis as rfa
    >>> rfa.Parallel([], [rfa.Pool(1)], merge="mul").spec()   # x * f(x): a gate
    'mul(id|maxpool1)'
    """

    branches: tuple[tuple[Layer, ...], ...]
    merge: Layer
    name: str | None
    ndim: int | None

    def __init__(self, *branches: Any, merge: Any = "add", name: str | None = None) -> None:
        if not branches:
            raise ValueError("Parallel needs at least one branch")
        if isinstance(merge, str):
            cls = REGISTRY.get(merge)
            if cls not in (Add, Mul, Cat):
                raise ValueError(f"`merge` must be 'add', 'mul' or 'cat'; got {merge!r}")
            merge = cls()
        if not isinstance(merge, (Add, Mul, Cat)):
            raise TypeError(f"`merge` must be Add(), Mul() or Cat(), got {merge!r}")
        normalised = tuple(
            () if b is None else _as_layers(b, f"branch {i + 1}") for i, b in enumerate(branches)
        )
        object.__setattr__(self, "branches", normalised)
        object.__setattr__(self, "merge", merge)
        object.__setattr__(self, "name", name)
        object.__setattr__(
            self, "ndim", _sequence_ndim([x for b in normalised for x in b], "Parallel")
        )

    @property
    def branch_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"branch{b + 1}" for b in range(len(self.branches)))

    def merge_layer(self) -> Layer:
        return replace(self.merge, name=self.name)  # type: ignore[type-var]

    def _expand(self, ndim: int) -> Layer:
        return Parallel(*self._expand_branches(ndim), merge=self.merge, name=self.name)

    def spec(self) -> str:
        return f"{self.merge.op_name}(" + "|".join(sequence_spec(b) for b in self.branches) + ")"

    def _repr_args(self) -> list[str]:
        merge = repr(self.merge) if self.merge._repr_args() else repr(self.merge.op_name)
        return [repr(list(b)) for b in self.branches] + [f"merge={merge}"]

    def file_fields(self) -> dict[str, Any]:
        return {"branches": self.branches, "merge": self.merge.op_name, "name": self.name}


@dataclass(frozen=True, repr=False, init=False)
class Concat(Block):
    """Channel concatenation of branches applied to the same input.

    Channels are collapsed, so routes through the block are the sum over branches. Every
    branch must produce the same spatial shape. An empty branch is the identity.

    >>> import rfanalysis as rfa
    >>> rfa.Concat([rfa.Conv(1)], [rfa.Conv(3, padding=1)]).spec()
    'cat(conv1|conv3p1)'
    """

    branches: tuple[tuple[Layer, ...], ...]
    name: str | None
    ndim: int | None

    def __init__(self, *branches: Any, name: str | None = None) -> None:
        if not branches:
            raise ValueError("Concat needs at least one branch")
        normalised = tuple(
            () if b is None else _as_layers(b, f"branch {i + 1}") for i, b in enumerate(branches)
        )
        object.__setattr__(self, "branches", normalised)
        object.__setattr__(self, "name", name)
        object.__setattr__(
            self, "ndim", _sequence_ndim([x for b in normalised for x in b], "Concat")
        )

    @property
    def branch_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"branch{b + 1}" for b in range(len(self.branches)))

    def merge_layer(self) -> Layer:
        return Cat(name=self.name)

    def _expand(self, ndim: int) -> Layer:
        return Concat(*self._expand_branches(ndim), name=self.name)

    def spec(self) -> str:
        return "cat(" + "|".join(sequence_spec(b) for b in self.branches) + ")"

    def _repr_args(self) -> list[str]:
        return [repr(list(b)) for b in self.branches]

    def file_fields(self) -> dict[str, Any]:
        return {"branches": self.branches, "name": self.name}


# --------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class Node:
    """One node of a network graph: ``layer`` applied to the nodes ``inputs`` (indices of
    earlier nodes). Node 0 is the input (``layer`` None). ``path`` names the node in tables
    and errors: its position in the block tree (``"5.body.2"``) or its index in a graph."""

    layer: Layer | None
    inputs: tuple[int, ...]
    path: str
    #: names of the inputs in tables and notes (a tree block's branch names)
    input_names: tuple[str, ...] = field(default=(), compare=False)
    #: the label of the tree block whose merge this node is (``"res(conv3p1*2)"``)
    block: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        if self.layer is None:
            return "input"
        return self.block or self.layer.label

    @property
    def where(self) -> str:
        return "the input" if self.layer is None else f"layer {self.path} ({self.label})"


def _expand_tree(layers: tuple[Layer, ...]) -> tuple[Node, ...]:
    """Nodes of a sequence of layers and blocks, in data-flow order (branches depth first)."""
    nodes: list[Node] = [Node(None, (), "input")]

    def sequence(items: tuple[Layer, ...], src: int, prefix: str) -> int:
        for index, layer in enumerate(items):
            path = f"{prefix}{index + 1}"
            if isinstance(layer, Block):
                ends = [
                    sequence(branch, src, f"{path}.{name}.")
                    for branch, name in zip(layer.branches, layer.branch_names)
                ]
                nodes.append(
                    Node(layer.merge_layer(), tuple(ends), path, layer.branch_names, layer.label)
                )
            else:
                nodes.append(Node(layer, (src,), path))
            src = len(nodes) - 1
        return src

    sequence(layers, 0, "")
    return tuple(nodes)


# --------------------------------------------------------------------------- builder
class Value:
    """A symbolic map of a graph under construction: the output of one node.

    Made by :func:`Input` and by applying a layer to values (``Conv(3)(x)``); passing the
    output value to :class:`Network` collects every node it depends on.
    """

    __slots__ = ("_order", "inputs", "layer", "name")

    def __init__(self, layer: Layer | None, inputs: tuple[Value, ...], name: str | None) -> None:
        self.layer = layer
        self.inputs = inputs
        self.name = name
        self._order = next(_ids)

    def __repr__(self) -> str:
        what = "input" if self.layer is None else self.layer.label
        return f"<rfanalysis.Value {what}>"


def Input(name: str = "input") -> Value:
    """The input of a graph under construction.

    >>> import rfanalysis as rfa
    >>> x = rfa.Input()
    >>> y = rfa.Add()(x, rfa.Conv(3, padding=1)(x))
    >>> rfa.Network(y).spec()
    'res(conv3p1)'
    """
    return Value(None, (), name)


def apply_layer(layer: Layer, inputs: tuple[Any, ...]) -> Value:
    """``layer(*inputs)`` on symbolic values (blocks and networks are applied inline)."""
    for i, v in enumerate(inputs):
        if not isinstance(v, Value):
            raise TypeError(
                f"{layer.label}: input {i + 1} must be a value of a graph under construction "
                f"(from rfanalysis.Input() or another layer), got {type(v).__name__}"
            )
    if isinstance(layer, Block):
        (x,) = _arity(layer, inputs, (1, 1))
        ends = []
        for branch in layer.branches:
            y = x
            for item in branch:
                y = apply_layer(item, (y,))
            ends.append(y)
        return apply_layer(layer.merge_layer(), tuple(ends))
    _arity(layer, inputs, layer.arity)
    return Value(layer, tuple(inputs), layer.name)


def _arity(layer: Layer, inputs: tuple, arity: tuple[int, int | None]) -> tuple:
    lo, hi = arity
    if len(inputs) < lo or (hi is not None and len(inputs) > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        raise TypeError(f"{layer.label} takes {want} input(s), got {len(inputs)}")
    return inputs


def _nodes_of(output: Value) -> tuple[Node, ...]:
    """The nodes ``output`` depends on, in topological order (by creation where free)."""
    seen: dict[int, Value] = {}
    stack = [output]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen[id(v)] = v
        stack.extend(v.inputs)
    values = sorted(seen.values(), key=lambda v: v._order)  # creation order is topological
    inputs = [v for v in values if v.layer is None]
    if not inputs:
        raise ValueError("the graph has no input: start it from rfanalysis.Input()")
    if len(inputs) > 1:
        raise ValueError(
            f"the graph has {len(inputs)} inputs; a network has one (use a single "
            "rfanalysis.Input() for every branch)"
        )
    index = {id(v): i for i, v in enumerate(values)}
    nodes = []
    for i, v in enumerate(values):
        path = "input" if v.layer is None else str(i)
        nodes.append(Node(v.layer, tuple(index[id(u)] for u in v.inputs), path))
    return tuple(nodes)


# --------------------------------------------------------------------------- validation
def check_nodes(nodes: Sequence[Node]) -> tuple[Node, ...]:
    """Validate a node list: node 0 the input, every input an earlier node, the arity of
    every operation, and every node on a path to the output (the last node)."""
    nodes = tuple(nodes)
    if not nodes or nodes[0].layer is not None or nodes[0].inputs:
        raise ValueError("a network graph starts with its input node")
    if len(nodes) < 2:
        raise ValueError("a Network needs at least one layer")
    for i, node in enumerate(nodes[1:], start=1):
        if node.layer is None:
            raise ValueError(f"node {node.path!r} has no operation; only node 0 is the input")
        if isinstance(node.layer, Block):
            raise ValueError(f"{node.where}: a block is not a graph node (expand it first)")
        for j in node.inputs:
            if not 0 <= j < i:
                raise ValueError(f"{node.where}: input {j} is not an earlier node")
        _arity(node.layer, node.inputs, node.layer.arity)
    used = {len(nodes) - 1}
    for i in range(len(nodes) - 1, 0, -1):
        if i in used:
            used.update(nodes[i].inputs)
    dead = [n for i, n in enumerate(nodes) if i not in used]
    if dead:
        raise ValueError(
            f"{dead[0].where} does not lead to the output (the last node); remove it or make "
            "the output depend on it"
        )
    return nodes


#: what a route may be (DESIGN section 9): every dependence ("global", the support of
#: autograd's gradient), or only the routes that carry the map ("local")
CONTEXTS = ("global", "local")


def check_context(context: Any) -> str:
    """``context`` if it is one of :data:`CONTEXTS`, else ValueError."""
    if context not in CONTEXTS:
        raise ValueError(f"`context` must be 'global' or 'local', got {context!r}")
    return str(context)


# --------------------------------------------------------------------------- network
class Network:
    """A network: a graph of operations on one input map.

    Parameters
    ----------
    layers : layer, sequence of layers, Network, or Value
        A sequence (residual, concat and parallel blocks nest further sequences; nested
        networks are flattened), or the output :class:`Value` of a graph built with
        :func:`Input` and layer calls.
    name : str, optional

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> net = rfa.Network([rfa.Conv(3, padding=1)] * 2 + [rfa.Pool(2)], name="tiny")
    >>> net.spec()
    'conv3p1*2,maxpool2'
    >>> len(net)
    3

    A DenseNet block: every layer reads the concatenation of all earlier maps.

    >>> x = rfa.Input()
    >>> a = rfa.Conv(3, padding=1)(x)
    >>> b = rfa.Conv(3, padding=1)(rfa.Cat()(x, a))
    >>> c = rfa.Conv(3, padding=1)(rfa.Cat()(x, a, b))
    >>> block = rfa.Network(rfa.Cat()(x, a, b, c))
    >>> len(block.nodes), block.nodes[-1].inputs
    (7, (0, 1, 3, 5))
    >>> rfa.coverage(block, (5,)).tolist()   # 1 + [2 3 3 3 2] + [7 11 12 11 7] + [25 41 46 41 25]
    [35.0, 56.0, 62.0, 56.0, 35.0]
    """

    nodes: tuple[Node, ...]
    name: str | None
    ndim: int | None
    context: str  # the context routes, coverage and geometry use unless asked otherwise
    _tree: tuple[Layer, ...] | None
    _hash: int

    def __init__(self, layers: Any, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"`name` must be a string, got {name!r}")
        tree: tuple[Layer, ...] | None
        if isinstance(layers, Value):
            nodes = _nodes_of(layers)
            tree = None
        elif isinstance(layers, Network):
            self._init(layers.nodes, layers._tree, name, layers.context, layers.ndim)
            return
        else:
            tree = _as_layers(layers, "layers")
            if not tree:
                raise ValueError("a Network needs at least one layer")
            nodes = _expand_tree(tree)
        self._init(check_nodes(nodes), tree, name)

    def _init(
        self,
        nodes: tuple[Node, ...],
        tree: tuple[Layer, ...] | None,
        name: str | None,
        context: str = "global",
        ndim: int | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "nodes", nodes)
        set_(self, "_tree", tree)
        set_(self, "name", name)
        set_(self, "context", context)
        set_(self, "ndim", ndim if ndim is not None else _graph_ndim(nodes))
        set_(self, "_hash", hash((nodes, name, context, self.ndim)))

    def with_context(self, context: str) -> Network:
        """This network with ``context`` ("global" or "local") as the context its routes,
        coverage and geometry use by default."""
        check_context(context)
        net = Network.__new__(Network)
        net._init(self.nodes, self._tree, self.name, context, self.ndim)
        return net

    def with_ndim(self, ndim: int) -> Network:
        """This network fixed to inputs of ``ndim`` spatial axes (an image model: 2), so an
        input of another number of axes is refused instead of analysed as another network.

        >>> import rfanalysis as rfa
        >>> rfa.parse("conv3p1").with_ndim(2).ndim
        2
        """
        if isinstance(ndim, bool) or not isinstance(ndim, int) or ndim < 1:
            raise ValueError(f"`ndim` must be a positive integer, got {ndim!r}")
        derived = _graph_ndim(self.nodes)
        if derived is not None and derived != ndim:
            raise ValueError(
                f"network {self.display_name!r} has {derived}-D layers; it cannot take "
                f"{ndim}-D inputs"
            )
        net = Network.__new__(Network)
        net._init(self.nodes, self._tree, self.name, self.context, ndim)
        return net

    @classmethod
    def from_nodes(
        cls, nodes: Sequence[Node], name: str | None = None, ndim: int | None = None
    ) -> Network:
        """A network from a validated node list (node 0 the input, the last the output).

        ``ndim`` fixes the input's number of axes where layers of other numbers of axes act
        on maps the graph reshaped (a traced model's token or window layouts)."""
        net = cls.__new__(cls)
        net._init(check_nodes(nodes), None, name, ndim=ndim)
        return net

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Network is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Network):
            return NotImplemented
        return (
            self._hash == other._hash
            and self.nodes == other.nodes
            and self.name == other.name
            and self.context == other.context
            and self.ndim == other.ndim
        )

    def __hash__(self) -> int:
        return self._hash

    # -- the block-tree form --------------------------------------------------------------
    @cached_property
    def _sp_tree(self) -> tuple[Layer, ...] | None:
        return self._tree if self._tree is not None else series_parallel(self.nodes)

    @property
    def is_tree(self) -> bool:
        """Whether the graph can be written as a sequence of layers and nested blocks."""
        return self._sp_tree is not None

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The network as a sequence of layers and nested blocks.

        Raises ``ValueError`` for a graph that is not series-parallel (a node shared by
        branches of different blocks); use :attr:`nodes` there.
        """
        tree = self._sp_tree
        if tree is None:
            raise ValueError(
                f"network {self.display_name!r} is a graph that nested blocks cannot write "
                "(a node feeds branches of different blocks); use its `nodes`"
            )
        return tree

    def expand(self, ndim: int) -> Network:
        """This network with every layer written out for ``ndim`` spatial axes."""
        if self.ndim is not None and self.ndim != ndim:
            raise ValueError(
                f"network {self.display_name!r} is {self.ndim}-D but the input has "
                f"{ndim} spatial axes"
            )
        net = Network.__new__(Network)
        nodes = tuple(
            n
            if n.layer is None or n.layer.ndim is not None
            else replace(n, layer=n.layer.expand(ndim))
            for n in self.nodes
        )
        tree = None if self._tree is None else tuple(x.expand(ndim) for x in self._tree)
        net._init(nodes, tree, self.name, self.context, self.ndim)
        return net

    def spec(self) -> str:
        """The compact spec string (channels and names are not part of the grammar).

        Raises ``ValueError`` for a graph that the grammar cannot write (save it to a spec
        file instead).
        """
        if self._sp_tree is None:
            raise ValueError(
                f"network {self.display_name!r} is a graph that the compact grammar cannot "
                "write (a node feeds branches of different blocks); save it to a spec file"
            )
        return _keep_axes(sequence_spec(self._sp_tree), _graph_ndim(self.nodes))

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.is_tree:
            return self.spec()
        return f"graph of {len(self.nodes) - 1} operations"

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __add__(self, other: Any) -> Network:
        return Network(self.layers + _as_layers(other, "other"))

    def __call__(self, x: Value) -> Value:
        """Apply the whole network to a value of a graph under construction."""
        if not isinstance(x, Value):
            raise TypeError(f"a Network applies to a graph value, got {type(x).__name__}")
        values: list[Value] = [x]
        for node in self.nodes[1:]:
            assert node.layer is not None
            values.append(apply_layer(node.layer, tuple(values[j] for j in node.inputs)))
        return values[-1]

    def __str__(self) -> str:
        return self.display_name

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        if self.is_tree:
            return f"Network({self.spec()!r}{name})"
        return f"<Network {self.display_name}: {len(self.nodes) - 1} operations{name}>"


def _graph_ndim(nodes: tuple[Node, ...]) -> int | None:
    ndim: int | None = None
    first = ""
    for node in nodes[1:]:
        layer = node.layer
        assert layer is not None
        if layer.ndim is None:
            continue
        if ndim is None:
            ndim, first = layer.ndim, node.where
        elif layer.ndim != ndim:
            raise ValueError(f"Network: {node.where} is {layer.ndim}-D but {first} is {ndim}-D")
    return ndim


def _keep_axes(text: str, ndim: int | None) -> str:
    """A spec whose layers are fixed to ``ndim`` axes but all give one value for every axis
    (``conv3x3x3`` would read back as ``conv3``, which is analysed in 2-D by default) keeps
    its axes by writing its first kernel per axis; 2-D, the default, needs no mark."""
    if ndim is None or ndim < 3 or re.search(r"\dx\d", text):
        return text
    from ._parse import _KINDS  # (the parser builds graphs: imported when used)

    windows = "|".join(k for k in _KINDS if k not in ("up", "fc"))  # kinds with a kernel
    kernel = re.compile(rf"(?<![a-z])({windows})(\d+)(?![\dx])")
    return kernel.sub(lambda m: m[1] + "x".join([m[2]] * ndim), text, count=1)


# --------------------------------------------------------------------------- decomposition
def series_parallel(nodes: tuple[Node, ...]) -> tuple[Layer, ...] | None:
    """The graph as a sequence of layers and nested blocks, or None if it is not one.

    A merge closes a block whose branches start at the merge's immediate dominator (the last
    node every path from the input to the merge passes through); a node feeding branches of
    two different blocks cannot be written this way.
    """
    n = len(nodes)
    # dominators: every path from the input to i passes through each of dom[i]
    dom: list[frozenset[int]] = [frozenset({0})]
    for i in range(1, n):
        common = frozenset.intersection(*(dom[j] for j in nodes[i].inputs))
        dom.append(common | {i})
    idom = [max(d - {i}) if i else -1 for i, d in enumerate(dom)]
    emitted: set[int] = set()

    def sequence(src: int, dst: int) -> list[Layer] | None:
        items: list[Layer] = []
        i = dst
        while i != src:
            if i in emitted or i < src:
                return None
            emitted.add(i)
            node = nodes[i]
            layer = node.layer
            assert layer is not None
            if len(node.inputs) == 1 and not isinstance(layer, (Add, Mul, Cat)):
                items.append(layer)
                i = node.inputs[0]
                continue
            if not isinstance(layer, (Add, Mul, Cat)):
                return None  # an operation of several inputs that no block writes
            fork = idom[i]
            branches = []
            for j in node.inputs:
                b = sequence(fork, j)
                if b is None:
                    return None
                branches.append(b)
            items.append(_block(layer, branches))
            i = fork
        return items[::-1]

    out = sequence(0, n - 1)
    return None if out is None or len(emitted) != n - 1 else tuple(out)


def _block(merge: Layer, branches: list[list[Layer]]) -> Layer:
    name = merge.name
    if isinstance(merge, Cat):
        return Concat(*branches, name=name)
    if isinstance(merge, Add) and len(branches) == 2 and any(branches):
        a, b = branches
        body, shortcut = (a, b) if len(a) >= len(b) else (b, a)
        return Residual(body, shortcut or None, name=name)
    return Parallel(*branches, merge=replace(merge, name=None), name=name)  # type: ignore[type-var]


def as_network(obj: Any, what: str = "net", input_shape: Any = None) -> Network:
    """Accept a Network, a layer, a sequence of layers, a compact spec string, a zoo name
    (``"resnet50"``, ``"resnet50:trunk"``), a ``.json``/``.toml`` spec file, or a
    ``torch.nn.Module`` (traced by :func:`~rfanalysis.from_torch` at ``input_shape``; traces
    are cached per module and input shape)."""
    if isinstance(obj, Network):
        return obj
    if isinstance(obj, str):
        return _from_text(obj)
    if isinstance(obj, os.PathLike):
        from ._io import load

        return load(obj)
    if isinstance(obj, Value):
        return Network(obj)
    if isinstance(obj, Layer) or isinstance(obj, (list, tuple)):
        return Network(obj)
    if is_torch_module(obj):
        return _from_module(obj, what, input_shape)
    raise TypeError(
        f"`{what}` must be a Network, a layer, a sequence of layers, a spec string, a zoo "
        f"name, a spec file or a torch.nn.Module; got {type(obj).__name__}"
    )


def _from_text(text: str) -> Network:
    from . import zoo
    from ._parse import parse
    from ._suggest import close_matches

    if text.lower().endswith((".json", ".toml")):
        from ._io import load

        return load(text)
    base = text.partition(":")[0]
    if base in zoo.names():
        return zoo.get(text)  # the zoo's own errors for an unknown ':part'
    try:
        return parse(text)
    except ValueError:
        close = close_matches(text, zoo.names())
        if close:
            raise ValueError(
                f"unknown network {text!r}: not a zoo name (did you mean "
                f"{' or '.join(repr(c) for c in close)}?), a spec file or a valid spec"
            ) from None
        raise


def is_torch_module(obj: Any) -> bool:
    """Whether ``obj`` is a ``torch.nn.Module``, without importing torch (a module exists
    only once torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _from_module(module: Any, what: str, input_shape: Any) -> Network:
    from ._importers.fromtorch import from_torch

    if input_shape is None:
        input_shape = declared_size(module)
    if input_shape is None:
        raise TypeError(
            f"`{what}` is a torch module ({type(module).__name__}): give `input_shape` (the "
            "spatial size to trace it at, e.g. (224, 224)), or trace it once with "
            "rfa.from_torch(module, input_shape) and pass the network"
        )
    return from_torch(module, input_shape)


def declared_size(module: Any) -> tuple[int, ...] | None:
    """The spatial input size a model declares of itself (timm's ``pretrained_cfg``)."""
    cfg = getattr(module, "pretrained_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if isinstance(size, (tuple, list)) and len(size) > 1 and all(isinstance(v, int) for v in size):
        return tuple(size[1:])
    return None
