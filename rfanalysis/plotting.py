"""Plotting: ``plot_*(data, *, ax=None, **kwargs)`` draws on one Axes and returns the main
artist. Nothing here calls ``show()`` or ``savefig``; user keyword arguments override the
defaults. Count maps use a logarithmic colour scale by default (counts span many decades).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colors
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

__all__ = ["as_float_counts", "plot_coverage", "plot_profile"]


def _axes(ax: Axes | None) -> Axes:
    return plt.gca() if ax is None else ax


def as_float_counts(counts: Any) -> np.ndarray:
    """Counts (float64, or exact Python ints) as float64 for display.

    Exact integers beyond the float64 range raise ``ValueError``; plot log10 counts instead.
    """
    arr = np.asarray(counts)
    if arr.dtype == object:
        try:
            return np.array([float(v) for v in arr.ravel()]).reshape(arr.shape)
        except OverflowError:
            raise ValueError(
                "exact counts exceed the float64 range; plot log10 counts (log=True) instead"
            ) from None
    return arr.astype(np.float64, copy=False)


def plot_coverage(
    counts: Any,
    *,
    ax: Axes | None = None,
    log: bool = True,
    colorbar: bool = True,
    is_log10: bool = False,
    **kwargs: Any,
) -> AxesImage:
    """Heatmap of a 2-D count map (routes or coverage).

    Parameters
    ----------
    counts : array_like of shape (H, W)
        Route counts; or log10 counts with ``is_log10=True``.
    ax : Axes, optional
        Axes to draw on (default: the current Axes).
    log : bool
        Logarithmic colour scale (default). Pixels with no route are left blank (NaN colour).
    colorbar : bool
        Add a colourbar beside ``ax``.
    is_log10 : bool
        ``counts`` already holds log10 counts (``-inf`` where there is no route); the colour
        scale is then linear in the exponent.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.imshow` (override ``cmap``, ``norm``, ...).

    Returns
    -------
    AxesImage
    """
    ax = _axes(ax)
    data = np.asarray(counts, dtype=np.float64) if is_log10 else as_float_counts(counts)
    if data.ndim != 2:
        raise ValueError(f"`counts` must be 2-D (H, W), got shape {data.shape}")
    opts: dict[str, Any] = {"cmap": "viridis", "interpolation": "nearest", "origin": "upper"}
    if is_log10:
        data = np.where(np.isneginf(data), np.nan, data)
    elif log:
        positive = data[data > 0]
        if positive.size:
            opts["norm"] = colors.LogNorm(vmin=positive.min(), vmax=positive.max())
        data = np.where(data > 0, data, np.nan)
    opts.update(kwargs)
    image = ax.imshow(data, **opts)
    if colorbar:
        label = "log10 routes" if is_log10 else "routes"
        ax.figure.colorbar(image, ax=ax, label=label)
    return image


def plot_profile(counts: Any, *, ax: Axes | None = None, log: bool = True, **kwargs: Any) -> Line2D:
    """Line plot of a 1-D count map against the input position.

    Returns
    -------
    Line2D
    """
    ax = _axes(ax)
    data = as_float_counts(counts)
    if data.ndim != 1:
        raise ValueError(f"`counts` must be 1-D, got shape {data.shape}")
    opts: dict[str, Any] = {"drawstyle": "steps-mid"}
    opts.update(kwargs)
    (line,) = ax.plot(np.arange(data.size), data, **opts)
    if log and (data > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel("input position")
    ax.set_ylabel("routes")
    return line
