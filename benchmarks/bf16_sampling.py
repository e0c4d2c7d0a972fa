"""Does bf16 autocast in sampling change what a trained model makes? A CPU proxy on 8x8 digits.

On CUDA the fast path runs the network under bfloat16 autocast when sampling (`fast.bf16`:
backward sampling of E_k and the evaluation samples). Its effect on FID at the paper's scale is
unmeasured (no GPU yet). This script measures the same number format on the CPU, where autocast
also runs convolutions and matrix products in bfloat16 with float32 accumulation, on a model
trained here (method oracle on scikit-learn's digits, fp32):

1. generation from noise: swd to the hold-out of fp32 samples under several seeds (the noise
   floor of the metric) and of bf16 samples from the same noise; the paired RMS difference
   between a bf16 sample and the fp32 sample from the same noise, relative to the RMS spread
   of the samples;
2. backward sampling from tau (how E_k is made): PSNR of fp32 and bf16 results against the
   clean originals, and their paired RMS difference relative to tau.

Usage:
    python benchmarks/bf16_sampling.py [--out runs/bf16-sampling] [--n 1000] [--seeds 3]
                                       [--steps 32] [--results FILE]

Prints a table and writes it as Markdown with the machine, the date and the command: to
--results if given; else the default settings (the full run) write the committed
benchmarks/BF16_SAMPLING.md and any other --n/--seeds/--steps write OUT/BF16_SAMPLING.md
(benchmarks/committed.py). The trained model is reused from --out on a rerun. CPU bf16 is
much slower than fp32 on machines without bf16 instructions: ~15 minutes on 2 cores with the
defaults.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import committed  # benchmarks/committed.py: where results go
import numpy as np
import torch

from sfbd.config import load_config
from sfbd.data import Problem, load_problem
from sfbd.diffusion.batched import denoise_all, generate
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.metrics.distances import sliced_wasserstein
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.rng import stream_id
from sfbd.run.runner import Run
from sfbd.runtime import fast

SETS = [
    "method=oracle",  # trained on the clean originals of everything: a good model, quickly
    "train.pretrain_steps=1500",
    "sfbd.iterations=0",
    "eval.num_samples=200",
    "device=cpu",
    "fast.bf16=off",
]


def _psnr(x: np.ndarray, truth: np.ndarray) -> float:
    mse = float(np.mean((x - truth) ** 2))
    return 10.0 * np.log10(4.0 / mse)  # data range 2 ([-1, 1] images)


FULL = {"n": 1000, "seeds": 3, "steps": 32}  # the settings of the committed results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/bf16-sampling")
    ap.add_argument("--n", type=int, default=FULL["n"], help="samples per set")
    ap.add_argument("--seeds", type=int, default=FULL["seeds"], help="fp32 seeds (swd floor)")
    ap.add_argument("--steps", type=int, default=FULL["steps"], help="Heun steps, full schedule")
    ap.add_argument("--results", default=None, help="default: benchmarks/BF16_SAMPLING.md")
    return ap.parse_args(argv)


def results_file(args: argparse.Namespace) -> Path:
    """--results; else the committed file for the full settings, OUT/BF16_SAMPLING.md if not."""
    full = all(getattr(args, k) == v for k, v in FULL.items())
    scratch = Path(args.out) / "BF16_SAMPLING.md"
    return committed.results_path(args.results, "benchmarks/BF16_SAMPLING.md", scratch, full)


def backward(
    ema: torch.nn.Module, prob: Problem, grid: torch.Tensor, n: int, timings: dict[str, float]
) -> tuple[dict[bool, np.ndarray], np.ndarray]:
    """Backward sampling of the first ``n`` noisy samples in fp32 and in bf16 (same stream):
    ({bf16: denoised}, their clean truth); the seconds of each go into ``timings``."""
    m = min(n, len(prob.noisy))
    y, truth = torch.as_tensor(prob.noisy[:m]), prob.noisy_truth[:m]
    den = {}
    for bf16 in (False, True):
        t = time.perf_counter()
        with fast.autocast("cpu", bf16):
            den[bf16] = denoise_all(
                ema,
                y,
                prob.corruption,
                grid,
                stream=stream_id("bf16-bench-denoise"),
                batch_size=500,
                progress=False,
            ).numpy()
        timings[f"{'bf16' if bf16 else 'fp32'} backward sampling"] = time.perf_counter() - t
    return den, truth


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "digits.yaml", overrides=SETS)
    t0 = time.perf_counter()
    Run(cfg, args.out, progress=True).execute()
    print(f"model ready ({time.perf_counter() - t0:.0f}s)", flush=True)
    _, ema, _, meta = load_checkpoint(Path(args.out) / "checkpoints" / "stage-00", "cpu")
    ema.eval()
    prob = load_problem(cfg)
    shape = tuple(meta["shape"])
    grid = edm_sigmas(args.steps)
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731

    def sample(seed: int, bf16: bool) -> np.ndarray:
        with fast.autocast("cpu", bf16):
            x = generate(
                ema,
                args.n,
                shape,
                grid,
                stream=stream_id("bf16-bench", seed),
                batch_size=500,
                progress=False,
            )
        return x.float().numpy()

    def swd(x: np.ndarray) -> float:
        return sliced_wasserstein(flat(x), flat(prob.reference), projections=256)

    rows = []
    timings = {}
    fp32 = {}
    for seed in range(args.seeds):
        t = time.perf_counter()
        fp32[seed] = sample(seed, False)
        timings.setdefault("fp32 generation", time.perf_counter() - t)
        rows.append((f"generation fp32, seed {seed}", swd(fp32[seed])))
    t = time.perf_counter()
    low = sample(0, True)
    timings["bf16 generation"] = time.perf_counter() - t
    rows.append(("generation bf16, seed 0 (same noise as fp32 seed 0)", swd(low)))
    spread = float(np.sqrt(np.mean((fp32[0] - fp32[0].mean(axis=0)) ** 2)))
    paired = float(np.sqrt(np.mean((low - fp32[0]) ** 2)))
    other = float(np.sqrt(np.mean((fp32[1 % args.seeds] - fp32[0]) ** 2)))

    den, truth = backward(ema, prob, grid, args.n, timings)
    den_paired = float(np.sqrt(np.mean((den[True] - den[False]) ** 2)))

    swd32 = [v for k, v in rows if k.startswith("generation fp32")]
    seed_std = float(np.std(swd32, ddof=1)) if len(swd32) > 1 else 0.0
    bf16_shift = abs(rows[-1][1] - swd32[0])
    table = [
        "| measure | value |",
        "|---|---|",
        *[f"| swd to the hold-out: {k} | {v:.4f} |" for k, v in rows],
        f"| swd fp32 over {args.seeds} seeds: mean ± std | {np.mean(swd32):.4f} ± {seed_std:.4f} |",
        f"| swd change bf16 vs fp32 from the same noise (and seed std / it) | {bf16_shift:.5f} "
        f"({seed_std / bf16_shift if bf16_shift > 0 else float('inf'):.0f}×) |",
        f"| paired RMS difference bf16 − fp32 (same noise) | {paired:.4f} |",
        f"| RMS spread of the samples (about their mean) | {spread:.4f} |",
        f"| RMS difference between two fp32 seeds | {other:.4f} |",
        f"| backward sampling from τ = {prob.corruption.describe()}: PSNR fp32 / bf16 (dB) | "
        f"{_psnr(den[False], truth):.2f} / {_psnr(den[True], truth):.2f} |",
        f"| backward sampling: paired RMS difference bf16 − fp32 | {den_paired:.4f} |",
        *[f"| seconds: {k} ({args.n} samples) | {v:.0f} |" for k, v in timings.items()],
    ]
    cmd = committed.command_line(__file__, sys.argv[1:] if argv is None else argv)
    head = [
        "# bf16 autocast in sampling: a CPU proxy on 8x8 digits",
        "",
        f"{dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}; `{cmd}`.",
        "",
        f"Model: `configs/digits.yaml` with {', '.join(f'`{s}`' for s in SETS)} "
        f"(trained in fp32). Sampling: Heun, {args.steps}-step EDM schedule, {args.n} samples.",
        "",
    ]
    text = "\n".join([*head, *table, ""])
    print(text)
    print(json.dumps({"rows": rows, "paired": paired, "spread": spread, "timings": timings}))
    results = results_file(args)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)
    print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
