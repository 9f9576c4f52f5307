"""The torch backend: the same networks built from torch's own operators, and gradient
maps of a user's ``torch.nn.Module``.

Spec networks use ``torch.nn.functional`` wherever torch has the operator (convolutions
with ``padding_mode`` padding through ``F.pad``, max and avg pooling, nearest
interpolation, transposed convolution), so that comparing the two backends checks the
numpy backend against torch's definitions. Symmetric padding, locally connected layers,
avg pooling with dilation or uneven padding, and Lp pooling (defined here as the exact
window norm ``(sum |x|^p)^(1/p)``) have no torch operator and are composed from index
selection, ``Tensor.unfold`` and depthwise convolutions. Per-trial weights run as one
grouped convolution over all trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._axis import map_outside
from ._net import Merge, Model, Op, avg_divisor
from ._progress import Progress

TORCH_HINT = 'pip install "rfanalysis[torch]"'


def require_torch(what: str) -> Any:
    """Import torch, or raise ImportError saying how to install it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed where the tests run
        raise ImportError(f"{what} needs PyTorch: {TORCH_HINT}") from None
    return torch


# --------------------------------------------------------------------------- spec networks
class _Builder:
    """Runs a :class:`~._net.Model` in torch for one batch of trials."""

    def __init__(self, torch: Any, weights: dict[int, Any]) -> None:
        self.torch = torch
        self.F = torch.nn.functional
        self.weights = weights

    def run(self, nodes: tuple[Op | Merge, ...], x: Any) -> Any:
        for node in nodes:
            if isinstance(node, Op):
                x = self.op(node, x)
                if node.relu:
                    x = self.F.relu(x)
            else:
                outs = [self.run(branch, x) if branch else x for branch in node.branches]
                x = sum(outs[1:], outs[0]) if node.add else self.torch.cat(outs, dim=1)
        return x

    def op(self, op: Op, x: Any) -> Any:
        y = getattr(self, "_" + op.kind)(op, x)
        expected = (x.shape[0], op.cout, *op.out_shape)
        if tuple(y.shape) != expected:  # pragma: no cover - a bug, not a user error
            raise RuntimeError(
                f"{op.step.where}: torch gave shape {tuple(y.shape)}, expected {expected}"
            )
        return y

    # -- helpers ------------------------------------------------------------------------
    def _fn(self, name: str, nd: int) -> Any:
        return getattr(self.F, f"{name}{nd}d")

    def _pad(self, x: Any, pads: tuple, mode: str, value: float = 0.0) -> Any:
        if not any(b or a for b, a in pads):
            return x
        if mode == "symmetric":  # no torch mode: select the mirrored indices
            for axis, (b, a) in enumerate(pads):
                n = x.shape[2 + axis]
                index = map_outside(np.arange(-b, n + a), n, "symmetric")
                x = x.index_select(2 + axis, self.torch.as_tensor(index, device=x.device))
            return x
        flat = [v for b, a in reversed(pads) for v in (b, a)]  # F.pad: last axis first
        if mode == "zeros":
            return self.F.pad(x, flat, mode="constant", value=value)
        return self.F.pad(x, flat, mode=mode)

    def _grouped(self, fn: Any, x: Any, w: Any, groups: int, **kw: Any) -> Any:
        """``fn`` with one weight set per trial: trials become groups of one big batch."""
        if w.shape[0] == 1:
            return fn(x, w[0], groups=groups, **kw)
        b = x.shape[0]
        y = fn(x.reshape(1, -1, *x.shape[2:]), w.flatten(0, 1), groups=b * groups, **kw)
        return y.reshape(b, -1, *y.shape[2:])

    def _window_sum(self, op: Op, x: Any) -> Any:
        """Sum over every pooling window (zero padding), ``(B, C, *out)``."""
        layer = op.layer
        nd = x.ndim - 2
        pads = []
        for n, m, k, s, d, (pb, pa) in zip(
            op.in_shape,
            op.out_shape,
            layer.kernel_size,
            layer.stride,
            layer.dilation,
            op.pads,
        ):
            over = max(0, (m - 1) * s + d * (k - 1) + 1 - (n + pb + pa))  # ceil_mode overhang
            pads.append((pb, pa + over))
        xp = self._pad(x, tuple(pads), "zeros")
        ones = self.torch.ones((x.shape[1], 1, *layer.kernel_size), dtype=x.dtype, device=x.device)
        y = self._fn("conv", nd)(
            xp, ones, stride=layer.stride, dilation=layer.dilation, groups=x.shape[1]
        )
        return y[(slice(None), slice(None), *(slice(0, m) for m in op.out_shape))]

    # -- layers -------------------------------------------------------------------------
    def _conv(self, op: Op, x: Any) -> Any:
        layer, pads = op.layer, op.pads
        nd = x.ndim - 2
        if layer.padding_mode == "zeros" and all(b == a for b, a in pads):
            native = tuple(b for b, _ in pads)
        else:
            x = self._pad(x, pads, layer.padding_mode)
            native = (0,) * nd
        return self._grouped(
            self._fn("conv", nd),
            x,
            self.weights[id(op)],
            op.groups,
            stride=layer.stride,
            padding=native,
            dilation=layer.dilation,
        )

    def _tconv(self, op: Op, x: Any) -> Any:
        layer = op.layer
        nd = x.ndim - 2
        y = self._grouped(
            self._fn("conv_transpose", nd),
            x,
            self.weights[id(op)],
            op.groups,
            stride=layer.stride,
            output_padding=layer.output_padding,
            dilation=layer.dilation,
        )
        # crop here rather than through torch's padding, which must be equal on both sides
        crop = tuple(slice(b, b + m) for (b, _), m in zip(op.pads, op.out_shape))
        return y[(slice(None), slice(None), *crop)]

    def _lc(self, op: Op, x: Any) -> Any:
        layer = op.layer
        nd = x.ndim - 2
        xp = self._pad(x, op.pads, "zeros")
        for axis, (k, s, d) in enumerate(zip(layer.kernel_size, layer.stride, layer.dilation)):
            xp = xp.unfold(2 + axis, d * (k - 1) + 1, s)
        xp = xp[(..., *(slice(None, None, d) for d in layer.dilation))]  # (B, C, *out, *k)
        w = self.weights[id(op)]
        letters = "defghijklmnopq"
        m, k = letters[:nd], letters[nd : 2 * nd]
        if w.shape[0] == 1:
            return self.torch.einsum(f"bc{m}{k},{m}oc{k}->bo{m}", xp, w[0])
        return self.torch.einsum(f"bc{m}{k},b{m}oc{k}->bo{m}", xp, w)

    def _dense(self, op: Op, x: Any) -> Any:
        w = self.weights[id(op)]
        flat = x.reshape(x.shape[0], -1)
        y = flat @ w[0].T if w.shape[0] == 1 else self.torch.einsum("bf,bof->bo", flat, w)
        return y.reshape(x.shape[0], 1, -1)

    def _up(self, op: Op, x: Any) -> Any:
        scale = tuple(float(f) for f in op.layer.scale_factor)
        return self.F.interpolate(x, scale_factor=scale, mode="nearest")

    def _pool(self, op: Op, x: Any) -> Any:
        layer, pads = op.layer, op.pads
        nd = x.ndim - 2
        native = all(b == a and b <= k // 2 for (b, a), k in zip(pads, layer.kernel_size))
        if layer.kind == "max":
            pad = tuple(b for b, _ in pads)
            if not native:
                x = self._pad(x, pads, "zeros", value=-math.inf)
                pad = (0,) * nd
            y = self._fn("max_pool", nd)(
                x, layer.kernel_size, layer.stride, pad, layer.dilation, layer.ceil_mode
            )
            y = y[(slice(None), slice(None), *(slice(0, m) for m in op.out_shape))]
            return self.torch.where(self.torch.isneginf(y), self.torch.zeros_like(y), y)
        if layer.kind == "avg":
            if native and all(d == 1 for d in layer.dilation):
                # contiguous: on CUDA (torch 2.11) avg_pool2d's backward is wrong for a
                # channels-last input (a locally connected layer's einsum output is one)
                # whose last ceil-mode window overhangs the padding
                return self._fn("avg_pool", nd)(
                    x.contiguous(),
                    layer.kernel_size,
                    layer.stride,
                    tuple(b for b, _ in pads),
                    layer.ceil_mode,
                    count_include_pad=True,
                )
            div = self.torch.as_tensor(avg_divisor(op.step), dtype=x.dtype, device=x.device)
            return self._window_sum(op, x) / div
        # Lp: (sum |x|^p)^(1/p) with gradient 0 where an element or a whole window is 0
        p = float(layer.norm_type)
        nonzero = x != 0
        a = self.torch.where(nonzero, x.abs(), self.torch.ones_like(x)) ** p * nonzero
        s = self._window_sum(op, a)
        positive = s > 0
        return self.torch.where(positive, s, self.torch.ones_like(s)) ** (1.0 / p) * positive


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype]


