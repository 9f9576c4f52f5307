"""Paper style and deterministic saving for the CLI and the figure pipeline.

Library plot functions never touch rcParams; whoever makes a figure for a file applies
:func:`paper_style` around drawing and saves with :func:`figure_bytes`, which gives the same
bytes for the same figure: no dates, no software versions, a fixed SVG hash salt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

#: rcParams of the paper style: small sans-serif type that survives scaling to a column,
#: fonts embedded as TrueType in PDF and as paths in SVG (viewer-independent), thin lines,
#: a tight bounding box
PAPER_RC: dict[Any, Any] = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.4,
    "xtick.major.width": 0.8,
    "ytick.major.width": 0.8,
    "axes.formatter.use_mathtext": True,
    "image.cmap": "viridis",
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "path",
    "svg.hashsalt": "rfanalysis",
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.04,
}

#: per-format savefig metadata that removes dates and version strings
DETERMINISTIC_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
    "svg": {"Date": None, "Creator": None},
}

FORMATS = tuple(DETERMINISTIC_METADATA)


@contextmanager
def paper_style() -> Iterator[None]:
    """Apply :data:`PAPER_RC` for the duration of a ``with`` block."""
    with matplotlib.rc_context(PAPER_RC):
        yield


def figure_bytes(fig: Figure, fmt: str, dpi: float | None = None) -> bytes:
    """Render ``fig`` as PNG, PDF or SVG bytes that depend only on the figure's content.

    Parameters
    ----------
    fig : Figure
    fmt : {"png", "pdf", "svg"}
    dpi : float, optional
        Resolution of PNG output and of raster images inside PDF/SVG (default: rcParams).
    """
    import io

    fmt = fmt.lower().lstrip(".")
    if fmt not in DETERMINISTIC_METADATA:
        raise ValueError(f"`fmt` must be one of {', '.join(FORMATS)}, got {fmt!r}")
    buf = io.BytesIO()
    options: dict[str, Any] = {"format": fmt, "metadata": DETERMINISTIC_METADATA[fmt]}
    if dpi is not None:
        options["dpi"] = dpi
    with matplotlib.rc_context({"svg.hashsalt": PAPER_RC["svg.hashsalt"]}):
        fig.savefig(buf, **options)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: float | None = None) -> Path:
    """Write ``fig`` to ``path`` (PNG, PDF or SVG by its extension) with :func:`figure_bytes`,
    atomically: a failed write leaves no partial file. Returns the path.

    Draw and save inside :func:`paper_style` for the look of the write-up's figures.
    """
    from ._io import write_atomic

    path = Path(path)
    write_atomic(path, figure_bytes(fig, path.suffix, dpi))
    return path
