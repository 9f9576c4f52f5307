"""Closed forms for route counts, each checked against the engine in the tests.

* :func:`multinomial_row` — routes through ``n`` stacked valid ``k``-tap convolutions: the
  coefficients of ``(1 + x^d + ... + x^(d(k-1)))^n`` (Pascal's triangle for ``k = 2``).
* :func:`gaussian_limit` — mean and variance of an interior unit's route distribution for any
  chain of convolutions and pools; the central limit theorem makes it Gaussian with depth.
* :func:`valid_edge_centre_ratio`, :func:`rf_edge_centre_ratio` — how fast the border falls
  behind without padding (exponentially).
* :func:`limit_profile`, :func:`same_edge_centre_limit` — with size-preserving padding the
  coverage profile converges to the Perron eigenvector of the layer's route operator, so the
  edge/centre ratio tends to a constant instead of zero.
* :func:`random_weight_influence` — with independent zero-mean weights the mean squared
  gradient is proportional to the route count, so the mean |gradient| (the effective
  receptive field) follows its square root, a Gaussian wider by sqrt(2).
* :func:`windows_per_pixel` — how many windows of a strided layer read an interior pixel
  (the question's 64x64 kernel with stride 4: 16 x 16 = 256).

>>> multinomial_row(3, 3)
[1, 3, 6, 7, 6, 3, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ._engine import as_float_counts
from ._ops import Conv, LocallyConnected, Pool
from ._ops.base import fmt_shape
from ._plan import Plan, Step, network_of, plan

__all__ = [
    "GaussianLimit",
    "LimitProfile",
    "gaussian_limit",
    "limit_profile",
    "multinomial_row",
    "random_weight_influence",
    "rf_edge_centre_ratio",
    "same_edge_centre_limit",
    "valid_edge_centre_ratio",
    "windows_per_pixel",
]


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- multinomial rows
def multinomial_row(kernel_size: int, depth: int, dilation: int = 1) -> list[int]:
    """Routes from each input pixel to one unit through ``depth`` valid convolutions.

    Parameters
    ----------
    kernel_size, depth, dilation : int
        ``k >= 1``, ``n >= 0``, ``d >= 1``.

    Returns
    -------
    list of int
        The ``n (k - 1) d + 1`` coefficients of ``(1 + x^d + ... + x^(d (k - 1)))^n``, exact.

    Notes
    -----
    A route picks one of ``k`` taps in every layer; the input offset is ``d`` times the sum of
    the taps, so the number of routes to offset ``x`` is the number of compositions counted
    by the polynomial's coefficient of ``x^x``. Their total is ``k^n``.

    Examples
    --------
    >>> multinomial_row(2, 4)
    [1, 4, 6, 4, 1]
    >>> multinomial_row(2, 2, dilation=2)
    [1, 0, 2, 0, 1]
    """
    k = _positive_int(kernel_size, "kernel_size")
    n = _positive_int(depth, "depth", 0)
    d = _positive_int(dilation, "dilation")
    row = [1]
    for _ in range(n):
        nxt = [0] * (len(row) + k - 1)
        for i, v in enumerate(row):
            for t in range(k):
                nxt[i + t] += v
        row = nxt
    if d == 1:
        return row
    spread = [0] * ((len(row) - 1) * d + 1)
    spread[::d] = row
    return spread


# --------------------------------------------------------------------------- Gaussian limit
@dataclass(frozen=True)
class GaussianLimit:
    """Route distribution of an interior unit, per axis (exact fractions).

    Unit ``o`` of the last layer is reached from input positions with mean
    ``start + o * jump`` and variance ``variance``; ``axis_totals`` routes along each axis
    (their product, :attr:`total`, in all).
    """

    start: tuple[Fraction, ...]
    jump: tuple[int, ...]
    variance: tuple[Fraction, ...]
    axis_totals: tuple[int, ...]

    @property
    def total(self) -> int:
        """Routes from the whole input to one interior unit: the product of kernel sizes."""
        return math.prod(self.axis_totals)

    @property
    def sigma(self) -> tuple[float, ...]:
        """Standard deviation per axis (input pixels)."""
        return tuple(math.sqrt(v) for v in self.variance)

    def mean(self, unit: Any) -> tuple[Fraction, ...]:
        """Mean input position of the routes to ``unit`` (an int or one index per axis)."""
        idx = (unit,) * len(self.start) if isinstance(unit, int) else tuple(unit)
        return tuple(c + o * j for c, j, o in zip(self.start, self.jump, idx))

    def profile(self, n: int, unit: int, axis: int = 0) -> np.ndarray:
        """The Gaussian approximation of the routes to ``unit`` along ``axis`` on ``n`` input
        positions (the normal density times the per-axis total of routes)."""
        mu = float(self.mean((unit,) * len(self.start))[axis])
        var = float(self.variance[axis])
        axis_total = self.axis_totals[axis]
        x = np.arange(n)
        if var == 0:
            return np.where(x == round(mu), float(axis_total), 0.0)
        return axis_total * np.exp(-((x - mu) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)


def gaussian_limit(net: Any, input_shape: Any = None) -> GaussianLimit:
    """Mean and variance of the route distribution of an interior unit.

    Parameters
    ----------
    net : Network, layer, sequence or spec string
        A chain of convolutions, locally connected layers and pools.
    input_shape : int or tuple, optional
        Needed only for ``"same"`` padding with stride > 1 (its padding depends on the size).

    Returns
    -------
    GaussianLimit

    Notes
    -----
    Along one axis, a route from output unit ``o`` picks tap ``t_l`` in layer ``l`` and lands
    on input position ``o J + sum_l J_{l-1} (d_l t_l - p_l)``, where ``J_{l-1}`` is the product
    of the strides before layer ``l``. Away from the borders every tap sequence is a route, so
    the routes divided by their total ``prod_l k_l`` are the distribution of a sum of
    independent uniform variables: mean ``sum_l J_{l-1} (d_l (k_l - 1) / 2 - p_l)`` (the
    geometry's start) and variance::

        sum_l J_{l-1}^2 d_l^2 (k_l^2 - 1) / 12

    For ``n`` identical ``k``-tap layers that is ``n (k^2 - 1) / 12``: the field's width grows
    like ``sqrt(n)``, not like ``n`` as its size does (Luo et al., "Understanding the Effective
    Receptive Field", NeurIPS 2016), and by the central limit theorem the profile tends to a
    Gaussian.

    Examples
    --------
    >>> g = gaussian_limit("conv3*4")
    >>> g.variance, g.total
    ((Fraction(8, 3), Fraction(8, 3)), 6561)
    """
    p = plan(net, input_shape)
    ndim = p.ndim
    start = [Fraction(0)] * ndim
    jump = [1] * ndim
    variance = [Fraction(0)] * ndim
    totals = [1] * ndim
    for step in _chain_steps(p):
        layer: Any = step.layer
        for a in range(ndim):
            k, s, d = layer.kernel_size[a], layer.stride[a], layer.dilation[a]
            pad = step.data.pads[a]
            if pad is None:
                raise ValueError(
                    f"{step.where}: 'same' padding with stride > 1 depends on the input size; "
                    "pass input_shape"
                )
            start[a] += jump[a] * (Fraction(d * (k - 1), 2) - pad[0])
            variance[a] += Fraction(jump[a] ** 2 * d**2 * (k**2 - 1), 12)
            jump[a] *= s
            totals[a] *= k
    return GaussianLimit(tuple(start), tuple(jump), tuple(variance), tuple(totals))


def _chain_steps(p: Plan) -> list[Step]:
    steps = []
    for step in p.ops:
        if step.inputs != (step.index - 1,) or not isinstance(
            step.layer, (Conv, LocallyConnected, Pool)
        ):
            what = "a branch" if step.inputs != (step.index - 1,) else type(step.layer).__name__
            raise ValueError(
                f"{step.where}: the closed form covers chains of convolutions, locally "
                f"connected layers and pools, not {what}"
            )
        steps.append(step)
    return steps


# --------------------------------------------------------------------------- edge / centre
def valid_edge_centre_ratio(kernel_size: int, depth: int) -> Fraction:
    """Coverage of the edge pixel over that of the centre pixel for ``depth`` valid
    ``k``-tap stride-1 layers: exactly ``k^-depth``.

    Notes
    -----
    The edge pixel is read by one window per layer, so it has one route to the output.
    A centre pixel at least ``depth (k - 1)`` pixels from both borders has every one of the
    ``k^depth`` tap sequences as a route. The ratio falls exponentially with depth.

    >>> valid_edge_centre_ratio(3, 4)
    Fraction(1, 81)
    """
    k = _positive_int(kernel_size, "kernel_size")
    n = _positive_int(depth, "depth", 0)
    return Fraction(1, k**n)


def rf_edge_centre_ratio(kernel_size: int, depth: int) -> Fraction:
    """Routes from the edge of one unit's receptive field over routes from its centre, for
    ``depth`` valid ``k``-tap layers: one over the central multinomial coefficient.

    Notes
    -----
    The central coefficient of ``(1 + ... + x^(k-1))^n`` is about
    ``k^n / sqrt(2 pi n (k^2 - 1) / 12)`` (the Gaussian limit), so the ratio decays like
    ``sqrt(n) k^-n``.

    >>> rf_edge_centre_ratio(2, 10)
    Fraction(1, 252)
    """
    row = multinomial_row(kernel_size, depth)
    return Fraction(1, max(row))


@dataclass(frozen=True, eq=False)
class LimitProfile:
    """The shape coverage converges to when one layer is repeated many times.

    Attributes
    ----------
    profile : ndarray
        Limit of ``coverage(layer * L) / max`` as ``L`` grows, shape ``input_shape``.
    growth : float
        Factor by which total coverage grows per layer in the limit (the Perron root; the
        product over axes).
    """

    profile: np.ndarray
    growth: float

    def edge_centre_ratio(self) -> float:
        """``profile`` at the first pixel over ``profile`` at the centre pixel."""
        first = self.profile[(0,) * self.profile.ndim]
        centre = self.profile[tuple((n - 1) // 2 for n in self.profile.shape)]
        return float(first / centre)


def limit_profile(layer: Any, input_shape: Any) -> LimitProfile:
    """Limit profile of coverage for a size-preserving layer repeated without end.

    Parameters
    ----------
    layer : Layer, or a spec string of one layer
        A convolution or pool whose output has the size of its input (stride 1, "same"-like
        padding), any padding mode.
    input_shape : int or tuple

    Returns
    -------
    LimitProfile

    Notes
    -----
    Coverage after ``L`` layers is ``(A^T)^L 1`` with ``A`` the layer's route-count matrix
    (per axis; the layer is separable). ``A^T`` is non-negative, so by Perron-Frobenius the
    normalised coverage tends to its leading eigenvector (the part of ``1`` on the dominant
    eigenspace) and total coverage grows by the Perron root per layer. For 3-tap zero padding
    ``A`` is the tridiagonal ones matrix: eigenvalues ``1 + 2 cos(pi j / (n + 1))``, leading
    eigenvector ``sin(pi (i + 1) / (n + 1))`` (see :func:`same_edge_centre_limit`); for
    circular padding it is uniform.

    Examples
    --------
    >>> lp = limit_profile("conv3p1", (7,))
    >>> round(lp.growth, 6), lp.profile.round(3).tolist()
    (2.847759, [0.383, 0.707, 0.924, 1.0, 0.924, 0.707, 0.383])
    """
    net = network_of(layer, "layer")
    if len(net.layers) != 1 or not isinstance(net.layers[0], (Conv, LocallyConnected, Pool)):
        raise ValueError(f"`layer` must be one convolution or pool, got {net.spec()!r}")
    p = plan(net, input_shape)
    (step,) = p.ops
    if step.out_shape != step.in_shape:
        raise ValueError(
            f"{step.where}: a repeated layer must keep the size; it maps "
            f"{fmt_shape(step.in_shape or ())} to "
            f"{fmt_shape(step.out_shape or ())} (use stride 1 and 'same' padding)"
        )
    vectors, growth = [], 1.0
    done: dict[int, tuple[np.ndarray, float]] = {}
    for op in step.data.ops:
        if id(op) not in done:
            try:
                done[id(op)] = _perron(op.matrix().toarray().T.astype(np.float64))
            except _Cycles:
                raise ValueError(
                    f"{step.where}: coverage does not settle on input {op.n_in}: it cycles with "
                    "depth because the taps skip the window's centre (the route graph is "
                    "periodic); compare even and odd depths with rfanalysis.coverage instead"
                ) from None
        vec, root = done[id(op)]
        vectors.append(vec)
        growth *= root
    profile = vectors[0]
    for v in vectors[1:]:
        profile = np.multiply.outer(profile, v)
    return LimitProfile(profile / profile.max(), growth)


class _Cycles(Exception):
    """``m^L 1`` has no limiting direction: it cycles."""


def _perron(m: np.ndarray) -> tuple[np.ndarray, float]:
    """Limit direction of ``m^L 1`` and the spectral radius of a non-negative matrix.

    Raises :class:`_Cycles` when another eigenvalue of the same modulus (``-root`` or a
    complex root of unity times it, the signature of a periodic route graph) has a part of
    the start vector: then ``m^L 1`` keeps cycling through directions as ``L`` grows.
    """
    values, vectors = np.linalg.eig(m)
    root = float(np.max(values.real))
    dominant = np.isclose(values, root, rtol=1e-9, atol=1e-12)
    # the part of the all-ones start vector on each eigenvector
    coeff = np.linalg.lstsq(vectors, np.ones(m.shape[0]), rcond=None)[0]
    rotating = np.isclose(np.abs(values), root, rtol=1e-9, atol=1e-12) & ~dominant
    parts = np.abs(coeff) * np.linalg.norm(vectors, axis=0)
    if rotating.any() and parts[rotating].max() > 1e-9 * parts[dominant].max():
        raise _Cycles
    limit = (vectors[:, dominant] @ coeff[dominant]).real
    limit = np.abs(limit)  # a Perron vector is non-negative; eig may return it negated
    return limit / limit.max(), root


def same_edge_centre_limit(n: int) -> float:
    """Limit of edge over centre coverage for 3-tap zero-padded ('same') layers on ``n``
    pixels as depth grows: ``sin(pi / (n + 1)) / sin(pi (c + 1) / (n + 1))``, ``c = (n-1)//2``.

    Notes
    -----
    The leading eigenvector of the tridiagonal ones matrix is ``sin(pi (i + 1) / (n + 1))``
    (:func:`limit_profile`). The ratio is about ``pi / (n + 1)``: bounded away from zero at
    any depth, unlike valid padding, but smaller for larger inputs.

    >>> round(same_edge_centre_limit(65), 6)
    0.047582
    """
    n = _positive_int(n, "n")
    c = (n - 1) // 2
    return math.sin(math.pi / (n + 1)) / math.sin(math.pi * (c + 1) / (n + 1))


def windows_per_pixel(kernel_size: int, stride: int) -> tuple[int, int]:
    """(fewest, most) windows of a ``k``-tap stride-``s`` layer that read an interior pixel:
    ``floor(k / s)`` and ``ceil(k / s)`` (equal when ``s`` divides ``k``).

    Notes
    -----
    Window ``o`` reads ``[o s, o s + k - 1]``; pixel ``i`` is read by the ``o`` with
    ``(i - k + 1) / s <= o <= i / s``, an interval of length ``(k - 1) / s`` holding
    ``floor(k / s)`` or ``ceil(k / s)`` integers. In 2-D the counts multiply: the question's
    64x64 kernel with stride 4 gives ``16 x 16 = 256`` windows per interior pixel.

    >>> windows_per_pixel(64, 4)
    (16, 16)
    >>> windows_per_pixel(3, 2)
    (1, 2)
    """
    k = _positive_int(kernel_size, "kernel_size")
    s = _positive_int(stride, "stride")
    return k // s, -(-k // s)


def random_weight_influence(counts: Any) -> np.ndarray:
    """Expected shape of the mean ``|d y / d x|`` map of a network with independent
    zero-mean weights: ``sqrt(routes)`` (up to a constant factor).

    Parameters
    ----------
    counts : array_like
        Route counts, e.g. :func:`rfanalysis.routes` (float or exact integers).

    Returns
    -------
    ndarray
        ``sqrt(counts)`` as float64, the same shape.

    Notes
    -----
    ``d y / d x_i`` is a sum over the routes from ``i`` (and over channel paths) of products
    of one weight per layer. Two different routes take different taps in some layer, so
    their products have zero covariance when the weights are independent with mean zero:
    ``E[(d y / d x_i)^2] = routes(i) * prod_l C_l var(w_l)`` exactly for a linear network
    (``influence(..., reduction="square")`` estimates it). ReLU gates every unit with
    probability about 1/2 whatever the tap, which keeps the proportion. The sum of many such
    terms is nearly Gaussian, so ``E|d y / d x_i|`` is about ``sqrt(2 / pi)`` times its root
    mean square: proportional to ``sqrt(routes(i))``. Where routes tend to a Gaussian of
    variance ``s^2`` (:func:`gaussian_limit`), their square root is a Gaussian of variance
    ``2 s^2``: the effective receptive field of a randomly initialised network (Luo et al.,
    NeurIPS 2016) is ``sqrt(2)`` wider than the route distribution.

    >>> random_weight_influence([1, 4, 9]).tolist()
    [1.0, 2.0, 3.0]
    """
    arr = as_float_counts(counts, hint="use 10 ** (log10 counts / 2) instead")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError("`counts` must be finite, non-negative route counts (not log10 counts)")
    return np.sqrt(arr)
