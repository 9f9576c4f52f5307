"""Route counting: routes to one unit and coverage (routes to all units).

Counts propagate backwards from the output: a vector ``g`` over the units of a layer's output
(``g[u]`` = routes from ``u`` to the target) becomes ``A.T @ g`` over its input, where ``A`` is
the layer's route-count matrix. Two representations of ``g`` are used:

* separable, ``scale * outer(v_0, v_1, ...)``: exact for chains of separable layers (every
  layer except Dense acts axis by axis, and Dense maps anything to ``total * outer(1, 1, ...)``),
  so a 1024x1024 map through 64 layers costs 64 x 2 operations on 1024-vectors and one outer
  product at the end;
* dense N-D arrays, needed once a residual or concat block adds two separable maps.

Three number systems share the code: float64, Python ints in object arrays (exact), and
natural-log counts combined with ``logaddexp`` (never overflows, never loses a small count
beside a huge one; converted to log10 on return).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from . import _memory
from ._axis import Mode
from ._plan import Block, Node, Plan, Step, plan

_LN10 = math.log(10.0)


class CountOverflowError(OverflowError, ValueError):
    """Route counts exceed the float64 range; use ``log=True`` or ``exact=True``."""


@dataclass(frozen=True, eq=False)
class _Sep:
    """``scale * outer(*vecs)`` (in log mode: ``scale + sum of vecs``, natural logs)."""

    scale: Any
    vecs: tuple[np.ndarray, ...]


# --------------------------------------------------------------------------- number systems
def _zeros(shape, mode: Mode) -> np.ndarray:
    if mode == "log":
        return np.full(shape, -np.inf)
    if mode == "exact":
        return np.zeros(shape, dtype=object)
    return np.zeros(shape)


def _ones(n: int, mode: Mode) -> np.ndarray:
    if mode == "log":
        return np.zeros(n)
    if mode == "exact":
        out = np.empty(n, dtype=object)
        out.fill(1)
        return out
    return np.ones(n)


def _one_hot(n: int, index: int, mode: Mode) -> np.ndarray:
    out = _zeros(n, mode)
    out[index] = 0.0 if mode == "log" else 1
    return out


def _shared(make, args, mode: Mode) -> tuple[np.ndarray, ...]:
    """One start vector per axis; equal axes share one object, so that the separable path
    computes each distinct (operator, vector) pair once."""
    made: dict[tuple, np.ndarray] = {}
    args = list(args)
    for a in args:
        if a not in made:
            made[a] = make(*a, mode)
    return tuple(made[a] for a in args)


def _unit_scale(mode: Mode) -> Any:
    return 0.0 if mode == "log" else 1


def _total(values: np.ndarray, mode: Mode) -> Any:
    if mode == "log":
        peak = values.max() if values.size else -np.inf
        if peak == -np.inf:
            return -np.inf
        return float(peak + np.log(np.exp(values - peak).sum()))
    if mode == "exact":
        return sum(values.ravel().tolist())
    return float(values.sum())


def _scale_mul(a: Any, b: Any, mode: Mode) -> Any:
    return a + b if mode == "log" else a * b


def _materialise(g: _Sep | np.ndarray, mode: Mode) -> np.ndarray:
    if isinstance(g, np.ndarray):
        return g
    if mode == "log":
        out = reduce(np.add.outer, g.vecs)
        return out + g.scale
    with np.errstate(over="ignore", invalid="ignore"):
        out = reduce(np.multiply.outer, g.vecs)
        if g.scale != 1:
            out = out * g.scale
    return out


def _add(parts: list[_Sep | np.ndarray], mode: Mode) -> np.ndarray:
    arrays = [_materialise(p, mode) for p in parts]
    out = arrays[0].copy()
    for a in arrays[1:]:
        if mode == "log":
            np.logaddexp(out, a, out=out)
        else:
            out += a
    return out


# --------------------------------------------------------------------------- propagation
def _apply_step(step: Step, g: _Sep | np.ndarray, mode: Mode) -> _Sep | np.ndarray:
    if step.ops is None:  # Dense: every input unit reaches every output unit
        assert step.in_shape is not None
        total = _total(g, mode) if isinstance(g, np.ndarray) else _sep_total(g, mode)
        return _Sep(total, tuple(_ones(n, mode) for n in step.in_shape))
    if isinstance(g, _Sep):
        done: dict[tuple[int, int], np.ndarray] = {}
        vecs = []
        for op, v in zip(step.ops, g.vecs):
            key = (id(op), id(v))  # square inputs: the same operator on the same vector
            if key not in done:
                done[key] = op.transpose_apply(v, 0, mode)
            vecs.append(done[key])
        return _Sep(g.scale, tuple(vecs))
    for axis, op in enumerate(step.ops):
        g = op.transpose_apply(g, axis, mode)
    return g


def _sep_total(g: _Sep, mode: Mode) -> Any:
    return reduce(lambda a, v: _scale_mul(a, _total(v, mode), mode), g.vecs, g.scale)


def _backward(nodes: tuple[Node, ...], g: _Sep | np.ndarray, mode: Mode) -> _Sep | np.ndarray:
    for node in reversed(nodes):
        if isinstance(node, Step):
            g = _apply_step(node, g, mode)
        else:
            g = _apply_block(node, g, mode)
    return g


def _apply_block(block: Block, g: _Sep | np.ndarray, mode: Mode) -> np.ndarray:
    return _add([_backward(branch, g, mode) for branch in block.branches], mode)


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
    bits = sum(math.log2(max(2, max(op.max_fan_out() for op in s.ops))) for s in p.steps() if s.ops)
    return 8.0 + 32.0 + bits / 8.0


def _check_memory(p: Plan, mode: Mode, what: str) -> None:
    per_unit = _bytes_per_unit(mode, p)
    # the result, the largest intermediate map, and one working copy
    need = per_unit * (math.prod(p.input_shape or ()) + 2 * p.largest_map())
    _memory.check(need, f"{what} for input {'x'.join(map(str, p.input_shape or ()))}")


def _finish(values: np.ndarray, mode: Mode, what: str) -> np.ndarray:
    if mode == "exact":
        return values
    if mode == "log":
        if np.isnan(values).any() or np.isposinf(values).any():  # pragma: no cover - defensive
            raise FloatingPointError(f"{what}: log counts became NaN; please report this")
        return values / _LN10
    if not np.isfinite(values).all():
        raise CountOverflowError(
            f"{what}: route counts exceed the float64 range (about 1.8e308); "
            "use log=True for log10 counts or exact=True for Python integers"
        )
    return values


def _run(net: Any, input_shape: Any, start, exact: bool, log: bool, what: str) -> np.ndarray:
    mode = _mode(exact, log)
    if input_shape is None:
        raise ValueError("`input_shape` is required")
    p = plan(net, input_shape)
    assert p.output_shape is not None
    _check_memory(p, mode, what)
    g0 = start(p, mode)
    with np.errstate(over="ignore", invalid="ignore"):
        g = _backward(p.nodes, g0, mode)
        values = _materialise(g, mode)
    return _finish(values, mode, f"{what} of {p.network.display_name}")


def routes(
    net: Any, input_shape: Any, unit: Any = "center", *, exact: bool = False, log: bool = False
) -> np.ndarray:
    """Number of routes from every input pixel to one unit of the last layer.

    Parameters
    ----------
    net : Network, layer, sequence of layers, or spec string
        The stack (``"conv3p1*10"`` is parsed with :func:`rfanalysis.parse`).
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

    def start(p: Plan, mode: Mode) -> _Sep:
        assert p.output_shape is not None
        where = f"the output of {p.network.display_name}"
        u = _resolve_unit(unit, p.output_shape, where)
        return _Sep(_unit_scale(mode), _shared(_one_hot, zip(p.output_shape, u), mode))

    return _run(net, input_shape, start, exact, log, "routes")


def coverage(net: Any, input_shape: Any, *, exact: bool = False, log: bool = False) -> np.ndarray:
    """Routes from every input pixel summed over all units of the last layer.

    Parameters and return value as in :func:`routes`.

    Examples
    --------
    >>> coverage("conv3p1", (3, 3)).astype(int)  # corner 4, edge 6, interior 9
    array([[4, 6, 4],
           [6, 9, 6],
           [4, 6, 4]])
    """

    def start(p: Plan, mode: Mode) -> _Sep:
        assert p.output_shape is not None
        return _Sep(_unit_scale(mode), _shared(_ones, ((m,) for m in p.output_shape), mode))

    return _run(net, input_shape, start, exact, log, "coverage")


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