def batch_size(model: Model, trials: int, itemsize: int) -> int:
    """Trials per torch batch: autograd keeps every activation, so bound their memory."""
    per_trial = sum(op.cout * math.prod(op.out_shape or (1,)) for op in model.ops())
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

    shared = {k: tensor(w) for k, w in params.items() if w.shape[0] == 1}
    seed_t = tensor(seed)
    with (
        Progress(math.ceil(trials / size), "influence", progress) as bar,
        torch.inference_mode(False),
        torch.enable_grad(),
    ):
        for start in range(0, trials, size):
            stop = min(start + size, trials)
            weights = {
                k: shared[k] if k in shared else tensor(w[start:stop]) for k, w in params.items()
            }
            xt = tensor(x[start:stop]).requires_grad_(True)
            y = _Builder(torch, weights).run(model.nodes, xt)
            (gx,) = torch.autograd.grad(y, xt, grad_outputs=seed_t.expand_as(y).contiguous())
            total += reduce(gx.detach().cpu().numpy())
            bar.tick()
    return total


# --------------------------------------------------------------------------- user modules
def module_ndim(module: Any) -> int | None:
    """Spatial axes of a model: those of its first convolution or pool, if any."""
    nn = require_torch("a torch module").nn
    kinds = [
        (cls, nd)
        for nd in (1, 2, 3)
        for base in ("Conv", "ConvTranspose", "MaxPool", "AvgPool", "LPPool")
        if (cls := getattr(nn, f"{base}{nd}d", None)) is not None
    ]
    for sub in module.modules():
        for cls, nd in kinds:
            if isinstance(sub, cls):
                return nd
    return None


