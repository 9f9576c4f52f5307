"""The torch backend: the same networks built from torch's own operators, and gradient
maps of a user's ``torch.nn.Module``.

Spec networks run each operation's torch rule
(:meth:`~rfanalysis._ops.base.Layer.torch_forward`), which uses ``torch.nn.functional``
wherever torch has the operator (convolutions with ``padding_mode`` padding through
``F.pad``, max and avg pooling, nearest interpolation, transposed convolution), so that
comparing the two backends checks the numpy backend against torch's definitions. Symmetric
padding, locally connected layers, avg pooling with dilation or uneven padding, and Lp pooling
(defined here as the exact window norm ``(sum |x|^p)^(1/p)``) have no torch operator and are
composed from index selection, ``Tensor.unfold`` and depthwise convolutions. Per-trial weights
run as one grouped convolution over all trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .._importers.fromtorch.modules import ModuleState, module_dtype_device, require_torch
from ._net import Model, trial_weights
from ._progress import Progress


# --------------------------------------------------------------------------- spec networks
def run_model(torch: Any, model: Model, weights: dict[int, Any], x: Any) -> Any:
    """The model's forward pass in torch for one batch of trials (autograd gives the
    backward pass); each operation through its own torch rule."""
    values = [x]
    for op in model.ops:
        y = op.layer.torch_forward(
            op, torch, [values[j] for j in op.step.inputs], weights.get(id(op))
        )
        expected = (x.shape[0], op.cout, *op.out_shape)
        if tuple(y.shape) != expected:  # pragma: no cover - a bug, not a user error
            raise RuntimeError(
                f"{op.step.where}: torch gave shape {tuple(y.shape)}, expected {expected}"
            )
        values.append(torch.nn.functional.relu(y) if op.relu else y)
    return values[-1]


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]


def batch_size(model: Model, trials: int, itemsize: int) -> int:
    """Trials per torch batch: autograd keeps every activation, so bound their memory."""
    per_trial = sum(op.cout * math.prod(op.out_shape or (1,)) for op in model.ops)
    budget = 2**30  # bytes of saved activations (times a few for padded copies)
    return max(1, min(trials, budget // max(1, 3 * per_trial * itemsize)))


def spec_gradients(
    model: Model,
    x: np.ndarray,
    params: dict[int, np.ndarray],
    seed: np.ndarray,
    dtype: np.dtype,
    device: Any,
    reduce: Any,
    progress: bool | None,
) -> np.ndarray:
    """The torch counterpart of :func:`._numpy.gradients` (same arguments and result)."""
    torch = require_torch('influence(backend="torch")')
    tdtype = _torch_dtype(torch, dtype)
    dev = torch.device("cpu" if device is None else device)
    trials = x.shape[0]
    size = batch_size(model, trials, dtype.itemsize)
    total = np.zeros(x.shape[2:])

    def tensor(a: np.ndarray) -> Any:
        return torch.as_tensor(a, dtype=tdtype, device=dev)

    of = trial_weights(params, tensor)
    seed_t = tensor(seed)
    with (
        Progress(math.ceil(trials / size), "influence", progress) as bar,
        torch.inference_mode(False),
        torch.enable_grad(),
    ):
        for start in range(0, trials, size):
            stop = min(start + size, trials)
            xt = tensor(x[start:stop]).requires_grad_(True)
            y = run_model(torch, model, of(start, stop), xt)
            (gx,) = torch.autograd.grad(y, xt, grad_outputs=seed_t.expand_as(y).contiguous())
            total += reduce(gx.detach().cpu().numpy())
            bar.tick()
    return total


# --------------------------------------------------------------------------- user modules
def check_output(torch: Any, y: Any, batch: int, what: str, remedy: str) -> None:
    """Raise unless a module's output ``y`` is one tensor of ``batch`` rows with features or
    channels: ``what`` begins the message (e.g. "ResNet returned"), ``remedy`` follows a
    non-tensor."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{what} {type(y).__name__}; {remedy}")
    if y.ndim < 2 or y.shape[0] != batch:
        raise ValueError(
            f"{what} shape {tuple(y.shape)} for a batch of {batch}; expected (batch, features) "
            "or (batch, C, *spatial)"
        )


def _has_tensors(module: Any) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _same_device(a: Any, b: Any) -> bool:
    """``cuda`` and ``cuda:0`` are the same device when the current device is 0."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        return True
    return bool(a.index == b.index)


def zero_weights(module: Any) -> list[str]:
    """Names of the module's weight tensors that are all zeros (biases are left out: zero is
    their usual start). No gradient passes through such a tensor: some models start with
    them (torchvision's ViT head, timm's zero-initialised last norm of every residual block)."""
    return [
        name
        for name, p in module.named_parameters()
        if name.rsplit(".", 1)[-1] == "weight" and p.numel() and not bool(p.detach().any())
    ]


def _on_device_reduction(reduction: str) -> Callable[[Any], Any]:
    """The reduction over batch and channels of :func:`._influence._reducer`, in torch."""
    if reduction == "abs":
        return lambda g: g.abs().sum(dim=(0, 1))
    if reduction == "square":
        return lambda g: g.square().sum(dim=(0, 1))
    return lambda g: g.sum(dim=(0, 1))


def _batch_tensor(
    torch: Any, item: Any, index: int, shape: tuple[int, ...], dtype: Any, device: Any
) -> Any:
    """One batch of inputs as a ``(B, C, *spatial)`` tensor on ``device``: a tensor or array
    shaped ``(B, C, *spatial)``, or ``(B, *spatial)`` for one channel; of a tuple or list
    (a DataLoader's ``(input, label)``), its first element."""
    if isinstance(item, (tuple, list)) and item and hasattr(item[0], "shape"):
        item = item[0]
    x = item if torch.is_tensor(item) else torch.as_tensor(np.asarray(item, dtype=np.float64))
    if x.ndim == len(shape) and shape[0] == 1:
        x = x.unsqueeze(1)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"`inputs` batch {index} has shape {tuple(x.shape)}; expected (batch, "
            f"{', '.join(map(str, shape))}) (channels first)"
            + (f" or (batch, {', '.join(map(str, shape[1:]))})" if shape[0] == 1 else "")
        )
    # detached: requires_grad_ below must not touch the caller's tensor when .to() returns it
    x = x.to(device=device, dtype=dtype).detach()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"`inputs` batch {index} must be finite")
    return x


