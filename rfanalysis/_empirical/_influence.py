"""``influence``: empirical gradient maps of real networks."""

from __future__ import annotations

import math
import operator
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _memory
from .._engine import _resolve_unit
from .._graph import is_torch_module
from .._importers.fromtorch import modules
from .._ops.base import fmt_shape
from .._plan import Plan, declared_in_channels, normalise_input_shape, plan
from . import _numpy
from ._net import (
    WEIGHT_NAMES,
    Model,
    build,
    check_seed,
    draw,
    draw_bytes,
    generators,
)
from ._progress import Progress

BACKENDS = ("numpy", "torch")
REDUCTIONS = ("abs", "signed", "square")

#: inputs a torch module's influence streams through in one batch when given as one array
MODULE_BATCH = 32


class InfluenceWarning(RuntimeWarning):
    """An influence map that is zero everywhere, or that a model's all-zero weights cut
    short: it shows the initialisation, not the network's field."""


def is_stream(inputs: Any) -> bool:
    """True for an iterable of batches (a torch DataLoader, a generator, an iterator);
    False for one array of inputs (ndarray, tensor, nested list or tuple)."""
    if inputs is None or isinstance(inputs, (np.ndarray, list, tuple, str, bytes)):
        return False
    torch = sys.modules.get("torch")
    if torch is not None and torch.is_tensor(inputs):
        return False
    return hasattr(inputs, "__iter__")


# --------------------------------------------------------------------------- validation
def _count(value: Any, what: str, minimum: int = 1, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"`{what}` must be an integer, got {value!r}")
    n = operator.index(value)
    if n < minimum:
        raise ValueError(f"`{what}` must be >= {minimum}, got {n}")
    return n


def _float_dtype(dtype: Any) -> np.dtype:
    name = str(dtype).removeprefix("torch.")
    try:
        resolved = np.dtype(name)
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"`dtype` must be float32 or float64, got {dtype!r}")
    return resolved


@dataclass(frozen=True)
class _Args:
    """Validated arguments of :func:`influence`."""

    module: bool  # a torch.nn.Module rather than a spec
    unit: Any
    weights: Any
    relu: bool
    channels: int
    trials: int
    backend: str
    reduction: str
    in_channels: int | None
    dtype: np.dtype | None  # None: the module's own
    progress: bool | None


def _validate(
    net, unit, weights, activation, channels, trials, rng, backend, reduction, in_channels,
    dtype, device, progress,
) -> _Args:  # fmt: skip
    module = is_torch_module(net)
    if isinstance(unit, str) and unit not in ("center", "all"):
        raise ValueError(f"`unit` must be 'center', 'all' or an index tuple, got {unit!r}")
    if module:
        for name, value, default in (
            ("weights", weights, "ones"),
            ("activation", activation, None),
            ("channels", channels, 1),
        ):
            if value is not default and value != default:
                raise ValueError(
                    f"`{name}` applies to network specs; a torch module keeps its own layers "
                    f"and weights (got {name}={value!r})"
                )
    if callable(weights) or weights in WEIGHT_NAMES:
        pass
    elif isinstance(weights, str):
        raise ValueError(
            f"`weights` must be one of {', '.join(WEIGHT_NAMES)} or a callable "
            f"(shape, rng) -> array; got {weights!r}"
        )
    else:
        raise TypeError(
            f"`weights` must be one of {', '.join(WEIGHT_NAMES)} or a callable (shape, rng) "
            f"-> array; got {type(weights).__name__}"
        )
    if activation not in (None, "none", "relu"):
        raise ValueError(f"`activation` must be None or 'relu', got {activation!r}")
    n_channels = _count(channels, "channels")
    n_trials = _count(trials, "trials")
    check_seed(rng)
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    n_in = _count(in_channels, "in_channels", allow_none=True)
    if dtype is None:
        resolved = None if module else np.dtype(np.float64)
    else:
        resolved = _float_dtype(dtype)
    if device is not None and backend == "numpy" and not module:
        raise ValueError(f"`device` applies to the torch backend; got device={device!r}")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"`progress` must be None, True or False, got {progress!r}")
    assert n_channels is not None and n_trials is not None
    return _Args(
        module, unit, weights, activation == "relu", n_channels, n_trials, backend, reduction,
        n_in, resolved, progress,
    )  # fmt: skip


