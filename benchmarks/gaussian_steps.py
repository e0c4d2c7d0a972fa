"""How backward-sampling accuracy sets SFBD's fixed point, with the exact Gaussian denoiser.

2-D Gaussian data (100,000 samples), 80 clean (0.08%), the rest noisy at tau = 0.5; the
analytic Gaussian model is refitted by moments at every stage, so the only approximation left
in SFBD is the sampler's discretisation. Prints the distance of the fitted mean and covariance
to the truth per iteration for several `sample.steps`.

Usage: python benchmarks/gaussian_steps.py [--out runs/gaussian-steps]   (~1 min on 2 CPUs)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sfbd.checkpoint import load_checkpoint
from sfbd.config import load_config
from sfbd.pipeline import Run

MU = np.array([0.3, -0.2])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gaussian-steps")
    ap.add_argument("--steps", type=int, nargs="+", default=[18, 32, 64, 256])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = out / "gauss.npy"
    x = np.random.default_rng(0).multivariate_normal(MU, COV, size=100_000)
    np.save(src, x.astype(np.float32))
    print("steps  per iteration k = 0..4: |mean - mu|, |cov - Sigma|_F")
    for steps in args.steps:
        cfg = load_config(
            overrides=[
                f"data.source={src}",
                "data.sigma=0.5",
                "data.clean_fraction=0.0008",
                "data.holdout=0.02",
                "model.kind=gaussian",
                "sfbd.iterations=4",
                f"sample.steps={steps}",
                "eval.num_samples=500",
            ]
        )
        run = Run(cfg, out / f"steps-{steps}", progress=False)
        errs = []
        for s in run.execute():
            ema = load_checkpoint(run.checkpoint_stem(s["iteration"]))[1]
            m = np.linalg.norm(ema.mean.numpy() - MU)
            c = np.linalg.norm(ema.cov.numpy() - COV)
            errs.append(f"{m:.4f}/{c:.4f}")
        print(f"{steps:>5}  " + "  ".join(errs), flush=True)


if __name__ == "__main__":
    main()
