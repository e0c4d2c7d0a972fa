"""Sample quality of SFBD against its baselines on data with known truth, with fixed seeds.

Seven sections, every run a `Run` of the library's own pipeline:

1. Methods side by side (oracle, clean-only, noisy-only, SFBD and Online SFBD per iteration
   k = 0..K, at the same training steps) on ring8, checkerboard, swissroll, an 8-D Gaussian
   mixture (made here) and 8x8 digits; the mean +- std of swd / mmd / denoise_psnr over
   seeds, the network evaluations each spent on denoising, and the fraction of the
   clean-only -> oracle swd gap that SFBD closes.
2. Backward sampler and its steps on ring8: heun at several `sample.steps` and sde; final
   metrics and wall time.
3. Clean-fraction sweep on ring8: SFBD vs clean-only.
4. Noise-level (tau) sweep on ring8: noisy-only (no clean data) vs SFBD at 2% clean.
5. Exact distance to the truth per iteration with the analytic Gaussian model
   (`model.kind=gaussian`) on Gaussian data: mean error, relative covariance error and the
   closed-form 2-Wasserstein distance of the fitted Gaussian to the true one (the problem and
   the distances come from benchmarks/gaussian_steps.py).
6. Pretraining on a *similar* dataset (`data.pretrain`, no clean samples) instead of a clean
   subset: SFBD with each, pretrain-only and noisy-only, per iteration, on ring8 (pretrained on
   6 of its 8 modes) and digits (pretrained on other images of only the digits 0-4).
7. Noise models (benchmarks/noise_models.py): per-sample levels, coloured noise (whitening and
   top-up) and photon noise against the naive white-noise guess a user would make, on data
   with known truth, and exact fits with the analytic Gaussian model.

Usage:
    python benchmarks/quality.py [--quick] [--out runs/quality] [--results FILE] [--seeds N]

Prints the tables and writes them as Markdown, with the machine, the date and the command
line; its figures (quality-*.png) go next to it and every run directory under --out. Where:
--results if given; else the full suite at its default seeds writes the committed
benchmarks/RESULTS.md, and --quick or --seeds N writes OUT/quick/RESULTS.md (OUT/full/... for
--seeds), so a smoke run never overwrites the committed numbers (benchmarks/committed.py).
Rerunning reuses finished runs (a run directory is named by a hash of its settings and of its
data files, and `Run.execute()` returns a finished run's metrics at once). On 2 CPU cores
(2026-12-01, 0.6.0): the full suite 2,355 s (142 runs trained, 18 reused), of which section 1
took 1,499 s and section 7 418 s; --quick took 102 s before section 7 was added.
Digits use a fixed random 2/3 of scikit-learn's 1,797 images (the other third is where the
similar pretraining set of section 6 comes from, so it shares no image with the problem) and,
to fit three seeds, 200 + 3 x 70 training steps and 32 sampler steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import committed  # benchmarks/committed.py: where results go, the command they record
import gaussian_steps as gs  # benchmarks/gaussian_steps.py (the script's own folder)
import noise_models  # benchmarks/noise_models.py: section 7
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sfbd import report
from sfbd.config import dump_yaml, load_config
from sfbd.data import load_problem
from sfbd.data.sources import digits as builtin_digits
from sfbd.data.sources import ring8 as builtin_ring8
from sfbd.run.runner import Run

METHODS = ("oracle", "clean-only", "noisy-only", "sfbd", "online-sfbd")
BASELINES = ("oracle", "clean-only", "noisy-only")
ITERATIVE = {"sfbd": "tab:blue", "online-sfbd": "tab:cyan"}  # methods with a row per stage
GMM = "gmm8"  # the 8-D Gaussian mixture made by this script
COLORS = {
    "oracle": "tab:green",
    "clean-only": "tab:orange",
    "noisy-only": "tab:red",
    "pretrain-only": "tab:purple",
}
DIGITS_PRETRAIN_CLASSES = (0, 1, 2, 3, 4)  # the similar digits set: only these classes
RING8_MODES = (0, 1, 2, 3, 4, 5)  # the similar 2-D set: ring8 (modes at 45° k) without 6, 7
SIMILAR = {
    "ring8": "2,000 fresh ring8 samples from only 6 of its 8 modes (none at 270° and 315°)",
    "digits": f"the images of the digits {min(DIGITS_PRETRAIN_CLASSES)}–"
    f"{max(DIGITS_PRETRAIN_CLASSES)} among the third of scikit-learn's digits that the problem "
    "does not use",
}


@dataclass(frozen=True)
class Suite:
    """Sizes of one suite (full or quick)."""

    datasets: tuple[str, ...]
    seeds: int  # section 1, vector sets
    image_seeds: int  # section 1, digits (the U-Net is ~20x slower per step on CPU)
    vector: dict[str, str]  # overrides for the 2-D / 8-D sets
    image: dict[str, str]  # overrides for digits (data.source is added: the 2/3 split)
    samplers: tuple[tuple[str, int], ...]  # section 2: (sample.sampler, sample.steps)
    fractions: tuple[float, ...]  # section 3
    sigmas: tuple[float, ...]  # section 4
    gauss_seeds: int  # section 5
    pretrain_sets: tuple[str, ...]  # section 6 (each also in `datasets`: its runs are shared)
    noise_seeds: int = 2  # section 7 a-b (benchmarks/noise_models.py)
    photons: tuple[int, ...] = noise_models.PHOTONS  # section 7 c: photons at full scale
    noise_gauss_samples: int = 100_000  # section 7 d: Gaussian draws
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
    "data.holdout": "0.2",
    "data.clean_fraction": "0.1",
    "data.sigma": "0.6",
    "model.channels": "16",
    "train.pretrain_steps": "200",
    "train.update_steps": "70",
    "train.lr_warmup": "100",
    "train.batch_size": "128",
    "sample.steps": "32",
    "sfbd.iterations": "3",
    "eval.num_samples": "500",
    "sample.batch_size": "1000",
}
SUITES = {
    "full": Suite(
        datasets=("ring8", "checkerboard", "swissroll", GMM, "digits"),
        seeds=3,
        image_seeds=3,
        vector=VECTOR_FULL,
        image=IMAGE_FULL,
        samplers=(("heun", 18), ("heun", 32), ("heun", 64), ("sde", 64), ("sde", 256)),
        fractions=(0.005, 0.01, 0.02, 0.04, 0.1),
        sigmas=(0.2, 0.35, 0.5, 0.8),
        gauss_seeds=3,
        pretrain_sets=("ring8", "digits"),
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
        samplers=(("heun", 18), ("heun", 32), ("heun", 64), ("sde", 64)),
        fractions=(0.02, 0.1),
        sigmas=(0.35, 0.8),
        gauss_seeds=1,
        pretrain_sets=("ring8",),
        noise_seeds=1,
        photons=(30,),
        noise_gauss_samples=20_000,
    ),
}


# --------------------------------------------------------------------------- data files


@dataclass(frozen=True)
class DataFiles:
    """The arrays this script makes (written once, rewritten only if their content changed)."""

    gmm8: Path
    digits: Path  # section 1's digits: a fixed random 2/3 of the 1,797 images
    digits_similar: Path  # section 6: the other third, digits 0-4 only
    ring8_similar: Path  # section 6: ring8 without two of its modes
    gauss: Path  # section 5: draws of N(gs.MU, gs.COV)

    def similar(self, ds: str) -> Path:
        return {"ring8": self.ring8_similar, "digits": self.digits_similar}[ds]


def save_array(path: Path, x: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or not np.array_equal(np.load(path), x):
        np.save(path, x)
    return path


def make_gmm(path: Path) -> Path:
    """6-component mixture in 8-D: means uniform in [-1, 1]^8 (fixed rng), std 0.1, 20,000."""
    rng = np.random.default_rng(8)
    means = rng.uniform(-1.0, 1.0, size=(6, 8))
    comp = rng.integers(0, 6, size=20_000)
    x = (means[comp] + 0.1 * rng.standard_normal((20_000, 8))).astype(np.float32)
    return save_array(path, x)


def digits_split_indices(
    labels: np.ndarray, classes: Sequence[int] = DIGITS_PRETRAIN_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (problem, similar set) into scikit-learn's digits.

    A fixed random 2/3 of the images is the problem; of the other third only the images of
    ``classes`` are kept as the similar set, so it shares no image with the problem's clean,
    noisy or held-out samples.
    """
    perm = np.random.default_rng(1797).permutation(len(labels))
    n_b = len(labels) // 3
    a, b = np.sort(perm[n_b:]), np.sort(perm[:n_b])
    return a, b[np.isin(labels[b], list(classes))]


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """(problem images, similar pretraining images), scaled as the builtin ``digits`` source."""
    from sklearn.datasets import load_digits

    x = builtin_digits()  # (1797, 1, 8, 8) in [-1, 1], in load_digits() order
    a, b = digits_split_indices(load_digits().target)
    return x[a].astype(np.float32), x[b].astype(np.float32)


