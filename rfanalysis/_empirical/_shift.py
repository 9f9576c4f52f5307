"""``shift_invariance``: how much a network's output changes when its input shifts.

Trial ``t`` (one draw of weights and input, as in :func:`~._influence.influence`) runs its
network ``f_t`` on its input ``x_t``, on ``x_t`` shifted by ``delta`` pixels along one axis for
every requested ``delta``, and on the inputs of the next ``K = min(4, trials - 1)`` trials
(cyclically), which are unrelated to ``x_t``. Two similarities compare the outputs:

* **pooled**: the globally average-pooled output features (one number per channel; the
  features themselves when the output has no spatial layout), as a classifier head reads them;
* **map**: the output map unit by unit, after moving the unshifted map by the whole number of
  output units nearest to the shift (``delta / jump``, rounded down or up, whichever matches
  better) the way the input moved (rolled, or cropped to the units both maps hold).

Each is ``1 - sum_t w_t |f_t(shift x_t) - f_t(x_t)|^2 / sum_t w_t mean_k |f_t(x_(t+k)) -
f_t(x_t)|^2`` (squared distances averaged over the map's units for the map similarity): 1
when the shift changes nothing, about 0 when it changes the output as much as replacing the
input by an unrelated one. Since ``E|f(x') - f(x)|^2`` is twice the variance of ``f`` over
inputs, it estimates the correlation between the outputs of an input and of its shift. The
weight ``w_t`` is one over the mean square of trial ``t``'s outputs, so that every random
network counts alike whatever its gain (deep random networks differ in gain by orders of
magnitude, and a plain sum would be decided by a few of them). The raw cosine similarity of
pooled features would not do: pooled ReLU features share a large mean, so it is close to 1
for any two inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .. import _memory
from .._geometry import fields
from .._graph import is_torch_module
from .._importers.fromtorch import modules
from .._ops.base import GLOBAL, fmt_shape
from .._plan import normalise_input_shape, plan
from . import _numpy
from ._influence import BACKENDS, _count, _model
from ._net import WEIGHT_NAMES, Model, check_seed, draw, generators, trial_weights
from ._progress import Progress

__all__ = ["SHIFT_MODES", "ShiftInvariance", "shift_invariance"]

SHIFT_MODES = ("circular", "crop")

#: unrelated inputs per trial that set the scale of a change (those of the next trials)
UNRELATED = 4

#: defaults of the random networks (a torch module keeps its own layers and weights)
DEFAULTS = {"weights": "normal", "activation": "relu", "channels": 16}


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class ShiftInvariance:
    """How a network's output changes when its input shifts (see :func:`shift_invariance`).

    Attributes
    ----------
    network : str
        The network's name or spec (or the torch module's class name).
    input_shape : tuple of int
        Spatial input size.
    axis : int
        The spatial axis the input shifts along (0-based, non-negative).
    mode : {"circular", "crop"}
        How the input shifts (see :func:`shift_invariance`).
    stride : int or None
        Total stride along ``axis``: the largest jump (input pixels between neighbouring units)
        of any map of the network, rounded up (for a torch module, the ratio of input to
        output size; None when its output has no spatial axes).
    shifts : tuple of int
        The shifts ``delta`` (pixels), in the order given.
    similarity : tuple of float
        Similarity of the globally pooled output features of the input and of each shift.
    map_similarity : tuple of float, or None
        Similarity of the output maps unit by unit after moving the unshifted map by
        :attr:`map_offset` units; None when the output has no spatial layout along ``axis``.
    map_offset : tuple of int, or None
        Output units the unshifted map was moved by for each shift.
    trials : int
    settings : dict
        ``weights``, ``activation``, ``channels``, ``seed`` and ``backend`` of the draws (a
        torch module: ``{"module": class name, "seed": ...}``).
    """

    network: str
    input_shape: tuple[int, ...]
    axis: int
    mode: str
    stride: int | None
    shifts: tuple[int, ...]
    similarity: tuple[float, ...]
    map_similarity: tuple[float, ...] | None
    map_offset: tuple[int, ...] | None
    trials: int
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (NaN, for an output that never varies, as None)."""

        def plain(values: tuple[float, ...] | None) -> list[float | None] | None:
            if values is None:
                return None
            return [None if math.isnan(v) else v for v in values]

        return {
            "network": self.network,
            "input_shape": list(self.input_shape),
            "axis": self.axis,
            "mode": self.mode,
            "stride": self.stride,
            "trials": self.trials,
            **self.settings,
            "shifts": list(self.shifts),
            "similarity": plain(self.similarity),
            "map_similarity": plain(self.map_similarity),
            "map_offset": None if self.map_offset is None else list(self.map_offset),
        }

    def __str__(self) -> str:
        s = self.settings
        if "module" in s:
            drawn = f"its own weights, {self.trials} random inputs"
        else:
            drawn = (
                f"{s['weights']} weights, {s['activation'] or 'linear'}, {s['channels']} "
                f"channels, {self.trials} trials, {s['backend']}"
            )
        stride = "unknown" if self.stride is None else self.stride
        lines = [
            f"shift invariance of {self.network} at input {fmt_shape(self.input_shape)}",
            f"{self.mode} shifts along axis {self.axis} (total stride {stride}); {drawn}",
            "similarity: 1 = unchanged, 0 = as different as an unrelated input",
            "",
        ]
        header = ["shift", "pooled"]
        if self.map_similarity is not None:
            header += ["map", "map moved by"]
        rows = [header]
        for i, d in enumerate(self.shifts):
            row = [str(d), f"{self.similarity[i]:.4f}"]
            if self.map_similarity is not None and self.map_offset is not None:
                row += [f"{self.map_similarity[i]:.4f}", str(self.map_offset[i])]
            rows.append(row)
        widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
        for k, r in enumerate(rows):
            lines.append("  ".join(v.rjust(w) for v, w in zip(r, widths)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class _Args:
    module: bool
    shifts: tuple[int, ...] | None  # None: 0 ... 2 x the total stride
    axis: int  # as given (may be negative)
    mode: str
    weights: Any
    relu: bool
    channels: int
    trials: int | None  # None: 16, or one per given input
    backend: str
    in_channels: int | None
    progress: bool | None


def _validate(
    net, shifts, axis, mode, weights, activation, channels, trials, rng, backend, in_channels,
    progress,
) -> _Args:  # fmt: skip
    module = is_torch_module(net)
    if module:
        for name, value in (
            ("weights", weights),
            ("activation", activation),
            ("channels", channels),
        ):
            if value is not DEFAULTS[name] and value != DEFAULTS[name]:
                raise ValueError(
                    f"`{name}` applies to network specs; a torch module keeps its own layers "
                    f"and weights (got {name}={value!r})"
                )
    if shifts is None:
        deltas = None
    elif isinstance(shifts, (list, tuple, range)):
        deltas = tuple(_shift_value(s) for s in shifts)
        if not deltas:
            raise ValueError("`shifts` must not be empty")
    else:
        top = _shift_value(shifts)
        if top < 0:
            raise ValueError(
                f"`shifts` as one number is the largest shift (0 ... shifts) and must be >= 0, "
                f"got {top}; pass a list for negative shifts"
            )
        deltas = tuple(range(top + 1))
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"`axis` must be an integer, got {axis!r}")
    if mode not in SHIFT_MODES:
        raise ValueError(f"`mode` must be one of {', '.join(SHIFT_MODES)}; got {mode!r}")
    if not (callable(weights) or weights in WEIGHT_NAMES):
        raise (ValueError if isinstance(weights, str) else TypeError)(
            f"`weights` must be one of {', '.join(WEIGHT_NAMES)} or a callable (shape, rng) "
            f"-> array; got {weights!r}"
        )
    if activation not in (None, "none", "relu"):
        raise ValueError(f"`activation` must be None or 'relu', got {activation!r}")
    n_channels = _count(channels, "channels")
    n_trials = _count(trials, "trials", minimum=2, allow_none=True)
    check_seed(rng)
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}; got {backend!r}")
    n_in = _count(in_channels, "in_channels", allow_none=True)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"`progress` must be None, True or False, got {progress!r}")
    assert n_channels is not None
    return _Args(
        module, deltas, int(axis), mode, weights, activation == "relu", n_channels, n_trials,
        backend, n_in, progress,
    )  # fmt: skip


