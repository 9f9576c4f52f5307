"""Model definitions nobody here wrote: torchvision, timm and MONAI, imported for the tests.

``import torchvision`` registers fake (meta) and autograd kernels for its C++ operators and
fails where the installed torch build does not provide them ("operator torchvision::nms does
not exist": the CPU build this project tests with). The model definitions need none of those
operators, so empty modules stand in for ``torchvision._meta_registrations`` and
``torchvision._autograd_registrations`` before the import. timm imports torchvision too.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def torchvision() -> Any:
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import torchvision as tv

    return tv


def timm() -> Any:
    torchvision()
    import timm as tm

    return tm


def build(make: Callable[[], Any]) -> Any:
    """A model in eval mode, built without the library warnings its constructors give
    (deprecations, init notes), with a fixed seed for its random weights."""
    import torch

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make()
    return model.eval()


def gradient_support(
    model: Any, input_shape: tuple[int, ...], in_channels: int, units: list, grid: tuple
) -> list[np.ndarray]:
    """For each output unit, the input pixels its autograd gradient reaches: the model's own
    weights, a random input, the gradient of the sum over the unit's channels, summed over the
    input channels; values below 1e-5 of the largest are rounding (float32) or masked
    attention (exp(-100)) and count as zero.

    A unit is a position of the output's ``grid``: of a map ``(batch, C, *spatial)`` or a
    channels-last one ``(batch, *spatial, C)``, or a feature of a vector ``(batch, features)``.
    """
    import torch

    gen = torch.Generator().manual_seed(1)
    x = torch.randn((1, in_channels, *input_shape), generator=gen).requires_grad_(True)
    with torch.enable_grad():
        y = model(x)
    if isinstance(y, dict):  # torchvision's segmentation models: the "out" map
        y = y["out"]
    out = []
    for unit in units:
        if y.ndim == 2:
            index: tuple = (0, unit[0])
        elif tuple(y.shape[2:]) == tuple(grid):
            index = (0, slice(None), *unit)
        else:  # channels last
            assert tuple(y.shape[1:-1]) == tuple(grid), (y.shape, grid)
            index = (0, *unit, slice(None))
        (g,) = torch.autograd.grad(y[index].sum(), x, retain_graph=True)
        g = g[0].abs().sum(dim=0).numpy()
        out.append(g > 1e-5 * g.max() if g.max() > 0 else np.zeros(g.shape, dtype=bool))
    return out
