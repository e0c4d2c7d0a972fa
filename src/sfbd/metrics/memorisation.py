"""Memorisation metrics: how close generated samples are to the clean training set.

Both inputs are sample arrays of shape ``(N, *)`` / ``(M, *)`` (NumPy arrays, memory-mapped
arrays or anything with ``len`` and row slicing ``a[i:j]``); trailing dimensions are flattened
so each row is one sample in ``R^D`` and distances are pixel (Euclidean) L2,
``d(a, b) = ||a - b||_2``. Rows are taken as they are read (no rescaling), so give both sets in
the same scale. Neither metric needs a reference set.

* Copy rate (:func:`copy_rate`): with ``d_1(x)``, ``d_2(x)`` the distances from ``x`` to its
  nearest and second-nearest clean sample, the fraction of generated samples with
  ``d_1 / d_2 < 1/3`` -- closer to one clean sample than a third of the way to any other
  (Yoon et al. 2023, "Diffusion probabilistic models generalize when they fail to memorize";
  Gu et al. 2023, "On memorization in diffusion models", arXiv:2310.02664).
* Nearest-neighbour ratio (:func:`nn_ratio`)::

      nn_ratio = median_i d_1(x_i) / median_j min_{k != j} ||c_j - c_k||,

  the generated samples' typical distance to the clean set over the clean set's own
  leave-one-out typical distance. For samples drawn from the clean set's law independently of
  it, both are the nearest-neighbour distance of a fresh point among ``M`` (resp. ``M - 1``)
  draws, so the ratio tends to 1; near 0 means copies (compare the data-copying test of
  Meehan et al. 2020, which uses a held-out set where this uses leave-one-out).

Distances come from :func:`nearest_two`, which works block by block (rows of ``x`` against
rows of ``clean``) on a torch device in float64, so memory stays bounded whatever ``N`` and
``M`` are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from sfbd.io.arrays import chunk_rows

__all__ = [
    "COPY_RATIO",
    "copy_rate",
    "copy_ratios",
    "leave_one_out",
    "memorisation_metrics",
    "nearest_pairs",
    "nearest_two",
    "nn_ratio",
]

COPY_RATIO = 1.0 / 3.0  # d_1 / d_2 below this: a copy (Yoon et al. 2023)

_MAX_ROWS = 2048  # rows per block at most: a block of squared distances is <= 32 MiB (float64)
_CACHE_ELEMENTS = 1 << 24  # clean sets up to this many values stay on the device (128 MiB)


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _rows(a: Any) -> Any:
    """``a`` as something with a length and row slicing: arrays and sample views as they are
    (not converted), anything else (lists) through ``np.asarray``."""
    return a if hasattr(a, "__len__") and hasattr(a, "__getitem__") else np.asarray(a)


def _features(a: Any, name: str) -> int:
    """The number of features ``D`` of the samples ``a`` (N, *); refuses an empty set."""
    if isinstance(a, np.ndarray) and a.ndim == 0:
        raise ValueError(f"{name} must have a leading sample dimension, got a scalar")
    if len(a) == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    shape = tuple(a.shape) if hasattr(a, "shape") else np.shape(np.asarray(a[0:1]))
    dim = math.prod(shape[1:])
    if dim == 0:
        raise ValueError(f"{name} has 0 features")
    return int(dim)


def _read(a: Any, start: int, stop: int, dim: int, name: str, dev: torch.device) -> torch.Tensor:
    """Rows ``start:stop`` of ``a`` as a finite float64 ``(B, D)`` tensor on ``dev``."""
    rows = np.asarray(a[start:stop], dtype=np.float64).reshape(stop - start, dim)
    if not rows.flags.writeable:  # a read-only (memory-mapped) float64 array: torch wants a copy
        rows = rows.copy()
    t = torch.from_numpy(rows).to(dev)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return t


def _block_rows(dim: int, chunk: int | None) -> int:
    if chunk is None:
        return min(_MAX_ROWS, chunk_rows((0, dim)))
    if int(chunk) < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return int(chunk)


def _scan(
    x: Any,
    clean: Any,
    *,
    chunk: int | None,
    device: str | torch.device | None,
    self_excluded: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances to the two nearest rows of ``clean`` (and the nearest's index) for every row
    of ``x``; with ``self_excluded`` (``x`` is ``clean``) row ``i`` never matches itself."""
    x, clean = _rows(x), _rows(clean)
    dx, dc = _features(x, "x"), _features(clean, "clean")
    if dx != dc:
        raise ValueError(f"x has {dx} features but clean has {dc}")
    n, m = len(x), len(clean)
    if m < 2:
        raise ValueError(f"clean needs at least 2 samples (a nearest and a second), got {m}")
    dev, step = _device(device), _block_rows(dx, chunk)

    def read_clean() -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        for start in range(0, m, step):
            c = _read(clean, start, min(start + step, m), dc, "clean", dev)
            yield start, c, (c * c).sum(1)

    cached = list(read_clean()) if m * dc <= _CACHE_ELEMENTS else None
    d_out = np.empty((n, 2), dtype=np.float64)
    i_out = np.empty(n, dtype=np.int64)
    for xs in range(0, n, step):
        a = _read(x, xs, min(xs + step, n), dx, "x", dev)  # (B, D)
        rows = torch.arange(xs, xs + len(a), device=dev)[:, None]  # (B, 1) global row indices
        a_sq = (a * a).sum(1)
        best_d = torch.full((len(a), 2), math.inf, dtype=torch.float64, device=dev)
        best_i = torch.full((len(a), 2), -1, dtype=torch.int64, device=dev)
        for cs, c, c_sq in cached if cached is not None else read_clean():
            # candidates from the expansion ||a||^2 + ||c||^2 - 2 a.c, then their distances
            # recomputed from the differences (exactly 0 for a copy, no cancellation)
            sq = a_sq[:, None] + c_sq[None, :] - 2.0 * (a @ c.T)  # (B, Bc)
            cols = torch.arange(cs, cs + len(c), device=dev)[None, :]
            if self_excluded:
                sq = sq.masked_fill(rows == cols, math.inf)
            j = torch.topk(sq, min(2, len(c)), dim=1, largest=False).indices  # (B, k)
            diff = a[:, None, :] - c[j]  # (B, k, D)
            exact = (diff * diff).sum(-1)
            if self_excluded:
                exact = exact.masked_fill(j + cs == rows, math.inf)
            cand_d = torch.cat([best_d, exact], dim=1)
            cand_i = torch.cat([best_i, j + cs], dim=1)
            order = torch.sort(cand_d, dim=1, stable=True).indices[:, :2]
            best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
        d_out[xs : xs + len(a)] = best_d.sqrt().cpu().numpy()
        i_out[xs : xs + len(a)] = best_i[:, 0].cpu().numpy()
    return d_out[:, 0].copy(), d_out[:, 1].copy(), i_out


