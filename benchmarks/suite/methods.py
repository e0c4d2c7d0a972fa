"""Section 1: the methods side by side on every dataset of the suite, over seeds.

Oracle, clean-only, noisy-only, SFBD and Online SFBD per iteration k = 0..K, at the same
training steps; the mean +- std of swd / mmd / denoise_psnr over seeds, the network
evaluations each spent on denoising, and the fraction of the clean-only -> oracle swd gap that
SFBD closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sfbd import report
from sfbd.config import load_config
from sfbd.data import load_problem
from suite.data import DataFiles, dataset_base
from suite.plots import last_samples, style
from suite.runner import Runner, final
from suite.section import Context, Output
from suite.settings import BASELINES, COLORS, ITERATIVE, METHODS, Suite, ring8_base
from suite.tables import fmt, listing, mean_of, mean_std, table

GAP = (
    "Gap closed = (swd clean-only − swd sfbd final) / (swd clean-only − swd oracle), from the "
    "seed means; 1 = as good as the oracle, 0 = no better than clean-only. Online SFBD runs "
    "with its defaults (refresh every 20 steps, the refresh size that spends SFBD's "
    "denoising budget, ramp over the first quarter of the phase) and the same "
    "pretraining and update steps as SFBD; denoising NFE counts the denoiser calls spent on "
    "backward sampling up to that stage."
)


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
        style(ax, f"{ds} ({seeds})", "iteration k", "swd")
        ax.set_xticks(it)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    report.save_figure(path, fig)


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


def run(ctx: Context) -> Output:
    """Section 1 end to end: its tables, its summary entries, and section 1's seed std."""
    print(f"1. methods side by side ({ctx.seeds} seed(s))", flush=True)
    res, dirs = section_methods(ctx.runner, ctx.suite, ctx.seeds, ctx.image_seeds, ctx.files)
    t_methods, t_gap, s_methods = methods_tables(res)
    print(t_methods + "\n\n" + t_gap + "\n\n" + s_methods + "\n", flush=True)
    ctx.sfbd_std = {
        ds: mean_std([final(r) for r in by["sfbd"]])[1] if len(by["sfbd"]) > 1 else None
        for ds, by in res.items()
    }
    summary = {
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
    }
    md = ["## 1. Methods side by side", "", t_methods, "", GAP, "", t_gap, "", s_methods, ""]
    return Output(md, summary, {"res": res, "dirs": dirs})


def figures_swd(results_dir: Path, out: Output) -> tuple[str, str]:
    """quality-swd.png: swd vs iteration; (its title, its file name)."""
    path = results_dir / "quality-swd.png"
    swd_figure(path, out.data["res"])
    return "swd vs iteration, SFBD and Online SFBD (bands: min–max over seeds)", path.name