def ring8_similar(n: int = 2000, modes: Sequence[int] = RING8_MODES) -> np.ndarray:
    """``n`` fresh ring8 samples (own seed) from only the given modes (mode k at angle 45° k)."""
    x = builtin_ring8(2 * n, np.random.default_rng([8, 2000]))
    k = np.rint(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)).astype(int) % 8
    x = x[np.isin(k, list(modes))]
    if len(x) < n:  # 2n draws keep 1.5n on average with 6 of 8 modes
        raise ValueError(f"only {len(x)} samples in modes {modes}")
    return x[:n].astype(np.float32)


def make_data(out: Path) -> DataFiles:
    problem, similar = digits_split()
    return DataFiles(
        gmm8=make_gmm(out / "gmm8.npy"),
        digits=save_array(out / "digits.npy", problem),
        digits_similar=save_array(out / "digits-similar.npy", similar),
        ring8_similar=save_array(out / "ring8-similar.npy", ring8_similar()),
        gauss=gs.write_data(out / "gauss.npy"),
    )


# --------------------------------------------------------------------------- runs


class Runner:
    """Runs (or reuses) benchmark-mode runs; one directory per distinct configuration."""

    def __init__(self, out: Path, common: dict[str, str]) -> None:
        self.out = out
        self.common = common
        self.ran: list[tuple[str, float]] = []  # (label, wall seconds) of runs trained now
        self.reused = 0
        self.runs: dict[Path, Run] = {}  # run directory -> its Run (checkpoint paths)

    def __call__(self, label: str, overrides: dict[str, str]) -> tuple[list[dict], Path]:
        """The run's metrics.json stages and its directory.

        The directory is named by a hash of the resolved configuration and of the content of
        the data files it names, so two sections that ask for the same run (e.g. the defaults
        written out explicitly) share it, and a data file this script now makes differently
        is not mistaken for the old one.
        """
        merged = {**self.common, **overrides}
        cfg = load_config(overrides=[f"{k}={v}" for k, v in merged.items()])
        h = hashlib.sha1(dump_yaml(cfg).encode())
        d = cfg.data
        named = (d.source, d.pretrain, d.noisy, d.clean, d.noise_cov, cfg.eval.reference)
        for path in (*named, d.sigma if isinstance(d.sigma, str) else None):
            if path is not None and Path(path).is_file():
                h.update(hashlib.sha1(Path(path).read_bytes()).digest())
        digest = h.hexdigest()[:10]
        source = Path(str(cfg.data.source)).stem
        out = self.out / "runs" / f"{source}-{cfg.method}-s{cfg.seed}-{digest}"
        run = Run(cfg, out, progress=False)
        self.runs[out] = run
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


