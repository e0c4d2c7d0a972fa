"""What the noise-model subsections share: the noise settings, the files, the naive guess.

For each noise model a benchmark problem is corrupted with it; SFBD then runs

* with the right noise model (the new ``data.*`` keys), and
* as a user who pretends the noise is white would run it, in user mode on the very same noisy
  file: one level equal to the mean level (per-sample levels), or the same overall standard
  deviation (coloured and photon noise);

next to clean-only (the clean subset alone) and the oracle (every clean original), which do
not depend on the noise. "Gap closed" = (swd clean-only - swd) / (swd clean-only - swd oracle)
from the seed means: 1 = as good as the oracle, 0 = no better than clean-only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.data.sources import ring8 as builtin_ring8
from suite.tables import table

SIGMA_RANGE = (0.1, 0.8)
NOISE_COV = np.array([[0.16, 0.10], [0.10, 0.09]])  # condition number 16.3, rms 0.35
READ_NOISE = 0.01
GAUSS_MU = np.array([0.3, -0.2])
GAUSS_COV = np.array([[0.5, 0.2], [0.2, 0.3]])

#: a run: (label, overrides) -> (its metrics.json stages, its directory); suite.runner.Runner
RunFn = Callable[[str, dict[str, str]], tuple[list[dict], Path]]


def final_swd(stages: list[dict]) -> float:
    return float(stages[-1]["metrics"]["swd"])


def mean(v: Sequence[float]) -> float:
    return float(np.mean(v))


def fmt(v: Sequence[float]) -> str:
    return f"{np.mean(v):.4f}" if len(v) == 1 else f"{np.mean(v):.4f} ± {np.std(v):.4f}"


def gap(clean: float, oracle: float, x: float) -> str:
    return f"{(clean - x) / (clean - oracle):.2f}" if clean != oracle else "–"


def make_files(out: Path, n_gauss: int = 100_000) -> dict[str, Path]:
    """The arrays section 7 makes: the noise covariance, ring8 in [-1, 1], Gaussian data."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"cov": out / "noise-cov.npy", "ring8_unit": out / "ring8-unit.npy"}
    files["gauss"] = out / "gauss-noise.npy"
    np.save(files["cov"], NOISE_COV)
    x = builtin_ring8(8000, np.random.default_rng(11))
    np.save(files["ring8_unit"], (0.9 * x / np.abs(x).max()).astype(np.float32))
    g = np.random.default_rng(12).multivariate_normal(GAUSS_MU, GAUSS_COV, n_gauss)
    np.save(files["gauss"], g.astype(np.float32))
    return files


def naive_user(
    run: RunFn, label: str, base: dict[str, str], sigma: float, out: Path
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


def baselines(run: RunFn, label: str, base: dict[str, str]) -> dict[str, float]:
    """clean-only and oracle swd: they do not depend on the noise, so white-noise runs."""
    white = {k: v for k, v in base.items() if not k.startswith(("data.noise", "data.gain"))}
    white = {k: v for k, v in white.items() if k not in ("data.sigma_range", "data.read_noise")}
    white["data.sigma"] = "0.35"
    methods = ("clean-only", "oracle")
    return {m: final_swd(run(f"{label}-{m}", {**white, "method": m})[0]) for m in methods}


def rows_table(res: dict[str, list[float]], names: dict[str, str]) -> str:
    """clean-only, oracle, then SFBD per entry of ``names``: final swd and the gap closed."""
    c, o = mean(res["clean-only"]), mean(res["oracle"])
    rows = [["clean-only", fmt(res["clean-only"]), "0"], ["oracle", fmt(res["oracle"]), "1"]]
    rows += [[f"SFBD, {names[k]}", fmt(res[k]), gap(c, o, mean(res[k]))] for k in names]
    return table(["method", "final swd", "gap closed"], rows)


SUMMARY = (
    "Each noise model corrupts a benchmark problem; SFBD then runs with the right noise model "
    "and, in user mode on the very same noisy file, as a user who pretends the noise is white "
    "would run it: one level equal to the mean level (per-sample levels), or the same overall "
    "std (coloured and photon noise). Clean-only (the clean subset alone) and the oracle "
    "(every clean original) do not depend on the noise. Gap closed = (swd clean-only − swd) / "
    "(swd clean-only − swd oracle), from the seed means: 1 = as good as the oracle, 0 = no "
    "better than clean-only."
)
