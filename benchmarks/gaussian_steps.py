"""How backward-sampling accuracy sets SFBD's fixed point, with the exact Gaussian denoiser.

2-D Gaussian data (100,000 samples), 80 clean (0.08%), the rest noisy at tau = 0.5; the
analytic Gaussian model is refitted by moments at every stage, so the only approximation left
in SFBD is the sampler's discretisation. Prints the distance of the fitted mean and covariance
to the truth per iteration for several `sample.steps`.

Usage: python benchmarks/gaussian_steps.py [--out runs/gaussian-steps]   (~1 min on 2 CPUs)

The truth (MU, COV), the data file, the settings and the exact distances are importable
(benchmarks/quality.py uses them for its Gaussian section).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sfbd.config import load_config
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.run.runner import Run

MU = np.array([0.3, -0.2])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])
NUM_SAMPLES = 100_000
# the problem: tau = 0.5, 80 clean samples of 98,000, the analytic model, K = 4
SETTINGS = {
    "data.sigma": "0.5",
    "data.clean_fraction": "0.0008",
    "data.holdout": "0.02",
    "model.kind": "gaussian",
    "sfbd.iterations": "4",
    "eval.num_samples": "500",
}


def write_data(path: Path, n: int = NUM_SAMPLES, seed: int = 0) -> Path:
    """``n`` draws of N(MU, COV) (fixed seed) as float32 .npy at ``path``; returns ``path``."""
    x = np.random.default_rng(seed).multivariate_normal(MU, COV, size=n).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or not np.array_equal(np.load(path), x):
        np.save(path, x)
    return path


def fitted_moments(stem: Path) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of the EMA Gaussian model saved at checkpoint ``stem``."""
    ema = load_checkpoint(stem)[1]
    return ema.mean.numpy(), ema.cov.numpy()


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_w2(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Closed-form 2-Wasserstein distance between N(mu1, cov1) and N(mu2, cov2).

    W2^2 = |mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov2^1/2 cov1 cov2^1/2)^1/2).
    """
    r = _psd_sqrt(cov2)
    cross = np.trace(_psd_sqrt(r @ cov1 @ r))
    w2sq = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * cross)
    return float(np.sqrt(max(w2sq, 0.0)))


def errors(mean: np.ndarray, cov: np.ndarray) -> dict[str, float]:
    """Exact distances of N(mean, cov) to the truth N(MU, COV)."""
    return {
        "mean_err": float(np.linalg.norm(mean - MU)),
        "cov_err": float(np.linalg.norm(cov - COV)),
        "rel_cov_err": float(np.linalg.norm(cov - COV) / np.linalg.norm(COV)),
        "w2": gaussian_w2(mean, cov, MU, COV),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gaussian-steps")
    ap.add_argument("--steps", type=int, nargs="+", default=[18, 32, 64, 256])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = write_data(out / "gauss.npy")
    print("steps  per iteration k = 0..4: |mean - mu|, |cov - Sigma|_F")
    for steps in args.steps:
        cfg = load_config(
            overrides=[
                f"data.source={src}",
                *(f"{k}={v}" for k, v in SETTINGS.items()),
                f"sample.steps={steps}",
            ]
        )
        run = Run(cfg, out / f"steps-{steps}", progress=False)
        errs = []
        for s in run.execute():
            e = errors(*fitted_moments(run.checkpoint_stem(s["iteration"])))
            errs.append(f"{e['mean_err']:.4f}/{e['cov_err']:.4f}")
        print(f"{steps:>5}  " + "  ".join(errs), flush=True)


if __name__ == "__main__":
    main()
