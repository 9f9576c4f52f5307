"""What the importer reads of a user's ``torch.nn.Module`` before converting it (torch
imported on use): its spatial axes, input channels, dtype and device, and an eval-mode state
that can be undone."""

from __future__ import annotations

import sys
from typing import Any

TORCH_HINT = 'pip install "rfanalysis[torch]"'


def require_torch(what: str) -> Any:
    """Import torch, or raise ImportError saying how to install it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed where the tests run
        raise ImportError(f"{what} needs PyTorch: {TORCH_HINT}") from None
    return torch


#: how a model lays out its input: ``(batch, C, *spatial)`` or ``(batch, *spatial, C)``
LAYOUTS = ("channels_first", "channels_last")


def declared_input(module: Any) -> tuple[str, int | None, tuple[int | None, ...]] | None:
    """``(layout, channels, spatial size)`` of the input a model declares of itself, or None.

    A Keras 3 model on the torch backend is a ``torch.nn.Module``; it declares its input
    shape (``(None, 224, 224, 3)``), laid out as Keras's image data format says
    (channels-last unless configured otherwise). Sizes it leaves open are None.
    """
    if not type(module).__module__.startswith("keras."):
        return None
    try:
        shape = tuple(module.inputs[0].shape)
    except (AttributeError, IndexError, TypeError):
        return None
    if len(shape) < 3:
        return None
    keras = sys.modules.get("keras")
    fmt = keras.config.image_data_format() if keras is not None else "channels_last"
    if fmt == "channels_last":
        return "channels_last", shape[-1], shape[1:-1]
    return "channels_first", shape[1], shape[2:]


def module_layout(module: Any, layout: str | None) -> str:
    """``layout`` checked; None: the layout the model declares (:func:`declared_input`),
    else channels-first."""
    if layout is None:
        declared = declared_input(module)
        return declared[0] if declared is not None else "channels_first"
    if layout not in LAYOUTS:
        raise ValueError(f"`layout` must be 'channels_first' or 'channels_last', got {layout!r}")
    return layout


def module_ndim(module: Any) -> int | None:
    """Spatial axes of a model: those of the input it declares, else those of its first
    convolution or pool, if any."""
    declared = declared_input(module)
    if declared is not None:
        return len(declared[2])
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
    """Input channels of a module: those of the input it declares, else those of its first
    submodule that declares ``in_channels`` (a convolution), else 1."""
    declared = declared_input(module)
    if declared is not None and isinstance(declared[1], int):
        return declared[1]
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
