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
from dataclasses import dataclass
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


#: gradients below this fraction of the largest are rounding (an interpolation weight that
#: exact arithmetic makes zero: ~1e-16 in float64, ~1e-7 in float32) or masked attention
#: (exp(-100) ~ 1e-44): no route
RELATIVE_ZERO = {"float64": 1e-12, "float32": 1e-5}


@dataclass
class Supports:
    """What autograd says of one output unit, over several random inputs: ``reached``, the
    input pixels whose gradient is above the rounding threshold for some input (these must
    have a route); ``touched``, those with any non-zero gradient for some input (every route
    pixel should be among them)."""

    reached: np.ndarray
    touched: np.ndarray


def _output_of(model: Any, x: Any, output: str | None) -> Any:
    """The map analysed: the model's output, its ``"out"`` entry (torchvision's segmentation
    models), or the output of the submodule named ``output`` (read with a forward hook)."""
    if output is None or output == "out":
        y = model(x)
        return y["out"] if isinstance(y, dict) else y
    seen = []
    handle = model.get_submodule(output).register_forward_hook(lambda m, a, o: seen.append(o))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[-1]


def gradient_supports(
    model: Any,
    input_shape: tuple[int, ...],
    in_channels: int,
    units: list,
    grid: tuple,
    *,
    output: str | None = None,
    inputs: int = 3,
    dtype: str = "float64",
) -> list[Supports]:
    """For each output unit, the union over ``inputs`` random inputs of the pixels its
    autograd gradient reaches, with the model's own weights (converted to ``dtype``, in
    place; those initialised to zero made random) and a random weighting of the unit's
    channels (a plain sum can cancel exactly: the channels of a LayerNorm without bias sum
    to a constant). Gradients are summed over the input channels.

    A unit is a position of the output's ``grid``: of a map ``(batch, C, *spatial)`` or a
    channels-last one ``(batch, *spatial, C)``, or a feature of a vector ``(batch, features)``.
    """
    import torch

    dt = getattr(torch, dtype)
    model.to(dt).requires_grad_(False)  # gradients with respect to the input only
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            # zero-initialised weights (timm's zero_init_last batch norms, zeroed residual
            # branches) cut routes the architecture has and trained weights use: give them
            # random values (a zero bias or embedding cuts nothing, so this changes nothing
            # there)
            if p.is_floating_point() and not p.any():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=dt))
    reached = [np.zeros(input_shape, dtype=bool) for _ in units]
    touched = [np.zeros(input_shape, dtype=bool) for _ in units]
    for _ in range(inputs):
        x = torch.randn((1, in_channels, *input_shape), generator=gen, dtype=dt)
        x.requires_grad_(True)
        with torch.enable_grad():
            y = _output_of(model, x, output)
        for k, unit in enumerate(units):
            if y.ndim == 2:
                index: tuple = (0, unit[0])
            elif tuple(y.shape[2:]) == tuple(grid):
                index = (0, slice(None), *unit)
            else:  # channels last
                assert tuple(y.shape[1:-1]) == tuple(grid), (y.shape, grid)
                index = (0, *unit, slice(None))
            v = y[index]
            w = torch.rand(v.shape, generator=gen, dtype=dt) + 0.5
            (g,) = torch.autograd.grad((v * w).sum(), x, retain_graph=k < len(units) - 1)
            g = g[0].abs().sum(dim=0).numpy()
            peak = g.max()
            touched[k] |= g > 0
            reached[k] |= g > RELATIVE_ZERO[dtype] * peak
    return [Supports(r, t) for r, t in zip(reached, touched)]


def gradient_support(
    model: Any, input_shape: tuple[int, ...], in_channels: int, units: list, grid: tuple
) -> list[np.ndarray]:
    """For each output unit, the input pixels its gradient reaches for one random input, in
    the model's float32 (see :func:`gradient_supports`): the one-sided check of the model
    library suites (no gradient pixel without a route)."""
    found = gradient_supports(model, input_shape, in_channels, units, grid, inputs=1,
                              dtype="float32")  # fmt: skip
    return [s.reached for s in found]
