"""Route counting: routes to one unit and coverage (routes to all units).

Counts propagate backwards from the output through the plan's steps in reverse topological
order: every operation's route rule turns the counts per unit of its output into counts per
unit of each of its inputs, and a node read by several others (fan-out) sums what they send
back. A chain keeps the separable representation of :mod:`._ops.counts` to the end; where
maps add up, they become dense arrays. Three number systems share the code: float64, Python
ints (exact) and log counts (converted to log10 on return).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _memory
from ._graph import check_context
from ._ops.base import fmt_shape
from ._ops.counts import Algebra, Counts, Mode, Sep
from ._plan import Plan, plan

_LN10 = math.log(10.0)


class CountOverflowError(OverflowError, ValueError):
    """Route counts exceed the float64 range; use ``log=True`` or ``exact=True``."""


# --------------------------------------------------------------------------- propagation
def fallbacks(p: Plan) -> dict[int, np.ndarray]:
    """For context "local": per step whose routes partly only modulate, the output units that
    no carrying route reaches but a global one does. They keep their global routes (a unit
    reached only through a global operation stays global in both contexts).

    One forward pass of the support (boolean maps) through the plan.
    """
    if not any(s.layer.modulates for s in p.ops):
        return {}
    assert p.input_shape is not None
    reached: list[np.ndarray | None] = [np.ones(p.input_shape, dtype=bool)]
    out: dict[int, np.ndarray] = {}
    for step in p.ops:
        ins = tuple(reached[j] for j in step.inputs)
        layer = step.layer
        if layer.modulates:
            local = layer.local_reach(step, ins)
            fb = layer.reach(step, ins) & ~local
            if fb.any():
                out[step.index] = fb
            reached.append(local | fb)
        else:
            reached.append(layer.reach(step, ins))
    return out


def backward(
    p: Plan,
    start: Counts,
    alg: Algebra,
    context: str = "global",
    keep: dict[int, np.ndarray] | None = None,
) -> Counts:
    """Counts per input unit, from counts ``start`` per unit of the output; ``keep``, where
    given, receives every node's counts (routes from each of its units to the target)."""
    fb = fallbacks(p) if context == "local" else {}
    pending: list[list[Counts]] = [[] for _ in p.steps]
    pending[-1].append(start)
    for step in reversed(p.ops):
        parts = pending[step.index]
        pending[step.index] = []
        if not parts:  # pragma: no cover - every node leads to the output
            continue
        g = alg.add(parts)
        if keep is not None:
            keep[step.index] = alg.materialise(g)
        layer = step.layer
        if context == "local" and layer.modulates:
            back = _local_back(step, g, alg, fb.get(step.index))
        else:
            back = layer.routes_back(step, g, alg)
        for j, gj in zip(step.inputs, back):
            if gj is not None:
                pending[j].append(gj)
    parts = pending[0]
    return alg.add(parts) if parts else alg.zeros(p.input_shape)


def _local_back(step: Any, g: Counts, alg: Algebra, fb: np.ndarray | None) -> tuple:
    layer = step.layer
    if fb is None:
        return tuple(layer.local_routes_back(step, g, alg))
    local = layer.local_routes_back(step, alg.mask(g, ~fb), alg)
    rest = layer.routes_back(step, alg.mask(g, fb), alg)
    return tuple(
        b if a is None else a if b is None else alg.add([a, b]) for a, b in zip(local, rest)
    )


# --------------------------------------------------------------------------- public entry
def as_float_counts(counts: Any, hint: str = "") -> np.ndarray:
    """Counts (float64, or exact Python ints) as float64 for display.

    Exact integers beyond the float64 range raise ``ValueError`` that ends with ``hint``
    (by default: plot log10 counts instead).

    >>> as_float_counts(np.array([1, 10**20], dtype=object))
    array([1.e+00, 1.e+20])
    """
    arr = np.asarray(counts)
    if arr.dtype == object:
        try:
            return np.array([float(v) for v in arr.ravel()]).reshape(arr.shape)
        except OverflowError:
            raise ValueError(
                "exact counts exceed the float64 range; "
                + (hint or "compute log10 counts (log=True) and plot them with is_log10=True")
            ) from None
    try:
        return arr.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise TypeError(f"counts must be numbers, got an array of {arr.dtype}") from None


