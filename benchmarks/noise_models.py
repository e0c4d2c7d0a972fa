"""Noise models on data with known truth: each model against the naive white-noise guess.

Section 7 of benchmarks/quality.py, also runnable alone. For each noise model a benchmark
problem is corrupted with it; SFBD then runs

* with the right noise model (the new ``data.*`` keys), and
* as a user who pretends the noise is white would run it, in user mode on the very same noisy
  file: one level equal to the mean level (per-sample levels), or the same overall standard
  deviation (coloured and photon noise);

next to clean-only (the clean subset alone) and the oracle (every clean original), which do
not depend on the noise. "Gap closed" = (swd clean-only - swd) / (swd clean-only - swd oracle)
from the seed means: 1 = as good as the oracle, 0 = no better than clean-only.

a. Per-sample levels on ring8, log-uniform on ``SIGMA_RANGE``.
b. Coloured noise on ring8 with the covariance ``NOISE_COV`` (anisotropic, correlated):
   whitening and top-up.
c. Photon noise on ring8 scaled into [-1, 1] (intensities (x + 1)/2 in [0.05, 0.95]), at
   several photon counts at full scale (1 / data.gain), read noise ``READ_NOISE``: the
   Anscombe route's swd and the naive guess's, and the transform's own error on the noisy
   data (bias and std of f(y) - f(u) against the unit it should be).
d. Exact fits with the analytic Gaussian model (``model.kind=gaussian``) on Gaussian data:
   the 2-Wasserstein distance of the final fit to the truth, per model, and of the naive guess.

Usage:
    python benchmarks/noise_models.py [--quick] [--out runs/noise_models] [--results FILE]

Alone it writes benchmarks/NOISE_MODELS.md for the full suite (else OUT/quick/NOISE_MODELS.md,
see benchmarks/committed.py). Finished runs are reused, as in quality.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import committed
import numpy as np
import torch

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.data.sources import ring8 as builtin_ring8
from sfbd.nets.checkpoint import load_checkpoint

SIGMA_RANGE = (0.1, 0.8)
NOISE_COV = np.array([[0.16, 0.10], [0.10, 0.09]])  # condition number 16.3, rms 0.35
PHOTONS = (1000, 100, 30, 10, 3)  # photons at full scale (u = 1)
READ_NOISE = 0.01
GAUSS_MU = np.array([0.3, -0.2])
GAUSS_COV = np.array([[0.5, 0.2], [0.2, 0.3]])

Runner = Callable[[str, dict[str, str]], tuple[list[dict], Path]]


def _final(stages: list[dict]) -> float:
    return float(stages[-1]["metrics"]["swd"])


def _mean(v: Sequence[float]) -> float:
    return float(np.mean(v))


def _fmt(v: Sequence[float]) -> str:
    return f"{np.mean(v):.4f}" if len(v) == 1 else f"{np.mean(v):.4f} ± {np.std(v):.4f}"


def _gap(clean: float, oracle: float, x: float) -> str:
    return f"{(clean - x) / (clean - oracle):.2f}" if clean != oracle else "–"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def make_files(out: Path, n_gauss: int = 100_000) -> dict[str, Path]:
    """The arrays this section makes: the noise covariance, ring8 in [-1, 1], Gaussian data."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"cov": out / "noise-cov.npy", "ring8_unit": out / "ring8-unit.npy"}
    files["gauss"] = out / "gauss-noise.npy"
    np.save(files["cov"], NOISE_COV)
    x = builtin_ring8(8000, np.random.default_rng(11))
    np.save(files["ring8_unit"], (0.9 * x / np.abs(x).max()).astype(np.float32))
    g = np.random.default_rng(12).multivariate_normal(GAUSS_MU, GAUSS_COV, n_gauss)
    np.save(files["gauss"], g.astype(np.float32))
    return files


