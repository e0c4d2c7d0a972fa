"""Section 9: masked and blurred data, backward sampling by MMPS (issue 23's evidence).

Two image sets with known truth, one corruption each:

* ``digits`` (section 1's 2/3 split of the 8x8 digits): half of the pixels kept, each pixel
  independently (``data.mask_keep: 0.5``), plus white noise sigma = 0.05 on the kept ones;
* ``patches`` (8x8 grey patches of scikit-learn's two photos): a Gaussian blur of std 1 px
  (``data.blur_sigma: 1``, a 5 x 5 kernel) plus white noise sigma = 0.05.

On each: SFBD and Online SFBD with the right corruption model (E_k = MMPS posterior samples),
SFBD's naive guess (``data.naive: true``: the same data read as white noise at sigma = 0.05),
noisy-only (the raw observations as if clean), clean-only and the oracle, at section 1's image
budget but with ``sample.steps`` = :data:`STEPS` (each MMPS call is a forward and two backward
passes). Reported: final swd, the gap closed, and the RMSE of the last E_k against the
clean originals (from ``denoise_psnr``: RMSE = 2 * 10^(-PSNR/20) on [-1, 1]) beside the RMSE
of the raw observations.
"""

from __future__ import annotations

import math

import numpy as np

from suite.data import dataset_base
from suite.section import Context, Output
from suite.tables import fmt, mean_of, table

STEPS = 16  # sample.steps of this section (section 1's images use 32)
SEEDS = 3  # seeds per set at most (the quick suite: its image_seeds, 1)
SIGMA = "0.05"
SETS = {
    "digits": {"data.mask_keep": "0.5", "data.sigma": SIGMA},
    "patches": {"data.blur_sigma": "1.0", "data.sigma": SIGMA, "data.num_samples": "1500"},
}
CORRUPTION = {"digits": "50% of pixels kept, σ = 0.05", "patches": "blur std 1 px, σ = 0.05"}
COMPARED = {
    "clean-only": {"method": "clean-only"},
    "oracle": {"method": "oracle"},
    "noisy-only": {"method": "noisy-only"},
    "naive": {"method": "sfbd", "data.naive": "true"},
    "sfbd": {"method": "sfbd"},
    "online-sfbd": {"method": "online-sfbd"},
}
NAMES = {"naive": "SFBD, naive white guess", "sfbd": "SFBD (MMPS)", "online-sfbd": "Online SFBD"}


def base_of(ctx: Context, ds: str) -> dict[str, str]:
    """The overrides of set ``ds`` (without method and seed)."""
    if ds == "digits":
        base = dataset_base(ctx.suite, "digits", ctx.files)
    else:
        base = {**ctx.suite.image, "data.source": ds}
    return {**base, **SETS[ds], "sample.steps": str(STEPS), **ctx.suite.linear}


def _listing(over: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in over.items())


def rmse(psnr: float | None) -> float:
    return math.nan if psnr is None else 2.0 * 10 ** (-psnr / 20.0)


def observation_rmse(ctx: Context, ds: str, seed: int) -> float:
    """RMSE of the raw observations (as stored, missing entries 0) against their originals."""
    from sfbd.config import load_config
    from sfbd.data import load_problem

    over = {**base_of(ctx, ds), "seed": str(seed), "data.noise_seed": str(seed)}
    prob = load_problem(load_config(overrides=[f"{k}={v}" for k, v in over.items()]))
    assert prob.noisy_truth is not None
    y, x = np.asarray(prob.noisy, np.float64), np.asarray(prob.noisy_truth, np.float64)
    return float(np.sqrt(np.mean((y - x) ** 2)))


def run(ctx: Context) -> Output:
    print("\n9. masked and blurred data (MMPS)", flush=True)
    seeds = min(SEEDS, ctx.image_seeds)
    res: dict[str, dict[str, dict[str, list[float]]]] = {}
    compared = {k: v for k, v in COMPARED.items() if k in ctx.suite.linear_methods}
    for ds in ctx.suite.linear_sets:
        res[ds] = {label: {"swd": [], "rmse": []} for label in compared}
        res[ds]["observations"] = {"swd": [], "rmse": []}
        for seed in range(seeds):
            base = {**base_of(ctx, ds), "seed": str(seed), "data.noise_seed": str(seed)}
            for label, ov in compared.items():
                stages, _ = ctx.runner(f"{ds}-{label}-s{seed}", {**base, **ov})
                last = stages[-1]["metrics"]
                res[ds][label]["swd"].append(float(last["swd"]))
                res[ds][label]["rmse"].append(rmse(last.get("denoise_psnr")))
            res[ds]["observations"]["rmse"].append(observation_rmse(ctx, ds, seed))
    md = [
        "## 9. Masked and blurred data: SFBD through MMPS posterior sampling",
        "",
        f"{seeds} seed(s); section 1's image budget with sample.steps = {STEPS} (heun)"
        + (f", and {_listing(ctx.suite.linear)}" if ctx.suite.linear else "")
        + ". "
        "Gap closed = (swd clean-only − swd) / (swd clean-only − swd oracle). E_K RMSE: the "
        "last denoised set against the clean originals; 'observations' is the RMSE of the raw "
        "corrupted data (missing pixels as 0).",
        "",
    ]
    for ds, by in res.items():
        c, o = mean_of(by["clean-only"]["swd"]), mean_of(by["oracle"]["swd"])
        rows = []
        for label, v in by.items():
            swd = v["swd"]
            g = f"{(c - mean_of(swd)) / (c - o):.2f}" if swd and c != o else "–"
            rm = [r for r in v["rmse"] if r == r]
            rows.append(
                [NAMES.get(label, label), fmt(swd) if swd else "–", g, fmt(rm) if rm else "–"]
            )
        md += [f"**{ds}** ({CORRUPTION[ds]})", "", table(["method", "final swd", "gap closed",
                                                          "E_K RMSE"], rows), ""]  # fmt: skip
        print("\n".join(md[-4:]), flush=True)
    return Output(markdown=md, summary={"linear": res})