def final(stages: list[dict], key: str = "swd") -> float:
    return float(stages[-1]["metrics"].get(key, float("nan")))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(np.mean(a)), float(np.std(a)) if len(a) > 1 else 0.0


def mean_of(values: Sequence[float]) -> float:
    return mean_std(values)[0]


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


def below(a: float, b: float) -> str:
    return "below" if a < b else "not below"


def listing(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


# --------------------------------------------------------------------------- sections


def dataset_base(suite: Suite, ds: str, files: DataFiles) -> dict[str, str]:
    """Section 1's overrides for a dataset (without method and seeds); section 6 reuses them."""
    if ds == "digits":
        return {**suite.image, "data.source": str(files.digits)}
    source = str(files.gmm8) if ds == GMM else ds
    return {**suite.vector, "data.source": source}


def section_methods(
    runner: Runner, suite: Suite, seeds: int, image_seeds: int, files: DataFiles
) -> tuple[dict[str, dict[str, list[list[dict]]]], dict[str, dict[str, list[Path]]]]:
    """Section 1: {dataset: {method: [stages per seed]}} and the run directories."""
    res: dict[str, dict[str, list[list[dict]]]] = {}
    dirs: dict[str, dict[str, list[Path]]] = {}
    for ds in suite.datasets:
        res[ds], dirs[ds] = {m: [] for m in METHODS}, {m: [] for m in METHODS}
        base = dataset_base(suite, ds, files)
        for seed in range(image_seeds if ds == "digits" else seeds):
            for method in METHODS:
                ov = {**base, "method": method, "seed": str(seed), "data.noise_seed": str(seed)}
                stages, out = runner(f"{ds}-{method}-s{seed}", ov)
                res[ds][method].append(stages)
                dirs[ds][method].append(out)
    return res, dirs


def methods_tables(res: dict[str, dict[str, list[list[dict]]]]) -> tuple[str, str, str]:
    """Section 1's per-iteration table, its gap-closed table and a sentence from the numbers."""
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
                    "0",
                ]
            )
        for method in ITERATIVE:
            for k in range(len(by[method][0])):
                st = [r[k]["metrics"] for r in by[method]]
                rows.append(
                    [
                        ds,
                        f"{method} k={k}",
                        fmt([m["swd"] for m in st]),
                        fmt([m["mmd"] for m in st], ".2e"),
                        fmt([m.get("denoise_psnr", float("nan")) for m in st], ".2f"),
                        f"{mean_of([denoise_nfe(r[: k + 1]) for r in by[method]]):.3g}",
                    ]
                )
    header = ["dataset", "method", "swd", "mmd", "denoise_psnr (dB)", "denoising NFE (cum.)"]
    t1 = table(header, rows)
    gap_rows = []
    beats_clean, clear, beats_noisy = [], [], []
    for ds, by in res.items():
        c, c_sd = mean_std([final(r) for r in by["clean-only"]])
        s, s_sd = mean_std([final(r) for r in by["sfbd"]])
        o = mean_of([final(r) for r in by["oracle"]])
        n = mean_of([final(r) for r in by["noisy-only"]])
        if s < c:
            beats_clean.append(ds)
            if c - s > np.hypot(c_sd, s_sd) and len(by["sfbd"]) > 1:
                clear.append(ds)
        if s < n:
            beats_noisy.append(ds)
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
    m = len(res)
    several = any(len(by["sfbd"]) > 1 for by in res.values())
    sentence = (
        f"SFBD's final mean swd is below clean-only's on {len(beats_clean)} of {m} datasets "
        f"({listing(beats_clean)})"
        + (
            f", by more than the pooled seed std on {len(clear)} ({listing(clear)})"
            if several
            else "; with one seed there is no spread to compare the difference with"
        )
        + f"; it is below noisy-only's on {len(beats_noisy)} of {m}."
    )
    return t1, t2, sentence + " " + online_sentence(res)


def denoise_nfe(stages: Sequence[dict]) -> float:
    """Network evaluations spent on backward sampling over these stages."""
    return float(sum(s["metrics"].get("denoise_nfe", 0) for s in stages))


def online_sentence(res: dict[str, dict[str, list[list[dict]]]]) -> str:
    """Where Online SFBD's final swd wins or loses against SFBD's, with the seed spread."""
    wins, losses, clear_w, clear_l, ratios = [], [], [], [], []
    for ds, by in res.items():
        s, s_sd = mean_std([final(r) for r in by["sfbd"]])
        o, o_sd = mean_std([final(r) for r in by["online-sfbd"]])
        (wins if o < s else losses).append(f"{ds} {o:.4f} vs {s:.4f}")
        if len(by["sfbd"]) > 1 and abs(o - s) > np.hypot(o_sd, s_sd):
            (clear_w if o < s else clear_l).append(ds)
        sfbd_nfe = mean_of([denoise_nfe(r) for r in by["sfbd"]])
        if sfbd_nfe > 0:
            ratios.append(mean_of([denoise_nfe(r) for r in by["online-sfbd"]]) / sfbd_nfe)
    several = any(len(by["sfbd"]) > 1 for by in res.values())
    spread = (
        f"; by more than the pooled seed std it wins on {listing(clear_w)} and loses on "
        f"{listing(clear_l)}"
        if several
        else "; with one seed there is no spread to judge the differences by"
    )
    return (
        f"Online SFBD's final mean swd is below SFBD's on {len(wins)} of {len(res)} datasets "
        f"({listing(wins)}) and not on {listing(losses)}{spread}"
        + (
            f"; it spent {min(ratios):.2f}–{max(ratios):.2f}× SFBD's denoising network "
            "evaluations at the same training steps."
            if ratios
            else "."
        )
    )


