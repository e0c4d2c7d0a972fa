"""How the ambient loss weights its noisy rows (docs/methods.md, "The ambient method").

A noisy row's loss is lambda(sigma) (1 - tau^2/sigma^2)^p (mean((D - y_hat)^2) - C)
(:class:`sfbd.diffusion.loss.AmbientLoss`): p = 0 gives it the clean loss's gradient in
expectation, but the target's noise variance tau^2 sigma^2 / (sigma^2 - tau^2) diverges as
sigma -> tau; p >= 1/2 bounds the gradient's variance. This script trains the same network on
the same mixture of 5% clean and 95% noisy samples (tau = 0.35) with p = 0, 0.5, 1 and 2,
against clean-only (the clean samples alone) and, where the truth is known, an oracle:

* gaussian: 2-D Gaussian data, a residual MLP; the error of the EMA denoiser against the exact
  one, E||D - D*||^2 divided by the MMSE sigma^2 sd^2 / (sigma^2 + sd^2) (sd = 0.5) and
  averaged over 40 levels in three bands: sigma < tau, tau <= sigma < 2 tau, sigma >= 2 tau;
* ring8: sfbd's ring8 benchmark problem (4,000 points, 5% clean); the sliced Wasserstein
  distance of 2,000 generated samples (Heun, 64 steps) to the 400 held-out points.

Usage:
    python benchmarks/ambient_weighting.py [--seeds 3] [--steps 3000] [--results FILE]

Writes a Markdown table with the machine, the date and the command to --results if given,
else, for the default settings, to the committed benchmarks/AMBIENT_WEIGHTING.md (a run with
other settings writes runs/ambient_weighting/AMBIENT_WEIGHTING.md; benchmarks/committed.py).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import committed
import numpy as np
import torch

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.diffusion.loss import AmbientLoss
from sfbd.diffusion.sample import sample_from_noise
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.metrics.distances import sliced_wasserstein
from sfbd.nets import build_denoiser
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.train.data import IndexedTrainingSet
from sfbd.train.ema import EMA
from sfbd.train.loop import TrainState, make_optimizer, train_stage
from sfbd.train.settings import TrainSettings

TAU = 0.35
TEMPERS = (0.0, 0.5, 1.0, 2.0)
MU = torch.tensor([0.3, -0.2], dtype=torch.float64)
CHOL = torch.tensor([[0.5, 0.0], [0.3, 0.2]], dtype=torch.float64)
RING8 = ["data.source=ring8", "data.num_samples=4000", "data.clean_fraction=0.05"]
DEFAULTS = {"seeds": 3, "steps": 3000}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=DEFAULTS["seeds"])
    ap.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    ap.add_argument("--results", default=None, help="default: benchmarks/AMBIENT_WEIGHTING.md")
    return ap.parse_args(argv)


def results_file(args: argparse.Namespace) -> Path:
    """--results, else the committed file for the default settings, else a scratch file."""
    full = {"seeds": args.seeds, "steps": args.steps} == DEFAULTS
    scratch = Path("runs/ambient_weighting/AMBIENT_WEIGHTING.md")
    return committed.results_path(args.results, "benchmarks/AMBIENT_WEIGHTING.md", scratch, full)


def train(rows: np.ndarray, levels: np.ndarray | None, temper: float, seed: int, steps: int):
    """The EMA of a residual MLP trained on ``rows`` (levels: each row's tau, None: clean)."""
    torch.manual_seed(seed)
    model = build_denoiser("mlp", {"shape": [2], "hidden": 64, "layers": 2})
    state = TrainState(model, copy.deepcopy(model), make_optimizer(model, 1e-3))
    data = IndexedTrainingSet(rows, torch.device("cpu"), levels=levels)
    settings = TrainSettings(
        steps=steps, batch_size=256, lr=1e-3, seed=seed, lr_warmup=100, progress=False
    )
    loss = AmbientLoss(temper=temper)
    train_stage(state, data, settings, EMA.for_stage(0.1, steps), loss_fn=loss)
    return state.ema.eval()


def variants(clean: np.ndarray, noisy: np.ndarray, truth: np.ndarray | None):
    """name -> (rows, levels, temper) of each training run on one problem."""
    both = np.concatenate([clean, noisy])
    levels = np.concatenate([np.zeros(len(clean)), np.full(len(noisy), TAU)])
    out = {"clean-only": (clean, None, 0.0)}
    if truth is not None:
        out["oracle"] = (np.concatenate([clean, truth]), None, 0.0)
    out.update({f"ambient p={p:g}": (both, levels, p) for p in TEMPERS})
    return out


def gaussian_errors(ema: torch.nn.Module) -> list[float]:
    """Relative excess error of ``ema`` against the exact denoiser, by band of sigma."""
    exact = GaussianDenoiser((2,))
    exact.set_moments(MU, CHOL @ CHOL.T)
    g = torch.Generator().manual_seed(7)
    sigmas = np.geomspace(0.02, 5.0, 40)
    errs = []
    with torch.no_grad():
        for s in sigmas:
            x = MU + torch.randn(4000, 2, generator=g, dtype=torch.float64) @ CHOL.T
            x_t = x + s * torch.randn(4000, 2, generator=g, dtype=torch.float64)
            sig = torch.full((4000,), s, dtype=torch.float64)
            d = ema(x_t.float(), sig.float()).double()
            errs.append(float(((d - exact(x_t, sig)) ** 2).mean()) / (s**2 * 0.25 / (s**2 + 0.25)))
    e = np.array(errs)
    bands = (sigmas < TAU, (sigmas >= TAU) & (sigmas < 2 * TAU), sigmas >= 2 * TAU)
    return [float(e[b].mean()) for b in bands]


def gaussian_problem(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean (100, 2), noisy (1900, 2), the noisy rows' clean originals), float32."""
    g = torch.Generator().manual_seed(100 + seed)
    x = MU + torch.randn(2000, 2, generator=g, dtype=torch.float64) @ CHOL.T
    y = x[100:] + TAU * torch.randn(1900, 2, generator=g, dtype=torch.float64)
    return x[:100].float().numpy(), y.float().numpy(), x[100:].float().numpy()


def ring8_swd(ema: torch.nn.Module, reference: np.ndarray) -> float:
    keys = torch.arange(2000)
    with torch.no_grad():
        x = sample_from_noise(ema, keys, (2,), edm_sigmas(64), stream=11).numpy()
    return sliced_wasserstein(x, reference)


def run(args: argparse.Namespace) -> dict[str, dict[str, list[list[float]]]]:
    """problem -> variant -> per-seed results (gaussian: 3 bands; ring8: [swd])."""
    out: dict[str, dict[str, list[list[float]]]] = {"gaussian": {}, "ring8": {}}
    for seed in range(args.seeds):
        clean, noisy, truth = gaussian_problem(seed)
        for name, (rows, levels, p) in variants(clean, noisy, truth).items():
            t0 = time.perf_counter()
            ema = train(rows, levels, p, seed, args.steps)
            out["gaussian"].setdefault(name, []).append(gaussian_errors(ema))
            print(f"gaussian seed {seed} {name}: {time.perf_counter() - t0:.0f} s", flush=True)
        cfg = load_config(overrides=[*RING8, f"data.noise_seed={seed}"])
        prob = load_problem(cfg)
        ref = np.asarray(prob.reference)
        for name, (rows, levels, p) in variants(
            np.asarray(prob.clean), np.asarray(prob.noisy), None
        ).items():
            ema = train(rows, levels, p, seed, args.steps)
            out["ring8"].setdefault(name, []).append([ring8_swd(ema, ref)])
            print(f"ring8 seed {seed} {name}: swd {out['ring8'][name][-1][0]:.4f}", flush=True)
    return out


def _cell(values: list[float]) -> str:
    v = np.array(values)
    return f"{v.mean():.4f} ± {v.std():.4f}"


def report(res: dict, args: argparse.Namespace, seconds: float) -> str:
    lines = [
        "# Ambient loss: the noisy rows' weighting",
        "",
        f"`{committed.command_line(__file__, sys.argv[1:])}`, {dt.date.today()}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
        f"{seconds / 60:.0f} min. {args.seeds} seeds, {args.steps} steps, batch 256, "
        f"residual MLP (64 wide, 2 blocks); 5% clean, tau = {TAU}. Mean ± std over seeds.",
        "",
        "## gaussian: relative excess error of the denoiser, E||D - D*||² / MMSE",
        "",
        "| training | σ < τ | τ ≤ σ < 2τ | σ ≥ 2τ |",
        "|---|---|---|---|",
    ]
    for name, per_seed in res["gaussian"].items():
        cols = np.array(per_seed).T
        lines.append(f"| {name} | " + " | ".join(_cell(list(c)) for c in cols) + " |")
    lines += ["", "## ring8: sliced Wasserstein distance to held-out points", ""]
    lines += ["| training | swd |", "|---|---|"]
    for name, per_seed in res["ring8"].items():
        lines.append(f"| {name} | {_cell([r[0] for r in per_seed])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res = run(args)
    text = report(res, args, time.perf_counter() - t0)
    path = results_file(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
