"""Compare an analytic route map with an empirical influence map.

Both maps are normalised to unit mass and read as distributions over input pixels: ``p`` the
analytic one (route counts), ``q`` the empirical one (mean |gradient|). The empirical map is
compared with the routes and with their square root, the law of networks with independent
zero-mean weights (:func:`rfanalysis.theory.random_weight_influence`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _table, theory

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
    sqrt_routes : Comparison or None
        The same metrics of the empirical map against the square root of the analytic one,
        the expected law of mean ``|d y / d x|`` for independent zero-mean weights (random
        initialisation, :func:`rfanalysis.theory.random_weight_influence`); None in that
        comparison itself.
    closer_law : {"routes", "sqrt(routes)", "either"} or None
        Which law the empirical map follows more closely: the lower total variation; "either"
        where the two laws are one (routes constant wherever they are non-zero).
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
    sqrt_routes: Comparison | None = None

    @property
    def closer_law(self) -> str | None:
        """The law the empirical map follows more closely: "routes" or "sqrt(routes)" (the
        lower total variation), "either" where they coincide, None without ``sqrt_routes``."""
        root = self.sqrt_routes
        if root is None:
            return None
        if np.allclose(root.analytic, self.analytic, rtol=1e-12, atol=0.0):
            return "either"
        return "routes" if self.total_variation <= root.total_variation else "sqrt(routes)"

    @property
    def center_distance(self) -> float:
        """Euclidean length of :attr:`center_shift` (pixels)."""
        return math.hypot(*self.center_shift)

    def to_dict(self) -> dict[str, Any]:
        """The metrics as JSON-ready data (the maps are left out; ``inf`` becomes the string
        ``"inf"``)."""
        kl: float | str = "inf" if math.isinf(self.kl_divergence) else self.kl_divergence
        law = {}
        if self.sqrt_routes is not None:
            root = self.sqrt_routes.to_dict()
            del root["shape"]
            law = {"sqrt_routes": root, "closer_law": self.closer_law}
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
            **law,
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
        header = ("metric", "analytic", "empirical", "difference")
        lines = _table.text(header, self._rows()).splitlines()
        if self.mass_outside_routes:
            lines.append(f"empirical mass where no route exists: {self.mass_outside_routes:.3g}")
        if self.sqrt_routes is not None:
            lines += ["", *self._law_table()]
        return "\n".join(lines)

    def _law_table(self) -> list[str]:
        """The fit of the empirical map to routes and to sqrt(routes), and the closer law."""
        root = self.sqrt_routes
        assert root is not None

        def fits(c: Comparison) -> tuple[str, str, str]:
            corr = "undefined" if c.correlation is None else f"{c.correlation:.4f}"
            kl = "inf" if math.isinf(c.kl_divergence) else f"{c.kl_divergence:.4g}"
            return corr, f"{c.total_variation:.4f}", kl

        names = ("correlation", "total variation", "KL(empirical || law)")
        header = ("empirical map against", "routes", "sqrt(routes)")
        lines = _table.text(header, list(zip(names, fits(self), fits(root)))).splitlines()
        law = self.closer_law
        if law == "either":
            lines.append(
                "routes and sqrt(routes) are one law here (routes constant where non-zero)"
            )
        elif law == "sqrt(routes)":
            lines.append(
                "closer law: sqrt(routes), the law of independent zero-mean weights "
                "(a randomly initialised network)"
            )
        else:
            lines.append("closer law: routes (the law of a linear network with all weights 1)")
        return lines

    def __repr__(self) -> str:
        corr = "None" if self.correlation is None else f"{self.correlation:.4f}"
        return (
            f"Comparison(shape={self.analytic.shape}, correlation={corr}, "
            f"total_variation={self.total_variation:.4f}, "
            f"kl_divergence={self.kl_divergence:.4g}, "
            f"center_distance={self.center_distance:.3f}"
            + (f", closer_law={self.closer_law!r})" if self.sqrt_routes is not None else ")")
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
        Normalised maps and the metrics; prints as a table, ``to_dict()`` for JSON. Its
        ``sqrt_routes`` holds the metrics against the square root of the analytic map, and
        ``closer_law`` says which law the empirical map follows.

    Notes
    -----
    Centres, sigmas and radii are moments and mass quantiles of each unit-mass map; sigma is
    the moment estimate of a fitted Gaussian (exact for a sampled Gaussian up to
    discretisation). The effective receptive field of Luo et al. (NeurIPS 2016) is the
    empirical map; its sigma grows like ``sqrt(depth)`` as the analytic one does.

    Two laws are expected: a linear network with all weights 1 has ``|d y / d x| = routes``
    exactly; with independent zero-mean weights (a randomly initialised network) the mean
    squared gradient is proportional to the routes, so mean ``|d y / d x|`` follows
    ``sqrt(routes)`` (:func:`rfanalysis.theory.random_weight_influence`), a distribution
    ``sqrt(2)`` wider.

    Examples
    --------
    >>> c = compare([0, 1, 2, 1, 0], [0, 1, 2, 1, 0])
    >>> c.total_variation, c.kl_divergence, c.center_shift, c.closer_law
    (0.0, 0.0, (0.0,), 'routes')
    >>> compare([1, 0], [0, 1]).total_variation
    1.0
    >>> c = compare([1, 4, 1], [1, 2, 1])  # |gradient| = sqrt(routes)
    >>> c.closer_law, c.sqrt_routes.total_variation
    ('sqrt(routes)', 0.0)
    """
    p = _as_mass(analytic, "analytic")
    q = _as_mass(empirical, "empirical")
    if p.shape != q.shape:
        raise ValueError(
            f"`analytic` and `empirical` must have the same shape, got {p.shape} and {q.shape}"
        )
    # sqrt(p) is proportional to sqrt(routes) whatever the routes' total, even past float64
    root = theory.random_weight_influence(p)
    return replace(_metrics(p, q), sqrt_routes=_metrics(root / root.sum(), q))


def _metrics(p: np.ndarray, q: np.ndarray) -> Comparison:
    """The metrics of two unit-mass maps of one shape."""
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