def module_in_channels(module: Any) -> int:
    """Input channels of a module: those of its first submodule that declares
    ``in_channels`` (a convolution), else 1."""
    for sub in module.modules():
        cin = getattr(sub, "in_channels", None)
        if isinstance(cin, int):
            return cin
    return 1


class ModuleState:
    """Put a module in eval mode with frozen parameters; :meth:`restore` undoes it."""

    def __init__(self, module: Any) -> None:
        self.modes = [(m, m.training) for m in module.modules()]
        self.grads = [(p, p.requires_grad) for p in module.parameters()]
        module.eval()
        for p, _ in self.grads:
            p.requires_grad_(False)

    def restore(self) -> None:
        for m, training in self.modes:
            m.training = training
        for p, flag in self.grads:
            p.requires_grad_(flag)


def module_dtype_device(module: Any) -> tuple[Any, Any]:
    """The dtype and device of a module's first floating parameter or buffer."""
    torch = require_torch("a torch module")
    for p in list(module.parameters()) + list(module.buffers()):
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def _has_tensors(module: Any) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _same_device(a: Any, b: Any) -> bool:
    """``cuda`` and ``cuda:0`` are the same device when the current device is 0."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        return True
    return bool(a.index == b.index)


def module_gradients(
    module: Any,
    x: np.ndarray,
    seed_for: Callable[[tuple[int, ...]], np.ndarray],
    reduce: Callable[[np.ndarray], np.ndarray],
    dtype: np.dtype | None,
    device: Any,
    progress: bool | None,
) -> tuple[np.ndarray, str]:
    """Sum over trials of ``reduce(d <seed, module(x)> / d x)`` and the dtype used.

    The module runs in eval mode with frozen parameters, under ``enable_grad``, in batches
    of up to 32 trials; its mode and ``requires_grad`` flags are restored afterwards.
    ``seed_for(out_shape)`` gives the ``(1, 1, *out_shape)`` output weighting, where
    ``out_shape`` is the output's spatial shape, or ``(features,)`` for a 2-D output.
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
    trials, size = x.shape[0], 32
    total = np.zeros(x.shape[2:])
    state = ModuleState(module)
    try:
        with (
            Progress(math.ceil(trials / size), "influence", progress) as bar,
            torch.inference_mode(False),
            torch.enable_grad(),
        ):
            for start in range(0, trials, size):
                xt = torch.as_tensor(x[start : start + size], dtype=tdtype, device=dev)
                xt.requires_grad_(True)
                y = module(xt)
                if not isinstance(y, torch.Tensor):
                    raise TypeError(
                        f"{name} returned {type(y).__name__}; influence needs a module that "
                        "returns one tensor (wrap it to select the output)"
                    )
                if y.ndim < 2 or y.shape[0] != xt.shape[0]:
                    raise ValueError(
                        f"{name} returned shape {tuple(y.shape)} for a batch of "
                        f"{xt.shape[0]}; expected (batch, features) or (batch, C, *spatial)"
                    )
                out_shape = tuple(y.shape[2:]) if y.ndim > 2 else (y.shape[1],)
                seed = torch.as_tensor(seed_for(out_shape), dtype=y.dtype, device=y.device)
                seed = seed[0] if y.ndim == 2 else seed
                (gx,) = torch.autograd.grad(y, xt, grad_outputs=seed.expand_as(y).contiguous())
                total += reduce(gx.detach().cpu().double().numpy())
                bar.tick()
    finally:
        state.restore()
    return total, str(tdtype).removeprefix("torch.")