def _inputs(inputs: Any, trials: int, shape: tuple[int, ...]) -> np.ndarray:
    """Given inputs as ``(trials, C, *input_shape)``; ``(C, *input_shape)`` and
    ``input_shape`` alone (one channel) are one trial."""
    arr = np.asarray(inputs, dtype=np.float64)
    full = len(shape) + 1  # trials, channels, *spatial
    if arr.ndim == full - 2:
        arr = arr[None, None]
    elif arr.ndim == full - 1:
        arr = arr[None]
    if arr.ndim != full or arr.shape[2:] != shape[1:] or arr.shape[1] != shape[0]:
        raise ValueError(
            f"`inputs` must have shape (trials, {shape[0]}, {', '.join(map(str, shape[1:]))}) "
            f"(channels first); got {np.shape(inputs)}"
        )
    if trials != 1 and arr.shape[0] != trials:
        raise ValueError(
            f"`trials` is {trials} but `inputs` holds {arr.shape[0]} inputs; omit `trials` "
            "or make them agree"
        )
    if not np.isfinite(arr).all():
        raise ValueError("`inputs` must be finite")
    return arr


def _seed(unit: Any, out_shape: tuple[int, ...], where: str) -> np.ndarray:
    """``(1, 1, *out_shape)``: 1 at the chosen unit (every channel), or 1 everywhere."""
    if isinstance(unit, str) and unit == "all":
        return np.ones((1, 1, *out_shape))
    seed = np.zeros((1, 1, *out_shape))
    seed[(0, 0, *_resolve_unit(unit, out_shape, where))] = 1.0
    return seed


def _reducer(reduction: str):
    if reduction == "abs":
        return lambda g: np.abs(g).sum(axis=(0, 1), dtype=np.float64)
    if reduction == "square":
        return lambda g: np.square(g, dtype=np.float64).sum(axis=(0, 1))
    return lambda g: g.sum(axis=(0, 1), dtype=np.float64)


def _finish(total: np.ndarray, trials: int, dtype: Any, what: str) -> np.ndarray:
    if not np.isfinite(total).all():
        name = np.dtype(dtype).name
        raise FloatingPointError(
            f"{what}: gradients overflowed {name} (or became NaN); use "
            + ("dtype='float64', " if name != "float64" else "")
            + "fewer channels, or weights='normal' (He-scaled)"
        )
    return total / trials