def _naive_user(
    run: Runner, label: str, base: dict[str, str], sigma: float, out: Path
) -> tuple[list[dict], Path]:
    """SFBD in user mode on the benchmark problem's own noisy file, assuming white noise at
    ``sigma``; metrics against the same held-out reference."""
    cfg = load_config(overrides=[f"{k}={v}" for k, v in base.items()])
    prob = load_problem(cfg)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{label}-{name}.npy" for name in ("noisy", "clean", "reference")}
    np.save(paths["noisy"], prob.decode(prob.noisy))  # as stored: the data's scale
    np.save(paths["clean"], prob.decode(prob.clean))
    assert prob.reference is not None
    np.save(paths["reference"], prob.reference)
    user = {k: v for k, v in base.items() if not k.startswith("data.")}
    user.update({"data.noisy": str(paths["noisy"]), "data.clean": str(paths["clean"])})
    user.update({"eval.reference": str(paths["reference"]), "data.sigma": f"{sigma:.6g}"})
    user["method"] = "sfbd"
    return run(f"{label}-naive", user)


def _baselines(run: Runner, label: str, base: dict[str, str]) -> dict[str, float]:
    """clean-only and oracle swd: they do not depend on the noise, so white-noise runs."""
    white = {k: v for k, v in base.items() if not k.startswith(("data.noise", "data.gain"))}
    white = {k: v for k, v in white.items() if k not in ("data.sigma_range", "data.read_noise")}
    white["data.sigma"] = "0.35"
    return {
        m: _final(run(f"{label}-{m}", {**white, "method": m})[0]) for m in ("clean-only", "oracle")
    }


def section_per_sample(
    run: Runner, vector: dict[str, str], seeds: int, out: Path
) -> tuple[str, dict]:
    res: dict[str, list[float]] = {"clean-only": [], "oracle": [], "naive": [], "per-sample": []}
    mean_levels = []
    for s in range(seeds):
        base = {**vector, "data.source": "ring8", "seed": str(s), "data.noise_seed": str(s)}
        base.update(
            {"data.sigma": "null", "data.sigma_range": f"[{SIGMA_RANGE[0]}, {SIGMA_RANGE[1]}]"}
        )
        for m, v in _baselines(run, f"ps-s{s}", base).items():
            res[m].append(v)
        res["per-sample"].append(_final(run(f"ps-s{s}-sfbd", {**base, "method": "sfbd"})[0]))
        cfg = load_config(overrides=[f"{k}={v}" for k, v in base.items()])
        level = float(load_problem(cfg).corruption.sigma.mean())
        mean_levels.append(level)
        res["naive"].append(_final(_naive_user(run, f"ps-s{s}", base, level, out)[0]))
    names = {"naive": f"white at the mean level {np.mean(mean_levels):.3f}"}
    names["per-sample"] = "per-sample levels (data.sigma_range)"
    return _rows_table(res, names), res


def _rows_table(res: dict[str, list[float]], names: dict[str, str]) -> str:
    c, o = _mean(res["clean-only"]), _mean(res["oracle"])
    rows = [["clean-only", _fmt(res["clean-only"]), "0"], ["oracle", _fmt(res["oracle"]), "1"]]
    rows += [[f"SFBD, {names[k]}", _fmt(res[k]), _gap(c, o, _mean(res[k]))] for k in names]
    return _table(["method", "final swd", "gap closed"], rows)


def section_coloured(
    run: Runner, vector: dict[str, str], seeds: int, out: Path, files: dict[str, Path]
) -> tuple[str, dict]:
    keys = ("clean-only", "oracle", "naive", "whiten", "top-up")
    res: dict[str, list[float]] = {k: [] for k in keys}
    rms = float(np.sqrt(np.trace(NOISE_COV) / 2))
    for s in range(seeds):
        base = {**vector, "data.source": "ring8", "seed": str(s), "data.noise_seed": str(s)}
        base.update({"data.sigma": "null", "data.noise_cov": str(files["cov"])})
        for m, v in _baselines(run, f"col-s{s}", base).items():
            res[m].append(v)
        for method in ("whiten", "top-up"):
            ov = {**base, "method": "sfbd", "data.noise_method": method}
            res[method].append(_final(run(f"col-s{s}-{method}", ov)[0]))
        res["naive"].append(_final(_naive_user(run, f"col-s{s}", base, rms, out)[0]))
    names = {
        "naive": f"white at the same rms {rms:.3f}",
        "whiten": "whitened (data.noise_cov)",
        "top-up": "top-up to white (data.noise_method: top-up)",
    }
    return _rows_table(res, names), res