class _Reached(Exception):
    """Raised by a forward hook to stop a model once the selected output exists."""


def selected_output(torch: Any, module: Any, output: str | None) -> Callable[[Any], Any]:
    """``x -> the map to differentiate``: the module's output, the output of its submodule
    ``output`` (the forward stops there), or the entry ``output`` of the dict it returns."""
    if output is None:
        return module
    if not isinstance(output, str):
        raise TypeError(f"`output` must be a submodule name or a dict key, got {output!r}")
    try:
        sub = module.get_submodule(output) if output else None
    except AttributeError:
        sub = None
    if sub is None:

        def by_key(x: Any) -> Any:
            y = module(x)
            if isinstance(y, dict) and output in y:
                return y[output]
            keys = f" (its keys: {', '.join(map(repr, y))})" if isinstance(y, dict) else ""
            raise ValueError(
                f"`output` {output!r} is neither a submodule of {type(module).__name__} nor a "
                f"key of the dict it returns{keys}"
            )

        return by_key

    def by_module(x: Any) -> Any:
        seen: list[Any] = []

        def hook(_module: Any, _args: Any, out: Any) -> None:
            seen.append(out[0] if isinstance(out, (tuple, list)) else out)
            raise _Reached

        handle = sub.register_forward_hook(hook)
        try:
            module(x)
        except _Reached:
            pass
        finally:
            handle.remove()
        if not seen:
            raise ValueError(
                f"`output` {output!r}: {type(module).__name__} never ran that submodule"
            )
        return seen[0]

    return by_module


def module_gradients(
    module: Any,
    batches: Iterable[Any],
    n_batches: int | None,
    shape: tuple[int, ...],
    seed_for: Callable[[tuple[int, ...]], np.ndarray],
    reduction: str,
    dtype: np.dtype | None,
    device: Any,
    progress: bool | None,
    output: str | None = None,
) -> tuple[np.ndarray, str, int]:
    """Sum over the inputs of ``reduction`` of ``d <seed, module(x)> / d x``, the dtype used
    and the number of inputs.

    ``batches`` yields batches of inputs of shape ``shape`` = ``(C, *spatial)`` (see
    :func:`_batch_tensor`), ``n_batches`` of them if known, and is consumed one batch at a
    time: memory holds one batch, its graph and the sum, which stays on the module's device
    (float64, float32 on MPS) until the end. The module runs in eval mode with frozen
    parameters, under ``enable_grad``; its mode and ``requires_grad`` flags are restored
    afterwards. ``seed_for(out_shape)`` gives the ``(1, 1, *out_shape)`` output weighting,
    where ``out_shape`` is the output's spatial shape, or ``(features,)`` for a 2-D output.
    ``output`` selects an inner map (:func:`selected_output`).
    """
    torch = require_torch("influence of a torch module")
    own_dtype, own_device = module_dtype_device(module)
    tdtype = own_dtype if dtype is None else _torch_dtype(torch, dtype)
    dev = own_device if device is None else torch.device(device)
    name = type(module).__name__
    if _has_tensors(module) and not _same_device(dev, own_device):
        raise ValueError(
            f"influence: {name}'s parameters are on {own_device} but device={str(dev)!r}; "
            f"move the model first (model.to({str(dev)!r})) or leave `device` unset"
        )
    reduce = _on_device_reduction(reduction)
    run = selected_output(torch, module, output)
    if output is not None:
        name = f"{name}'s {output!r}"
    total_dtype = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no float64
    total = torch.zeros(shape[1:], dtype=total_dtype, device=dev)
    count = 0
    state = ModuleState(module)
    try:
        with (
            Progress(n_batches, "influence", progress, items="inputs") as bar,
            torch.inference_mode(False),
            torch.enable_grad(),
        ):
            for index, item in enumerate(batches):
                xt = _batch_tensor(torch, item, index, shape, tdtype, dev).requires_grad_(True)
                if xt.shape[0] == 0:
                    continue
                y = run(xt)
                check_output(
                    torch, y, xt.shape[0], f"{name} returned",
                    "influence needs one tensor: name it with `output` (a submodule, or the "
                    "key of a returned dict)",
                )  # fmt: skip
                out_shape = tuple(y.shape[2:]) if y.ndim > 2 else (y.shape[1],)
                seed = torch.as_tensor(seed_for(out_shape), dtype=y.dtype, device=y.device)
                seed = seed[0] if y.ndim == 2 else seed
                (gx,) = torch.autograd.grad(y, xt, grad_outputs=seed.expand_as(y).contiguous())
                total += reduce(gx.detach().to(total_dtype))
                count += xt.shape[0]
                del xt, y, gx  # before the next batch is made: one batch's memory at a time
                bar.tick(items=count - bar.count)
    finally:
        state.restore()
    if count == 0:
        raise ValueError("`inputs` yielded no inputs")
    return total.cpu().double().numpy(), str(tdtype).removeprefix("torch."), count