def ring8_base(suite: Suite) -> dict[str, str]:
    return {**suite.vector, "data.source": "ring8", "seed": "0", "data.noise_seed": "0"}


def section_samplers(
    runner: Runner, suite: Suite, seed_std: float | None
) -> tuple[str, list[dict], str]:
    """Section 2: final metrics and wall time per (sampler, steps) on ring8 SFBD, seed 0."""
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
        data.append(
            {
                "sampler": sampler,
                "steps": steps,
                "swd": final(stages),
                "mmd": final(stages, "mmd"),
                "denoise_psnr": final(stages, "denoise_psnr"),
                "seconds": secs,
            }
        )
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
    best = min(data, key=lambda d: d["swd"])
    worst = max(data, key=lambda d: d["swd"])
    fast = min(data, key=lambda d: d["seconds"])
    slow = max(data, key=lambda d: d["seconds"])
    spread = worst["swd"] - best["swd"]

    def name(d: dict) -> str:
        return f"{d['sampler']} {d['steps']}"

    if seed_std is None:
        noise = "section 1 ran one seed, so there is no seed spread to compare it with"
    elif spread > seed_std:
        noise = f"larger than the seed std of ring8 SFBD in section 1 ({seed_std:.4f})"
    else:
        noise = f"within the seed std of ring8 SFBD in section 1 ({seed_std:.4f})"
    sentence = (
        f"Final swd ranges from {best['swd']:.4f} ({name(best)}) to {worst['swd']:.4f} "
        f"({name(worst)}), a spread of {spread:.4f}, {noise}; the whole run takes "
        f"{fast['seconds']:.1f} s with {name(fast)} and {slow['seconds']:.1f} s with {name(slow)}."
    )
    return table(header, rows), data, sentence


def section_fractions(runner: Runner, suite: Suite) -> tuple[str, list[dict], str]:
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
    wins = [f"{d['clean_fraction']:g}" for d in data if d["sfbd"] < d["clean-only"]]
    losses = [f"{d['clean_fraction']:g}" for d in data if d["sfbd"] >= d["clean-only"]]
    top = max(data, key=lambda d: d["clean-only"] - d["sfbd"])
    sentence = (
        f"SFBD's final swd is below clean-only's at clean fractions {listing(wins)} and not at "
        f"{listing(losses)}; the advantage is largest at {top['clean_fraction']:g} "
        f"({top['clean-only'] - top['sfbd']:+.4f})."
    )
    return table(header, rows), data, sentence


def section_sigmas(runner: Runner, suite: Suite) -> tuple[str, list[dict], str]:
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
    gaps = [d["noisy-only"] - d["sfbd"] for d in data]
    wins = sum(g > 0 for g in gaps)
    trend = (
        "grows with τ"
        if all(b > a for a, b in zip(gaps, gaps[1:], strict=False))
        else "does not grow monotonically with τ"
    )
    sentence = (
        f"SFBD with 2% clean samples ends below noisy-only at {wins} of {len(data)} noise levels; "
        f"the gap {trend} ({gaps[0]:+.4f} at τ = {data[0]['sigma']:g}, {gaps[-1]:+.4f} at "
        f"τ = {data[-1]['sigma']:g})."
    )
    return table(header, rows), data, sentence


GAUSS_KEYS = ("mean_err", "rel_cov_err", "w2")


def section_gaussian(
    runner: Runner, suite: Suite, files: DataFiles
) -> tuple[str, dict[str, list[list[dict[str, float]]]], str]:
    """Section 5: exact distances of the fitted Gaussian to the truth, per stage and seed."""
    res: dict[str, list[list[dict[str, float]]]] = {m: [] for m in METHODS}
    for seed in range(suite.gauss_seeds):
        for method in METHODS:
            ov = {
                **gs.SETTINGS,
                "data.source": str(files.gauss),
                "method": method,
                "seed": str(seed),
                "data.noise_seed": str(seed),
            }
            stages, out = runner(f"gauss-{method}-s{seed}", ov)
            run = runner.runs[out]
            res[method].append(
                [gs.errors(*gs.fitted_moments(run.checkpoint_stem(s["iteration"]))) for s in stages]
            )

    def cells(errs: list[dict[str, float]]) -> list[str]:
        return [fmt([e[key] for e in errs]) for key in GAUSS_KEYS]

    rows = [[m, *cells([r[-1] for r in res[m]])] for m in BASELINES]
    n_stages = len(res["sfbd"][0])
    for method in ITERATIVE:
        rows += [[f"{method} k={k}", *cells([r[k] for r in res[method]])] for k in range(n_stages)]
    header = ["method", "‖μ − μ*‖", "‖Σ − Σ*‖_F / ‖Σ*‖_F", "W2 to the truth"]

    def w2(method: str, k: int = -1) -> float:
        return mean_of([r[k]["w2"] for r in res[method]])

    w0, wk = w2("sfbd", 0), w2("sfbd")
    wprev = w2("sfbd", -2) if n_stages > 1 else w0
    c, o, n = w2("clean-only"), w2("oracle"), w2("noisy-only")
    change = f"falls {w0 / wk:.1f}×" if wk < w0 else "does not fall"
    last = 100.0 * (wk - wprev) / wprev
    sentence = (
        f"With the exact denoiser, SFBD's W2 to the true Gaussian {change} from {w0:.4f} at k=0 "
        f"(the fit to the clean samples alone) to {wk:.4f} at k={n_stages - 1} (last iteration "
        f"{last:+.0f}%), {below(wk, c)} clean-only ({c:.4f}) and {below(wk, n)} noisy-only "
        f"({n:.4f}), and {wk / o:.1f}× the W2 of the oracle's fit to all clean originals "
        f"({o:.4f}, the finite-sample floor); with exact moments, the rest of the gap is the "
        "sampler's discretisation and any iterations still to go (benchmarks/gaussian_steps.py "
        "varies the steps). "
        f"Online SFBD's W2 is {w2('online-sfbd', 1):.4f} after its first stage (SFBD "
        f"{w2('sfbd', 1):.4f}) and {w2('online-sfbd'):.4f} at the end (SFBD {wk:.4f})."
    )
    return table(header, rows), res, sentence