# --------------------------------------------------------------------------- entry point
def influence(
    net: Any,
    input_shape: Any,
    unit: Any = "center",
    *,
    weights: Any = "ones",
    activation: str | None = None,
    channels: int = 1,
    trials: int = 1,
    rng: Any = 0,
    backend: str = "numpy",
    reduction: str = "abs",
    in_channels: int | None = None,
    inputs: Any = None,
    dtype: Any = None,
    device: Any = None,
    progress: bool | None = None,
    return_count: bool = False,
    output: str | None = None,
) -> Any:
    """Empirical influence map: mean over trials of ``|d y_unit / d x|`` of a real network.

    Parameters
    ----------
    net : Network, layer, sequence of layers, spec string, or torch.nn.Module
        A spec is built with ``channels`` channels per layer and drawn ``weights``; a torch
        module is used as it is (its own weights, in eval mode; always the torch backend).
    input_shape : int or tuple of int
        Spatial input size, as for :func:`rfanalysis.routes` (channels are given by
        ``in_channels``).
    unit : "center", "all", or tuple of int
        Output unit whose gradient is taken, summed over the output's channels.
        ``"center"`` is ``(m - 1) // 2`` on every axis; ``"all"`` takes the gradient of
        the sum of the whole output (the empirical counterpart of
        :func:`rfanalysis.coverage`). For a module whose output is ``(batch, features)``
        the unit indexes the features.
    weights : {"ones", "normal", "uniform"} or callable
        Weights of every Conv, LocallyConnected, ConvTranspose and Dense layer (no biases):
        all 1, He-normal N(0, 2/fan_in), He-uniform, or ``f(shape, rng) -> array`` called
        once per trial and layer with the torch-layout weight shape and the trial's numpy
        Generator. Fresh weights are drawn for every trial.
    activation : None or "relu"
        ``"relu"`` puts a ReLU after every weighted layer except the network's last layer.
    channels : int
        Output channels of every weighted layer that does not set ``out_channels``.
    trials : int
        Number of independent networks and inputs averaged. With ``inputs``, 1 means one
        trial per given input.
    rng : int, numpy Generator or SeedSequence
        Seed of the inputs and weights; the same seed gives the same map.
    backend : {"numpy", "torch"}
        Where a spec network runs; both give the same values for the same seed (torch needs
        ``pip install "rfanalysis[torch]"``). A torch module always runs in torch.
    reduction : {"abs", "signed", "square"}
        ``"abs"``: ``sum_c |d y / d x_c|`` per pixel; ``"signed"``: ``sum_c d y / d x_c``;
        ``"square"``: ``sum_c (d y / d x_c)^2``, whose mean over independent zero-mean weights
        is proportional to the route count (:func:`rfanalysis.theory.random_weight_influence`).
    in_channels : int, optional
        Input channels. Default: those the network (or module) declares in its first
        weighted layer, else 1.
    inputs : array_like or iterable of batches, optional
        Inputs to use instead of random ones: ``(trials, in_channels, *input_shape)``,
        ``(in_channels, *input_shape)`` or ``input_shape`` (one channel, one trial). For a
        torch module also an iterable of batches, such as a ``torch.utils.data.DataLoader``
        over a data set, an iterator, or a list of ``(B, in_channels, *input_shape)``
        batches: each batch a tensor or array ``(B, in_channels, *input_shape)``
        (``(B, *input_shape)`` for one channel, except in a list), or a tuple or list whose
        first element is one (``(images, labels)``). Batches are streamed: memory holds one
        batch at a time, the sum stays on the module's device, and the map is the mean over
        every input (the effective receptive field of a trained model, averaged over real
        images, as in the ERF papers). ``return_count=True`` says how many there were.
    dtype : {"float64", "float32"}, optional
        Arithmetic of the pass. Default float64 for specs (exact for integer identities),
        the module's own dtype for a torch module. The map is returned in float64.
    device : str or torch.device, optional
        Torch device (torch backend and modules only); default CPU or the module's device.
    progress : bool, optional
        Progress bar on stderr (with the number of inputs so far). ``None``: only on a
        terminal, once the work takes more than a second.
    return_count : bool
        Also return the number of inputs (trials) the map averages, e.g. the images a
        DataLoader yielded.
    output : str, optional
        Torch modules: the map whose unit is differentiated, instead of the module's output:
        a submodule's qualified name (``"layer4"``; the forward pass stops there), or the key
        of a dict the module returns (``"out"``), as in :func:`rfanalysis.from_torch`.

    Returns
    -------
    influence : ndarray of shape ``input_shape``, float64
    count : int
        Only with ``return_count=True``: the number of inputs averaged.

    Warns
    -----
    InfluenceWarning
        When a torch module's map is zero everywhere, or when the module has weight
        tensors that are all zeros (named in the message): no gradient passes through them,
        so the map shows the model's initialisation rather than its field. torchvision's
        ViT starts with a zero head: its map is zero. timm's ResNet-50 zeroes the last norm
        of every residual block: its map is the 11x11 field of the shortcut path (the 7x7
        stride-2 stem and the 3x3 stride-2 max pool).

    Raises
    ------
    ValueError, TypeError
        For invalid arguments (the message names the parameter, or the layer).
    FloatingPointError
        When the gradients overflow the chosen dtype.
    ImportError
        For ``backend="torch"`` without PyTorch.

    Notes
    -----
    Channels, weight shapes, ReLU placement and how trials are drawn are described in
    :mod:`rfanalysis._empirical._net`. Pools use their real gradients: max pooling routes
    the gradient to the first maximum of each window (torch's choice among ties), average
    pooling spreads it over the window divided by torch's ``count_include_pad=True`` divisor,
    and Lp pooling ``(sum |x|^p)^(1/p)`` passes ``sign(x) |x|^(p-1) / y^(p-1)`` (0 where the
    window or the element is 0).

    For a one-channel network without max or Lp pools, with ``weights="ones"`` and no
    activation, ``influence(net, shape, unit)`` equals ``routes(net, shape, unit)`` divided
    by the window size of every avg pool on the way (when no ``ceil_mode`` window overhangs
    the input), and ``unit="all"`` gives :func:`rfanalysis.coverage` the same way. With
    random weights and ReLU, the map of a deep stack approaches a Gaussian whose width grows
    like the square root of the depth: the effective receptive field of Luo, Li, Urtasun and
    Zemel, "Understanding the Effective Receptive Field in Deep Convolutional Neural
    Networks", NeurIPS 2016.

    Examples
    --------
    >>> import rfanalysis as rfa
    >>> rfa.influence("conv2*4", (5,)).tolist()
    [1.0, 4.0, 6.0, 4.0, 1.0]
    >>> rfa.influence("conv3p1,avgpool2", (4,), unit="all").tolist()
    [1.0, 1.5, 1.5, 1.0]
    >>> m = rfa.influence("conv3p1*8", (33, 33), weights="normal", activation="relu",
    ...                   channels=8, trials=4, rng=1)
    >>> m.shape, bool(m[16, 16] > m[0, 0])
    ((33, 33), True)
    """
    args = _validate(
        net, unit, weights, activation, channels, trials, rng, backend, reduction, in_channels,
        dtype, device, progress,
    )  # fmt: skip
    if not isinstance(return_count, bool):
        raise TypeError(f"`return_count` must be True or False, got {return_count!r}")
    if output is not None and not args.module:
        raise TypeError(
            "`output` selects a map inside a torch module; a spec network's output is its "
            "last layer (cut the spec instead)"
        )
    if args.module:
        result, count, zero = _module_influence(net, input_shape, args, inputs, rng, device, output)
        _warn_if_cut_short(result, zero, type(net).__name__, args.unit)
    else:  # its weights are drawn: a zero map is a unit without routes (see routes())
        if is_stream(inputs):
            raise TypeError(
                "`inputs` as an iterable of batches applies to torch modules; a spec network "
                "draws new weights for every input: pass one array (trials, in_channels, "
                "*input_shape)"
            )
        result, count = _spec_influence(net, input_shape, args, inputs, rng, device)
    return (result, count) if return_count else result


