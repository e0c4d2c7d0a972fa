"""Does a learned denoiser claim the posterior covariance it has? (Tweedie calibration.)

For an exact denoiser D(x_t, s) = E[x | x_t] with x_t = x + s z, Tweedie's second moment gives
Cov[x | x_t] = s^2 J, J = dD/dx_t, so E[s^2 tr J] = E|D - x|^2: the covariance the model claims
equals the error it makes, and J is symmetric. MMPS posterior sampling
(:mod:`sfbd.diffusion.posterior`) takes V = s^2 J as that covariance, so a model can be a good
denoiser (low error) and still a poor prior for MMPS if it claims the wrong covariance.

For each run directory given and each level s, on the run's held-out clean (reference)
samples x, this script reports

* claimed / actual: s^2 tr J (Hutchinson's estimator, E[v^T J v] = tr J over ``--probes``
  Gaussian v, one forward-mode JVP each) over |D(x + s z, s) - x|^2, summed over the samples:
  1 for an exact denoiser, below 1 when the model claims too little spread (a memorising
  model), above 1 when it claims too much;
* asymmetry: the median over samples of |w^T J v - v^T J w| / (|w^T J v| + |v^T J w|) for
  Gaussian v, w: 0 for an exact denoiser.

Usage:
    python benchmarks/tweedie_calibration.py RUN_DIR [RUN_DIR ...] [--rows 300]
        [--probes 8] [--sigmas 0.05,0.2,0.5,1,2] [--results FILE]

Writes a Markdown table with the machine, the date and the command to --results if given,
else to runs/tweedie_calibration/TWEEDIE_CALIBRATION.md; benchmarks/TWEEDIE_CALIBRATION.md
holds the committed run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import committed
import numpy as np
import torch
from torch.func import jvp

import sfbd
from sfbd.data import load_problem


def calibration(
    denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    s: float,
    probes: int,
    generator: torch.Generator,
) -> tuple[float, float]:
    """(claimed / actual, median asymmetry) of ``denoiser`` at level ``s`` on clean ``x``
    (N, *), as the module docstring defines them; all noise drawn from ``generator``."""
    xt = x + s * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    sig = torch.full((len(x),), float(s), dtype=x.dtype)

    def d(y: torch.Tensor) -> torch.Tensor:
        return denoiser(y, sig)

    def rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).reshape(len(a), -1).sum(1)

    trace, asym = 0.0, []
    for _ in range(probes):
        v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        w = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        den, jv = jvp(d, (xt,), (v,))
        _, jw = jvp(d, (xt,), (w,))
        trace += float(rows(v, jv).sum()) / probes
        a, b = rows(w, jv), rows(v, jw)
        asym.append(float(((a - b).abs() / (a.abs() + b.abs()).clamp_min(1e-30)).median()))
    actual = float(((den.detach() - x) ** 2).sum())
    return s * s * trace / actual, float(np.mean(asym))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run directories")
    ap.add_argument("--rows", type=int, default=300, help="held-out clean samples")
    ap.add_argument("--probes", type=int, default=8, help="Hutchinson probes per level")
    ap.add_argument("--sigmas", default="0.05,0.2,0.5,1,2", help="comma-separated levels")
    ap.add_argument("--results", default=None, help="Markdown file to write")
    args = ap.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    table = []
    for run_dir in args.runs:
        model = sfbd.load(run_dir, device="cpu")
        reference = load_problem(model.config).reference
        if reference is None:
            sys.exit(f"{run_dir}: the run has no held-out clean samples (benchmark mode only)")
        x = torch.as_tensor(np.asarray(reference[: args.rows]), dtype=torch.float32)
        g = torch.Generator().manual_seed(0)
        cells = [calibration(model.denoiser, x, s, args.probes, g) for s in sigmas]
        table.append([run_dir.name, *(f"{r:.2f} / {a:.2f}" for r, a in cells)])
        print(" | ".join(table[-1]), flush=True)
    out = committed.write_table(
        __file__,
        sys.argv[1:],
        title="Tweedie calibration of learned denoisers",
        note="Each cell: claimed / actual posterior variance (s^2 tr J over |D - x|^2; 1 is "
        "exact) / the Jacobian's median asymmetry (0 is exact), on "
        f"{args.rows} held-out clean samples, {args.probes} probes.",
        header=["run", *(f"s = {s:g}" for s in sigmas)],
        rows=table,
        committed="benchmarks/TWEEDIE_CALIBRATION.md",
        given=args.results,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
