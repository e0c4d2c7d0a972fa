"""Section 7 c: photon noise on ring8 scaled into [-1, 1] (intensities (x + 1)/2 in
[0.05, 0.95]), at several photon counts at full scale (1 / data.gain), read noise
``READ_NOISE``: the Anscombe route's swd and the naive guess's, and the transform's own error on
the noisy data (bias and std of f(y) - f(u) against the unit it should be)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sfbd.config import load_config
from sfbd.data import load_problem
from suite.noise.common import READ_NOISE, RunFn, baselines, final_swd, gap, naive_user
from suite.tables import table

INTRO = (
    "ring8 scaled by 0.9 / max|x| (intensities u = (x + 1)/2 in [0.05, 0.95]), gain "
    f"α = 1 / photons, read noise {READ_NOISE}; seed 0. The naive guess is white noise of the "
    "noise's measured overall std. 'Anscombe bias' and 'std' are the mean and std of "
    "f(y_u) - f(u) over u uniform in [0.05, 0.95], which the transform makes 0 and 1 when it "
    "holds."
)


def anscombe_error(gain: float, n: int = 200_000) -> tuple[float, float]:
    """Bias and std of f(y_u) - f(u) over u uniform in [0.05, 0.95] (should be 0 and 1)."""
    from sfbd.noise import PoissonGaussian

    noise = PoissonGaussian(gain, READ_NOISE)
    u = np.random.default_rng(0).uniform(0.05, 0.95, (n, 1))
    y = noise.corrupt((2 * u - 1).astype(np.float32), np.arange(n), noise_seed=0)
    d = noise.anscombe((y.astype(np.float64) + 1) / 2) - noise.anscombe(u)
    return float(d.mean()), float(d.std())


def section_photon(
    run: RunFn, vector: dict[str, str], photons: Sequence[int], out: Path, files: dict[str, Path]
) -> tuple[str, dict]:
    base0 = {**vector, "data.source": str(files["ring8_unit"]), "seed": "0", "data.noise_seed": "0"}
    base0["data.num_samples"] = "8000"
    bl = baselines(run, "ph", base0)
    rows, data = [], []
    for p in photons:
        gain = 1.0 / p
        base = {**base0, "data.sigma": "null", "data.noise": "poisson-gaussian"}
        base.update({"data.gain": f"{gain:.6g}", "data.read_noise": str(READ_NOISE)})
        sw = final_swd(run(f"ph-{p}-sfbd", {**base, "method": "sfbd"})[0])
        cfg = load_config(overrides=[f"{k}={v}" for k, v in base.items()])
        prob = load_problem(cfg)
        assert prob.noisy_truth is not None
        rms = float(np.std(prob.decode(prob.noisy) - prob.noisy_truth))  # what a user measures
        naive = final_swd(naive_user(run, f"ph-{p}", base, rms, out)[0])
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
                gap(c, o, sw),
                f"{naive:.4f}",
                gap(c, o, naive),
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
    return head + "\n\n" + table(header, rows), {"rows": data, **bl}


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