def _spec_influence(
    net: Any, input_shape: Any, args: _Args, inputs: Any, rng: Any, device: Any
) -> tuple[np.ndarray, int]:
    """The map of a spec network and the number of trials."""
    reduce = _reducer(args.reduction)
    p = plan(net, input_shape)
    model = _model(p, args.channels, args.in_channels, args.relu)
    assert p.input_shape is not None and p.output_shape is not None and args.dtype is not None
    given = None
    if inputs is not None:
        given = _inputs(inputs, args.trials, (model.in_channels, *p.input_shape))
    n_trials = args.trials if given is None else given.shape[0]
    seed = _seed(args.unit, p.output_shape, f"the output of {p.network.display_name}")
    need = draw_bytes(model, n_trials, args.weights, given is not None)
    if args.backend == "numpy":
        need += _numpy.memory_bytes(model, n_trials, args.dtype.itemsize)
    shape_text = fmt_shape(p.input_shape)
    _memory.check(need, f"influence of {p.network.display_name} for input {shape_text}")
    x, params = draw(model, n_trials, args.weights, rng, given)
    if args.backend == "torch":
        from . import _torch

        total = _torch.spec_gradients(
            model, x, params, seed, args.dtype, device, reduce, args.progress
        )
    else:
        size = _numpy.batch_size(model, n_trials, args.dtype.itemsize)
        ticks = math.ceil(n_trials / size) * _numpy.count_nodes(model)
        with (
            Progress(ticks, "influence", args.progress) as bar,
            np.errstate(over="ignore", invalid="ignore", divide="ignore"),
        ):
            total = _numpy.gradients(model, x, params, seed, args.dtype, reduce, bar.tick)
    name = f"influence of {p.network.display_name}"
    return _finish(total, n_trials, args.dtype, name), n_trials