def anscombe_error(gain: float, n: int = 200_000) -> tuple[float, float]:
    """Bias and std of f(y_u) - f(u) over u uniform in [0.05, 0.95] (should be 0 and 1)."""
    from sfbd.noise import PoissonGaussian

    noise = PoissonGaussian(gain, READ_NOISE)
    u = np.random.default_rng(0).uniform(0.05, 0.95, (n, 1))
    y = noise.corrupt((2 * u - 1).astype(np.float32), np.arange(n), noise_seed=0)
    d = noise.anscombe((y.astype(np.float64) + 1) / 2) - noise.anscombe(u)
    return float(d.mean()), float(d.std())


def section_photon(
    run: Runner, vector: dict[str, str], photons: Sequence[int], out: Path, files: dict[str, Path]
) -> tuple[str, dict]:
    base0 = {**vector, "data.source": str(files["ring8_unit"]), "seed": "0", "data.noise_seed": "0"}
    base0["data.num_samples"] = "8000"
    bl = _baselines(run, "ph", base0)
    rows, data = [], []
    for p in photons:
        gain = 1.0 / p
        base = {**base0, "data.sigma": "null", "data.noise": "poisson-gaussian"}
        base.update({"data.gain": f"{gain:.6g}", "data.read_noise": str(READ_NOISE)})
        sw = _final(run(f"ph-{p}-sfbd", {**base, "method": "sfbd"})[0])
        cfg = load_config(overrides=[f"{k}={v}" for k, v in base.items()])
        prob = load_problem(cfg)
        assert prob.noisy_truth is not None
        rms = float(np.std(prob.decode(prob.noisy) - prob.noisy_truth))  # what a user measures
        naive = _final(_naive_user(run, f"ph-{p}", base, rms, out)[0])
        bias, std = anscombe_error(gain)
        data.append(
            {
                "photons": p,
                "anscombe": sw,
                "naive": naive,
                "rms": rms,
                "bias": bias,
                "std": std,
                **bl,
            }
        )
        c, o = bl["clean-only"], bl["oracle"]
        rows.append(
            [
                f"{p:,}",
                f"{rms:.3f}",
                f"{bias:+.3f}",
                f"{std:.3f}",
                f"{sw:.4f}",
                _gap(c, o, sw),
                f"{naive:.4f}",
                _gap(c, o, naive),
            ]
        )
    header = [
        "photons at full scale",
        "noise rms (data scale)",
        "Anscombe bias",
        "Anscombe std",
        "SFBD Anscombe swd",
        "gap closed",
        "naive white swd",
        "gap closed",
    ]
    head = f"clean-only swd {bl['clean-only']:.4f}, oracle {bl['oracle']:.4f} (seed 0)."
    return head + "\n\n" + _table(header, rows), {"rows": data, **bl}


def _w2(mu1: np.ndarray, c1: np.ndarray, mu2: np.ndarray, c2: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    r = sqrtm(c2)
    cross = np.real(sqrtm(r @ c1 @ r))
    return float(np.sqrt(max(np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * cross), 0.0)))


def _fit_w2(out: Path, stage: int, decode: Callable[[np.ndarray], np.ndarray] | None) -> float:
    ema = load_checkpoint(out / "checkpoints" / f"stage-{stage:02d}")[1]
    mean, cov = ema.mean.numpy().astype(np.float64), ema.cov.numpy().astype(np.float64)
    if decode is not None:  # a linear model space (whitening): map the fit back
        a = decode(np.eye(2)).astype(np.float64)
        mean, cov = mean @ a, a.T @ cov @ a
    return _w2(mean, cov, GAUSS_MU, GAUSS_COV)