def _shift_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`shifts` must be an int or a sequence of ints, got {value!r}")
    return int(value)


def _spatial_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"`axis` must lie in [{-ndim}, {ndim}) for a {ndim}-D input, got {axis}")
    return axis % ndim


# --------------------------------------------------------------------------- entry point
def shift_invariance(
    net: Any,
    input_shape: Any,
    shifts: Any = None,
    *,
    axis: int = -1,
    mode: str = "circular",
    weights: Any = "normal",
    activation: str | None = "relu",
    channels: int = 16,
    trials: int | None = None,
    rng: Any = 0,
    backend: str = "numpy",
    in_channels: int | None = None,
    inputs: Any = None,
    progress: bool | None = None,
) -> ShiftInvariance:
    """Measure how the output of a network changes when its input shifts by ``delta`` pixels.

    Parameters
    ----------
    net : Network, layer, sequence of layers, spec string, or torch.nn.Module
        A spec runs as in :func:`rfanalysis.influence`, with ``channels`` channels per layer,
        drawn ``weights`` and an optional ReLU; a torch module runs as it is (eval mode).
    input_shape : int or tuple of int
        Spatial input size.
    shifts : int or sequence of int, optional
        Shifts in pixels: a number ``m`` means ``0, 1, ..., m``; default ``0 ... 2 s`` with
        ``s`` the network's total stride along ``axis`` (for a torch module, the ratio of
        input to output size; a module whose output has no spatial axes needs ``shifts``).
    axis : int
        Spatial axis to shift along (default the last: columns of an image).
    mode : {"circular", "crop"}
        ``"circular"``: the input rolls by ``delta`` (``np.roll``), so nothing enters or
        leaves; a network with circular padding whose maps divide evenly is then exactly
        equivariant to shifts by its total stride. ``"crop"``: the input is a window of a
        larger input that moves by ``delta``, so new content enters at one border (a camera
        panning); with zero padding even stride 1 is then not exactly invariant.
    weights, activation, channels, rng, backend, in_channels
        As for :func:`rfanalysis.influence`: weights of every weighted layer (drawn afresh per
        trial; a callable ``f(shape, rng)`` also works), ``"relu"`` after every weighted layer
        but the last, channels of every weighted layer without ``out_channels``, the seed,
        and ``"numpy"`` or ``"torch"`` (same numbers). The defaults (He-normal weights, ReLU,
        16 channels) differ from ``influence``'s because the pooled output of a linear
        one-channel network is a single number. ``weights``, ``activation`` and
        ``channels`` do not apply to a torch module.
    trials : int, optional
        Independent draws of weights and input, averaged (at least 2: each trial's unrelated
        input is the next trial's). Default 16, or one per given input.
    inputs : array_like, optional
        Inputs to use instead of standard normal ones, ``(trials, in_channels, *size)`` with
        ``size`` the input shape, for ``"crop"`` longer along ``axis`` by
        ``max(shifts, 0) - min(shifts, 0)`` pixels (the window of shift ``delta`` starts at
        ``max(shifts, 0) - delta``).
    progress : bool, optional
        Progress bar on stderr (``None``: only on a terminal for long work).

    Returns
    -------
    ShiftInvariance
        Prints as a table; ``to_dict()`` gives JSON-ready data.

    Raises
    ------
    ValueError, TypeError
        For invalid arguments (the message names the parameter).
    FloatingPointError
        When the outputs overflow.

    Notes
    -----
    Trial ``t`` runs on its input ``x_t`` and its shifts; the unrelated input of the
    denominator is ``x_(t+1)`` (cyclically), run through trial ``t``'s network. Random inputs
    are standard normal, one stream per trial, and weights come from other streams, both
    derived from ``rng``. The similarities are defined in
    :mod:`rfanalysis._empirical._shift`: ``1 - E|f(shift x) - f(x)|^2 / E|f(x') - f(x)|^2``.

    A network whose every layer has stride 1 and circular padding is equivariant to circular
    shifts: its map moves with the input and its pooled features stay the same (similarity 1
    at every shift). Subsampling by a total stride ``s`` keeps that only for shifts by
    multiples of ``s``; in between the network sees a different sampling of its own feature
    maps (aliasing). Azulay and Weiss, "Why do deep convolutional networks generalize so
    poorly to small image transformations?", JMLR 2019; Zhang, "Making Convolutional
    Networks Shift-Invariant Again", ICML 2019 (blurred downsampling,
    :class:`rfanalysis.BlurPool`).

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> r = rfa.shift_invariance("conv3p1:circular*2", 16, 2, channels=4, trials=4)
    >>> r.similarity, r.map_similarity
    ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    >>> r = rfa.shift_invariance("conv3p1:circular,maxpool2,conv3p1:circular", 16, channels=4,
    ...                          trials=4)
    >>> r.shifts, r.map_offset
    ((0, 1, 2, 3, 4), (0, 0, 1, 1, 2))
    >>> r.similarity[0] == r.similarity[2] == r.similarity[4] == 1.0, r.similarity[1] < 1
    (True, True)
    """
    args = _validate(
        net, shifts, axis, mode, weights, activation, channels, trials, rng, backend,
        in_channels, progress,
    )  # fmt: skip
    weights_seed, inputs_seed = (int(v) for v in generators(rng, 1)[0].integers(2**63, size=2))
    seed = rng if isinstance(rng, (int, np.integer)) else repr(rng)
    if args.module:
        return _module_shift(net, input_shape, args, inputs, inputs_seed, seed)
    p = plan(net, input_shape)
    model = _model(p, args.channels, args.in_channels, args.relu)
    assert p.input_shape is not None
    ax = _spatial_axis(args.axis, len(p.input_shape))
    stride, out_jump = _strides(p, ax)
    deltas = args.shifts if args.shifts is not None else tuple(range(2 * stride + 1))
    name = p.network.display_name
    shape = (model.in_channels, *p.input_shape)
    n_trials = _n_trials(args.trials, inputs)
    _memory.check(
        4 * n_trials * math.prod(_outer_shape(shape, ax, deltas, args.mode)) * 8
        + _numpy.memory_bytes(model, n_trials, 8),
        f"shift invariance of {name} for input {fmt_shape(p.input_shape)}",
    )
    x = _inputs(inputs, n_trials, shape, ax, deltas, args.mode, inputs_seed)
    _, params = draw(model, n_trials, args.weights, weights_seed, x)
    forward = (_numpy_forward if args.backend == "numpy" else _torch_forward)(model, params)
    flat = p.flat
    similarity, maps, offsets = _measure(
        forward, x, p.input_shape[ax], deltas, ax, args.mode, flat, None if flat else out_jump,
        args.progress,
    )  # fmt: skip
    settings = {
        "weights": args.weights if isinstance(args.weights, str) else "callable",
        "activation": "relu" if args.relu else None,
        "channels": args.channels,
        "seed": seed,
        "backend": args.backend,
    }
    return ShiftInvariance(
        name, p.input_shape, ax, args.mode, stride, deltas, similarity, maps, offsets,
        n_trials, settings,
    )  # fmt: skip


