"""What MMPS's curvature floor does to the posterior samples of a learned denoiser.

MMPS solves (s_y^2 I + A V A^T) u = y - A D by conjugate gradients, with V = sigma^2 J from
vector-Jacobian products of the denoiser (:mod:`sfbd.diffusion.posterior`). A true M has
p^T M p >= s_y^2 |p|^2; a learned J can give less, even ~0, and one CG step then scales the
guidance without bound. With the floor (the default), CG stops such a row.

For each run directory given (a masked or blurred sfbd run with the clean truth of its noisy
rows: benchmark mode), this script loads stage ``--stage``, draws E_{stage+1} of every noisy
training row exactly as the run's next stage would (its sampler, steps and keyed noise), with
and without the floor and for each ``--cg-steps``, and reports against the clean originals:
the RMSE, the RMSE of the best 99% of rows, the median row RMSE, max |x| and the rows with
some |x_j| > 1.5 (the data lie in [-1, 1]).

Usage:
    python benchmarks/mmps_floor.py RUN_DIR [RUN_DIR ...] [--stage 1] [--cg-steps 1,3]
        [--results FILE]

Writes a Markdown table with the machine, the date and the command to --results if given,
else to runs/mmps_floor/MMPS_FLOOR.md; benchmarks/MMPS_FLOOR.md holds the committed run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import committed
import numpy as np
import torch

import sfbd
from sfbd.data import Problem, load_problem
from sfbd.diffusion.posterior import posterior_sample
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.noise.linear import LinearCorruption
from sfbd.rng import stream_id

HEADER = [
    "run",
    "floor",
    "cg",
    "RMSE",
    "RMSE (best 99%)",
    "median row",
    "max abs x",
    "rows with abs x > 1.5",
]


def draws(model: sfbd.Model, prob: Problem, floor: bool, cg_steps: int, stage: int) -> np.ndarray:
    """E_{stage+1} of the run's noisy training rows, drawn by ``model`` (stage ``stage``)."""
    cfg, noise = model.config, prob.corruption
    y = torch.as_tensor(np.asarray(prob.noisy))
    keys = torch.arange(len(y))
    x = posterior_sample(
        model.denoiser,
        noise.operator(keys, y),
        y,
        noise.sigma**2,
        edm_sigmas(cfg.sample.steps),
        keys=keys,
        stream=stream_id("denoise", cfg.seed, stage + 1),
        shape=tuple(y.shape[1:]),
        sampler=cfg.sample.sampler,
        cg_steps=cg_steps,
        curvature_floor=floor,
    )
    return x.numpy()


def load_run(run_dir: Path, stage: int) -> tuple[sfbd.Model, Problem]:
    """The run's model at ``stage`` and its problem (read once per run)."""
    model = sfbd.load(run_dir, stage=stage, device="cpu")
    prob = load_problem(model.config)
    if not isinstance(prob.corruption, LinearCorruption) or prob.noisy_truth is None:
        sys.exit(f"{run_dir}: not a benchmark-mode mask or blur run (data.naive unset)")
    return model, prob


def row(name: str, floor: bool | None, cg: int, x: np.ndarray, truth: np.ndarray) -> list[str]:
    """One table row; ``floor`` None: the raw observations."""
    n = len(x)
    e2 = np.sort(((x - truth) ** 2).reshape(n, -1).mean(1))
    big = np.abs(x.reshape(n, -1)).max(1)
    return [
        name,
        "observations" if floor is None else "on" if floor else "off",
        str(cg) if cg else "–",
        f"{np.sqrt(e2.mean()):.4f}",
        f"{np.sqrt(e2[: int(0.99 * n)].mean()):.4f}",
        f"{np.sqrt(np.median(e2)):.4f}",
        f"{big.max():.2f}",
        str(int((big > 1.5).sum())),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="mask/blur run directories")
    ap.add_argument("--stage", type=int, default=1, help="the stage whose model draws")
    ap.add_argument("--cg-steps", default="1,3", help="comma-separated sample.cg_steps")
    ap.add_argument("--results", default=None, help="Markdown file to write")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for run_dir in args.runs:
        model, prob = load_run(run_dir, args.stage)
        truth = np.asarray(prob.noisy_truth)
        rows.append(row(run_dir.name, None, 0, np.asarray(prob.noisy), truth))
        print(" | ".join(rows[-1]), flush=True)
        for cg in [int(c) for c in args.cg_steps.split(",")]:
            for floor in (False, True):
                x = draws(model, prob, floor, cg, args.stage)
                rows.append(row(run_dir.name, floor, cg, x, truth))
                print(" | ".join(rows[-1]), flush=True)
    obs = ", ".join(str(p.name) for p in args.runs)
    out = committed.write_table(
        __file__,
        sys.argv[1:],
        title="MMPS's curvature floor on a learned denoiser",
        note=f"Stage {args.stage} of {obs}; E_{args.stage + 1} of every noisy training row "
        "against its clean original.",
        header=HEADER,
        rows=rows,
        committed="benchmarks/MMPS_FLOOR.md",
        given=args.results,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
