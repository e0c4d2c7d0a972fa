"""Section 7 a: per-sample noise levels on ring8, log-uniform on ``SIGMA_RANGE``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sfbd.config import load_config
from sfbd.data import load_problem
from suite.noise.common import SIGMA_RANGE, RunFn, baselines, final_swd, naive_user, rows_table

INTRO = (
    f"Each noisy sample's level is log-uniform on {list(SIGMA_RANGE)} "
    "(`data.sigma: null`, `data.sigma_range`); the naive guess runs SFBD on the same noisy "
    "file at one level, the mean of the levels."
)


def section_per_sample(
    run: RunFn, vector: dict[str, str], seeds: int, out: Path
) -> tuple[str, dict]:
    res: dict[str, list[float]] = {"clean-only": [], "oracle": [], "naive": [], "per-sample": []}
    mean_levels = []
    for s in range(seeds):
        base = {**vector, "data.source": "ring8", "seed": str(s), "data.noise_seed": str(s)}
        base.update(
            {"data.sigma": "null", "data.sigma_range": f"[{SIGMA_RANGE[0]}, {SIGMA_RANGE[1]}]"}
        )
        for m, v in baselines(run, f"ps-s{s}", base).items():
            res[m].append(v)
        res["per-sample"].append(final_swd(run(f"ps-s{s}-sfbd", {**base, "method": "sfbd"})[0]))
        cfg = load_config(overrides=[f"{k}={v}" for k, v in base.items()])
        level = float(load_problem(cfg).corruption.sigma.mean())
        mean_levels.append(level)
        res["naive"].append(final_swd(naive_user(run, f"ps-s{s}", base, level, out)[0]))
    names = {"naive": f"white at the mean level {np.mean(mean_levels):.3f}"}
    names["per-sample"] = "per-sample levels (data.sigma_range)"
    return rows_table(res, names), res
