"""Attention on a grid of tokens: global, windowed, and shifted windows with masks.

A query token reads every key/value token it may attend (DESIGN section 9): all tokens for
global attention, the tokens of its window for windowed attention, and for shifted windows
(Swin) the tokens of its window on the rolled grid that lie in the same region, since the
attention mask separates tokens that the roll brought together from opposite borders.

The layout follows torchvision's ``shifted_window_attention``: the grid is padded at the end
to a multiple of the window (padded tokens are constants, not units), an axis whose window
covers the padded grid is not shifted, the grid is rolled by ``-shift``, split into windows,
and when a shift is non-zero each axis is cut into the regions ``[0, P - w)``,
``[P - w, P - s)``, ``[P - s, P)`` of the rolled grid.

In context ``"local"`` windowed attention keeps its window; attention over the whole map
(no window, or a window that covers it) is attention beyond any window, so a token then reads
only itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .base import GLOBAL, Field, Layer, OpError, Shape, ints, repr_axes
from .counts import Algebra, Counts


@lru_cache(maxsize=256)
def window_labels(
    shape: Shape, window: tuple[int, ...] | None, shift: tuple[int, ...]
) -> tuple[np.ndarray, int, bool]:
    """Group label of every token (tokens attend within their group), the number of groups,
    and whether the groups are smaller than the map (attention within windows)."""
    if window is None:
        return np.zeros(shape, dtype=np.intp), 1, False
    per_axis = []
    windowed = False
    for n, w, s in zip(shape, window, shift):
        padded = -(-n // w) * w
        if w >= padded:
            s = 0
        else:
            windowed = True
        q = (np.arange(n) - s) % padded  # position on the rolled grid
        win = q // w
        if s > 0:
            region = np.where(q < padded - w, 0, np.where(q < padded - s, 1, 2))
        else:
            region = np.zeros(n, dtype=np.intp)
        per_axis.append(win * 3 + region)
    grids = np.meshgrid(*per_axis, indexing="ij")
    labels = np.zeros(shape, dtype=np.intp)
    for g in grids:
        labels = labels * (int(g.max()) + 1) + g
    unique, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(shape), len(unique), windowed


@dataclass(frozen=True, repr=False)
class Attention(Layer):
    """Self-attention over a grid of tokens: global (``window_size=None``), within windows,
    or within shifted windows with Swin's mask.

    The empirical backends run parameter-free single-head attention (queries, keys and
    values are the input itself: ``softmax(x_i . x_j / sqrt(C)) x_j`` over the tokens ``j``
    that ``i`` attends).

    >>> Attention(window_size=7, shift_size=3)
    Attention(window_size=7, shift_size=3)
    """

    op_name = "attn"
    modulates = True
    window_size: Any = None
    shift_size: Any = 0
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False)

    _axis_fields = ("window_size", "shift_size")

    def __post_init__(self) -> None:
        lengths = {}
        if self.window_size is not None:
            w, scalar = ints(self.window_size, "window_size", 1)
            object.__setattr__(self, "window_size", w)
            if not scalar:
                lengths["window_size"] = len(w)
        s, scalar = ints(self.shift_size, "shift_size", 0)
        object.__setattr__(self, "shift_size", s)
        if not scalar:
            lengths["shift_size"] = len(s)
        if len(set(lengths.values())) > 1:
            raise ValueError("Attention: `window_size` and `shift_size` disagree on the axes")
        if self.window_size is None and any(s):
            raise ValueError("Attention: a shift needs a `window_size`")
        object.__setattr__(self, "ndim", next(iter(lengths.values()), None))

    def _expand(self, ndim: int) -> Layer:
        if self.ndim is not None:
            return Layer._expand(self, ndim)
        w = None if self.window_size is None else self.window_size * ndim
        return Attention(w, self.shift_size * ndim, name=self.name)

    def on_axis(self, axis: int) -> Layer:
        # a token attends a product of per-axis ranges: the whole axis, or its (shifted) window
        if self.window_size is None:
            return Attention(name=self.name)
        return Attention((self.window_size[axis],), (self.shift_size[axis],), name=self.name)

    def spec(self) -> str:
        if self.window_size is None:
            return "attn"
        out = "attn" + "x".join(map(str, self.window_size))
        return out + ("s" + "x".join(map(str, self.shift_size)) if any(self.shift_size) else "")

    def _repr_args(self) -> list[str]:
        if self.window_size is None:
            return []
        args = [f"window_size={repr_axes(self.window_size, self.ndim)}"]
        if any(self.shift_size):
            args.append(f"shift_size={repr_axes(self.shift_size, self.ndim)}")
        return args

    # -- rules ----------------------------------------------------------------------------
    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, Any]:
        (shape,) = in_shapes
        if shape is None:
            return None, None
        if self.window_size is not None and len(self.window_size) != len(shape):
            raise OpError(f"a {len(self.window_size)}-D window cannot split a {len(shape)}-D map")
        window = None if self.window_size is None else tuple(self.window_size)
        shift = tuple(self.shift_size) if window is not None else (0,) * len(shape)
        return shape, window_labels(shape, window, shift)

    def routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple[Counts]:
        labels, n, _ = step.data
        totals = alg.group_sums(g, labels, n)
        return (totals[labels],)

    def reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        labels, n, _ = step.data
        hit = np.bincount(labels.ravel(), weights=inputs[0].ravel(), minlength=n) > 0
        return hit[labels]

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        window = self.window_size
        if window is None or not self._windowed(step):
            return tuple(GLOBAL for _ in inputs[0]), ""
        out: list[Any] = []
        for a, f in enumerate(inputs[0]):
            n = None if step.in_shape is None else step.in_shape[a]
            if not isinstance(f, Field) or (n is not None and window[a] >= n):
                out.append(GLOBAL if isinstance(f, Field) else f)
                continue
            out.append(Field(f.rf + (window[a] - 1) * f.jump, f.jump, None))
        return tuple(out), "windows: size is the widest; fields depend on the window position"

    def _windowed(self, step: Any) -> bool:
        """Whether windows split the map (without a size: whether there are windows)."""
        if step.data is None:
            return self.window_size is not None
        return bool(step.data[2])

    def local_routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple[Counts]:
        return self.routes_back(step, g, alg) if self._windowed(step) else (g,)

    def local_reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return self.reach(step, inputs) if self._windowed(step) else inputs[0]

    def local_field(
        self, step: Any, inputs: tuple[tuple[Any, ...], ...]
    ) -> tuple[tuple[Any, ...], str] | None:
        return self.field(step, inputs) if self._windowed(step) else (inputs[0], "")

    # -- backends: parameter-free single-head attention -----------------------------------
    def _groups(self, node: Any) -> list[np.ndarray]:
        labels, n, _ = node.step.data
        flat = labels.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(n + 1))
        return [order[bounds[k] : bounds[k + 1]] for k in range(n)]

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        (x,) = xs
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        out = np.empty_like(flat)
        saved = []
        for idx in self._groups(node):
            xg = flat[:, :, idx]  # (B, C, m)
            s = np.einsum("bci,bcj->bij", xg, xg) / math.sqrt(c)
            s = s - s.max(axis=2, keepdims=True)
            a = np.exp(s)
            a /= a.sum(axis=2, keepdims=True)
            out[:, :, idx] = np.einsum("bij,bcj->bci", a, xg)
            saved.append((idx, xg, a))
        return out.reshape(x.shape), saved

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        b, c = gy.shape[:2]
        gflat = gy.reshape(b, c, -1)
        gx = np.zeros_like(gflat)
        for idx, xg, a in saved:
            gyg = gflat[:, :, idx]
            ga = np.einsum("bci,bcj->bij", gyg, xg)  # dL/dA
            gs = a * (ga - (ga * a).sum(axis=2, keepdims=True))  # softmax backward
            gx[:, :, idx] += np.einsum("bij,bci->bcj", a, gyg)  # through the values
            gx[:, :, idx] += (
                np.einsum("bij,bcj->bci", gs, xg) + np.einsum("bij,bci->bcj", gs, xg)
            ) / math.sqrt(c)  # through queries and keys
        return (gx.reshape(gy.shape),)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        (x,) = xs
        b, c = x.shape[:2]
        flat = x.reshape(b, c, -1)
        parts, order = [], []
        for idx in self._groups(node):
            index = torch.as_tensor(idx, device=x.device)
            xg = flat.index_select(2, index)
            a = torch.softmax(torch.einsum("bci,bcj->bij", xg, xg) / math.sqrt(c), dim=2)
            parts.append(torch.einsum("bij,bcj->bci", a, xg))
            order.append(idx)
        out = torch.cat(parts, dim=2)
        inverse = np.argsort(np.concatenate(order))
        return out.index_select(2, torch.as_tensor(inverse, device=x.device)).reshape(x.shape)
