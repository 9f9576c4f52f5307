"""Checking a converted model against the module itself: the support of one output unit's
autograd gradient, with the module's own weights and a random input, must lie inside the
support of its routes. Where it does not, the error names the first traced tensor (walking
back from the output) where autograd reaches units that no route does.

The two-sided check (``verify="two-sided"``) also asks the converse: every pixel a sampled
output unit's routes reach must be reached by its gradient for one of a few random inputs.
It catches routes the graph invents (padding read as a pixel, a window wider than the
module's) that the one-sided check cannot see."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import _engine
from ..._ops.counts import Algebra, Sep
from ..._plan import plan
from ..errors import ConversionError
from .messages import describe, inside
from .modules import ModuleState, module_dtype_device
from .output import Output, references
from .tracing import _Found, _random_input, _same, channel_axis, input_tensor_shape
from .units import Value

#: gradients below this fraction of the largest are treated as zero: float32 rounding (an
#: interpolation weight that exact arithmetic makes zero) and masked attention (exp(-100))
RELATIVE_ZERO = 1e-5
#: random inputs over which the two-sided check unites the gradient's supports
TWO_SIDED_INPUTS = 3


def _verify(torch, module, found: _Found, shape, cin, name, out: Output,
            layout="channels_first") -> bool:  # fmt: skip
    """Autograd's support of the centre output unit inside the routes' support (raise where
    it is not). For a conversion on shapes, first that the fx trace computes the module's
    own value of the analysed map ``out`` on the random input: False where it does not."""
    gm, run, keep, net = found.program, found.run, found.keep, found.net
    p = plan(net, shape)
    out_shape = p.output_shape
    assert out_shape is not None
    unit = tuple((m - 1) // 2 for m in out_shape)
    grads = _autograd(torch, gm, module, shape, cin, found.fx_node, found.axes, unit, run,
                      out if found.on_shapes else None, layout)  # fmt: skip
    if grads is None:
        return False
    alg = Algebra("log")  # only the support matters, and counts can pass float64's range
    start = Sep(alg.unit, tuple(alg.one_hot(m, u) for m, u in zip(out_shape, unit)))
    kept: dict[int, Any] = {}
    counts = alg.materialise(_engine.backward(p, start, alg, keep=kept))
    g0 = grads.get("input")
    if g0 is None:
        raise ValueError(f"from_torch: the output of {name} does not depend on its input")
    missing = _outside(np.abs(g0).sum(axis=(0, channel_axis(layout))), counts)
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
        where = f"; they part at node {op.name!r} ({describe(gm, op)}{inside(op)})"
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


def _verify_two_sided(torch, module, found: _Found, shape, cin, name,
                      layout="channels_first") -> None:  # fmt: skip
    """Every pixel the routes of a sampled output unit (the centre, the corners, the middle
    of the first edge) reach is reached by the unit's gradient for one of
    ``TWO_SIDED_INPUTS`` random inputs: raise naming the unit and the first traced tensor
    (walking back from the output) where routes reach units no gradient does.

    A pixel counts as reached where its gradient is not exactly zero (the leniency this
    direction can afford: rounding only adds pixels, and a route the graph invents has no
    arithmetic path at all). The unit's channels are weighted at random, so that channels
    whose sum is constant (a norm's) cannot cancel.
    """
    gm, run, keep, net = found.program, found.run, found.keep, found.net
    p = plan(net, shape)
    out_shape = p.output_shape
    assert out_shape is not None
    centre = tuple((m - 1) // 2 for m in out_shape)
    units = [centre, (0,) * len(out_shape), tuple(m - 1 for m in out_shape), (0, *centre[1:])]
    units = list(dict.fromkeys(units))
    alg = Algebra("log")
    position = {old: new for new, old in enumerate(keep)}
    seeds = range(1, TWO_SIDED_INPUTS + 1)  # seed 0 is the one-sided check's input
    grads = [_weighted_grads(torch, gm, module, shape, cin, found, units, run, seed, False,
                             layout=layout) for seed in seeds]  # fmt: skip
    for k, unit in enumerate(units):
        touched = np.zeros(shape, dtype=bool)
        for g in grads:
            touched |= np.abs(g[k]["input"]).sum(axis=(0, channel_axis(layout))) > 0
        start = Sep(alg.unit, tuple(alg.one_hot(m, u) for m, u in zip(out_shape, unit)))
        kept: dict[int, Any] = {}
        counts = alg.materialise(_engine.backward(p, start, alg, keep=kept))
        unreached = int(np.count_nonzero((counts > -np.inf) & ~touched))
        if not unreached:
            continue
        # the same inputs again, keeping every traced tensor's gradient for this unit
        per_node = [_weighted_grads(torch, gm, module, shape, cin, found, units, run, seed,
                                    True, only=k, layout=layout)[k]
                    for seed in seeds]  # fmt: skip
        culprit = None
        for n in reversed(list(gm.graph.nodes)):  # from the output back: the first that parts
            v = run.vals.get(n)
            if not isinstance(v, Value) or v.node not in position:
                continue
            routes = kept.get(position[v.node])
            if routes is None or any(n.name not in g for g in per_node):
                continue
            flat = v.np().ravel()
            present = np.zeros(routes.size, dtype=bool)
            present[flat[flat >= 0].astype(np.int64)] = True
            reached = np.zeros(routes.size, dtype=bool)
            for g in per_node:
                reached |= _unit_support(v.np(), np.abs(g[n.name]), routes.size) > 0
            if ((routes.ravel() > -np.inf) & present & ~reached).any():
                culprit = n
                break
        where = ""
        if culprit is not None:
            readers = [u for u in culprit.users if isinstance(run.vals.get(u), Value)]
            op = (readers or [culprit])[0]
            where = f"; they part at node {op.name!r} ({describe(gm, op)}{inside(op)})"
        raise ConversionError(
            f"from_torch: the traced graph of {name} gives output unit {unit} routes from "
            f"{unreached} input pixel(s) that no gradient reaches over {len(seeds)} random "
            f"inputs{where}; map that operation with overrides= (activations that cut "
            "gradients, such as ReLUs or max pools over few channels, can also leave route "
            "pixels unreached: verify=True checks the other direction only)"
        )


def _recorder(
    torch: Any,
    traced: set[str],
    keep: dict[str, Any],
    watch: str | None = None,
    outputs: dict[str, Any] | None = None,
) -> Any:
    """An fx interpreter class that keeps the gradient of every tensor of a node named in
    ``traced`` (the tensor into ``keep``, by node name) and, with ``watch``, that node's
    output into ``outputs``."""

    class Record(torch.fx.Interpreter):  # type: ignore[misc, name-defined]
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if n.name in traced and isinstance(out, torch.Tensor) and out.requires_grad:
                out.retain_grad()
                keep[n.name] = out
            if outputs is not None and n.name == watch:
                outputs[n.name] = out
            return out

    return Record


def _weighted_grads(torch, gm, module, shape, cin, found, units, run, seed, per_node, only=None,
                    layout="channels_first"):  # fmt: skip
    """For each output unit (or only unit ``only``), the gradient of its channels weighted
    at random, for the random input of ``seed``: with respect to the input, and with
    ``per_node`` to every traced tensor that depends on it (by node name)."""
    dtype, device = module_dtype_device(module)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(input_tensor_shape(cin, shape, layout), generator=gen, dtype=torch.float64)
    x = x.to(dtype=dtype, device=device).requires_grad_(True)
    keep: dict[str, Any] = {}  # by node name: the tensors whose gradients are kept
    outputs: dict[str, Any] = {}
    traced = {n.name for n in run.vals} if per_node else set()

    record = _recorder(torch, traced, keep, found.fx_node.name, outputs)

    out: list[dict[str, Any]] = [{} for _ in units]
    state = ModuleState(module)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            record(gm.root, garbage_collect_values=False, graph=gm.graph).run(x)
            y = outputs[found.fx_node.name]
            todo = [k for k in range(len(units)) if only is None or k == only]
            for k in todo:
                index: list[Any] = [slice(None)] * y.ndim
                for a, u in zip(found.axes, units[k]):
                    index[a] = u
                v = y[tuple(index)]
                w = torch.rand(v.shape, generator=gen, dtype=torch.float64) + 0.5
                for t in [x, *keep.values()]:
                    t.grad = None
                (v * w.to(dtype=v.dtype, device=v.device)).sum().backward(
                    retain_graph=k != todo[-1]
                )
                out[k]["input"] = x.grad.detach().cpu().numpy()
                for name, t in keep.items():
                    if t.grad is not None:
                        out[k][name] = t.grad.detach().cpu().numpy()
    finally:
        state.restore()
    return out


def _autograd(torch, gm, module, shape, cin, fx_out, axes, unit, run, check=None,
              layout="channels_first"):  # fmt: skip
    """Gradients of the output unit, in the module's own dtype, with respect to the input and
    every traced tensor that depends on it. With ``check`` (an :class:`~.output.Output`),
    None where the program's value of that map is not the module's own (compared on the same
    input, before the backward pass)."""
    dtype, device = module_dtype_device(module)
    x = _random_input(torch, input_tensor_shape(cin, shape, layout), dtype, device)
    x.requires_grad_(True)
    keep: dict[str, Any] = {}  # by node name: the copy's nodes are other objects
    traced = {n.name for n in run.vals}

    record = _recorder(torch, traced, keep)

    state = ModuleState(module)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            interp = record(gm.root, garbage_collect_values=False, graph=gm.graph)
            interp.run(x)
            if check is not None:
                (own,) = references(torch, module, x.detach(), [check])
                if own is None or not _same(torch, interp.env[fx_out], own):
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
