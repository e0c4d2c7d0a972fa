"""Sample-based distances between point clouds, and PSNR.

All functions take NumPy arrays of shape ``(N, *)``; trailing dimensions are flattened so each
row is one sample in ``R^D`` (a 1-D array of shape ``(N,)`` is read as ``N`` samples in ``R^1``).
Computation is in float64 and every function returns a Python ``float``.

* Sliced Wasserstein-2 (:func:`sliced_wasserstein`)::

      SW_2(mu, nu) = sqrt( E_theta [ W_2^2(theta#mu, theta#nu) ] ),

  with ``theta`` uniform on the unit sphere ``S^{D-1}`` (Monte Carlo over a fixed set of
  directions) and the 1-D distance computed from quantile functions,
  ``W_2^2(a, b) = int_0^1 (Q_a(u) - Q_b(u))^2 du``.
* Unbiased kernel MMD^2 with a Gaussian (RBF) kernel (:func:`mmd_rbf`),
  ``k(a, b) = exp(-||a - b||^2 / (2 h^2))``.
* PSNR (:func:`psnr`): ``10 log10(R^2 / mean((x - ref)^2))``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.distance import cdist, pdist

from sfbd.io.arrays import CHUNK_ELEMENTS, chunk_rows

__all__ = [
    "bandwidth_median",
    "data_range_of",
    "mmd_rbf",
    "psnr",
    "sliced_wasserstein",
]


def _as_samples(a: np.ndarray, name: str) -> np.ndarray:
    """Return ``a`` as a finite float64 ``(N, D)`` array; raise ``ValueError`` otherwise."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a leading sample dimension, got a scalar")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    arr = arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 features")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = _as_samples(x, "x")
    ys = _as_samples(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x has {xs.shape[1]} features but y has {ys.shape[1]}")
    return xs, ys


def _rows(a: object) -> np.ndarray:
    """``a`` as something with a length and row indexing: arrays and sample views as they are
    (not converted), anything else (lists) through ``np.asarray``."""
    return a if hasattr(a, "shape") and hasattr(a, "__getitem__") else np.asarray(a)


def _large(a: np.ndarray) -> bool:
    """Whether ``a`` is too large to convert to float64 whole (it is read in chunks)."""
    return len(a) * math.prod(np.shape(a)[1:]) > CHUNK_ELEMENTS if np.ndim(a) else False


def _dims(x: np.ndarray, y: np.ndarray) -> int:
    """The feature count shared by ``x`` and ``y``, from their shapes alone."""
    dx, dy = (math.prod(np.shape(a)[1:]) for a in (x, y))
    for a, name in ((x, "x"), (y, "y")):
        if len(a) == 0:
            raise ValueError(f"{name} is empty (0 samples)")
    if dx != dy:
        raise ValueError(f"x has {dx} features but y has {dy}")
    return dx


def _projected(a: np.ndarray, name: str, theta: np.ndarray) -> np.ndarray:
    """``a`` (N, *) flattened and projected on ``theta`` (D, P), chunk by chunk: (N, P)."""
    step = chunk_rows(np.shape(a))
    out = np.empty((len(a), theta.shape[1]))
    for start in range(0, len(a), step):
        out[start : start + step] = _as_samples(a[start : start + step], name) @ theta
    return out


def _subsample(a: np.ndarray, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_samples`` rows of ``a``, drawn without replacement (order kept)."""
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    if a.shape[0] <= max_samples:
        return a
    idx = np.sort(rng.choice(a.shape[0], size=max_samples, replace=False))
    return a[idx]


def _random_directions(dim: int, count: int, seed: int) -> np.ndarray:
    """``count`` unit vectors uniform on ``S^{dim-1}``, shape ``(dim, count)``; data-independent."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((count, dim))
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    # A zero Gaussian draw has probability 0; guard anyway.
    norms[norms == 0.0] = 1.0
    return (g / norms).T


def sliced_wasserstein(
    x: np.ndarray, y: np.ndarray, *, projections: int = 256, seed: int = 0
) -> float:
    r"""Sliced Wasserstein-2 distance between the empirical distributions of ``x`` and ``y``.

    .. math::

        \mathrm{SW}_2 = \Big(\frac{1}{P}\sum_{p=1}^{P}
            \int_0^1 \big(Q_{x\cdot\theta_p}(u) - Q_{y\cdot\theta_p}(u)\big)^2\,du\Big)^{1/2}

    where ``theta_1..theta_P`` are ``projections`` unit directions in ``R^D`` drawn (Gaussian
    then normalised, i.e. uniform on the sphere) from ``np.random.default_rng(seed)`` -- the same
    seed and ``D`` always give the same directions, whatever the data -- and ``Q_a`` is the
    empirical quantile function of a 1-D sample ``a`` sorted ascending,
    ``Q_a(u) = a_(k)`` for ``u in [k/N, (k+1)/N)``.

    Quantile rule: the integral is evaluated *exactly* for the two step functions. When
    ``N == M`` this is ``mean_i (x_(i) - y_(i))^2`` (sorted samples paired, equivalently the
    midpoint rule at levels ``(i + 0.5)/N``). When ``N != M`` the interval ``[0, 1]`` is split at
    the union of the breakpoints ``{k/N} U {j/M}``; on each piece both quantile functions are
    constant, so the integral is the width-weighted sum of squared differences. This is the exact
    1-D W2 between the empirical measures (e.g. repeating every sample of ``x`` twice leaves the
    result unchanged).

    Args:
        x: samples, shape ``(N, *)``, flattened to ``(N, D)``.
        y: samples, shape ``(M, *)``, flattened to ``(M, D)``; same ``D`` as ``x``.
        projections: number of random directions ``P`` (>= 1).
        seed: seed of the direction generator.

    Returns:
        ``SW_2`` as a float (0 for identical sets, symmetric in ``x`` and ``y``).
    """
    if projections < 1:
        raise ValueError(f"projections must be >= 1, got {projections}")
    if _large(x) or _large(y):  # projected chunk by chunk: memory (N + M) x P, not x D
        dim = _dims(x, y)
        theta = _random_directions(dim, projections, seed)
        px, py = np.sort(_projected(x, "x", theta), axis=0), np.sort(_projected(y, "y", theta), 0)
    else:
        xs, ys = _pair(x, y)
        theta = _random_directions(xs.shape[1], projections, seed)  # (D, P)
        px = np.sort(xs @ theta, axis=0)  # (N, P)
        py = np.sort(ys @ theta, axis=0)  # (M, P)
    n, m = px.shape[0], py.shape[0]
    if n == m:
        w2_sq = np.mean((px - py) ** 2, axis=0)
    else:
        # Breakpoints k/n and j/m that are equal as rationals are equal as floats (IEEE division
        # is correctly rounded), so np.unique merges them; zero-width pieces would be harmless.
        edges = np.unique(np.concatenate([np.arange(n + 1) / n, np.arange(m + 1) / m]))
        widths = np.diff(edges)  # (K,)
        mids = 0.5 * (edges[:-1] + edges[1:])
        ix = np.minimum(np.floor(mids * n).astype(np.int64), n - 1)
        iy = np.minimum(np.floor(mids * m).astype(np.int64), m - 1)
        w2_sq = widths @ (px[ix] - py[iy]) ** 2  # (P,)
    return float(math.sqrt(max(float(np.mean(w2_sq)), 0.0)))


def bandwidth_median(
    x: np.ndarray, y: np.ndarray, *, max_samples: int = 2000, seed: int = 0
) -> float:
    """Median heuristic for the RBF bandwidth.

    ``h = median{ ||z_i - z_j|| : i < j }`` over the pooled set ``z = x U y``, where ``x`` and
    ``y`` are first each subsampled to at most ``max_samples`` rows without replacement using
    ``np.random.default_rng(seed)`` (``x`` first, then ``y`` -- the same subsamples that
    :func:`mmd_rbf` uses). Only the zero self-distances ``i == j`` are excluded. If that median is
    0 (e.g. many duplicated points), the median of the positive distances is used instead, and
    ``1.0`` if all points coincide.

    Args:
        x: samples ``(N, *)``. y: samples ``(M, *)`` with the same number of features.

    Returns:
        The bandwidth ``h > 0``.
    """
    x, y = _rows(x), _rows(y)
    if np.ndim(x) == 0 or np.ndim(y) == 0:
        _pair(x, y)  # refused there
    rng = np.random.default_rng(seed)
    xs, ys = _pair(_subsample(x, max_samples, rng), _subsample(y, max_samples, rng))
    return _median_bandwidth(np.concatenate([xs, ys], axis=0))


def _median_bandwidth(z: np.ndarray) -> float:
    if z.shape[0] < 2:
        return 1.0
    d = pdist(z, metric="euclidean")
    h = float(np.median(d))
    if h > 0.0:
        return h
    pos = d[d > 0.0]
    return float(np.median(pos)) if pos.size else 1.0


def mmd_rbf(
    x: np.ndarray,
    y: np.ndarray,
    *,
    bandwidth: float | None = None,
    max_samples: int = 2000,
    seed: int = 0,
) -> float:
    r"""Unbiased estimate of the squared MMD with a Gaussian kernel.

    .. math::

        \widehat{\mathrm{MMD}}^2 = \frac{1}{n(n-1)}\sum_{i\ne j} k(x_i, x_j)
          + \frac{1}{m(m-1)}\sum_{i\ne j} k(y_i, y_j)
          - \frac{2}{nm}\sum_{i,j} k(x_i, y_j),
        \qquad k(a, b) = \exp\!\big(-\|a - b\|^2 / (2h^2)\big).

    Being a U-statistic it is unbiased for the population MMD^2 and can be slightly negative
    when the two distributions are equal. To bound cost, ``x`` and ``y`` are each subsampled to
    at most ``max_samples`` rows without replacement with ``np.random.default_rng(seed)``
    (kernel matrices are float64, ``max_samples**2`` entries each).

    Bandwidth rule (``bandwidth=None``): ``h`` is the median of the pairwise Euclidean distances
    of the pooled subsampled set ``x U y``, excluding the zero diagonal (see
    :func:`bandwidth_median`).

    Args:
        x: samples ``(N, *)`` with ``N >= 2``.
        y: samples ``(M, *)`` with ``M >= 2`` and the same number of features.
        bandwidth: kernel width ``h > 0``, or ``None`` for the median heuristic.
        max_samples: cap on the rows used from each input.
        seed: seed for subsampling.

    Returns:
        The MMD^2 estimate as a float.
    """
    x, y = _rows(x), _rows(y)
    if np.ndim(x) == 0 or np.ndim(y) == 0 or len(x) < 2 or len(y) < 2:
        xs, ys = _pair(x, y)  # a scalar or an empty set is refused here
        raise ValueError(
            f"unbiased MMD needs at least 2 samples per set, got {xs.shape[0]} and {ys.shape[0]}"
        )
    if max_samples < 2:
        raise ValueError(f"max_samples must be >= 2, got {max_samples}")
    # rows are drawn before anything is converted, so a large (memory-mapped) input is read
    # only at the rows used
    rng = np.random.default_rng(seed)
    xs, ys = _pair(_subsample(x, max_samples, rng), _subsample(y, max_samples, rng))
    if bandwidth is None:
        h = _median_bandwidth(np.concatenate([xs, ys], axis=0))
    else:
        h = float(bandwidth)
        if not (math.isfinite(h) and h > 0.0):
            raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth}")
    gamma = 1.0 / (2.0 * h * h)

    def mean_offdiag(a: np.ndarray) -> float:
        k = np.exp(-gamma * cdist(a, a, metric="sqeuclidean"))
        return (float(k.sum()) - float(np.trace(k))) / (a.shape[0] * (a.shape[0] - 1))

    kxy = float(np.exp(-gamma * cdist(xs, ys, metric="sqeuclidean")).mean())
    return mean_offdiag(xs) + mean_offdiag(ys) - 2.0 * kxy


def psnr(x: np.ndarray, ref: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / mean((x - ref)^2))``.

    The mean runs over all elements. Returns ``+inf`` when ``x == ref`` exactly.

    Args:
        x: estimate, any shape.
        ref: reference, same shape as ``x``.
        data_range: peak-to-peak range ``R > 0`` of the signal (2.0 for images in [-1, 1]; see
            :func:`data_range_of` for vectors).
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"x has shape {a.shape} but ref has shape {b.shape}")
    if a.size == 0:
        raise ValueError("x and ref are empty")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("x or ref contains non-finite values (NaN or inf)")
    r = float(data_range)
    if not (math.isfinite(r) and r > 0.0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(r * r / mse)


def data_range_of(ref: np.ndarray) -> float:
    """``max(ref) - min(ref)`` over all elements (the PSNR range for vector data)."""
    b = np.asarray(ref, dtype=np.float64)
    if b.size == 0:
        raise ValueError("ref is empty")
    if not np.all(np.isfinite(b)):
        raise ValueError("ref contains non-finite values (NaN or inf)")
    return float(b.max() - b.min())
