"""Running a traced or recorded model while converting it: :func:`run_graph` interprets an
fx graph with a converter beside it, :func:`record` records the torch calls of a module as it
runs (where fx cannot trace)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from .units import NONE, NeedsValues


# --------------------------------------------------------------------------- interpreter
def run_graph(
    torch: Any,
    gm: Any,
    conv: Any,
    inputs: list[Any],
    real: list[Any],
    graph: Any = None,
    shapes_only: bool = False,
    needed: set[Any] | None = None,
) -> Any:
    """Run ``gm`` on ``real`` inputs, converting as it goes; ``inputs`` are the Values of the
    placeholders (None for constants). Returns the interpreter: ``vals`` (the Value of every
    traced node that depends on the input), ``env`` (every real tensor), ``result`` and
    ``failed``: the one-line error of every node that could not be converted (no rule, a
    shape the rule refuses) or depends on one; it stands only where the analysed output
    depends on that node. With ``needed``, only the nodes in it run and are converted (the
    others are None).

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
            #: node -> the one-line error of the operation it depends on that has no rule
            self.failed: dict[Any, str] = {}
            self.result_failed: str | None = None

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
            if needed is not None and n not in needed and n.op not in ("placeholder", "output"):
                return None  # the analysed maps do not depend on it: not even run
            out = super().run_node(n)
            inputs = n.all_input_nodes
            if n.op == "placeholder":
                v = next(self.placeholders, None)
                if v is not None:
                    self.vals[n] = v
            elif n.op == "output":
                self.result = fx.node.map_arg(n.args[0], lambda a: self.vals.get(a))
                bad = [self.failed[a] for a in inputs if a in self.failed]
                self.result_failed = bad[0] if bad else None
            elif n.op == "get_attr":
                pass
            elif self.failed and any(a in self.failed for a in inputs):
                # downstream of an operation that could not be converted: the error stands
                # only if the analysed output depends on it
                self.failed[n] = next(self.failed[a] for a in inputs if a in self.failed)
            elif any(a in self.vals for a in inputs):
                if self.derived and any(a in self.derived for a in inputs):
                    # its rule would read values computed from the input: run for real
                    raise NeedsValues(n.name)
                got = self.getitem(n, out)
                if got is NONE:
                    try:
                        got = conv.rules.apply(self, n, out)
                    except ValueError as exc:
                        self.failed[n] = " ".join(str(exc).split())
                        got = None
                if got is not None:
                    self.vals[n] = got
            if self.shapes_only and n not in self.vals and n not in self.failed and has_meta(out):
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
    with torch.no_grad():
        run.run(*real)
    return run


# --------------------------------------------------------------------------- eager recording
class Recording:
    """A module recorded as it ran: ``root`` (holding the module's submodules under their own
    names, and the constants), ``graph`` (an fx graph), ``result`` (what the module
    returned) and ``produced``: for every submodule that ran, by qualified name, what it
    returned at its last call, as fx nodes where its tensors depend on the input (None
    elsewhere)."""

    def __init__(self, root: Any, graph: Any, result: Any, produced: dict[str, Any]) -> None:
        self.root, self.graph, self.result, self.produced = root, graph, result, produced