def _strides(p: Any, ax: int) -> tuple[int, Fraction | None]:
    """The total stride along ``ax`` (the largest jump of any map, rounded up, at least 1) and
    the jump of the output map (None when the output's units see the whole input)."""
    per_step, _ = fields(p)
    jumps = [f[ax].jump for f in per_step if f[ax] is not GLOBAL]
    out = per_step[-1][ax]
    return max(1, math.ceil(max(jumps))), None if out is GLOBAL else out.jump


def _module_strides(
    module: Any, shape: tuple[int, ...], ax: int, cin: int, n_out: int
) -> tuple[int, Fraction | None]:
    """A module's total stride and output jump along ``ax``, from its trace; where the
    module cannot be traced, from the ratio of the input and output sizes (a map that only
    shrinks at its borders then reads as strided)."""
    from .._importers.fromtorch import from_torch

    try:
        net = from_torch(module, shape, verify=False, in_channels=cin)
    except (ValueError, TypeError, NotImplementedError):
        out_jump = Fraction(shape[ax], n_out)
        return max(1, math.ceil(out_jump)), out_jump
    return _strides(plan(net, shape), ax)


# --------------------------------------------------------------------------- inputs
def _n_trials(trials: int | None, inputs: Any) -> int:
    if inputs is None:
        return 16 if trials is None else trials
    n = len(inputs) if hasattr(inputs, "__len__") else 0
    if trials is not None and trials != n:
        raise ValueError(
            f"`trials` is {trials} but `inputs` holds {n} inputs; omit `trials` or make them agree"
        )
    if n < 2:
        raise ValueError(
            f"`inputs` must hold at least 2 inputs (each trial's unrelated input is the next "
            f"one's), got {n}"
        )
    return n


