"""Checking a converted model against the module itself: the support of one output unit's
autograd gradient, with the module's own weights and a random input, must lie inside the
support of its routes. Where it does not, the error names the first traced tensor (walking
back from the output) where autograd reaches units that no route does."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import _engine
from ..._ops.counts import Algebra, Sep
from ..._plan import plan
from .messages import describe, inside
from .modules import ModuleState, module_dtype_device
from .tracing import _Found, _random_input, _same
from .units import Value

#: gradients below this fraction of the largest are treated as zero: float32 rounding (an
#: interpolation weight that exact arithmetic makes zero) and masked attention (exp(-100))
RELATIVE_ZERO = 1e-5


def _verify(torch, module, found: _Found, shape, cin, name) -> bool:
    """Autograd's support of the centre output unit inside the routes' support (raise where
    it is not). For a conversion on shapes, first that the fx trace computes the module's
    own output on the random input: False where it does not."""
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
