"""The dense (fully connected) layer and its rules."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Layer, ReadsWholeMap, Shape, check_channels, ints, weights_repr


@dataclass(frozen=True, repr=False)
class Dense(ReadsWholeMap):
    """Fully connected layer: every input unit (all positions, all channels) reaches every
    output unit. Its output is a 1-D map of ``out_features`` units. ``in_channels`` (channels
    of the input map) is only needed for parameter counts when the layer comes first.

    >>> Dense(10)
    Dense(10)
    """

    op_name = "fc"
    channel_rule = "one"
    weighted = True
    flattens = True

    out_features: int
    in_channels: int | None = field(default=None, kw_only=True)
    bias: bool = field(default=True, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_features", ints(self.out_features, "out_features", 1)[0][0])
        cin, _, _ = check_channels("Dense", self.in_channels, None, 1)
        object.__setattr__(self, "in_channels", cin)
        object.__setattr__(self, "ndim", None)

    def _expand(self, ndim: int) -> Layer:
        return self

    def on_axis(self, axis: int) -> Layer:
        return self  # it reads every unit along every axis

    def spec(self) -> str:
        return f"fc{self.out_features}"

    def _repr_args(self) -> list[str]:
        return [str(self.out_features), *weights_repr(self)]

    # -- rules ----------------------------------------------------------------------------
    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, None]:
        (shape,) = in_shapes
        return (None if shape is None else (self.out_features,)), None

    def params(self, step: Any) -> tuple[int | None, int | None, int | None, int | None]:
        cin = step.in_channels
        if cin is None or step.in_shape is None:
            return None, None, None, None
        bias = 1 if self.bias else 0
        full = math.prod(step.in_shape) * cin * self.out_features + bias * self.out_features
        return full, None, None, full

    def weight_shape(self, node: Any) -> tuple[tuple[int, ...], int]:
        features = node.cin * math.prod(node.in_shape)
        return (self.out_features, features), features

    def np_forward(self, node: Any, xs: list[np.ndarray], w: np.ndarray) -> tuple[np.ndarray, Any]:
        (x,) = xs
        y = np.matmul(w, x.reshape(x.shape[0], -1, 1))
        return y.reshape(x.shape[0], 1, -1), None

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: np.ndarray) -> tuple:
        gx = np.matmul(w.transpose(0, 2, 1), gy.reshape(gy.shape[0], -1, 1))
        return (gx.reshape(gy.shape[0], node.cin, *node.in_shape),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        flat = x.reshape(x.shape[0], -1)
        y = flat @ w[0].T if w.shape[0] == 1 else torch.einsum("bf,bof->bo", flat, w)
        return y.reshape(x.shape[0], 1, -1)