def section_gaussian(run: Runner, out: Path, files: dict[str, Path]) -> tuple[str, dict]:
    from sfbd.noise import ColouredGaussian

    base = {"data.source": str(files["gauss"]), "data.clean_fraction": "0.0008", "device": "cpu"}
    base.update({"data.holdout": "0.02", "model.kind": "gaussian", "sfbd.iterations": "4"})
    base.update({"train.update_steps": "200", "sample.steps": "64", "eval.num_samples": "500"})
    base.update({"data.sigma": "null", "method": "sfbd", "eval.swd_projections": "64"})
    k, data = 4, {}
    lo, hi = SIGMA_RANGE[0], 2 * SIGMA_RANGE[1]
    ps = {**base, "data.sigma_range": f"[{lo}, {hi}]"}
    data["per-sample"] = _fit_w2(run("gauss-ps", ps)[1], k, None)
    cfg = load_config(overrides=[f"{a}={b}" for a, b in ps.items()])
    level = float(load_problem(cfg).corruption.sigma.mean())
    data["per-sample naive"] = _fit_w2(_naive_user(run, "gauss-ps", ps, level, out)[1], k, None)
    for method in ("whiten", "top-up"):
        col = {**base, "data.noise_cov": str(files["cov"]), "data.noise_method": method}
        decode = ColouredGaussian(NOISE_COV, method).decode if method == "whiten" else None
        data[method] = _fit_w2(run(f"gauss-{method}", col)[1], k, decode)
    rms = float(np.sqrt(np.trace(NOISE_COV) / 2))
    data["coloured naive"] = _fit_w2(_naive_user(run, "gauss-col", col, rms, out)[1], k, None)
    rows = [
        [
            f"per-sample levels, log-uniform [{lo:g}, {hi:g}]",
            f"{data['per-sample']:.4f}",
            f"white at the mean level {level:.3f}",
            f"{data['per-sample naive']:.4f}",
        ],
        [
            "coloured, whitened",
            f"{data['whiten']:.4f}",
            f"white at the rms {rms:.3f}",
            f"{data['coloured naive']:.4f}",
        ],
        [
            "coloured, top-up",
            f"{data['top-up']:.4f}",
            "(the same)",
            f"{data['coloured naive']:.4f}",
        ],
    ]
    header = ["noise model", "W2 to the truth", "naive guess", "W2 to the truth"]
    return _table(header, rows), data


