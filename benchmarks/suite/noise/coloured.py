"""Section 7 b: coloured noise on ring8 with the covariance ``NOISE_COV`` (anisotropic,
correlated): whitening and top-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from suite.noise.common import NOISE_COV, RunFn, baselines, final_swd, naive_user, rows_table

INTRO = (
    f"Noise covariance {NOISE_COV.tolist()} (condition number "
    f"{np.linalg.cond(NOISE_COV):.1f}); the naive guess is white noise of the same overall "
    "std, sqrt(tr Σ / D)."
)


def section_coloured(
    run: RunFn, vector: dict[str, str], seeds: int, out: Path, files: dict[str, Path]
) -> tuple[str, dict]:
    keys = ("clean-only", "oracle", "naive", "whiten", "top-up")
    res: dict[str, list[float]] = {k: [] for k in keys}
    rms = float(np.sqrt(np.trace(NOISE_COV) / 2))
    for s in range(seeds):
        base = {**vector, "data.source": "ring8", "seed": str(s), "data.noise_seed": str(s)}
        base.update({"data.sigma": "null", "data.noise_cov": str(files["cov"])})
        for m, v in baselines(run, f"col-s{s}", base).items():
            res[m].append(v)
        for method in ("whiten", "top-up"):
            ov = {**base, "method": "sfbd", "data.noise_method": method}
            res[method].append(final_swd(run(f"col-s{s}-{method}", ov)[0]))
        res["naive"].append(final_swd(naive_user(run, f"col-s{s}", base, rms, out)[0]))
    names = {
        "naive": f"white at the same rms {rms:.3f}",
        "whiten": "whitened (data.noise_cov)",
        "top-up": "top-up to white (data.noise_method: top-up)",
    }
    return rows_table(res, names), res
