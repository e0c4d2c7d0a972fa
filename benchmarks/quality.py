"""Sample quality of SFBD against its baselines on data with known truth, with fixed seeds.

Four sections, every run a benchmark-mode `Run` (the library's own pipeline):

1. Methods side by side (oracle, clean-only, noisy-only, SFBD per iteration k = 0..K) on
   ring8, checkerboard, swissroll, an 8-D Gaussian mixture (made here) and 8x8 digits; the
   mean +- std of swd / mmd / denoise_psnr over seeds, and the fraction of the
   clean-only -> oracle swd gap that SFBD closes.
2. Deterministic (heun) vs stochastic (sde) backward sampling on ring8: final swd, wall time.
3. Clean-fraction sweep on ring8: SFBD vs clean-only.
4. Noise-level (tau) sweep on ring8: noisy-only (no clean data) vs SFBD at 2% clean.

Usage:
    python benchmarks/quality.py [--quick] [--out runs/quality] [--results benchmarks/RESULTS.md]
                                 [--seeds N]

Prints the tables and writes them as Markdown to --results, with the machine, the date and the
command line; its figures (quality-*.png) go next to it and every run directory under --out.
Rerunning reuses finished runs (a run directory is named by a hash of its settings, and
`Run.execute()` returns a finished run's metrics at once). On 2 CPU cores: --quick about
2 minutes; the full suite (65 vector runs, 4 digits runs) an estimated 18-20 minutes. Digits
use one seed by default: the small U-Net trains at ~9 steps/s and evaluating a stage takes
~12 s on CPU, so 3 seeds would add ~12 minutes (pass --seeds 3 for them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from sfbd import report
from sfbd.config import dump_yaml, load_config
from sfbd.data import load_problem
from sfbd.pipeline import Run

METHODS = ("oracle", "clean-only", "noisy-only", "sfbd")
BASELINES = ("oracle", "clean-only", "noisy-only")
GMM = "gmm8"  # the 8-D Gaussian mixture made by this script
COLORS = {"oracle": "tab:green", "clean-only": "tab:orange", "noisy-only": "tab:red"}


@dataclass(frozen=True)
class Suite:
    """Sizes of one suite (full or quick)."""

    datasets: tuple[str, ...]
    seeds: int  # section 1, vector sets
    image_seeds: int  # section 1, digits (the U-Net is ~20x slower per step on CPU)
    vector: dict[str, str]  # overrides for the 2-D / 8-D sets
    image: dict[str, str]  # overrides for digits
    samplers: tuple[tuple[str, int], ...]  # section 2: (sample.sampler, sample.steps)
    fractions: tuple[float, ...]  # section 3
    sigmas: tuple[float, ...]  # section 4
    common: dict[str, str] = field(default_factory=lambda: {"device": "cpu"})


VECTOR_FULL = {
    "data.num_samples": "8000",
    "data.holdout": "0.25",
    "data.clean_fraction": "0.02",
    "data.sigma": "0.35",
    "model.hidden": "64",
    "model.layers": "2",
    "train.pretrain_steps": "600",
    "train.update_steps": "250",
    "train.batch_size": "256",
    "sfbd.iterations": "3",
    "eval.num_samples": "2000",
}
IMAGE_FULL = {
    "data.source": "digits",
    "data.holdout": "0.2",
    "data.clean_fraction": "0.1",
    "data.sigma": "0.6",
    "model.channels": "16",
    "train.pretrain_steps": "300",
    "train.update_steps": "100",
    "train.batch_size": "128",
    "sfbd.iterations": "3",
    "eval.num_samples": "500",
    "sample.batch_size": "1000",
}
SUITES = {
    "full": Suite(
        datasets=("ring8", "checkerboard", "swissroll", GMM, "digits"),
        seeds=3,
        image_seeds=1,
        vector=VECTOR_FULL,
        image=IMAGE_FULL,
        samplers=(("heun", 64), ("sde", 64), ("sde", 256)),
        fractions=(0.005, 0.01, 0.02, 0.04, 0.1),
        sigmas=(0.2, 0.35, 0.5, 0.8),
    ),
    "quick": Suite(
        datasets=("ring8", GMM),
        seeds=1,
        image_seeds=1,
        vector={
            **VECTOR_FULL,
            "data.num_samples": "4000",
            "train.pretrain_steps": "150",
            "train.update_steps": "80",
            "train.lr_warmup": "50",
            "sfbd.iterations": "2",
            "eval.num_samples": "1000",
        },
        image=IMAGE_FULL,
        samplers=(("heun", 64), ("sde", 64)),
        fractions=(0.02, 0.1),
        sigmas=(0.35, 0.8),
    ),
}


# --------------------------------------------------------------------------- runs


class Runner:
    """Runs (or reuses) benchmark-mode runs; one directory per distinct configuration."""

    def __init__(self, out: Path, common: dict[str, str]) -> None:
        self.out = out
        self.common = common
        self.ran: list[tuple[str, float]] = []  # (label, wall seconds) of runs trained now
        self.reused = 0

    def __call__(self, label: str, overrides: dict[str, str]) -> tuple[list[dict], Path]:
        """The run's metrics.json stages and its directory.

        The directory is named by a hash of the resolved configuration, so two sections that
        ask for the same run (e.g. the defaults written out explicitly) share it.
        """
        merged = {**self.common, **overrides}
        cfg = load_config(overrides=[f"{k}={v}" for k, v in merged.items()])
        digest = hashlib.sha1(dump_yaml(cfg).encode()).hexdigest()[:10]
        source = Path(str(cfg.data.source)).stem
        out = self.out / "runs" / f"{source}-{cfg.method}-s{cfg.seed}-{digest}"
        run = Run(cfg, out, progress=False)
        finished = len(run.metrics()) >= len(run.stages)
        t0 = time.perf_counter()
        stages = run.execute()
        wall = time.perf_counter() - t0
        if finished:
            self.reused += 1
        else:
            self.ran.append((label, wall))
            final = stages[-1]["metrics"]
            print(f"  ran {label}: {wall:.1f}s, final swd {final['swd']:.4f}", flush=True)
        return stages, out


def make_gmm(path: Path) -> Path:
    """6-component mixture in 8-D: means uniform in [-1, 1]^8 (fixed rng), std 0.1, 20,000."""
    rng = np.random.default_rng(8)
    means = rng.uniform(-1.0, 1.0, size=(6, 8))
    comp = rng.integers(0, 6, size=20_000)
    x = (means[comp] + 0.1 * rng.standard_normal((20_000, 8))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or not np.array_equal(np.load(path), x):
        np.save(path, x)
    return path


def final(stages: list[dict], key: str = "swd") -> float:
    return float(stages[-1]["metrics"].get(key, float("nan")))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(np.mean(a)), float(np.std(a)) if len(a) > 1 else 0.0


def fmt(values: Sequence[float], spec: str = ".4f") -> str:
    vals = [v for v in values if np.isfinite(v)]
    if not vals:
        return "–"
    m, s = mean_std(vals)
    return f"{m:{spec}}" if len(vals) == 1 else f"{m:{spec}} ± {s:{spec}}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- sections


def section_methods(
    runner: Runner, suite: Suite, seeds: int, image_seeds: int, gmm_path: Path
) -> tuple[dict[str, dict[str, list[list[dict]]]], dict[str, dict[str, list[Path]]]]:
    """Section 1: {dataset: {method: [stages per seed]}} and the run directories."""
    res: dict[str, dict[str, list[list[dict]]]] = {}
    dirs: dict[str, dict[str, list[Path]]] = {}
    for ds in suite.datasets:
        res[ds], dirs[ds] = {m: [] for m in METHODS}, {m: [] for m in METHODS}
        if ds == "digits":
            base = dict(suite.image)
        else:
            source = str(gmm_path) if ds == GMM else ds
            base = {**suite.vector, "data.source": source}
        for seed in range(image_seeds if ds == "digits" else seeds):
            for method in METHODS:
                ov = {**base, "method": method, "seed": str(seed), "data.noise_seed": str(seed)}
                stages, out = runner(f"{ds}-{method}-s{seed}", ov)
                res[ds][method].append(stages)
                dirs[ds][method].append(out)
    return res, dirs


def methods_tables(res: dict[str, dict[str, list[list[dict]]]]) -> tuple[str, str]:
    rows = []
    for ds, by in res.items():
        for method in BASELINES:
            runs = by[method]
            rows.append(
                [
                    ds,
                    method,
                    fmt([final(r) for r in runs]),
                    fmt([final(r, "mmd") for r in runs], ".2e"),
                    "–",
                ]
            )
        for k in range(len(by["sfbd"][0])):
            st = [r[k]["metrics"] for r in by["sfbd"]]
            rows.append(
                [
                    ds,
                    f"sfbd k={k}",
                    fmt([m["swd"] for m in st]),
                    fmt([m["mmd"] for m in st], ".2e"),
                    fmt([m.get("denoise_psnr", float("nan")) for m in st], ".2f"),
                ]
            )
    t1 = table(["dataset", "method", "swd", "mmd", "denoise_psnr (dB)"], rows)
    gap_rows = []
    for ds, by in res.items():
        c = mean_std([final(r) for r in by["clean-only"]])[0]
        s = mean_std([final(r) for r in by["sfbd"]])[0]
        o = mean_std([final(r) for r in by["oracle"]])[0]
        den = c - o
        gap = (
            f"{(c - s) / den:.2f}"
            if den > 0
            else f"undefined (clean-only − oracle = {den:.4f} ≤ 0)"
        )
        gap_rows.append([ds, f"{c:.4f}", f"{s:.4f}", f"{o:.4f}", gap])
    t2 = table(
        ["dataset", "swd clean-only", "swd sfbd (final)", "swd oracle", "gap closed"], gap_rows
    )
    return t1, t2


def ring8_base(suite: Suite) -> dict[str, str]:
    return {**suite.vector, "data.source": "ring8", "seed": "0", "data.noise_seed": "0"}


def section_samplers(runner: Runner, suite: Suite) -> tuple[str, list[dict]]:
    rows, data = [], []
    for sampler, steps in suite.samplers:
        ov = {
            **ring8_base(suite),
            "method": "sfbd",
            "sample.sampler": sampler,
            "sample.steps": str(steps),
        }
        stages, _ = runner(f"ring8-sfbd-{sampler}{steps}", ov)
        secs = sum(float(s["seconds"]) for s in stages)
        data.append({"sampler": sampler, "steps": steps, "swd": final(stages), "seconds": secs})
        rows.append(
            [
                sampler,
                str(steps),
                f"{final(stages):.4f}",
                f"{final(stages, 'mmd'):.2e}",
                f"{final(stages, 'denoise_psnr'):.2f}",
                f"{secs:.1f}",
            ]
        )
    header = ["sampler", "sample.steps", "final swd", "final mmd", "final denoise_psnr", "wall s"]
    return table(header, rows), data


def section_fractions(runner: Runner, suite: Suite) -> tuple[str, list[dict]]:
    rows, data = [], []
    for frac in suite.fractions:
        swd = {}
        for method in ("clean-only", "sfbd"):
            ov = {**ring8_base(suite), "method": method, "data.clean_fraction": str(frac)}
            stages, _ = runner(f"ring8-{method}-frac{frac}", ov)
            swd[method] = final(stages)
        data.append({"clean_fraction": frac, **swd})
        gain = swd["clean-only"] - swd["sfbd"]
        rows.append([f"{frac:g}", f"{swd['clean-only']:.4f}", f"{swd['sfbd']:.4f}", f"{gain:+.4f}"])
    header = ["clean fraction", "clean-only swd", "sfbd final swd", "clean-only − sfbd"]
    return table(header, rows), data


def section_sigmas(runner: Runner, suite: Suite) -> tuple[str, list[dict]]:
    rows, data = [], []
    for sigma in suite.sigmas:
        swd = {}
        for method, frac in (("noisy-only", "0"), ("sfbd", "0.02")):
            ov = {
                **ring8_base(suite),
                "method": method,
                "data.sigma": str(sigma),
                "data.clean_fraction": frac,
            }
            stages, _ = runner(f"ring8-{method}-sigma{sigma}", ov)
            swd[method] = final(stages)
        data.append({"sigma": sigma, **swd})
        gap = swd["noisy-only"] - swd["sfbd"]
        rows.append([f"{sigma:g}", f"{swd['noisy-only']:.4f}", f"{swd['sfbd']:.4f}", f"{gap:+.4f}"])
    header = ["τ (data.sigma)", "noisy-only swd (0% clean)", "sfbd final swd (2% clean)", "gap"]
    return table(header, rows), data


# --------------------------------------------------------------------------- figures


def swd_figure(path: Path, res: dict[str, dict[str, list[list[dict]]]]) -> None:
    """SWD vs iteration per dataset: SFBD mean, min-max band over seeds, dashed baselines."""
    n = len(res)
    fig = Figure(figsize=(3.6 * n, 3.2))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (ds, by) in zip(axes, res.items(), strict=True):
        swd = np.array([[s["metrics"]["swd"] for s in r] for r in by["sfbd"]])  # (seeds, K+1)
        it = np.arange(swd.shape[1])
        ax.fill_between(it, swd.min(0), swd.max(0), color="tab:blue", alpha=0.2, label="min–max")
        ax.plot(it, swd.mean(0), marker="o", color="tab:blue", label="sfbd (mean)")
        for method in BASELINES:
            ax.axhline(
                mean_std([final(r) for r in by[method]])[0],
                linestyle="--",
                color=COLORS[method],
                label=method,
            )
        ax.set_title(f"{ds} ({swd.shape[0]} seed{'s' if swd.shape[0] > 1 else ''})", fontsize=10)
        ax.set_xlabel("iteration k", fontsize=9)
        ax.set_ylabel("swd", fontsize=9)
        ax.set_xticks(it)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    report.save_figure(path, fig)


def sweeps_figure(path: Path, fractions: list[dict], sigmas: list[dict]) -> None:
    fig = Figure(figsize=(8.0, 3.2))
    a, b = fig.subplots(1, 2)
    x = [d["clean_fraction"] for d in fractions]
    a.plot(
        x,
        [d["clean-only"] for d in fractions],
        "s--",
        color=COLORS["clean-only"],
        label="clean-only",
    )
    a.plot(x, [d["sfbd"] for d in fractions], "o-", color="tab:blue", label="sfbd")
    a.set_xscale("log")
    a.set_xlabel("clean fraction", fontsize=9)
    a.set_title("ring8: clean fraction (τ = 0.35)", fontsize=10)
    x = [d["sigma"] for d in sigmas]
    b.plot(
        x, [d["noisy-only"] for d in sigmas], "s--", color=COLORS["noisy-only"], label="noisy-only"
    )
    b.plot(x, [d["sfbd"] for d in sigmas], "o-", color="tab:blue", label="sfbd (2% clean)")
    b.set_xlabel("τ", fontsize=9)
    b.set_title("ring8: noise level", fontsize=10)
    for ax in (a, b):
        ax.set_ylabel("final swd", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    report.save_figure(path, fig)


def sample_figures(
    results_dir: Path, runner: Runner, suite: Suite, dirs: dict[str, dict[str, list[Path]]]
) -> list[tuple[str, str]]:
    """Final samples per method (seed 0): scatter for ring8, image grids for digits."""
    figs = []

    def last(out: Path) -> np.ndarray:
        return np.load(sorted((out / "samples").glob("stage-*.npy"))[-1])

    if "ring8" in dirs:
        cfg = load_config(
            overrides=[
                f"{k}={v}"
                for k, v in {**suite.common, **ring8_base(suite), "method": "oracle"}.items()
            ]
        )
        ref = load_problem(cfg).reference
        path = results_dir / "quality-ring8-samples.png"
        panels = [(m, last(dirs["ring8"][m][0])) for m in METHODS]
        report.scatter_panels_png(path, panels, reference=ref, max_points=1000)
        figs.append(("ring8: final samples per method (seed 0; grey: hold-out)", path.name))
    if "digits" in dirs:
        path = results_dir / "quality-digits-samples.png"
        panels = [(m, last(dirs["digits"][m][0])[:64]) for m in METHODS]
        report.image_panels_png(path, panels, nrow=8)
        figs.append(("digits: final samples per method (seed 0)", path.name))
    return figs


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke-test suite (~3 min)")
    ap.add_argument("--out", default="runs/quality", help="root of the run directories")
    ap.add_argument("--results", default="benchmarks/RESULTS.md", help="Markdown results file")
    ap.add_argument(
        "--seeds", type=int, default=None, help="seeds for section 1 (default: 3 vectors, 1 digits)"
    )
    args = ap.parse_args(argv)
    suite = SUITES["quick" if args.quick else "full"]
    seeds = args.seeds if args.seeds is not None else suite.seeds
    image_seeds = args.seeds if args.seeds is not None else suite.image_seeds
    if seeds < 1:
        ap.error("--seeds must be >= 1")
    out = Path(args.out) / ("quick" if args.quick else "full")
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    runner = Runner(out, suite.common)
    t0 = time.perf_counter()
    gmm_path = make_gmm(out / "gmm8.npy")

    print(f"1. methods side by side ({seeds} seed(s))", flush=True)
    res, dirs = section_methods(runner, suite, seeds, image_seeds, gmm_path)
    t_methods, t_gap = methods_tables(res)
    print(t_methods + "\n\n" + t_gap + "\n", flush=True)
    print("2. backward sampler on ring8", flush=True)
    t_samplers, d_samplers = section_samplers(runner, suite)
    print(t_samplers + "\n", flush=True)
    print("3. clean fraction on ring8", flush=True)
    t_fractions, d_fractions = section_fractions(runner, suite)
    print(t_fractions + "\n", flush=True)
    print("4. noise level on ring8", flush=True)
    t_sigmas, d_sigmas = section_sigmas(runner, suite)
    print(t_sigmas + "\n", flush=True)

    figs = []
    swd_png = results.parent / "quality-swd.png"
    swd_figure(swd_png, res)
    figs.append(
        ("swd vs SFBD iteration (band: min–max over seeds; dashed: baselines)", swd_png.name)
    )
    sweeps_png = results.parent / "quality-sweeps.png"
    sweeps_figure(sweeps_png, d_fractions, d_sigmas)
    figs.append(("ring8 sweeps: clean fraction and τ", sweeps_png.name))
    figs += sample_figures(results.parent, runner, suite, dirs)
    wall = time.perf_counter() - t0

    summary = {
        "suite": "quick" if args.quick else "full",
        "seeds": seeds,
        "image_seeds": image_seeds,
        "methods": {
            ds: {m: [final(r) for r in runs] for m, runs in by.items()} for ds, by in res.items()
        },
        "sfbd_swd_per_iteration": {
            ds: [[s["metrics"]["swd"] for s in r] for r in by["sfbd"]] for ds, by in res.items()
        },
        "samplers": d_samplers,
        "clean_fraction": d_fractions,
        "sigma": d_sigmas,
        "wall_seconds": wall,
        "runs_trained": len(runner.ran),
        "runs_reused": runner.reused,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    vec = ", ".join(f"{k}={v}" for k, v in suite.vector.items())
    img = ", ".join(f"{k}={v}" for k, v in suite.image.items())
    md = [
        f"# SFBD quality benchmark ({summary['suite']} suite)",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"torch {torch.__version__}, device cpu",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{command}`",
        f"- wall time: {wall:.0f} s ({len(runner.ran)} runs trained, {runner.reused} reused "
        f"from `{out}`)",
        f"- vector settings: {vec}",
        f"- digits settings: {img}" if "digits" in suite.datasets else "- digits: not run",
        "- seeds: section 1 uses `seed=s` and `data.noise_seed=s` for s = 0.."
        f"{seeds - 1} (digits: 0..{image_seeds - 1}; mean ± std over seeds); sections 2–4 use "
        "seed 0.",
        "- Every baseline trains one stage with SFBD's total step budget. Metrics use the EMA "
        "weights and samples generated from pure noise; lower swd/mmd is better.",
        "",
        "## 1. Methods side by side",
        "",
        t_methods,
        "",
        "Gap closed = (swd clean-only − swd sfbd final) / (swd clean-only − swd oracle), from the "
        "seed means; 1 = as good as the oracle, 0 = no better than clean-only.",
        "",
        t_gap,
        "",
        "## 2. Deterministic vs stochastic backward sampling (ring8, SFBD)",
        "",
        "Wall time is the sum of the stages' `seconds` (training, backward sampling, evaluation).",
        "",
        t_samplers,
        "",
        "## 3. Clean fraction (ring8)",
        "",
        t_fractions,
        "",
        "## 4. Noise level τ (ring8)",
        "",
        t_sigmas,
        "",
        "## Figures",
        "",
    ]
    for title, name in figs:
        md += [f"{title}:", "", f"![{title}]({name})", ""]
    results.write_text("\n".join(md))
    print(f"wrote {results} and {len(figs)} figure(s); {wall:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