def photon_figure(path: Path, data: dict) -> None:
    """swd against photons at full scale: Anscombe SFBD, the naive guess, the baselines."""
    from matplotlib.figure import Figure

    rows = data["rows"]
    p = [r["photons"] for r in rows]
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    ax.plot(p, [r["anscombe"] for r in rows], "o-", color="tab:blue", label="SFBD, Anscombe")
    ax.plot(p, [r["naive"] for r in rows], "s--", color="tab:red", label="SFBD, naive white")
    ax.axhline(data["clean-only"], color="tab:orange", ls=":", label="clean-only")
    ax.axhline(data["oracle"], color="tab:green", ls=":", label="oracle")
    ax.set_xscale("log")
    ax.set(xlabel="photons at full scale (1 / data.gain)", ylabel="final swd (lower is better)")
    ax.set_title("photon noise on ring8 in [-1, 1]", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run_section(
    run: Runner,
    vector: dict[str, str],
    seeds: int,
    photons: Sequence[int],
    out: Path,
    n_gauss: int = 100_000,
) -> tuple[str, dict]:
    """All of section 7: its Markdown (subsections a-d) and its numbers."""
    files = make_files(out, n_gauss)
    t0 = time.perf_counter()
    md, data = [], {}
    print("7a. per-sample levels", flush=True)
    t, data["per_sample"] = section_per_sample(run, vector, seeds, out)
    md += ["### a. Per-sample levels (ring8)", "", INTRO["a"], "", t, ""]
    print("7b. coloured noise", flush=True)
    t, data["coloured"] = section_coloured(run, vector, seeds, out, files)
    md += ["### b. Coloured noise (ring8)", "", INTRO["b"], "", t, ""]
    print("7c. photon noise", flush=True)
    t, data["photon"] = section_photon(run, vector, photons, out, files)
    md += ["### c. Photon noise (ring8 scaled into [-1, 1])", "", INTRO["c"], "", t, ""]
    print("7d. exact fits, analytic Gaussian model", flush=True)
    t, data["gaussian"] = section_gaussian(run, out, files)
    md += ["### d. Exact fits: Gaussian data, analytic denoiser", "", INTRO["d"], "", t, ""]
    data["seconds"] = time.perf_counter() - t0
    return "\n".join(md), data


SUMMARY = (
    "Each noise model corrupts a benchmark problem; SFBD then runs with the right noise model "
    "and, in user mode on the very same noisy file, as a user who pretends the noise is white "
    "would run it: one level equal to the mean level (per-sample levels), or the same overall "
    "std (coloured and photon noise). Clean-only (the clean subset alone) and the oracle "
    "(every clean original) do not depend on the noise. Gap closed = (swd clean-only − swd) / "
    "(swd clean-only − swd oracle), from the seed means: 1 = as good as the oracle, 0 = no "
    "better than clean-only."
)
INTRO = {
    "a": f"Each noisy sample's level is log-uniform on {list(SIGMA_RANGE)} "
    "(`data.sigma: null`, `data.sigma_range`); the naive guess runs SFBD on the same noisy "
    "file at one level, the mean of the levels.",
    "b": f"Noise covariance {NOISE_COV.tolist()} (condition number "
    f"{np.linalg.cond(NOISE_COV):.1f}); the naive guess is white noise of the same overall "
    "std, sqrt(tr Σ / D).",
    "c": "ring8 scaled by 0.9 / max|x| (intensities u = (x + 1)/2 in [0.05, 0.95]), gain "
    f"α = 1 / photons, read noise {READ_NOISE}; seed 0. The naive guess is white noise of the "
    "noise's measured overall std. 'Anscombe bias' and 'std' are the mean and std of "
    "f(y_u) - f(u) over u uniform in [0.05, 0.95], which the transform makes 0 and 1 when it "
    "holds.",
    "d": "Draws (100,000 in the full suite) of N(μ*, Σ*), μ* = "
    f"{GAUSS_MU.tolist()}, Σ* = {GAUSS_COV.tolist()}; 0.08% clean, the analytic model "
    "refit at each of 4 iterations, heun with 64 steps; W2 of the final fit (mapped back "
    "from the whitened space where needed) to the truth, in closed form.",
}


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import quality  # the suites' settings and its run-reusing Runner

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke-test suite")
    ap.add_argument("--out", default="runs/noise_models", help="root of the run directories")
    ap.add_argument("--results", default=None, help="Markdown results file")
    args = ap.parse_args(argv)
    suite = quality.SUITES["quick" if args.quick else "full"]
    out = Path(args.out) / ("quick" if args.quick else "full")
    scratch = out / "NOISE_MODELS.md"
    results = committed.results_path(
        args.results, "benchmarks/NOISE_MODELS.md", scratch, not args.quick
    )
    runner = quality.Runner(out, suite.common)
    t0 = time.perf_counter()
    md, data = run_section(
        runner, suite.vector, suite.noise_seeds, suite.photons, out, suite.noise_gauss_samples
    )
    wall = time.perf_counter() - t0
    (out / "noise_models.json").write_text(json.dumps(data, indent=1, default=float))
    head = [
        "# Noise models on data with known truth (benchmarks/noise_models.py)",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"torch {torch.__version__}, device cpu",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{committed.command_line(__file__, sys.argv[1:] if argv is None else argv)}`",
        f"- wall time: {wall:.0f} s ({len(runner.ran)} runs trained, {runner.reused} reused)",
        "- vector settings: " + ", ".join(f"{k}={v}" for k, v in suite.vector.items()),
        "",
        SUMMARY,
        "",
    ]
    results.parent.mkdir(parents=True, exist_ok=True)
    figure = results.parent / "noise-models-photon.png"
    photon_figure(figure, data["photon"])
    md += f"\n![photon noise: swd vs photons at full scale]({figure.name})\n"
    results.write_text("\n".join(head) + "\n" + md)
    print(md)
    print(f"wrote {results}; {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
