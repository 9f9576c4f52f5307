"""``from_torch``: trace a torch model into a network graph, checked against the model.

The model is traced with ``torch.fx`` (a submodule that fx cannot trace, for example one
with data-dependent control flow, is retried as a leaf) and run once while :mod:`._convert`
turns every operation into nodes. That run is on shapes (meta tensors: no arithmetic, so a
large model converts in a fraction of a second); where the conversion needs values computed
from the input, or fx cannot trace the model, the model runs on a random input instead (and
a model fx cannot trace is recorded as it runs). Then, unless ``verify=False``, the graph is
checked against the module itself: the trace must compute the module's own output on a
random input, and the support of one output unit's autograd gradient, with the module's own
weights, must lie inside the support of its routes. Where it does not, the error names the
first traced tensor (walking back from the output) where autograd reaches units that no
route does.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .._graph import Network, Node, check_context
from .._ops import Layer
from .._plan import DEFAULT_NDIM, normalise_input_shape
from ._convert import (
    Converter,
    Graph,
    Rules,
    Value,
    canonical_units,
    first_line,
    record,
    run_graph,
    varying_axes,
)
from ._torch import (
    ModuleState,
    module_dtype_device,
    module_in_channels,
    module_ndim,
    require_torch,
)

UNKNOWN = ("error", "identity")
#: gradients below this fraction of the largest are treated as zero: float32 rounding (an
#: interpolation weight that exact arithmetic makes zero) and masked attention (exp(-100))
RELATIVE_ZERO = 1e-5
#: how many untraceable submodules are retried as leaves before giving up
MAX_RETRIES = 32

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, Network]] = weakref.WeakKeyDictionary()


def from_torch(
    module: Any,
    input_shape: Any,
    *,
    output: str | None = None,
    context: str = "global",
    verify: bool = True,
    in_channels: int | None = None,
    overrides: dict[Any, Any] | None = None,
    unknown: str = "error",
) -> Network:
    """Trace a torch model into a :class:`~rfanalysis.Network` graph.

    Parameters
    ----------
    module : torch.nn.Module
        A model taking one tensor ``(batch, C, *spatial)``.
    input_shape : int or tuple of int
        Spatial input size (an int: every axis; the axes are those of the model's first
        convolution or pool, else 2). The graph is traced at this size: adaptive pools,
        interpolation sizes, token grids and attention windows are fixed by it.
    output : str, optional
        A submodule's qualified name (``"layer4"``, ``"features.12"``, ``"stages.2"``) or a
        traced node's name whose output map is analysed instead of the model's output; for a
        model that returns a dict (torchvision's segmentation models), the key (``"out"``).
    context : {"global", "local"}
        The context the returned network's routes, coverage and geometry use by default
        (each call may still choose).
    verify : bool
        Check the graph against the module itself (one forward pass of the module and one
        forward and backward pass of its trace, in the module's dtype) and raise where they
        part. Without it the model does no arithmetic (its trace runs on shapes) and its
        trace is taken to compute what the module does.
    in_channels : int, optional
        Input channels; default: those of the model's first convolution, else 1.
    overrides : dict, optional
        How to map modules or functions without a built-in mapping (or to replace one):
        keys are module types (``MyBlock``), qualified module names (``"features.3"``),
        functions (``torch.roll``) or Tensor method names (``"unflatten"``); values are a
        layer, a list of layers, a Network, ``None`` (the operation keeps every position in
        place), or a callable taking the module (or the fx node, for functions and methods)
        and returning one of these. Overridden modules are not traced into.
    unknown : {"error", "identity"}
        What to do with an operation that has no mapping: raise (naming it, its module and
        the override that would map it), or treat it as keeping positions in place.

    Returns
    -------
    Network
        Nodes named after the modules (or traced nodes) they come from. Traces are cached
        per module and arguments.

    Raises
    ------
    ValueError
        For an operation without a mapping, a model fx cannot trace, or a graph whose
        routes miss units that the model's gradient reaches (one line naming where).

    Notes
    -----
    Every operation of DESIGN section 9 is mapped: convolutions, pools (adaptive too),
    interpolation in every mode, dense layers; gates and every product of input-dependent
    tensors; global means, sums and maxima; InstanceNorm, GroupNorm and LayerNorm over space;
    layout operations (permute, transpose, view, reshape, flatten, unflatten, chunk, split,
    slicing, pad, roll, repeat, expand, pixel shuffle, channel shuffle, concatenation);
    attention (``nn.MultiheadAttention``, ``scaled_dot_product_attention``, written-out
    ``softmax(q @ k.T) @ v``, torchvision's shifted windows, with their masks); class and
    register tokens and position embeddings (constants); eval-mode dropout, stochastic depth
    and drop path (identities). A layer applied over channels after a permute is the identity
    of space. Where elements move, the graph holds the relation it traced, fixed to
    ``input_shape``.

    Examples
    --------
    >>> import torch.nn as nn
    >>> import rfanalysis as rfa
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    ...                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    >>> rfa.from_torch(model, 32).spec()
    'conv3p1,maxpool2,fc10'
    """
    torch = require_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
    if unknown not in UNKNOWN:
        raise ValueError(f"`unknown` must be 'error' or 'identity', got {unknown!r}")
    check_context(context)
    if not isinstance(verify, bool):
        raise TypeError(f"`verify` must be a bool, got {verify!r}")
    if output is not None and not isinstance(output, str):
        raise TypeError(f"`output` must be a module or node name, got {output!r}")
    mapping = _check_overrides(overrides)
    if in_channels is not None and (
        isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1
    ):
        raise ValueError(f"`in_channels` must be a positive integer, got {in_channels!r}")
    shape = normalise_input_shape(input_shape, module_ndim(module) or DEFAULT_NDIM)
    cin = in_channels or _declared_channels(module) or module_in_channels(module)
    key = (shape, cin, output, context, verify, unknown, tuple(map(id, mapping)))
    cached = _CACHE.get(module, {}).get(key) if not mapping else None
    if cached is not None:
        return cached
    net = _from_torch(torch, module, shape, cin, output, context, verify, mapping, unknown)
    if not mapping:
        _CACHE.setdefault(module, {})[key] = net
    return net


def _from_torch(torch, module, shape, cin, output, context, verify, mapping, unknown) -> Network:
    name = type(module).__name__
    found = _traced(torch, module, shape, cin, output, context, mapping, unknown, name, True)
    if verify and not _verify(torch, module, found, shape, cin, name):
        # the fx trace, converted on shapes, computes another output than the module: convert
        # on values, which records the module as it runs instead
        found = _traced(torch, module, shape, cin, output, context, mapping, unknown, name, False)
        _verify(torch, module, found, shape, cin, name)
    return found.net


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


def _traced(torch, module, shape, cin, output, context, mapping, unknown, name, shapes) -> _Found:
    """Convert the model, on shapes first (``shapes``: meta tensors, where the conversion
    needs no values computed from the input), else running it on a random input."""
    state = ModuleState(module)  # eval mode before tracing: fx records the eval branches
    try:
        dtype, device = module_dtype_device(module)
        converted = _convert_on_shapes(torch, module, shape, cin, dtype, mapping, unknown,
                                       name) if shapes else None  # fmt: skip
        if converted is None:
            converted = _convert_on_values(torch, module, shape, cin, dtype, device, mapping,
                                           unknown, output, name)  # fmt: skip
        program, graph, conv, run = converted
    finally:
        state.restore()
    value, real, fx_node = _selected_output(torch, program, run, output, name)
    out_node, axes = _output_node(torch, conv, value, real, name)
    nodes, keep = _pruned(graph.nodes, out_node)
    if len(nodes) < 2:
        raise ValueError(
            f"from_torch: {name} has no layer that changes routes (it is the identity)"
        )
    net = Network.from_nodes(
        nodes, name=name if output is None else f"{name}:{output}", ndim=len(shape)
    )
    if context == "local":
        net = net.with_context("local")
    grid = tuple(real.shape[a] for a in axes) or (1,)
    from .._plan import plan

    got = plan(net, shape).output_shape
    if got != grid:  # pragma: no cover - the converter tracks grids as the planner does
        raise ValueError(
            f"from_torch: the traced network gives output {got} but {name} gives {grid} for "
            f"input {shape}; please report this"
        )
    return _Found(program, run, run.shapes_only, net, keep, value, fx_node, axes)


def _declared_channels(module: Any) -> int | None:
    """Input channels a model declares of itself (timm's ``pretrained_cfg["input_size"]``),
    where its first convolution would mislead (a space-to-depth stem reads more channels)."""
    cfg = getattr(module, "pretrained_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)):
        size = cfg["input_size"]
        return int(size[0]) if size and isinstance(size[0], int) else None
    return None


# --------------------------------------------------------------------------- tracing
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
    rules = Rules(torch, mapping, unknown, partial(_unmapped, program))
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


# --------------------------------------------------------------------------- the output
def _selected_output(torch: Any, gm: Any, run: Any, output: str | None, name: str):
    """The Value, real tensor and fx node analysed: the model's output, or the output of
    the submodule or node named ``output``."""
    nodes = list(gm.graph.nodes)
    (out,) = [n for n in nodes if n.op == "output"]
    returned = out.args[0]
    if isinstance(returned, dict) and output in returned:
        src = returned[output]  # a key of the dict the model returns ("out")
    elif output is None:
        src = returned
        if isinstance(returned, dict):
            raise ValueError(
                f"from_torch: {name} returns a dict ({', '.join(map(repr, returned))}); pass "
                "output= with the key to analyse"
            )
        if not hasattr(src, "op"):
            raise ValueError(
                f"from_torch: {name} returns {type(src).__name__}; only models that return one "
                "tensor can be traced (pass output= to pick a submodule's map)"
            )
    else:
        src = _named_node(nodes, output, name)
    value = run.vals.get(src)
    real = run.env.get(src)
    if not isinstance(value, Value) or not isinstance(real, torch.Tensor):
        raise ValueError(f"from_torch: the output of {name} does not depend on its input")
    return value, real, src


def _named_node(nodes: list[Any], output: str, name: str) -> Any:
    """The last traced node of the submodule ``output`` (or the node named so)."""
    for n in nodes:
        if n.name == output or (n.op == "call_module" and n.target == output):
            last = n
            break
    else:
        inside = [
            n for n in nodes if any(k == output for k in (n.meta.get("nn_module_stack") or {}))
        ]
        if not inside:
            modules = sorted({k for n in nodes for k in (n.meta.get("nn_module_stack") or {})})
            from .._suggest import did_you_mean

            raise ValueError(
                f"from_torch: {name} has no submodule or node {output!r}"
                f"{did_you_mean(output, modules)}"
            )
        last = inside[-1]
    return last


def _output_node(torch: Any, conv: Converter, value: Value, real: Any, name: str):
    """The node whose units are the output's, and the output's grid axes: a feature
    vector's features, a map's spatial axes (2.. for a channels-first map)."""
    units = value.np()
    if units.ndim == 2:
        axes: tuple[int, ...] = (1,)
    else:
        moving = varying_axes([units])
        conv_axes = tuple(range(2, units.ndim))
        axes = conv_axes if set(moving) <= set(conv_axes) else moving
    node = conv.canonical(value, axes, f"{name} output") if axes else value.node
    if units.ndim == 2 and conv.grid(node) != (real.shape[1],):  # pragma: no cover
        raise ValueError(f"from_torch: cannot read the features of {name}'s output")
    return node, axes


def _pruned(nodes: list[Node], out: int) -> tuple[list[Node], list[int]]:
    """The nodes the output depends on, the output last, re-indexed; and which old indices
    they were."""
    need = {out}
    for i in range(out, 0, -1):
        if i in need:
            need.update(nodes[i].inputs)
    keep = sorted(need | {0})
    index = {old: new for new, old in enumerate(keep)}
    pruned = [
        Node(nodes[old].layer, tuple(index[j] for j in nodes[old].inputs), str(index[old]))
        if old
        else nodes[0]
        for old in keep
    ]
    return pruned, keep


# --------------------------------------------------------------------------- verification
def _verify(torch, module, found: _Found, shape, cin, name) -> bool:
    """Autograd's support of the centre output unit inside the routes' support (raise where
    it is not). For a conversion on shapes, first that the fx trace computes the module's
    own output on the random input: False where it does not."""
    from .. import _engine
    from .._ops.counts import Algebra, Sep
    from .._plan import plan

    gm, run, keep, net = found.program, found.run, found.keep, found.net
    p = plan(net, shape)
    out_shape = p.output_shape
    assert out_shape is not None
    unit = tuple((m - 1) // 2 for m in out_shape)
    grads = _autograd(torch, gm, module, shape, cin, found.fx_node, found.axes, unit, run,
                      check_output=found.on_shapes)  # fmt: skip
    if grads is None:
        return False
    alg = Algebra("log")  # only the support matters, and counts can pass float64's range
    start = Sep(alg.unit, tuple(alg.one_hot(m, u) for m, u in zip(out_shape, unit)))
    kept: dict[int, Any] = {}
    counts = alg.materialise(_engine.backward(p, start, alg, keep=kept))
    g0 = grads.get("input")
    if g0 is None:
        raise ValueError(f"from_torch: the output of {name} does not depend on its input")
    missing = _outside(np.abs(g0).sum(axis=(0, 1)), counts)
    if not missing:
        return True
    position = {old: new for new, old in enumerate(keep)}
    culprit = None
    for n in reversed(list(gm.graph.nodes)):  # from the output back: the first that parts
        v = run.vals.get(n)
        g = grads.get(n.name)
        if not isinstance(v, Value) or g is None or v.node not in position:
            continue
        routes = kept.get(position[v.node])
        if routes is None:
            continue
        per_unit = _unit_support(v.np(), np.abs(g), routes.size)
        if _outside(per_unit.reshape(routes.shape), routes):
            culprit = n
            break
    where = ""
    if culprit is not None:
        # the operations reading the first tensor that parts, on the way to the output
        readers = [u for u in culprit.users if isinstance(run.vals.get(u), Value)] or [culprit]
        op = readers[0]
        where = f"; they part at node {op.name!r} ({_describe(gm, op)}{_inside(op)})"
    raise ValueError(
        f"from_torch: the traced graph of {name} misses {missing} input pixel(s) that the "
        f"gradient of output unit {unit} reaches{where}; map that operation with overrides= "
        "(or pass verify=False to skip this check)"
    )


def _outside(support: np.ndarray, routes: np.ndarray) -> int:
    """How many units the gradient reaches (above the leak threshold) with no route."""
    peak = float(support.max()) if support.size else 0.0
    if peak == 0.0:
        return 0
    reached = support > RELATIVE_ZERO * peak
    return int(np.count_nonzero(reached & ~(routes > -np.inf)))  # routes: log counts


def _unit_support(units: np.ndarray, grad: np.ndarray, n: int) -> np.ndarray:
    flat, g = units.ravel(), grad.ravel()
    ok = flat >= 0
    return np.bincount(flat[ok], weights=g[ok], minlength=n)


def _autograd(torch, gm, module, shape, cin, fx_out, axes, unit, run, check_output=False):
    """Gradients of the output unit, in the module's own dtype, with respect to the input and
    every traced tensor that depends on it. With ``check_output``, None where the program's
    output is not the module's own (compared on the same input, before the backward pass)."""
    fx = torch.fx
    dtype, device = module_dtype_device(module)
    x = _random_input(torch, (1, cin, *shape), dtype, device).requires_grad_(True)
    keep: dict[str, Any] = {}  # by node name: the copy's nodes are other objects
    traced = {n.name for n in run.vals}

    class Record(fx.Interpreter):  # type: ignore[misc, name-defined]
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if n.name in traced and isinstance(out, torch.Tensor) and out.requires_grad:
                out.retain_grad()
                keep[n.name] = out
            return out

    state = ModuleState(module)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            interp = Record(gm.root, garbage_collect_values=False, graph=gm.graph)
            result = interp.run(x)
            if check_output:
                with torch.no_grad():
                    eager = module(x.detach())
                if not _same(torch, result, eager):
                    return None
            y = keep[fx_out.name]
            # the output grid's unit: a position along ``axes`` (every channel)
            index: list[Any] = [slice(None)] * y.ndim
            for a, u in zip(axes, unit):
                index[a] = u
            y[tuple(index)].sum().backward()
    finally:
        state.restore()
    grads: dict[Any, Any] = {"input": None if x.grad is None else x.grad.detach().cpu().numpy()}
    for n, t in keep.items():
        if t.grad is not None:
            grads[n] = t.grad.detach().cpu().numpy()
    return grads


# --------------------------------------------------------------------------- messages
def _check_overrides(overrides: Any) -> dict:
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise TypeError(
            f"`overrides` must be a dict mapping module types, qualified module names or "
            f"functions to layers; got {type(overrides).__name__}"
        )
    for key, value in overrides.items():
        if not (isinstance(key, (str, type)) or callable(key)):
            raise TypeError(
                f"`overrides` keys must be module types, qualified module names or functions; "
                f"got {key!r}"
            )
        if not (
            value is None or callable(value) or isinstance(value, (Layer, Network, list, tuple))
        ):
            raise TypeError(
                f"`overrides` value for {key!r} must be a layer, a list of layers, a Network, "
                f"None, or a callable returning one; got {value!r}"
            )
    return overrides


def _describe(gm: Any, node: Any) -> str:
    if node.op == "call_module":
        try:
            return type(gm.get_submodule(node.target)).__name__
        except AttributeError:  # a node of a module recorded on its own
            return str(node.target)
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return public_name(node.target)


#: where torch's functions are documented, searched for the public name of a C function
_PUBLIC = ("torch", "torch.nn.functional", "torch.fft", "torch.linalg", "torch.special")


def public_name(target: Any) -> str:
    """``torch.fft.rfft2`` rather than ``torch._C._fft.fft_rfft2``: the name users write."""
    import importlib

    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", str(target))
    if module.startswith("torch._C") or (module == "" and callable(target)):
        for where in _PUBLIC:
            try:
                namespace = importlib.import_module(where)
            except ImportError:  # pragma: no cover - every torch has these
                continue
            for attr in (name, name.removeprefix("fft_"), name.removeprefix("linalg_"),
                         name.removeprefix("special_")):  # fmt: skip
                if getattr(namespace, attr, None) is target:
                    return f"{where}.{attr}"
    return f"{module}.{name}".lstrip(".")


def _inside(node: Any) -> str:
    owner = _owner(node)
    return "" if owner is None else f" inside module {owner[0]!r}"


def _unmapped(gm: Any, node: Any, module: Any, owner: Any = None, keeps: bool = True) -> str:
    """The one-line error for an operation without a mapping (``owner``: the module it ran
    in, for an operation recorded inside a module traced on its own; ``keeps``: its output
    has its input's layout, so ``unknown='identity'`` could stand in for it)."""
    identity = ", or pass unknown='identity'" if keeps else ""
    if module is not None:
        kind = type(module).__name__
        return (
            f"from_torch: no mapping for module {node.target!r} ({kind}); map it with "
            f"overrides={{{kind}: lambda m: rfa.Conv(...)}} or "
            f"overrides={{{node.target!r}: ...}} (None for a layer that keeps every "
            f"position in place){identity}"
        )
    what = _describe(gm, node)
    key = repr(node.target) if node.op == "call_method" else what
    owner = owner or _owner(node)
    where, how = "", f"map it with overrides={{{key}: ...}}"
    if owner is not None:
        path, cls = owner
        where = f" inside module {path!r} ({cls.__name__})"
        how = (
            f"map the module with overrides={{{cls.__name__}: ...}} or the operation "
            f"with overrides={{{key}: ...}}"
        )
    return (
        f"from_torch: no mapping for {what} at node {node.name!r}{where}; {how} "
        f"(a layer, a list of layers, or None for identity){identity}"
    )


def _owner(node: Any) -> tuple[str, type] | None:
    """The innermost module a traced operation belongs to. fx records no module for an
    attribute access such as ``.real``; it belongs where the function call it reads from
    does (a module's output, read outside the module, does not make it the module's)."""
    stack = node.meta.get("nn_module_stack")
    if not stack and node.op == "call_function" and node.target is getattr:
        source = node.all_input_nodes[0] if node.all_input_nodes else None
        if source is not None and source.op in ("call_function", "call_method"):
            stack = source.meta.get("nn_module_stack")
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    return path, cls
