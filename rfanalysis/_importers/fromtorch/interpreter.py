"""Running a traced or recorded model while converting it: :func:`run_graph` interprets an
fx graph with a converter beside it, :func:`record` records the torch calls of a module as it
runs (where fx cannot trace)."""

from __future__ import annotations

import operator
from typing import Any

from .units import NONE, NeedsValues, ReportedError


# --------------------------------------------------------------------------- interpreter
def run_graph(
    torch: Any,
    gm: Any,
    conv: Any,
    inputs: list[Any],
    real: list[Any],
    graph: Any = None,
    shapes_only: bool = False,
) -> Any:
    """Run ``gm`` on ``real`` inputs, converting as it goes; ``inputs`` are the Values of the
    placeholders (None for constants). Returns the interpreter: ``vals`` (the Value of every
    traced node that depends on the input), ``env`` (every real tensor) and ``result``.

    With ``shapes_only`` the input is a meta tensor (a shape without values): every operation
    on tensors computed from it runs on meta tensors (parameters and constants taken to the
    meta device for the call; a layer that keeps shapes, such as an activation or an
    eval-mode batch norm, not run at all), so the model's arithmetic costs nothing, while
    constants (masks, index buffers) are computed for real. The conversion reads units,
    shapes and constants, never the values computed from the input, except where an
    operation reads a tensor computed from the input that is no map (a comparison, an index,
    a detached copy) or runs a module's own Python on values: there :class:`NeedsValues` is
    raised.
    """
    fx = torch.fx
    meta = torch.device("meta")
    on_meta: dict[int, Any] = {}  # id(tensor) -> the tensor on the meta device
    keeps_shape = conv.rules.keeps_shape  # layers that keep shapes: not run on meta tensors

    def has_meta(x: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return x.device == meta
        if isinstance(x, (list, tuple)):
            return any(has_meta(v) for v in x)
        if isinstance(x, dict):
            return any(has_meta(v) for v in x.values())
        return False

    def to_meta(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x if x.device == meta else x.to(meta)
        if isinstance(x, (list, tuple)) and not isinstance(x, torch.Size):
            return type(x)(to_meta(v) for v in x)
        if isinstance(x, dict):
            return {k: to_meta(v) for k, v in x.items()}
        return x

    class Run(fx.Interpreter):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(gm, garbage_collect_values=False, graph=graph)
            self.conv = conv
            self.vals: dict[Any, Any] = {}
            self.placeholders = iter(inputs)
            self.result: Any = None
            self.shapes_only = shapes_only
            self.derived: set[Any] = set()  # nodes computed from the input that are no map

        def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
            if self.shapes_only and has_meta((args, kwargs)):
                args, kwargs = to_meta(args), to_meta(kwargs)
            return super().call_function(target, args, kwargs)

        def call_method(self, target: Any, args: Any, kwargs: Any) -> Any:
            if self.shapes_only and has_meta((args, kwargs)):
                args, kwargs = to_meta(args), to_meta(kwargs)
            return super().call_method(target, args, kwargs)

        def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
            if not (self.shapes_only and has_meta((args, kwargs))):
                return super().call_module(target, args, kwargs)
            module = self.fetch_attr(target)
            if type(module) in keeps_shape and len(args) == 1 and not kwargs:
                return args[0]
            # the module's parameters and buffers on the meta device for the call
            swapped = []
            try:
                for m in module.modules():
                    for store in (m._parameters, m._buffers):
                        for k, t in list(store.items()):
                            if isinstance(t, torch.Tensor) and t.device != meta:
                                swapped.append((store, k, t))
                                if id(t) not in on_meta:
                                    on_meta[id(t)] = t.detach().to(meta)
                                store[k] = on_meta[id(t)]
                return module(*to_meta(args), **to_meta(kwargs))
            finally:
                for store, k, t in swapped:
                    store[k] = t

        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if n.op == "placeholder":
                v = next(self.placeholders, None)
                if v is not None:
                    self.vals[n] = v
            elif n.op == "output":
                self.result = fx.node.map_arg(n.args[0], lambda a: self.vals.get(a))
            elif n.op == "get_attr":
                pass
            elif any(a in self.vals for a in n.all_input_nodes):
                if self.derived and any(a in self.derived for a in n.all_input_nodes):
                    # its rule would read values computed from the input: run for real
                    raise NeedsValues(n.name)
                got = self.getitem(n, out)
                if got is NONE:
                    try:
                        got = conv.rules.apply(self, n, out)
                    except ValueError as exc:
                        raise ReportedError(" ".join(str(exc).split())) from None
                if got is not None:
                    self.vals[n] = got
            if self.shapes_only and n not in self.vals and has_meta(out):
                self.derived.add(n)
            return out

        def getitem(self, n: Any, out: Any) -> Any:
            """An element of a container of values (chunks, a module's tuple output)."""
            if n.op == "call_function" and n.target is operator.getitem:
                src = self.vals.get(n.args[0])
                if isinstance(src, (tuple, list)):
                    return src[n.args[1]]
            return NONE

    run = Run()
    try:
        with torch.no_grad():
            run.run(*real)
    except ReportedError as exc:
        raise ValueError(exc.text) from None
    return run


# --------------------------------------------------------------------------- eager recording
def record(torch: Any, module: Any, args: tuple, tracked: set[int]) -> Any:
    """Run ``module(*args)`` eagerly and record, as an fx graph, every torch function call
    that reads a tensor depending on the input (``tracked``: the ids of the arguments that
    do). Python control flow runs on concrete values, so modules that ``torch.fx`` cannot
    trace (data-dependent shapes, padding computed from sizes) are recorded as they run.
    Tensors that do not depend on the input become constants of the graph."""
    fx = torch.fx
    graph = fx.Graph()
    root = torch.nn.Module()
    nodes: dict[int, tuple[Any, Any]] = {}  # id(tensor) -> (tensor kept alive, fx node)
    live: set[int] = set()

    for k, a in enumerate(args):
        node = graph.placeholder(f"arg{k}")
        if isinstance(a, torch.Tensor):
            nodes[id(a)] = (a, node)
            if id(a) in tracked:
                live.add(id(a))

    def as_node(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if id(x) not in nodes:  # a parameter, buffer or new tensor: a constant
                name = f"_const{len(nodes)}"
                root.register_buffer(name, x.detach(), persistent=False)
                nodes[id(x)] = (x, graph.get_attr(name))
            return nodes[id(x)][1]
        if isinstance(x, (list, tuple)) and not isinstance(x, torch.Size):
            return type(x)(as_node(v) for v in x)
        if isinstance(x, dict):
            return {k: as_node(v) for k, v in x.items()}
        return x

    def depends(x: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return id(x) in live
        if isinstance(x, (list, tuple)):
            return any(depends(v) for v in x)
        if isinstance(x, dict):
            return any(depends(v) for v in x.values())
        return False

    class Mode(torch.overrides.TorchFunctionMode):  # type: ignore[misc]
        def __torch_function__(self, func, types, a=(), kw=None):  # type: ignore[no-untyped-def]
            kw = kw or {}
            out = func(*a, **kw)
            if depends((a, kw)):
                node = graph.call_function(_recordable(func), as_node(a), as_node(kw))
                if isinstance(out, torch.Tensor):
                    nodes[id(out)] = (out, node)
                    live.add(id(out))
                elif isinstance(out, (list, tuple)) and not isinstance(out, torch.Size):
                    for i, t in enumerate(out):
                        if isinstance(t, torch.Tensor):
                            nodes[id(t)] = (t, graph.call_function(operator.getitem, (node, i)))
                            live.add(id(t))
            return out

    with Mode(), torch.no_grad():
        result = module(*args)
    graph.output(as_node(result))
    return (root, graph), result


def _recordable(func: Any) -> Any:
    """``func``, or a plain function calling it where fx needs a name it lacks (a slot
    wrapper such as ``Tensor.__getitem__``)."""
    if getattr(func, "__module__", None) is not None:
        return func

    def call(*a: Any, **k: Any) -> Any:
        return func(*a, **k)

    call.__name__ = call.__qualname__ = getattr(func, "__name__", "call")
    call.__module__ = "torch.Tensor"  # how errors name it: torch.Tensor.__gt__
    return call
