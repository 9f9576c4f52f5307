"""Capturing a torch model and converting it as it runs.

Two captures give one kind of program (an fx graph over the module's own submodules): an fx
trace, where a submodule fx cannot trace is retried as a leaf; and, where fx cannot trace the
model at all (Python control flow over tensors or module lists, as in ultralytics'
``DetectionModel``), a recording of the torch calls as the model runs on a random input
(control flow resolved at the traced size), torch.nn layers recorded as calls of themselves.
Either is then run by :func:`~.interpreter.run_graph` with a converter beside it: an fx trace
first on shapes (meta tensors), where the rules need no values computed from the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from ..._graph import Network
from .converter import Converter
from .interpreter import Recording, record, run_graph
from .messages import unmapped
from .rules import Rules
from .units import Graph, Value, canonical_units, first_line

#: how many untraceable submodules are retried as leaves before giving up
MAX_RETRIES = 32


class NoTrace(Exception):
    """torch.fx could not trace the model, or its trace computes another output: the model is
    recorded as it runs instead (never seen by users)."""


@dataclass
class Program:
    """A captured model: the module its call_module nodes refer to (``root``) and the graph;
    ``recording`` where it was recorded as it ran."""

    root: Any
    graph: Any
    recording: Recording | None = None

    def get_submodule(self, target: str) -> Any:
        return self.root.get_submodule(target)


@dataclass
class Converted:
    """A program run with the converter beside it: the graph it built and the interpreter
    (units, real tensors and failures of every node)."""

    program: Program
    graph: Graph
    conv: Converter
    run: Any

    @property
    def on_shapes(self) -> bool:
        return bool(self.run.shapes_only)


@dataclass
class _Found:
    """One analysed output of a converted model: the network, the graph node behind each of
    its nodes, and what verification needs (the Value, the fx node, the grid axes)."""

    converted: Converted
    net: Network
    keep: list[int]
    value: Value
    fx_node: Any
    axes: tuple[int, ...]

    @property
    def program(self) -> Program:
        return self.converted.program

    @property
    def run(self) -> Any:
        return self.converted.run

    @property
    def on_shapes(self) -> bool:
        return self.converted.on_shapes


def input_tensor_shape(cin: int, shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """The shape of the model's input, batch 1: ``(1, C, *spatial)``, or channels last
    ``(1, *spatial, C)``."""
    return (1, *shape, cin) if layout == "channels_last" else (1, cin, *shape)


def channel_axis(layout: str) -> int:
    return -1 if layout == "channels_last" else 1


def convert(torch, program: Program, x, shape, cin, mapping, unknown, name, needed=None,
            layout="channels_first"):  # fmt: skip
    """Run ``program`` on ``x`` (a meta tensor: on shapes), converting the operations in
    ``needed`` (every one where None): those the analysed maps depend on. ``layout``: how
    the model lays out its input."""
    first = 1 if layout == "channels_last" else 2  # the input's first spatial axis
    start = Value(0, canonical_units(torch, input_tensor_shape(cin, shape, layout),
                                     tuple(range(first, first + len(shape)))))  # fmt: skip
    graph = Graph(input_grid=shape, input_channels=cin)
    rules = Rules(torch, mapping, unknown, partial(unmapped, program))
    conv = Converter(torch, rules, graph, name)
    shapes_only = x.device == torch.device("meta")
    run = run_graph(torch, program.root, conv, [start], [x], program.graph, shapes_only, needed)
    return Converted(program, graph, conv, run)


def traced(torch: Any, module: Any, mapping: dict, name: str) -> Program:
    """The fx trace of ``module`` (:class:`NoTrace` where fx cannot trace it)."""
    gm = _trace(torch, module, mapping, name)
    return Program(gm, gm.graph)


def recorded(torch: Any, module: Any, x: Any, mapping: dict) -> Program:
    """``module`` recorded as it runs on ``x``: torch.nn layers (and overridden modules) as
    calls of themselves, everything else as the torch functions it calls."""
    fx = torch.fx
    names = {k for k in mapping if isinstance(k, str)}
    types = tuple(k for k in mapping if isinstance(k, type))
    plain = fx.Tracer()

    def leaf(m: Any, qualname: str) -> bool:
        if qualname in names or (types and isinstance(m, types)):
            return True
        return bool(plain.is_leaf_module(m, qualname))

    rec = record(torch, module, (x,), {id(x)}, leaf)
    return Program(rec.root, rec.graph, rec)


def fx_value(torch: Any, run: Any, arg: Any) -> Any:
    """The real value of an fx argument (nested containers of nodes)."""
    return torch.fx.node.map_arg(arg, lambda a: run.env[a])


def _same(torch: Any, a: Any, b: Any) -> bool:
    """Two outputs (tensors, or containers of them) equal up to float rounding."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(
            torch.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(torch, a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(torch, u, v) for u, v in zip(a, b))
    return type(a) is type(b)


def _trace(torch: Any, module: Any, overrides: dict, name: str) -> Any:
    """fx-trace ``module``; a submodule that fx cannot trace is retried as a leaf."""
    fx = torch.fx
    leaves = {k for k in overrides if isinstance(k, str)}
    types = tuple(k for k in overrides if isinstance(k, type))

    class Tracer(fx.Tracer):  # type: ignore[misc, name-defined]
        failed: str | None = None

        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            if qualname in leaves or (types and isinstance(m, types)):
                return True
            return bool(super().is_leaf_module(m, qualname))

        def call_module(self, m: Any, forward: Any, args: Any, kwargs: Any) -> Any:
            try:
                return super().call_module(m, forward, args, kwargs)
            except Exception:
                if self.failed is None:
                    self.failed = self.path_of_module(m)
                raise

    root = module
    if Tracer().is_leaf_module(module, ""):  # a single layer: trace it as a call, not inside
        root = torch.nn.Sequential(module)
    for _ in range(MAX_RETRIES):
        tracer = Tracer()
        try:
            graph = tracer.trace(root)
        except Exception as exc:  # torch.fx raises many kinds
            culprit = tracer.failed
            if culprit and culprit not in leaves:
                leaves.add(culprit)  # retry with it as a leaf: converted by its own rule
                continue
            where = f" in module {culprit!r}" if culprit else ""
            raise NoTrace(
                f"torch.fx cannot trace {name}{where} ({type(exc).__name__}: {first_line(exc)})"
            ) from None
        return fx.GraphModule(tracer.root, graph)
    raise NoTrace(f"torch.fx cannot trace {name}: {MAX_RETRIES} submodules fail")


def _random_input(torch: Any, shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
    gen = torch.Generator(device="cpu").manual_seed(0)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
