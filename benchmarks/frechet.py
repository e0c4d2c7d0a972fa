"""The Fréchet distance of FID at D = 2048: symmetric eigenproblems against scipy.linalg.sqrtm.

:func:`sfbd.metrics.fid.frechet_distance` takes ``tr (S_1 S_2)^{1/2}`` from the eigenvalues
of the symmetric ``F^T S_2 F``, with ``S_1 = F F^T`` from a pivoted Cholesky factorisation; it
used to take it from ``scipy.linalg.sqrtm(S_1 @ S_2)``, as pytorch-fid does
(:func:`frechet_distance_sqrtm` below is that code). This script builds two sets of FID-like
statistics and times both on them.

The statistics: no Inception features are at hand offline, so ``N`` synthetic "pool features"
per set, ``relu(G W + b) * c`` in float32 with Gaussian ``G`` ``(N, D / 8)``, a random ``W``
``(D / 8, D)``, per-feature scales ``c`` log-uniform over two decades (network features differ
in scale) and a sixteenth of the features dead (always 0, as some network features nearly are):
both covariances are singular (rank ``D - D / 16``), with a condition number of ~1e6 on the
rest, like real ones. The second set perturbs ``W`` and shifts ``b``. Mean and covariance come
from :func:`sfbd.metrics.fid.feature_stats`, as for FID.

Each formula runs ``--repeats`` times, the two alternating (after one untimed warm-up call of
the new one), so that a change of load on a shared machine affects both; the table gives the
median wall time of each, their ratio and the relative difference of the two distances. The
last line is the verdict: ``PASS: ...``, or ``FAIL: ...`` and exit status 1 when the ratio is
below ``--min-speedup`` (5) or the difference above ``--max-rel`` (1e-6).

Usage: python benchmarks/frechet.py [--dim 2048] [--samples 10000] [--repeats 3] [--threads N]
(about a minute with ``OMP_NUM_THREADS=1`` at the defaults, almost all in sqrtm; ``--dim 64``
in a second, as tests/test_fid.py runs it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg

from sfbd.metrics.fid import feature_stats, frechet_distance


def frechet_distance_sqrtm(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """The former :func:`frechet_distance` (pytorch-fid's formula): ``||mu1 - mu2||^2 + tr S_1 +
    tr S_2 - 2 tr sqrtm(S_1 S_2)``, with ``eps * I`` added to both covariances when the root is
    not finite, and the imaginary part dropped when it is at most 1e-3 on the diagonal."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.all(np.isfinite(covmean)):
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if not np.all(np.isfinite(covmean)):
        raise ValueError("sqrtm(sigma1 @ sigma2) is not finite even after adding eps * I")
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > 1e-3:
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has an imaginary component {imag:.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def synthetic_stats(
    dim: int, samples: int, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Two ``(mu, sigma)`` pairs of ``samples`` synthetic ``dim``-d features each (see above)."""
    rng = np.random.default_rng(seed)
    r = max(dim // 8, 1)
    w = rng.standard_normal((r, dim)) / np.sqrt(r)
    c = 10.0 ** (-2.0 * rng.uniform(size=dim))
    dead = dim // 16
    out = []
    for w_k, shift in ((w, 0.0), (w + 0.3 * rng.standard_normal((r, dim)) / np.sqrt(r), 0.1)):
        f = np.maximum(rng.standard_normal((samples, r)) @ w_k + shift, 0.0) * c
        f = f.astype(np.float32)  # as features come out of the network
        f[:, :dead] = 0.0
        out.append(feature_stats(f))
    return out[0], out[1]


def _time(fns: list[Callable[[], float]], repeats: int) -> list[tuple[float, float]]:
    """(median wall seconds over ``repeats`` calls, the value of the last call) of each of
    ``fns``, called in turn ``repeats`` times."""
    times: list[list[float]] = [[] for _ in fns]
    values = [float("nan")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            values[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return [(statistics.median(t), v) for t, v in zip(times, values, strict=True)]


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.environ.get("OMP_NUM_THREADS", "?")
    pools = sorted({f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()})
    return ", ".join(pools) or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=int, default=2048, help="feature dimension D (2048)")
    ap.add_argument("--samples", type=int, default=10_000, help="features per set N (10,000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls of each formula (3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as set)")
    ap.add_argument("--min-speedup", type=float, default=5.0, help="fail below this ratio (5)")
    ap.add_argument("--max-rel", type=float, default=1e-6, help="fail above this difference")
    args = ap.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)

    t0 = time.perf_counter()
    (m1, s1), (m2, s2) = synthetic_stats(args.dim, args.samples, args.seed)
    t_stats = time.perf_counter() - t0
    rank = int(np.linalg.matrix_rank(s1)) if args.dim <= 512 else None

    frechet_distance(m1, s1, m2, s2)  # warm-up (BLAS thread pool, page faults)
    (t_new, new), (t_old, old) = _time(
        [
            lambda: frechet_distance(m1, s1, m2, s2),
            lambda: frechet_distance_sqrtm(m1, s1, m2, s2),
        ],
        args.repeats,
    )
    ratio = t_old / t_new
    rel = abs(new - old) / abs(old)

    print(f"Fréchet distance, D = {args.dim}, N = {args.samples} per set, seed {args.seed}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; BLAS threads: {_blas_threads()}; "
        f"numpy {np.__version__}, scipy {scipy.__version__}; statistics built in {t_stats:.1f} s"
        + (f"; rank of sigma1 {rank}" if rank is not None else "")
    )
    print(f"median of {args.repeats} calls each\n")
    print("| formula | seconds | distance |")
    print("|---|---|---|")
    print(f"| old: scipy.linalg.sqrtm(S1 @ S2) | {t_old:.3f} | {old:.10g} |")
    print(f"| new: S = F F^T (dpstrf), eigvalsh(F^T S' F) | {t_new:.3f} | {new:.10g} |")
    print(f"\nspeed-up {ratio:.1f}x; relative difference {rel:.2e}\n")

    problems = []
    if ratio < args.min_speedup:
        problems.append(f"speed-up {ratio:.1f}x < {args.min_speedup:g}x")
    if not rel <= args.max_rel:
        problems.append(f"relative difference {rel:.2e} > {args.max_rel:g}")
    summary = f"speed-up {ratio:.1f}x, relative difference {rel:.2e} at D = {args.dim}"
    if problems:
        print(f"FAIL: {'; '.join(problems)} ({summary})")
        return 1
    print(f"PASS: {summary} (limits: >= {args.min_speedup:g}x, <= {args.max_rel:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
