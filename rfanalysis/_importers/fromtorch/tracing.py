"""Capturing a torch model: an fx trace (a submodule fx cannot trace retried as a leaf), run
on shapes (meta tensors) where the rules need no values, else on a random input, where a
model fx cannot trace is recorded as it runs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from ..._graph import Network
from .converter import Converter
from .interpreter import record, run_graph
from .messages import unmapped
from .rules import Rules
from .units import Graph, Value, canonical_units, first_line

#: how many untraceable submodules are retried as leaves before giving up
MAX_RETRIES = 32


@dataclass
class _Found:
    """A converted model: the program run, its interpreter (units and real tensors of every
    node), the network and what :func:`_verify` needs to check it."""

    program: Any
    run: Any
    on_shapes: bool  # converted by the shape run (meta tensors)
    net: Network
    keep: list[int]  # the graph's node behind each node of the network
    value: Value  # the analysed output
    fx_node: Any
    axes: tuple[int, ...]


class _TraceFailure(ValueError):
    """torch.fx could not trace the model (the message says where)."""


class _Program:
    """A traced model: the module its nodes refer to and the graph (an fx GraphModule's, or
    one recorded as the model ran)."""

    def __init__(self, root: Any, graph: Any) -> None:
        self.root, self.graph = root, graph

    def get_submodule(self, target: str) -> Any:
        return self.root.get_submodule(target)


def _attempt(torch, program, x, shape, cin, mapping, unknown, name, shapes_only=False):
    """Run ``program`` on ``x``, converting it."""
    start = Value(0, canonical_units(torch, (1, cin, *shape), tuple(range(2, 2 + len(shape)))))
    graph = Graph(input_grid=shape, input_channels=cin)
    rules = Rules(torch, mapping, unknown, partial(unmapped, program))
    conv = Converter(torch, rules, graph, name)
    run = run_graph(torch, program.root, conv, [start], [x], program.graph, shapes_only)
    return program, graph, conv, run


def _convert_on_shapes(torch, module, shape, cin, dtype, mapping, unknown, name):
    """The fx trace converted on a meta input (see :func:`run_graph`): the model's arithmetic
    costs nothing. None where that cannot be done (no fx trace, a conversion that needs
    values computed from the input); any error is left to the conversion on values, which
    reports it. That the trace computes the model's own output is checked with the values,
    by :func:`_verify`."""
    x = torch.empty((1, cin, *shape), dtype=dtype, device=torch.device("meta"))
    try:
        gm = _trace(torch, module, mapping, name)
        return _attempt(torch, _Program(gm, gm.graph), x, shape, cin, mapping, unknown,
                        name, True)  # fmt: skip
    except Exception:  # whatever the shape run cannot do, the run on values does
        return None


def _convert_on_values(torch, module, shape, cin, dtype, device, mapping, unknown, output, name):
    """Run the model on a random input and convert it: through ``torch.fx`` where it traces
    and reproduces the model's own output, else by recording it as it runs (control flow on
    concrete values)."""
    x = _random_input(torch, (1, cin, *shape), dtype, device)
    try:
        with torch.no_grad():
            eager = module(x)
    except Exception as exc:  # the model's own error on this input
        raise ValueError(
            f"from_torch: running {name} on an input of shape {(1, cin, *shape)} failed "
            f"({type(exc).__name__}: {first_line(exc)}); check `input_shape` and "
            "`in_channels`"
        ) from None

    def attempt(program: _Program) -> tuple:
        return _attempt(torch, program, x, shape, cin, mapping, unknown, name)

    try:
        gm = _trace(torch, module, mapping, name)
        program, graph, conv, run = attempt(_Program(gm, gm.graph))
        (out,) = [n for n in gm.graph.nodes if n.op == "output"]
        if not _same(torch, fx_value(torch, run, out.args[0]), eager):
            raise _TraceFailure(f"from_torch: the fx trace of {name} computes another output")
        return program, graph, conv, run
    except (_TraceFailure, RuntimeError, TypeError, IndexError) as exc:
        if mapping or output is not None:
            # overrides name modules and output= names nodes of an fx trace
            if isinstance(exc, ValueError):
                raise
            raise ValueError(
                f"from_torch: the fx trace of {name} fails to run ({type(exc).__name__}: "
                f"{first_line(exc)}); map the failing submodule with overrides="
            ) from None
    (root, recorded), _ = record(torch, module, (x,), {id(x)})
    return attempt(_Program(root, recorded))


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
            raise _TraceFailure(
                f"from_torch: torch.fx cannot trace {name}{where} ({type(exc).__name__}: "
                f"{first_line(exc)}); map the untraceable submodule with "
                "overrides={ItsType: ...} or {'its.name': ...}, which stops tracing at it"
            ) from exc
        return fx.GraphModule(tracer.root, graph)
    raise ValueError(f"from_torch: torch.fx cannot trace {name}")  # pragma: no cover


def _random_input(torch: Any, shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
    gen = torch.Generator(device="cpu").manual_seed(0)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