def nearest_two(
    x: Any,
    clean: Any,
    *,
    chunk: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Distances from each sample to its nearest and second-nearest clean sample.

    .. math::

        d_1(x_i) = \min_j \|x_i - c_j\|_2, \qquad
        d_2(x_i) = \min_{j \ne j^*(i)} \|x_i - c_j\|_2, \qquad
        j^*(i) = \arg\min_j \|x_i - c_j\|_2 .

    Work is done in blocks of ``chunk`` rows of ``x`` against ``chunk`` rows of ``clean``, in
    float64 on ``device``: a block's candidates are found from
    ``||a||^2 + ||c||^2 - 2 a.c`` (one matrix product) and their distances recomputed from
    ``a - c``, so an exact copy gives ``d_1 == 0`` exactly. Memory is ``O(chunk^2 + chunk D)``
    on the device, plus the clean set itself when it has at most 2^24 values (kept there,
    read once; a larger one is read again for every block of ``x``). Among exactly equal
    distances (duplicated clean samples) which index is returned is unspecified.

    Args:
        x: samples ``(N, *)``, ``N >= 1``, flattened to ``(N, D)``.
        clean: clean samples ``(M, *)``, ``M >= 2``, with the same ``D``.
        chunk: rows per block (default: about 2^20 values per block, at most 2048 rows).
        device: torch device of the work (default ``cuda`` when available, else ``cpu``);
            it must support float64.

    Returns:
        ``(d1, d2, idx)``: float64 ``(N,)``, float64 ``(N,)`` with ``d1 <= d2``, and the
        int64 ``(N,)`` index in ``clean`` of each nearest clean sample.

    Raises:
        ValueError: an empty ``x``, ``M < 2``, different ``D``, or non-finite values.
    """
    return _scan(x, clean, chunk=chunk, device=device, self_excluded=False)


def leave_one_out(
    clean: Any, *, chunk: int | None = None, device: str | torch.device | None = None
) -> np.ndarray:
    r"""The distance from each clean sample to its nearest *other* clean sample.

    .. math::  \ell_j = \min_{k \ne j} \|c_j - c_k\|_2

    (0 for a sample that has a duplicate, as it should). Computed as in :func:`nearest_two`,
    with the diagonal left out.

    Args:
        clean: clean samples ``(M, *)``, ``M >= 2``.
        chunk, device: as in :func:`nearest_two`.

    Returns:
        float64 ``(M,)``.
    """
    return _scan(clean, clean, chunk=chunk, device=device, self_excluded=True)[0]


def copy_ratios(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """``d1 / d2`` per sample (float64, shape of ``d1``), with ``0 / 0`` read as 0: an exact
    copy of a clean sample that is itself duplicated in the clean set is still a copy."""
    d1, d2 = np.asarray(d1, dtype=np.float64), np.asarray(d2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d1 == 0.0, 0.0, d1 / d2)


def _check_ratio(ratio: float) -> float:
    r = float(ratio)
    if not (0.0 < r <= 1.0):
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    return r


def copy_rate(
    x: Any,
    clean: Any,
    ratio: float = COPY_RATIO,
    *,
    chunk: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Fraction of generated samples that copy a clean sample.

    .. math::

        \mathrm{copy\_rate} = \frac{1}{N} \sum_i \mathbb{1}\big[d_1(x_i) < r\, d_2(x_i)\big]

    with ``d_1``, ``d_2`` from :func:`nearest_two` and ``r = ratio`` (1/3: Yoon et al. 2023;
    Gu et al. 2023). The test is ``d_1 / d_2 < r`` on :func:`copy_ratios`, so an exact copy
    (``d_1 = 0``) always counts, even of a duplicated clean sample (``d_2 = 0``).

    Args:
        x: generated samples ``(N, *)``.
        clean: clean training samples ``(M, *)``, ``M >= 2``.
        ratio: ``r`` in ``(0, 1]``.
        chunk, device: as in :func:`nearest_two`.

    Returns:
        The fraction in ``[0, 1]``.
    """
    r = _check_ratio(ratio)
    d1, d2, _ = nearest_two(x, clean, chunk=chunk, device=device)
    return float(np.mean(copy_ratios(d1, d2) < r))


def _median_ratio(d1: np.ndarray, loo_median: float) -> float:
    num = float(np.median(d1))
    if loo_median == 0.0:
        return math.nan if num == 0.0 else math.inf
    return num / loo_median


def nn_ratio(
    x: Any,
    clean: Any,
    *,
    clean_median: float | None = None,
    chunk: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    r"""Median nearest-clean distance of generated samples over the clean set's own.

    .. math::

        \mathrm{nn\_ratio} = \frac{\operatorname{median}_i d_1(x_i)}
            {\operatorname{median}_j \min_{k \ne j} \|c_j - c_k\|_2}

    (denominator: :func:`leave_one_out`). 1: the samples are no closer to the clean set than
    its members are to each other, as for fresh draws from the same law (the ratio tends to 1
    as ``M`` grows); near 0: copies. When the denominator is 0 (more than half the clean set
    has an exact duplicate) the ratio is undefined: ``inf`` if the numerator is positive,
    ``nan`` if it is 0 too.

    Args:
        x: generated samples ``(N, *)``.
        clean: clean training samples ``(M, *)``, ``M >= 2``.
        clean_median: the denominator if already known (it depends on ``clean`` only, so a
            run can compute it once, ``np.median(leave_one_out(clean))``); ``None``: computed.
        chunk, device: as in :func:`nearest_two`.

    Returns:
        The ratio, ``>= 0`` (``inf`` or ``nan`` as above).
    """
    d1, _, _ = nearest_two(x, clean, chunk=chunk, device=device)
    if clean_median is None:
        clean_median = float(np.median(leave_one_out(clean, chunk=chunk, device=device)))
    return _median_ratio(d1, float(clean_median))


def memorisation_metrics(
    x: Any,
    clean: Any,
    *,
    ratio: float = COPY_RATIO,
    clean_median: float | None = None,
    chunk: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """``{"copy_rate": ..., "nn_ratio": ...}`` of generated samples ``x`` (N, *) against the
    clean set ``clean`` (M, *), ``M >= 2``, from one :func:`nearest_two` pass over ``x`` and one
    :func:`leave_one_out` pass over ``clean`` (none when ``clean_median`` is given).

    See :func:`copy_rate` and :func:`nn_ratio` for the definitions and arguments.
    """
    r = _check_ratio(ratio)
    d1, d2, _ = nearest_two(x, clean, chunk=chunk, device=device)
    if clean_median is None:
        clean_median = float(np.median(leave_one_out(clean, chunk=chunk, device=device)))
    return {
        "copy_rate": float(np.mean(copy_ratios(d1, d2) < r)),
        "nn_ratio": _median_ratio(d1, float(clean_median)),
    }


def nearest_pairs(
    x: Any,
    clean: Any,
    n: int,
    *,
    chunk: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n`` generated samples, each one's nearest clean sample and ``d_1 / d_2``.

    What :func:`sfbd.report.nearest_png` draws. Only ``x[:n]`` is compared (cost ``n M D``).

    Args:
        x: generated samples ``(N, *)``.
        clean: clean samples ``(M, *)``, ``M >= 2``.
        n: pairs wanted, ``>= 1`` (fewer when ``N < n``).
        chunk, device: as in :func:`nearest_two`.

    Returns:
        ``(samples, nearest, ratios)``: float64 ``(n, *)`` rows ``x[:n]``, float64 ``(n, *)``
        their nearest clean rows (in ``clean``'s sample shape), float64 ``(n,)``
        :func:`copy_ratios` (a copy: ``< 1/3``).
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    x, clean = _rows(x), _rows(clean)
    _features(x, "x")
    head = np.asarray(x[0 : int(n)], dtype=np.float64)
    d1, d2, idx = nearest_two(head, clean, chunk=chunk, device=device)
    nearest = np.concatenate([np.asarray(clean[int(i) : int(i) + 1], np.float64) for i in idx])
    return head, nearest, copy_ratios(d1, d2)