PRETRAIN_RUNS = ("sfbd+pretrain", "sfbd", "pretrain-only", "clean-only", "noisy-only", "oracle")
PRETRAIN_LABELS = {
    "sfbd+pretrain": "sfbd, pretrained on the similar set (0 clean)",
    "sfbd": "sfbd, clean subset",
    "pretrain-only": "pretrain-only (similar set, 0 clean)",
}


def section_pretrain(
    runner: Runner, suite: Suite, files: DataFiles, sfbd_std: dict[str, float | None]
) -> tuple[str, dict[str, dict[str, list[dict]]], dict[str, dict[str, Path]], list[str]]:
    """Section 6 (seed 0): SFBD pretrained on a similar set vs on a clean subset, baselines.

    The clean-subset runs are section 1's seed-0 runs (same configuration, reused).
    """
    res: dict[str, dict[str, list[dict]]] = {}
    dirs: dict[str, dict[str, Path]] = {}
    for ds in suite.pretrain_sets:
        base = {**dataset_base(suite, ds, files), "seed": "0", "data.noise_seed": "0"}
        similar = {"data.pretrain": str(files.similar(ds)), "data.clean_fraction": "0"}
        overrides = {
            "sfbd+pretrain": {**base, "method": "sfbd", **similar},
            "pretrain-only": {**base, "method": "clean-only", **similar},
            **{m: {**base, "method": m} for m in METHODS},
        }
        res[ds], dirs[ds] = {}, {}
        for name in PRETRAIN_RUNS:
            res[ds][name], dirs[ds][name] = runner(f"{ds}-{name}-s0", overrides[name])
    rows = []
    for ds, by in res.items():
        for name in ("sfbd+pretrain", "sfbd"):
            for st in by[name]:
                m = st["metrics"]
                rows.append(
                    [
                        ds,
                        f"{PRETRAIN_LABELS[name]} k={st['iteration']}",
                        f"{m['swd']:.4f}",
                        f"{m['mmd']:.2e}",
                        f"{m['denoise_psnr']:.2f}" if "denoise_psnr" in m else "–",
                    ]
                )
        for name in ("pretrain-only", "clean-only", "noisy-only", "oracle"):
            st = by[name]
            rows.append(
                [
                    ds,
                    PRETRAIN_LABELS.get(name, name),
                    f"{final(st):.4f}",
                    f"{final(st, 'mmd'):.2e}",
                    "–",
                ]
            )
    header = ["dataset", "method (seed 0)", "swd", "mmd", "denoise_psnr (dB)"]
    sentences = []
    for ds, by in res.items():
        p, s = final(by["sfbd+pretrain"]), final(by["sfbd"])
        p0 = float(by["sfbd+pretrain"][0]["metrics"]["swd"])
        po, n, c = final(by["pretrain-only"]), final(by["noisy-only"]), final(by["clean-only"])
        std = sfbd_std.get(ds)
        if std is None:
            scale = "one seed, no spread to judge the difference by"
        else:
            size = "more" if abs(p - s) > std else "less"
            scale = f"{size} than the seed std of SFBD in section 1 ({std:.4f})"
        better = "better" if p < s else "worse"
        sentences.append(
            f"{ds}: SFBD pretrained on the similar set with no clean samples goes from swd "
            f"{p0:.4f} at k=0 to {p:.4f}, {below(p, po)} pretrain-only ({po:.4f}) and "
            f"{below(p, n)} noisy-only ({n:.4f}); it ends {better} than SFBD with the clean "
            f"subset ({s:.4f}; a difference of {abs(p - s):.4f}, {scale}), whose clean-only "
            f"baseline reaches {c:.4f}."
        )
    return table(header, rows), res, dirs, sentences


# --------------------------------------------------------------------------- figures


def _style(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)


