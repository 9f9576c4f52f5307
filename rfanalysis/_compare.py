"""Compare an analytic route map with an empirical influence map.

Both maps are normalised to unit mass and read as distributions over input pixels: ``p`` the
analytic one (route counts), ``q`` the empirical one (mean |gradient|).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Comparison", "compare"]


def _as_mass(data: Any, name: str) -> np.ndarray:
    """Validate a non-negative map and return it divided by its total (float64)."""
    arr = np.asarray(data)
    if arr.dtype == object:  # exact Python ints: scale by the largest before converting
        values = arr.ravel().tolist()
        if not all(isinstance(v, (int, np.integer)) for v in values):
            raise TypeError(f"`{name}` of dtype object must hold integers (exact counts)")
        top = max(values) if values else 0
        shift = max(0, int(top).bit_length() - 60)
        arr = np.array([v >> shift for v in values], dtype=np.float64).reshape(arr.shape)
    elif not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"`{name}` must be a real-valued array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim not in (1, 2, 3):
        raise ValueError(f"`{name}` must be 1-D, 2-D or 3-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains inf or NaN (pass counts, not log10 counts)")
    if (arr < 0).any():
        raise ValueError(f"`{name}` must be non-negative (route counts or |gradient|)")
    total = arr.sum()
    if total <= 0:
        raise ValueError(f"`{name}` is zero everywhere; there is nothing to compare")
    return arr / total


def _center(p: np.ndarray) -> np.ndarray:
    grids = np.indices(p.shape, dtype=np.float64)
    return np.array([(g * p).sum() for g in grids])


def _sigma(p: np.ndarray, center: np.ndarray) -> tuple[float, ...]:
    grids = np.indices(p.shape, dtype=np.float64)
    return tuple(float(np.sqrt(((g - c) ** 2 * p).sum())) for g, c in zip(grids, center))


def _radius(p: np.ndarray, center: np.ndarray, fraction: float) -> float:
    """Smallest r such that pixels within Euclidean distance r of ``center`` hold at least
    ``fraction`` of the mass."""
    grids = np.indices(p.shape, dtype=np.float64)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, center))).ravel()
    order = np.argsort(dist, kind="stable")
    mass = np.cumsum(p.ravel()[order])
    k = int(np.searchsorted(mass, fraction * mass[-1] * (1 - 1e-12)))
    return float(dist[order][min(k, dist.size - 1)])


@dataclass(frozen=True, eq=False)
class Comparison:
    """Metrics of an analytic map ``p`` against an empirical map ``q`` (both unit mass).

    Attributes
    ----------
    analytic, empirical : ndarray
        The two maps divided by their totals.
    correlation : float or None
        Pearson correlation of the two maps over pixels (None if either map is constant).
    total_variation : float
        ``sum |p - q| / 2``, between 0 (equal) and 1 (disjoint).
    kl_divergence : float
        ``KL(q || p) = sum q log(q / p)`` in nats: the information lost when the analytic map
        stands in for the empirical one. ``inf`` exactly when the empirical map has mass
        where the analytic map has no route; :attr:`mass_outside_routes` says how much.
    mass_outside_routes : float
        Empirical mass on pixels with no analytic route (0 for any network's true gradient).
    center_analytic, center_empirical : tuple of float
        Centre of mass per axis (row, col, ...).
    center_shift : tuple of float
        ``center_empirical - center_analytic`` per axis; :attr:`center_distance` its length.
    radius50, radius95 : tuple of (float, float)
        (analytic, empirical) radius around each map's centre of mass that holds 50 % / 95 %
        of its mass: the smallest Euclidean distance r (pixels) such that pixels within r
        hold at least that fraction.
    sigma_analytic, sigma_empirical : tuple of float
        Standard deviation per axis (the sigma of a Gaussian fitted by moments).
    """

    analytic: np.ndarray
    empirical: np.ndarray
    correlation: float | None
    total_variation: float
    kl_divergence: float
    mass_outside_routes: float
    center_analytic: tuple[float, ...]
    center_empirical: tuple[float, ...]
    center_shift: tuple[float, ...]
    radius50: tuple[float, float]
    radius95: tuple[float, float]
    sigma_analytic: tuple[float, ...]
    sigma_empirical: tuple[float, ...]

    @property
    def center_distance(self) -> float:
        """Euclidean length of :attr:`center_shift` (pixels)."""
        return math.hypot(*self.center_shift)

    def to_dict(self) -> dict[str, Any]:
        """The metrics as JSON-ready data (the maps are left out; ``inf`` becomes the string
        ``"inf"``)."""
        kl: float | str = "inf" if math.isinf(self.kl_divergence) else self.kl_divergence
        return {
            "shape": list(self.analytic.shape),
            "correlation": self.correlation,
            "total_variation": self.total_variation,
            "kl_divergence": kl,
            "mass_outside_routes": self.mass_outside_routes,
            "center_analytic": list(self.center_analytic),
            "center_empirical": list(self.center_empirical),
            "center_shift": list(self.center_shift),
            "center_distance": self.center_distance,
            "radius50": {"analytic": self.radius50[0], "empirical": self.radius50[1]},
            "radius95": {"analytic": self.radius95[0], "empirical": self.radius95[1]},
            "sigma_analytic": list(self.sigma_analytic),
            "sigma_empirical": list(self.sigma_empirical),
        }

    def _rows(self) -> list[tuple[str, str, str, str]]:
        def axes(values: tuple[float, ...]) -> str:
            return ", ".join(f"{v:.3f}" for v in values)

        def diff(a: tuple[float, ...], b: tuple[float, ...]) -> str:
            return ", ".join(f"{y - x:+.3f}" for x, y in zip(a, b))

        corr = "undefined" if self.correlation is None else f"{self.correlation:.4f}"
        kl = "inf" if math.isinf(self.kl_divergence) else f"{self.kl_divergence:.4g}"
        return [
            (
                "centre of mass",
                axes(self.center_analytic),
                axes(self.center_empirical),
                diff(self.center_analytic, self.center_empirical),
            ),
            (
                "sigma per axis",
                axes(self.sigma_analytic),
                axes(self.sigma_empirical),
                diff(self.sigma_analytic, self.sigma_empirical),
            ),
            (
                "radius, 50 % of mass",
                f"{self.radius50[0]:.3f}",
                f"{self.radius50[1]:.3f}",
                f"{self.radius50[1] - self.radius50[0]:+.3f}",
            ),
            (
                "radius, 95 % of mass",
                f"{self.radius95[0]:.3f}",
                f"{self.radius95[1]:.3f}",
                f"{self.radius95[1] - self.radius95[0]:+.3f}",
            ),
            ("correlation", "", "", corr),
            ("total variation", "", "", f"{self.total_variation:.4f}"),
            ("KL(empirical || analytic)", "", "", kl),
        ]

    def __str__(self) -> str:
        rows = [("metric", "analytic", "empirical", "difference"), *self._rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
            ).rstrip()
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if self.mass_outside_routes:
            lines.append(f"empirical mass where no route exists: {self.mass_outside_routes:.3g}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        corr = "None" if self.correlation is None else f"{self.correlation:.4f}"
        return (
            f"Comparison(shape={self.analytic.shape}, correlation={corr}, "
            f"total_variation={self.total_variation:.4f}, "
            f"kl_divergence={self.kl_divergence:.4g}, "
            f"center_distance={self.center_distance:.3f})"
        )


def compare(analytic: Any, empirical: Any) -> Comparison:
    """Compare an analytic map (routes) with an empirical one (influence).

    Parameters
    ----------
    analytic : array_like of shape (N,), (H, W) or (D, H, W)
        Non-negative counts, e.g. :func:`rfanalysis.routes` (float or exact) — not log10.
    empirical : array_like of the same shape
        Non-negative magnitudes, e.g. :func:`rfanalysis.influence`.

    Returns
    -------
    Comparison
        Normalised maps and the metrics; prints as a table, ``to_dict()`` for JSON.

    Notes
    -----
    Centres, sigmas and radii are moments and mass quantiles of each unit-mass map; sigma is
    the moment estimate of a fitted Gaussian (exact for a sampled Gaussian up to
    discretisation). The effective receptive field of Luo et al. (NeurIPS 2016) is the
    empirical map; its sigma grows like ``sqrt(depth)`` as the analytic one does.

    Examples
    --------
    >>> c = compare([0, 1, 2, 1, 0], [0, 1, 2, 1, 0])
    >>> c.total_variation, c.kl_divergence, c.center_shift
    (0.0, 0.0, (0.0,))
    >>> compare([1, 0], [0, 1]).total_variation
    1.0
    """
    p = _as_mass(analytic, "analytic")
    q = _as_mass(empirical, "empirical")
    if p.shape != q.shape:
        raise ValueError(
            f"`analytic` and `empirical` must have the same shape, got {p.shape} and {q.shape}"
        )
    pf, qf = p.ravel(), q.ravel()
    if pf.std() == 0 or qf.std() == 0:
        corr = None
    else:
        corr = float(np.corrcoef(pf, qf)[0, 1])
    tv = float(0.5 * np.abs(pf - qf).sum())
    outside = float(qf[pf == 0].sum())
    both = (qf > 0) & (pf > 0)
    kl = math.inf if outside > 0 else float((qf[both] * np.log(qf[both] / pf[both])).sum())
    kl = max(kl, 0.0)  # rounding can make a zero divergence slightly negative
    cp, cq = _center(p), _center(q)
    return Comparison(
        analytic=p,
        empirical=q,
        correlation=corr,
        total_variation=tv,
        kl_divergence=kl,
        mass_outside_routes=outside,
        center_analytic=tuple(float(v) for v in cp),
        center_empirical=tuple(float(v) for v in cq),
        center_shift=tuple(float(v) for v in cq - cp),
        radius50=(_radius(p, cp, 0.5), _radius(q, cq, 0.5)),
        radius95=(_radius(p, cp, 0.95), _radius(q, cq, 0.95)),
        sigma_analytic=_sigma(p, cp),
        sigma_empirical=_sigma(q, cq),
    )