def _module_influence(
    module: Any,
    input_shape: Any,
    args: _Args,
    inputs: Any,
    rng: Any,
    device: Any,
    output: str | None = None,
) -> tuple[np.ndarray, int, list[str]]:
    """The map of a torch module, the number of inputs, and its all-zero weight tensors."""
    from . import _torch

    name = type(module).__name__
    shape = normalise_input_shape(input_shape, modules.module_ndim(module))
    full = (args.in_channels or modules.module_in_channels(module), *shape)
    if is_stream(inputs) or _is_batch_list(inputs, full):
        if args.trials != 1:
            raise ValueError(
                f"`trials` is {args.trials} but `inputs` is a stream of batches, whose every "
                "input is a trial; omit `trials`"
            )
        batches, n_batches = inputs, _length(inputs)
    else:
        x = _given_or_drawn(inputs, args.trials, full, rng)
        batches = (x[i : i + MODULE_BATCH] for i in range(0, x.shape[0], MODULE_BATCH))
        n_batches = math.ceil(x.shape[0] / MODULE_BATCH)

    def seed_for(out_shape: tuple[int, ...]) -> np.ndarray:
        return _seed(args.unit, out_shape, f"the output of {name}")

    total, used, count = _torch.module_gradients(
        module, batches, n_batches, full, seed_for, args.reduction, args.dtype, device,
        args.progress, output,
    )  # fmt: skip
    result = _finish(total, count, used, f"influence of {name}")
    return result, count, _torch.zero_weights(module)


def _is_batch_list(inputs: Any, full: tuple[int, ...]) -> bool:
    """A list or tuple of batches ``(B, C, *spatial)`` (not of single inputs)."""
    return (
        isinstance(inputs, (list, tuple))
        and len(inputs) > 0
        and all(hasattr(b, "shape") and len(b.shape) == len(full) + 1 for b in inputs)
    )


def _length(batches: Any) -> int | None:
    """The number of batches a stream will yield, where it knows (a DataLoader does)."""
    try:
        return len(batches)
    except TypeError:
        return None


def _warn_if_cut_short(result: np.ndarray, zero: list[str], name: str, unit: Any) -> None:
    """Warn when a module's map is zero everywhere, or all-zero weights cut it short."""
    listed = ", ".join(zero[:4]) + (f" and {len(zero) - 4} more" if len(zero) > 4 else "")
    many = len(zero) > 1
    cause = (
        f"{len(zero)} weight tensor{'s are' if many else ' is'} all zeros ({listed}) and "
        f"pass{'' if many else 'es'} no gradient, as some initialisations leave them "
        "(torchvision's ViT head, timm's zero_init_last); load trained weights, or "
        f"re-initialise {'them' if many else 'it'}, to see the model's field"
    )
    if not result.any():
        detail = (
            cause
            if zero
            else (
                f"unit {unit!r} does not depend on the input, or the model's weights stop every "
                "gradient on the way"
            )
        )
        message = f"influence of {name}: the map is zero everywhere; {detail}"
    elif zero:
        nonzero = int(np.count_nonzero(result))
        message = (
            f"influence of {name}: the map ({nonzero} of {result.size} pixels non-zero) shows "
            f"only the paths around weights that are zero; {cause}"
        )
    else:
        return
    warnings.warn(message, InfluenceWarning, stacklevel=3)


def _given_or_drawn(inputs: Any, trials: int, shape: tuple[int, ...], rng: Any) -> np.ndarray:
    """Inputs of a torch module: given, or standard normal from each trial's stream."""
    if inputs is not None:
        return _inputs(inputs, trials, shape)
    _memory.check(8 * trials * math.prod(shape), f"{trials} random inputs of shape {shape}")
    return np.stack([g.standard_normal(shape) for g in generators(rng, trials)])


def _model(p: Plan, channels: int, in_channels: int | None, relu: bool) -> Model:
    declared = declared_in_channels(p.network.nodes)
    if in_channels is not None and declared is not None and in_channels != declared:
        raise ValueError(
            f"`in_channels` is {in_channels} but the network's first weighted layer takes "
            f"{declared}"
        )
    return build(p, channels, in_channels or declared or 1, relu)