def record(
    torch: Any,
    module: Any,
    args: tuple,
    tracked: set[int],
    leaf: Callable[[Any, str], bool] | None = None,
) -> Recording:
    """Run ``module(*args)`` eagerly and record, as an fx graph, every torch function call
    that reads a tensor depending on the input (``tracked``: the ids of the arguments that
    do). Python control flow runs on concrete values, so modules that ``torch.fx`` cannot
    trace (data-dependent shapes, padding computed from sizes, loops over module lists) are
    recorded as they run. Tensors that do not depend on the input become constants of the
    graph. A submodule for which ``leaf(submodule, qualified_name)`` holds is recorded as one
    call of it (its rule converts it), as fx records a leaf; every recorded node carries the
    stack of modules it ran in (``nn_module_stack``, as fx writes it)."""
    fx = torch.fx
    graph = fx.Graph()
    root = torch.nn.Module()
    names: dict[int, str] = {}
    if isinstance(module, torch.nn.Module):
        root._modules = dict(module._modules)  # call_module targets resolve as in the module
        names = {id(m): q for q, m in module.named_modules(remove_duplicate=False) if q}
    nodes: dict[int, tuple[Any, Any]] = {}  # id(tensor) -> (tensor kept alive, fx node)
    live: set[int] = set()
    stack: list[tuple[str, type]] = []  # the modules running, outermost first
    produced: dict[str, Any] = {}
    inside_leaf = [0]

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

    def add(node: Any, out: Any) -> None:
        node.meta["nn_module_stack"] = {q: (q, cls) for q, cls in stack}
        if isinstance(out, torch.Tensor):
            nodes[id(out)] = (out, node)
            live.add(id(out))
        elif isinstance(out, (list, tuple)) and not isinstance(out, torch.Size):
            for i, t in enumerate(out):
                if isinstance(t, torch.Tensor):
                    item = graph.call_function(operator.getitem, (node, i))
                    item.meta["nn_module_stack"] = node.meta["nn_module_stack"]
                    nodes[id(t)] = (t, item)
                    live.add(id(t))

    class Mode(torch.overrides.TorchFunctionMode):  # type: ignore[misc]
        def __torch_function__(self, func, types, a=(), kw=None):  # type: ignore[no-untyped-def]
            kw = kw or {}
            out = func(*a, **kw)
            if not inside_leaf[0] and depends((a, kw)):
                add(graph.call_function(_recordable(func), as_node(a), as_node(kw)), out)
            return out

    def pre_hook(m: Any, _args: Any) -> None:
        q = names.get(id(m))
        if q is not None:
            stack.append((q, type(m)))

    def hook(m: Any, _args: Any, out: Any) -> None:
        q = names.get(id(m))
        if q is not None:
            produced[q] = out
            if stack and stack[-1][0] == q:
                stack.pop()

    patched: list[Any] = []

    def as_leaf(m: Any, q: str) -> None:
        forward = m.forward

        def call(*a: Any, **kw: Any) -> Any:
            inside_leaf[0] += 1
            try:
                out = forward(*a, **kw)
            finally:
                inside_leaf[0] -= 1
            if not inside_leaf[0] and depends((a, kw)):
                add(graph.call_module(q, as_node(a), as_node(kw)), out)
            return out

        m.forward = call
        patched.append(m)

    if leaf is not None and names:
        for q, m in module.named_modules():
            if q and "forward" not in m.__dict__ and leaf(m, q):
                as_leaf(m, q)
    hooks = []
    if names:
        hooks = [
            torch.nn.modules.module.register_module_forward_pre_hook(pre_hook),
            torch.nn.modules.module.register_module_forward_hook(hook),
        ]
    try:
        with Mode(), torch.no_grad():
            result = module(*args)
    finally:
        for h in hooks:
            h.remove()
        for m in patched:
            del m.forward
    graph.output(as_node(result))

    def found(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return nodes[id(x)][1] if id(x) in live else None
        if isinstance(x, (list, tuple)) and not isinstance(x, torch.Size):
            return type(x)(found(v) for v in x)
        if isinstance(x, dict):
            return {k: found(v) for k, v in x.items()}
        return None

    return Recording(root, graph, result, {q: found(out) for q, out in produced.items()})


def _recordable(func: Any) -> Any:
    """``func``, or a plain function calling it where fx needs a name it lacks (a slot
    wrapper such as ``Tensor.__getitem__``)."""
    if getattr(func, "__module__", None) is not None:
        return func

    def call(*a: Any, **k: Any) -> Any:
        return func(*a, **k)

    call.__name__ = call.__qualname__ = getattr(func, "__name__", "call")
    call.__wrapped__ = func  # type: ignore[attr-defined]  # what overrides name
    call.__module__ = "torch.Tensor"  # how errors name it: torch.Tensor.__gt__
    return call