def _shared(make, args) -> tuple[np.ndarray, ...]:
    """One start vector per axis; equal axes share one object, so that the separable path
    computes each distinct (operator, vector) pair once."""
    made: dict[tuple, np.ndarray] = {}
    args = list(args)
    for a in args:
        if a not in made:
            made[a] = make(*a)
    return tuple(made[a] for a in args)


def _resolve_unit(unit: Any, out_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    if isinstance(unit, str):
        if unit != "center":
            raise ValueError(f"`unit` must be 'center' or an index tuple, got {unit!r}")
        return tuple((m - 1) // 2 for m in out_shape)
    index = (unit,) if not isinstance(unit, (tuple, list)) else tuple(unit)
    if len(index) != len(out_shape):
        raise ValueError(
            f"`unit` {unit!r} has {len(index)} coordinates but {where} is "
            f"{len(out_shape)}-D ({'x'.join(map(str, out_shape))})"
        )
    resolved = []
    for axis, (u, m) in enumerate(zip(index, out_shape)):
        if isinstance(u, bool) or not isinstance(u, (int, np.integer)):
            raise TypeError(f"`unit` coordinates must be integers, got {unit!r}")
        if not -m <= u < m:
            raise ValueError(
                f"`unit` {unit!r} is out of range on axis {axis}: {where} has {m} units there "
                f"(output {'x'.join(map(str, out_shape))})"
            )
        resolved.append(int(u) % m)
    return tuple(resolved)


def _mode(exact: bool, log: bool) -> Mode:
    if exact and log:
        raise ValueError("`exact` and `log` are exclusive: choose Python ints or log10 counts")
    return "exact" if exact else "log" if log else "float"


def _bytes_per_unit(mode: Mode, p: Plan) -> float:
    if mode != "exact":
        return 8.0
    # Python int objects: pointer + header + digits; counts have at most ~log2(bound) bits
    bits = sum(_growth_bits(s, len(c)) for s, c in zip(p.ops, p.consumers[1:]))
    return 8.0 + 32.0 + bits / 8.0


def _growth_bits(step: Any, consumers: int) -> float:
    """Bits by which counts can grow through a step: log2 of how many of its output units one
    input unit reaches, and of how many steps read it."""
    ops = getattr(step.data, "ops", None)
    if ops is not None:
        reach = math.prod(max(1, op.max_fan_out()) for op in ops)
    else:
        reach = math.prod(step.out_shape or (1,))
    return math.log2(max(2, reach)) + math.log2(max(1, consumers))


def _check_memory(p: Plan, mode: Mode, what: str) -> None:
    per_unit = _bytes_per_unit(mode, p)
    # the result, the largest intermediate map, and one working copy
    need = per_unit * (math.prod(p.input_shape or ()) + 2 * p.largest_map())
    _memory.check(need, f"{what} for input {fmt_shape(p.input_shape)}")


def _finish(values: np.ndarray, mode: Mode, what: str) -> np.ndarray:
    if mode == "exact":
        return values
    if mode == "log":
        if np.isnan(values).any() or np.isposinf(values).any():  # pragma: no cover - defensive
            raise FloatingPointError(f"{what}: log counts became NaN; please report this")
        return values / _LN10
    # counts are sums of non-negative numbers: an overflow is an inf (or a NaN where an inf
    # met a zero) and the largest value shows it
    if values.size and not np.max(values) < np.inf:
        raise CountOverflowError(
            f"{what}: route counts exceed the float64 range (about 1.8e308); "
            "use log=True for log10 counts or exact=True for Python integers"
        )
    return values


def _context(context: Any, p: Plan) -> str:
    """The context asked for, or the network's own (None)."""
    return p.network.context if context is None else check_context(context)


def _run(
    net: Any, input_shape: Any, start, exact: bool, log: bool, what: str, context: Any
) -> np.ndarray:
    mode = _mode(exact, log)
    if context is not None:
        check_context(context)  # before planning: a bad argument, not a bad network
    if input_shape is None:
        raise ValueError("`input_shape` is required")
    p = plan(net, input_shape)
    context = _context(context, p)
    assert p.output_shape is not None
    _check_memory(p, mode, what)
    alg = Algebra(mode)
    g0 = start(p, alg)
    with np.errstate(over="ignore", invalid="ignore"):
        values = alg.materialise(backward(p, g0, alg, context))
    return _finish(values, mode, f"{what} of {p.network.display_name}")


def routes(
    net: Any,
    input_shape: Any,
    unit: Any = "center",
    *,
    exact: bool = False,
    log: bool = False,
    context: str | None = None,
) -> np.ndarray:
    """Number of routes from every input pixel to one unit of the last layer.

    Parameters
    ----------
    net : Network, layers, spec text or file, zoo name, torch module, ONNX model, reference
        The stack (``"conv3p1*10"`` is parsed with :func:`rfanalysis.parse`); a torch module
        or a model reference (``"timm:resnet18"``, ``"path/file.py:make_model"``) is traced
        at ``input_shape``; an ONNX model or file (``"model.onnx"``) is imported.
    input_shape : int or tuple of int
        Input size per spatial axis. An int is the size of every axis: the network's own
        number of axes if it fixes one, else 2 (an image).
    unit : "center" or tuple of int
        Unit of the last layer's output map; ``"center"`` is ``(m - 1) // 2`` on every axis.
        Negative indices count from the end.
    exact : bool
        Return Python integers (``dtype=object``), exact at any depth.
    log : bool
        Return log10 counts (float64, ``-inf`` where there is no route), finite at any depth.
    context : {"global", "local"}, optional
        ``"global"`` counts every route: its support is the support of autograd's gradient.
        ``"local"`` drops the routes that only modulate the map (the gate side of a product,
        the statistics of a norm over space, attention beyond a window), except for units
        that nothing else reaches: the local receptive field papers usually quote. Default:
        the network's own (``"global"`` unless traced with ``from_torch(context=...)``).

    Returns
    -------
    counts : ndarray of shape ``input_shape``
        float64 by default (exact below 2**53).

    Raises
    ------
    ValueError
        For an invalid network, input or unit (the message names the layer), and
        :class:`CountOverflowError` (a ``ValueError``) when float64 overflows.

    Notes
    -----
    For a single-channel, bias-free linear network with all weights 1 (pools as window sums),
    ``routes(...)[i] == d y_unit / d x_i``.

    Examples
    --------
    >>> routes("conv2*4", (5,))
    array([1., 4., 6., 4., 1.])
    >>> routes("conv3", (3, 3)).astype(int)
    array([[1, 1, 1],
           [1, 1, 1],
           [1, 1, 1]])
    """

    def start(p: Plan, alg: Algebra) -> Sep:
        assert p.output_shape is not None
        where = f"the output of {p.network.display_name}"
        u = _resolve_unit(unit, p.output_shape, where)
        return Sep(alg.unit, _shared(alg.one_hot, zip(p.output_shape, u)))

    return _run(net, input_shape, start, exact, log, "routes", context)


def coverage(
    net: Any,
    input_shape: Any,
    *,
    exact: bool = False,
    log: bool = False,
    context: str | None = None,
) -> np.ndarray:
    """Routes from every input pixel summed over all units of the last layer.

    Parameters and return value as in :func:`routes`.

    Examples
    --------
    >>> coverage("conv3p1", (3, 3)).astype(int)  # corner 4, edge 6, interior 9
    array([[4, 6, 4],
           [6, 9, 6],
           [4, 6, 4]])
    """

    def start(p: Plan, alg: Algebra) -> Sep:
        assert p.output_shape is not None
        return Sep(alg.unit, _shared(alg.ones, ((m,) for m in p.output_shape)))

    return _run(net, input_shape, start, exact, log, "coverage", context)


def output_shape(net: Any, input_shape: Any) -> tuple[int, ...]:
    """Shape of the last layer's output map for ``input_shape``.

    >>> output_shape("conv5,maxpool2s2", 28)
    (12, 12)
    """
    if input_shape is None:
        raise ValueError("`input_shape` is required")
    out = plan(net, input_shape).output_shape
    assert out is not None
    return out