def _outer_shape(
    shape: tuple[int, ...], ax: int, deltas: tuple[int, ...], mode: str
) -> tuple[int, ...]:
    """``(C, *size)`` of the inputs: for ``"crop"``, longer along ``ax`` by the shifts' span."""
    out = list(shape)
    if mode == "crop":
        out[1 + ax] += max(max(deltas), 0) - min(min(deltas), 0)
    return tuple(out)


def _inputs(
    inputs: Any,
    trials: int,
    shape: tuple[int, ...],
    ax: int,
    deltas: tuple[int, ...],
    mode: str,
    seed: int,
) -> np.ndarray:
    """Given inputs, checked, or standard normal ones, one stream per trial:
    ``(trials, C, *size)`` (see :func:`_outer_shape`)."""
    outer = _outer_shape(shape, ax, deltas, mode)
    if inputs is None:
        return np.stack([g.standard_normal(outer) for g in generators(seed, trials)])
    arr = np.asarray(inputs, dtype=np.float64)
    if arr.shape != (trials, *outer):
        extra = (
            f" (input size plus the span of the shifts along axis {ax})" if mode == "crop" else ""
        )
        raise ValueError(
            f"`inputs` must have shape {(trials, *outer)}{extra}, channels first; got "
            f"{np.shape(inputs)}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("`inputs` must be finite")
    return arr


def _shifted(x: np.ndarray, delta: int, ax: int, mode: str, n: int, deltas: tuple[int, ...]):
    """The inputs moved by ``delta`` along spatial axis ``ax``: pixel ``i`` of the result is
    pixel ``i - delta`` of the unshifted input (content moves towards higher indices)."""
    axis = 2 + ax
    if mode == "circular":
        return np.roll(x, delta, axis=axis)
    start = max(max(deltas), 0) - delta
    return np.take(x, np.arange(start, start + n), axis=axis)


# --------------------------------------------------------------------------- measurement
Forward = Callable[[np.ndarray], np.ndarray]


def _pooled(y: np.ndarray, flat: bool) -> np.ndarray:
    """``(T, features)``: the mean over spatial axes per channel, or the dense features."""
    return y.reshape(y.shape[0], -1) if flat else y.reshape(*y.shape[:2], -1).mean(axis=2)


def _mean_per_trial(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1).mean(axis=1)


def _ratio(num: float, den: float) -> float:
    """``1 - num / den``; 1 when both are 0 (an output that never varies), NaN when only
    ``den`` is."""
    if den > 0:
        return 1.0 - num / den
    return 1.0 if num == 0 else math.nan


def _moved(y: np.ndarray, r: int, axis: int, mode: str) -> tuple[np.ndarray, slice] | None:
    """The unshifted map ``y`` moved by ``r`` units along ``axis``, and the units of the
    shifted map it is compared with (``"crop"``: only units both maps hold)."""
    m = y.shape[axis]
    if mode == "circular":
        return np.roll(y, r, axis=axis), slice(None)
    if abs(r) >= m:
        return None
    kept = np.take(y, np.arange(max(0, -r), m - max(0, r)), axis=axis)
    return kept, slice(max(0, r), m - max(0, -r))


def _measure(
    forward: Forward,
    x: np.ndarray,
    n: int,
    deltas: tuple[int, ...],
    ax: int,
    mode: str,
    flat: bool,
    out_jump: Fraction | None,
    progress: bool | None,
) -> tuple[tuple[float, ...], tuple[float, ...] | None, tuple[int, ...] | None]:
    """Pooled and map similarities (and the map offsets) for every shift; ``n`` is the input
    size along ``ax``."""
    axis = 2 + ax  # of the output map
    trials = x.shape[0]
    others = min(UNRELATED, trials - 1)

    def pooled_change(y: np.ndarray) -> np.ndarray:
        return np.sum((_pooled(y, flat) - p0) ** 2, axis=1)

    with Progress(len(deltas) + 1 + others, "shift", progress) as bar:
        x0 = _shifted(x, 0, ax, mode, n, deltas)
        y0 = forward(x0)
        p0 = _pooled(y0, flat)
        power = _mean_per_trial(y0**2)
        bar.tick()
        # trial t's network on the inputs of trials t+1 ... t+others (cyclically)
        pooled_den = np.zeros(trials)
        map_den = np.zeros(trials)
        for k in range(1, others + 1):
            y = forward(np.roll(x0, k, axis=0))
            pooled_den += pooled_change(y)
            map_den += _mean_per_trial((y - y0) ** 2)
            power += _mean_per_trial(y**2)
            bar.tick()
        # every trial's network counts alike, whatever its gain
        weight = np.where(power > 0, 1.0 / np.where(power > 0, power, 1.0), 0.0)
        pooled_scale = float(weight @ pooled_den) / others
        map_scale = float(weight @ map_den) / others
        pooled, maps, offsets = [], [], []
        for delta in deltas:
            y = y0 if delta == 0 else forward(_shifted(x, delta, ax, mode, n, deltas))
            pooled.append(_ratio(float(weight @ pooled_change(y)), pooled_scale))
            if out_jump is not None:
                best: tuple[float, int] | None = None
                for r in sorted({math.floor(delta / out_jump), math.ceil(delta / out_jump)}):
                    moved = _moved(y0, r, axis, mode)
                    if moved is None:
                        continue
                    ref, units = moved
                    index = (slice(None),) * axis + (units,)
                    err = float(weight @ _mean_per_trial((y[index] - ref) ** 2))
                    if best is None or err < best[0]:
                        best = (err, r)
                if best is None:
                    raise ValueError(
                        f"shift {delta} moves the output map by more than its "
                        f"{y0.shape[axis]} units; use smaller shifts"
                    )
                maps.append(_ratio(best[0], map_scale))
                offsets.append(best[1])
            bar.tick()
    if out_jump is None:
        return tuple(pooled), None, None
    return tuple(pooled), tuple(maps), tuple(offsets)


# --------------------------------------------------------------------------- backends
def _numpy_forward(model: Model, params: dict[int, np.ndarray]) -> Forward:
    of = trial_weights(params, lambda w: w)

    def forward(x: np.ndarray) -> np.ndarray:
        trials = x.shape[0]
        size = _numpy.batch_size(model, trials, 8)
        out = []
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, trials, size):
                stop = min(start + size, trials)
                ws = of(start, stop)
                y, _ = _numpy._Pass(model, ws, lambda: None).forward(x[start:stop])
                out.append(y)
        return _finite(np.concatenate(out))

    return forward