def swd_figure(path: Path, res: dict[str, dict[str, list[list[dict]]]]) -> None:
    """SWD vs iteration per dataset: SFBD mean, min-max band over seeds, dashed baselines."""
    n = len(res)
    fig = Figure(figsize=(3.6 * n, 3.2))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (ds, by) in zip(axes, res.items(), strict=True):
        for method, color in ITERATIVE.items():
            swd = np.array([[s["metrics"]["swd"] for s in r] for r in by[method]])  # (seeds, K+1)
            it = np.arange(swd.shape[1])
            ax.fill_between(it, swd.min(0), swd.max(0), color=color, alpha=0.2)
            ax.plot(it, swd.mean(0), marker="o", color=color, label=f"{method} (mean)")
        for method in BASELINES:
            ax.axhline(
                mean_of([final(r) for r in by[method]]),
                linestyle="--",
                color=COLORS[method],
                label=method,
            )
        seeds = f"{swd.shape[0]} seed{'s' if swd.shape[0] > 1 else ''}"
        _style(ax, f"{ds} ({seeds})", "iteration k", "swd")
        ax.set_xticks(it)
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
    x = [d["sigma"] for d in sigmas]
    b.plot(
        x, [d["noisy-only"] for d in sigmas], "s--", color=COLORS["noisy-only"], label="noisy-only"
    )
    b.plot(x, [d["sfbd"] for d in sigmas], "o-", color="tab:blue", label="sfbd (2% clean)")
    _style(a, "ring8: clean fraction (τ = 0.35)", "clean fraction", "final swd")
    _style(b, "ring8: noise level", "τ", "final swd")
    for ax in (a, b):
        ax.legend(fontsize=7)
    fig.tight_layout()
    report.save_figure(path, fig)


def gaussian_figure(path: Path, res: dict[str, list[list[dict[str, float]]]]) -> None:
    """W2 and relative covariance error vs k (log scale): SFBD band over seeds, baselines."""
    fig = Figure(figsize=(8.0, 3.2))
    axes = fig.subplots(1, 2)
    for ax, key, label in zip(
        axes, ("w2", "rel_cov_err"), ("W2 to the truth", "‖Σ − Σ*‖_F / ‖Σ*‖_F"), strict=True
    ):
        for method, color in ITERATIVE.items():
            v = np.array([[e[key] for e in r] for r in res[method]])  # (seeds, K+1)
            it = np.arange(v.shape[1])
            if v.shape[0] > 1:
                ax.fill_between(it, v.min(0), v.max(0), color=color, alpha=0.2)
            ax.plot(it, v.mean(0), marker="o", color=color, label=f"{method} (mean)")
        for method in BASELINES:
            ax.axhline(
                mean_of([r[-1][key] for r in res[method]]),
                linestyle="--",
                color=COLORS[method],
                label=method,
            )
        ax.set_yscale("log")
        ax.set_xticks(it)
        seeds = f"{v.shape[0]} seed{'s' if v.shape[0] > 1 else ''}"
        _style(ax, f"Gaussian, exact denoiser ({seeds})", "iteration k", label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    report.save_figure(path, fig)


def pretrain_figure(path: Path, res: dict[str, dict[str, list[dict]]]) -> None:
    """swd vs k: SFBD pretrained on the similar set and on the clean subset; dashed baselines."""
    n = len(res)
    fig = Figure(figsize=(max(4.2 * n, 7.0), 3.8))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (ds, by) in zip(axes, res.items(), strict=True):
        for name, color, marker in (
            ("sfbd+pretrain", "tab:purple", "o"),
            ("sfbd", "tab:blue", "s"),
        ):
            swd = [s["metrics"]["swd"] for s in by[name]]
            ax.plot(range(len(swd)), swd, marker=marker, color=color, label=PRETRAIN_LABELS[name])
        for name in ("pretrain-only", "clean-only", "noisy-only", "oracle"):
            ax.axhline(final(by[name]), linestyle="--", color=COLORS[name], label=name)
        ax.set_xticks(range(len(by["sfbd"])))
        _style(ax, f"{ds}: pretraining on a similar set (seed 0)", "iteration k", "swd")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0.0, 0.12, 1.0, 1.0))
    report.save_figure(path, fig)


def last_samples(out: Path) -> np.ndarray:
    return np.load(sorted((out / "samples").glob("stage-*.npy"))[-1])


def sample_figures(
    results_dir: Path, suite: Suite, dirs: dict[str, dict[str, list[Path]]]
) -> list[tuple[str, str]]:
    """Final samples per method (seed 0): scatter for ring8, image grids for digits."""
    figs = []
    if "ring8" in dirs:
        cfg = load_config(
            overrides=[
                f"{k}={v}"
                for k, v in {**suite.common, **ring8_base(suite), "method": "oracle"}.items()
            ]
        )
        ref = load_problem(cfg).reference
        path = results_dir / "quality-ring8-samples.png"
        panels = [(m, last_samples(dirs["ring8"][m][0])) for m in METHODS]
        report.scatter_panels_png(path, panels, reference=ref, max_points=1000)
        figs.append(("ring8: final samples per method (seed 0; grey: hold-out)", path.name))
    if "digits" in dirs:
        path = results_dir / "quality-digits-samples.png"
        panels = [(m, last_samples(dirs["digits"][m][0])[:64]) for m in METHODS]
        report.image_panels_png(path, panels, nrow=8)
        figs.append(("digits: final samples per method (seed 0)", path.name))
    return figs


def pretrain_sample_figures(
    results_dir: Path, files: DataFiles, dirs: dict[str, dict[str, Path]]
) -> list[tuple[str, str]]:
    """The similar set next to the final samples of the runs pretrained on it (section 6)."""
    figs = []
    for ds, by in dirs.items():
        panels = [
            ("similar set", np.load(files.similar(ds))),
            ("pretrain-only", last_samples(by["pretrain-only"])),
            ("sfbd+pretrain (final)", last_samples(by["sfbd+pretrain"])),
            ("sfbd, clean subset (final)", last_samples(by["sfbd"])),
        ]
        path = results_dir / f"quality-pretrain-{ds}-samples.png"
        if ds == "digits":
            report.image_panels_png(path, [(t, a[:64]) for t, a in panels], nrow=8)
        else:
            report.scatter_panels_png(path, panels, max_points=1000)
        figs.append((f"{ds}: the similar pretraining set and final samples (seed 0)", path.name))
    return figs


