"""Blurred downsampling: a fixed binomial low-pass filter followed by subsampling.

Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019), replaces every
strided step of a network (a max pool, an average pool, a strided convolution) by the same
operation at stride 1 followed by :class:`BlurPool`: a depthwise filter whose taps are a row of
Pascal's triangle (``[1, 2, 1] / 4`` for 3 taps; the outer product of such rows in N-D),
evaluated every ``stride`` pixels. Its weights are fixed, so it adds no parameters.

Topologically it is a window like any pool: every tap is a route (DESIGN.md, section 2), and a
padding mode redirects the taps that fall outside the input exactly as for :class:`~.Conv`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from . import kernels
from .windows import _check_mode, _Windowed


@lru_cache(maxsize=64)
def binomial_taps(kernel_size: tuple[int, ...]) -> np.ndarray:
    """The blur kernel of shape ``kernel_size``: outer product of binomial rows, sum 1.

    >>> binomial_taps((3,)).tolist()
    [0.25, 0.5, 0.25]
    >>> (binomial_taps((3, 3)) * 16).astype(int).tolist()
    [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    """
    out = np.ones(())
    for k in kernel_size:
        row = np.array([math.comb(k - 1, t) for t in range(k)], dtype=np.float64) / 2 ** (k - 1)
        out = np.multiply.outer(out, row)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, repr=False)
class BlurPool(_Windowed):
    """Blurred downsampling (Zhang 2019): a binomial blur evaluated every ``stride`` pixels.

    Output unit ``o`` is ``sum_t C(k - 1, t) / 2^(k - 1) x[o*stride + t*dilation - pad]``
    per axis, channel by channel (a depthwise filter with fixed weights).

    Parameters
    ----------
    kernel_size : int or tuple of int
        Taps of the binomial filter (3: ``[1, 2, 1] / 4``; 4: ``[1, 3, 3, 1] / 8``).
    stride : int or tuple of int
        Subsampling factor (default 2, as in Zhang's ``BlurPool``).
    padding, dilation, padding_mode
        As for :class:`~rfanalysis.Conv`. Zhang pads by reflection; circular padding makes a
        network exactly equivariant to circular shifts by its total stride.

    Examples
    --------
    >>> BlurPool(3, padding=1, padding_mode="circular")
    BlurPool(3, padding=1, padding_mode='circular')
    >>> BlurPool(3, padding=1).spec()
    'blurpool3p1'
    """

    op_name = "blurpool"

    kernel_size: Any = 3
    stride: Any = 2
    padding: Any = 0
    dilation: Any = 1
    padding_mode: str = "zeros"
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lengths = self._normalise_window()
        _check_mode(self.padding_mode)
        self._set_ndim(lengths)

    def spec(self) -> str:
        return self._window_spec("blurpool", stride_default=(2,))

    def _repr_args(self) -> list[str]:
        return self._window_repr(stride_default=(2,))

    # -- backends -------------------------------------------------------------------------
    def _taps(self) -> np.ndarray:
        return binomial_taps(tuple(self.kernel_size)).ravel()

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        taps, units = math.prod(self.kernel_size), math.prod(node.out_shape)
        b, c = x.shape[:2]
        cols = kernels.to_cols(x, self._np_pieces(node), 0.0).reshape(b, c, taps, units)
        return np.matmul(self._taps(), cols).reshape(b, c, *node.out_shape), None

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        b, c = gy.shape[:2]
        units = math.prod(node.out_shape)
        gcols = self._taps()[:, None] * gy.reshape(b, c, 1, units)
        gcols = gcols.reshape(b, c, *self.kernel_size, *node.out_shape)
        return (kernels.from_cols(gcols, self._np_pieces(node)),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        nd = x.ndim - 2
        xp = kernels.torch_pad(torch, x, node.step.data.pads, self.padding_mode)
        kernel = torch.as_tensor(
            np.array(binomial_taps(tuple(self.kernel_size))), dtype=x.dtype, device=x.device
        )
        weight = kernel.expand(x.shape[1], 1, *self.kernel_size)
        return kernels.torch_fn(torch, "conv", nd)(
            xp, weight, stride=self.stride, dilation=self.dilation, groups=x.shape[1]
        )