def _torch_forward(model: Model, params: dict[int, np.ndarray]) -> Forward:
    from . import _torch

    torch = modules.require_torch('shift_invariance(backend="torch")')

    def tensor(a: np.ndarray) -> Any:
        return torch.as_tensor(a, dtype=torch.float64)

    of = trial_weights(params, tensor)

    def forward(x: np.ndarray) -> np.ndarray:
        trials = x.shape[0]
        size = _torch.batch_size(model, trials, 8)
        out = []
        with torch.no_grad():
            for start in range(0, trials, size):
                stop = min(start + size, trials)
                ws = of(start, stop)
                out.append(_torch.run_model(torch, model, ws, tensor(x[start:stop])).numpy())
        return _finite(np.concatenate(out))

    return forward


def _finite(y: np.ndarray) -> np.ndarray:
    if not np.isfinite(y).all():
        raise FloatingPointError(
            "shift_invariance: the outputs overflowed (or became NaN); use weights='normal' "
            "(He-scaled) or fewer layers"
        )
    return y.astype(np.float64, copy=False)


# --------------------------------------------------------------------------- torch modules
def _module_shift(
    module: Any, input_shape: Any, args: _Args, inputs: Any, inputs_seed: int, seed: Any
) -> ShiftInvariance:
    from . import _torch

    torch = modules.require_torch("shift_invariance of a torch module")
    name = type(module).__name__
    shape = normalise_input_shape(input_shape, modules.module_ndim(module))
    ax = _spatial_axis(args.axis, len(shape))
    cin = args.in_channels or modules.module_in_channels(module)
    dtype, device = modules.module_dtype_device(module)

    def forward(x: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, x.shape[0], 32):
            xt = torch.as_tensor(x[start : start + 32], dtype=dtype, device=device)
            y = module(xt)
            _torch.check_output(
                torch, y, xt.shape[0], f"{name} returned",
                "shift_invariance needs a module that returns one tensor (wrap it to select "
                "the output)",
            )  # fmt: skip
            out.append(y.detach().cpu().double().numpy())
        return _finite(np.concatenate(out))

    state = modules.ModuleState(module)
    try:
        with torch.no_grad():
            probe = forward(np.zeros((2, cin, *shape)))
            flat = probe.ndim == 2
            out_jump: Fraction | None = None
            stride: int | None = None
            if flat:
                if args.shifts is None:
                    raise ValueError(
                        f"{name} returns features without spatial axes, so its stride is not "
                        "known: give `shifts` (e.g. shifts=8 for 0 ... 8)"
                    )
            else:
                if probe.ndim != len(shape) + 2:
                    raise ValueError(
                        f"{name} returned a {probe.ndim - 2}-D map for a {len(shape)}-D input; "
                        "shift_invariance compares maps with the input's axes"
                    )
                stride, out_jump = _module_strides(module, shape, ax, cin, probe.shape[2 + ax])
            deltas = args.shifts or tuple(range(2 * (stride or 1) + 1))
            n_trials = _n_trials(args.trials, inputs)
            x = _inputs(inputs, n_trials, (cin, *shape), ax, deltas, args.mode, inputs_seed)
            similarity, maps, offsets = _measure(
                forward, x, shape[ax], deltas, ax, args.mode, flat, out_jump, args.progress
            )
    finally:
        state.restore()
    return ShiftInvariance(
        name, shape, ax, args.mode, stride, deltas, similarity, maps, offsets, n_trials,
        {"module": name, "seed": seed},
    )  # fmt: skip
