"""What the importer reads of a user's ``torch.nn.Module`` before converting it (torch
imported on use): its spatial axes, input channels, dtype and device, and an eval-mode state
that can be undone."""

from __future__ import annotations

from typing import Any

TORCH_HINT = 'pip install "rfanalysis[torch]"'


def require_torch(what: str) -> Any:
    """Import torch, or raise ImportError saying how to install it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed where the tests run
        raise ImportError(f"{what} needs PyTorch: {TORCH_HINT}") from None
    return torch


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
