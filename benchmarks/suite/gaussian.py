"""Section 5: exact distance to the truth per iteration with the analytic Gaussian model.

`model.kind=gaussian` on Gaussian data: mean error, relative covariance error and the
closed-form 2-Wasserstein distance of the fitted Gaussian to the true one (the problem and the
distances come from benchmarks/gaussian_steps.py).
"""

from __future__ import annotations

from pathlib import Path

import gaussian_steps as gs  # benchmarks/gaussian_steps.py (the scripts' own folder)
import numpy as np
from matplotlib.figure import Figure

from sfbd import report
from suite.data import DataFiles
from suite.plots import style
from suite.runner import Runner
from suite.section import Context, Output
from suite.settings import BASELINES, COLORS, ITERATIVE, METHODS, Suite
from suite.tables import below, fmt, mean_of, table

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
        style(ax, f"Gaussian, exact denoiser ({seeds})", "iteration k", label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    report.save_figure(path, fig)


def run(ctx: Context) -> Output:
    print("5. exact distance to the truth, analytic Gaussian model", flush=True)
    t, data, s = section_gaussian(ctx.runner, ctx.suite, ctx.files)
    print(t + "\n\n" + s + "\n", flush=True)
    settings = ", ".join(f"{k}={v}" for k, v in gs.SETTINGS.items())
    md = [
        "## 5. Exact distance to the truth: Gaussian data, analytic denoiser",
        "",
        f"{gs.NUM_SAMPLES:,} draws of N(μ*, Σ*) with μ* = {gs.MU.tolist()}, Σ* = "
        f"{gs.COV.tolist()} (benchmarks/gaussian_steps.py), settings {settings}, heun with 64 "
        "steps; `model.kind=gaussian` refits mean and covariance at every stage, so the "
        "distances below are exact: the fitted N(μ, Σ) against N(μ*, Σ*), W2 in closed form. "
        "Baselines are one fit: oracle to all clean originals, clean-only to the clean "
        "samples, noisy-only to the noisy ones.",
        "",
        t,
        "",
        s,
        "",
    ]
    # {method: [per seed: [per stage: {mean_err, ..., w2}]]}
    return Output(md, {"gaussian": data}, {"res": data})


def figures(results_dir: Path, out: Output) -> tuple[str, str]:
    """quality-gaussian.png; (its title, its file name)."""
    path = results_dir / "quality-gaussian.png"
    gaussian_figure(path, out.data["res"])
    return "Gaussian data, exact denoiser: distance to the truth vs k", path.name