# --------------------------------------------------------------------------- main


def results_file(args: argparse.Namespace) -> Path:
    """--results if given; else benchmarks/RESULTS.md for the full suite at its default seeds,
    and OUT/quick/RESULTS.md (--quick) or OUT/full/RESULTS.md (--seeds N) for the others."""
    full = not args.quick and args.seeds is None
    scratch = Path(args.out) / ("quick" if args.quick else "full") / "RESULTS.md"
    return committed.results_path(args.results, "benchmarks/RESULTS.md", scratch, full)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke-test suite (~3 min)")
    ap.add_argument("--out", default="runs/quality", help="root of the run directories")
    ap.add_argument(
        "--results",
        default=None,
        help="Markdown results file (default: benchmarks/RESULTS.md for the full suite, "
        "else OUT/quick|full/RESULTS.md)",
    )
    ap.add_argument("--seeds", type=int, default=None, help="seeds for section 1 (default: 3)")
    args = ap.parse_args(argv)
    suite = SUITES["quick" if args.quick else "full"]
    seeds = args.seeds if args.seeds is not None else suite.seeds
    image_seeds = args.seeds if args.seeds is not None else suite.image_seeds
    if seeds < 1:
        ap.error("--seeds must be >= 1")
    out = Path(args.out) / ("quick" if args.quick else "full")
    results = results_file(args)
    results.parent.mkdir(parents=True, exist_ok=True)
    runner = Runner(out, suite.common)
    t0 = time.perf_counter()
    files = make_data(out)
    section_s: dict[str, float] = {}

    def timed(name: str, t: float) -> None:
        section_s[name] = time.perf_counter() - t

    t = time.perf_counter()
    print(f"1. methods side by side ({seeds} seed(s))", flush=True)
    res, dirs = section_methods(runner, suite, seeds, image_seeds, files)
    t_methods, t_gap, s_methods = methods_tables(res)
    print(t_methods + "\n\n" + t_gap + "\n\n" + s_methods + "\n", flush=True)
    timed("1 methods", t)
    sfbd_std: dict[str, float | None] = {
        ds: mean_std([final(r) for r in by["sfbd"]])[1] if len(by["sfbd"]) > 1 else None
        for ds, by in res.items()
    }

    t = time.perf_counter()
    print("2. backward sampler and steps on ring8", flush=True)
    t_samplers, d_samplers, s_samplers = section_samplers(runner, suite, sfbd_std.get("ring8"))
    print(t_samplers + "\n\n" + s_samplers + "\n", flush=True)
    timed("2 samplers", t)
    t = time.perf_counter()
    print("3. clean fraction on ring8", flush=True)
    t_fractions, d_fractions, s_fractions = section_fractions(runner, suite)
    print(t_fractions + "\n\n" + s_fractions + "\n", flush=True)
    timed("3 clean fraction", t)
    t = time.perf_counter()
    print("4. noise level on ring8", flush=True)
    t_sigmas, d_sigmas, s_sigmas = section_sigmas(runner, suite)
    print(t_sigmas + "\n\n" + s_sigmas + "\n", flush=True)
    timed("4 noise level", t)
    t = time.perf_counter()
    print("5. exact distance to the truth, analytic Gaussian model", flush=True)
    t_gauss, d_gauss, s_gauss = section_gaussian(runner, suite, files)
    print(t_gauss + "\n\n" + s_gauss + "\n", flush=True)
    timed("5 gaussian", t)
    t = time.perf_counter()
    print("6. pretraining on a similar dataset", flush=True)
    t_pretrain, d_pretrain, pre_dirs, s_pretrain = section_pretrain(runner, suite, files, sfbd_std)
    print(t_pretrain + "\n\n" + "\n".join(s_pretrain) + "\n", flush=True)
    timed("6 pretrain", t)
    t = time.perf_counter()
    print("7. noise models", flush=True)
    md_noise, d_noise = noise_models.run_section(
        runner,
        suite.vector,
        suite.noise_seeds,
        suite.photons,
        out / "noise",
        suite.noise_gauss_samples,
    )
    timed("7 noise models", t)

    figs = []
    swd_png = results.parent / "quality-swd.png"
    swd_figure(swd_png, res)
    figs.append(
        ("swd vs iteration, SFBD and Online SFBD (bands: min–max over seeds)", swd_png.name)
    )
    sweeps_png = results.parent / "quality-sweeps.png"
    sweeps_figure(sweeps_png, d_fractions, d_sigmas)
    figs.append(("ring8 sweeps: clean fraction and τ", sweeps_png.name))
    figs += sample_figures(results.parent, suite, dirs)
    gauss_png = results.parent / "quality-gaussian.png"
    gaussian_figure(gauss_png, d_gauss)
    figs.append(("Gaussian data, exact denoiser: distance to the truth vs k", gauss_png.name))
    pre_png = results.parent / "quality-pretrain.png"
    pretrain_figure(pre_png, d_pretrain)
    figs.append(("pretraining on a similar set vs a clean subset: swd vs k", pre_png.name))
    figs += pretrain_sample_figures(results.parent, files, pre_dirs)
    photon_png = results.parent / "quality-photon.png"
    noise_models.photon_figure(photon_png, d_noise["photon"])
    figs.append(("photon noise: swd vs photons at full scale", photon_png.name))
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
        "online_swd_per_iteration": {
            ds: [[s["metrics"]["swd"] for s in r] for r in by["online-sfbd"]]
            for ds, by in res.items()
        },
        "denoise_nfe": {
            ds: {m: [denoise_nfe(r) for r in by[m]] for m in ITERATIVE} for ds, by in res.items()
        },
        "samplers": d_samplers,
        "clean_fraction": d_fractions,
        "sigma": d_sigmas,
        "gaussian": d_gauss,  # {method: [per seed: [per stage: {mean_err, ..., w2}]]}
        "pretrain": {
            ds: {name: [s["metrics"] for s in st] for name, st in by.items()}
            for ds, by in d_pretrain.items()
        },
        "noise_models": d_noise,
        "section_seconds": section_s,
        "wall_seconds": wall,
        "runs_trained": len(runner.ran),
        "runs_reused": runner.reused,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    command = committed.command_line(__file__, sys.argv[1:] if argv is None else argv)
    vec = ", ".join(f"{k}={v}" for k, v in suite.vector.items())
    img = ", ".join(f"{k}={v}" for k, v in suite.image.items())
    gauss = ", ".join(f"{k}={v}" for k, v in gs.SETTINGS.items())
    per_section = ", ".join(f"{k} {v:.0f} s" for k, v in section_s.items())
    samplers = ", ".join(f"{s} {n}" for s, n in suite.samplers)
    md = [
        f"# SFBD quality benchmark ({summary['suite']} suite)",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"torch {torch.__version__}, device cpu",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{command}`",
        f"- wall time: {wall:.0f} s ({len(runner.ran)} runs trained, {runner.reused} reused "
        f"from `{committed.display_path(out)}`); per section: {per_section}",
        f"- vector settings: {vec}",
        (
            f"- digits settings: {img}. The data are a fixed random 2/3 of scikit-learn's 1,797 "
            "8x8 digits (1,198 images); the other third supplies section 6's pretraining set. "
            "Training steps (200 + 3×70, warm-up 100) and sampler steps (32) are lower than in "
            "the previous full suite (300 + 3×100, warm-up 200, 64 steps, one seed) to fit "
            "three seeds in the time budget."
            if "digits" in suite.datasets
            else "- digits: not run"
        ),
        "- seeds: section 1 uses `seed=s` and `data.noise_seed=s` for s = 0.."
        f"{seeds - 1}"
        + (f" (digits: 0..{image_seeds - 1})" if "digits" in suite.datasets else "")
        + "; mean ± std over seeds; sections 2–4 and 6 "
        f"use seed 0; section 5 uses s = 0..{suite.gauss_seeds - 1}.",
        "- Every baseline trains one stage with SFBD's total step budget. Metrics use the EMA "
        "weights and samples generated from pure noise; lower swd/mmd is better.",
        "",
        "## 1. Methods side by side",
        "",
        t_methods,
        "",
        "Gap closed = (swd clean-only − swd sfbd final) / (swd clean-only − swd oracle), from the "
        "seed means; 1 = as good as the oracle, 0 = no better than clean-only. Online SFBD runs "
        "with its defaults (refresh every 20 steps, the refresh size that spends SFBD's "
        "denoising budget, ramp over the first quarter of the phase) and the same "
        "pretraining and update steps as SFBD; denoising NFE counts the denoiser calls spent on "
        "backward sampling up to that stage.",
        "",
        t_gap,
        "",
        s_methods,
        "",
        "## 2. Backward sampler and sampling steps (ring8, SFBD)",
        "",
        f"Settings {samplers} (`sample.sampler`, `sample.steps`: steps of the full EDM schedule, "
        "of which the part below τ runs when denoising; generating from pure noise for the "
        "metrics always uses heun on the same schedule). Wall time is the sum of the stages' "
        "`seconds` (training, backward sampling, evaluation); training is the same in every "
        "row, and each time is from one run (on a busy machine they vary by a few seconds).",
        "",
        t_samplers,
        "",
        s_samplers,
        "",
        "## 3. Clean fraction (ring8)",
        "",
        t_fractions,
        "",
        s_fractions,
        "",
        "## 4. Noise level τ (ring8)",
        "",
        t_sigmas,
        "",
        s_sigmas,
        "",
        "## 5. Exact distance to the truth: Gaussian data, analytic denoiser",
        "",
        f"{gs.NUM_SAMPLES:,} draws of N(μ*, Σ*) with μ* = {gs.MU.tolist()}, Σ* = "
        f"{gs.COV.tolist()} (benchmarks/gaussian_steps.py), settings {gauss}, heun with 64 "
        "steps; `model.kind=gaussian` refits mean and covariance at every stage, so the "
        "distances below are exact: the fitted N(μ, Σ) against N(μ*, Σ*), W2 in closed form. "
        "Baselines are one fit: oracle to all clean originals, clean-only to the clean "
        "samples, noisy-only to the noisy ones.",
        "",
        t_gauss,
        "",
        s_gauss,
        "",
        "## 6. Pretraining on a similar dataset instead of a clean subset",
        "",
        "`data.pretrain` = clean samples of a *similar* distribution and `data.clean_fraction=0`"
        ": SFBD pretrains (stage 0) on them and updates on E_k alone; pretrain-only is "
        "clean-only on them with SFBD's total step budget. Similar sets: "
        + "; ".join(f"{ds}: {SIMILAR[ds]}" for ds in suite.pretrain_sets)
        + ". The clean-subset, noisy-only and oracle rows are section 1's seed-0 runs.",
        "",
        t_pretrain,
        "",
        *[f"- {s}" for s in s_pretrain],
        "",
        "## 7. Noise models: the right model against the naive white guess",
        "",
        noise_models.SUMMARY,
        "",
        md_noise,
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
