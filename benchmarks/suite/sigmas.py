"""Section 4: the noise-level (τ) sweep on ring8: noisy-only (no clean data) against SFBD at
2% clean (seed 0)."""

from __future__ import annotations

from suite.runner import Runner, final
from suite.section import Context, Output
from suite.settings import Suite, ring8_base
from suite.tables import table


def section_sigmas(runner: Runner, suite: Suite) -> tuple[str, list[dict], str]:
    """Section 4: final swd of noisy-only (0% clean) and SFBD (2% clean) per τ."""
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


def run(ctx: Context) -> Output:
    print("4. noise level on ring8", flush=True)
    t, data, s = section_sigmas(ctx.runner, ctx.suite)
    print(t + "\n\n" + s + "\n", flush=True)
    md = ["## 4. Noise level τ (ring8)", "", t, "", s, ""]
    return Output(md, {"sigma": data}, {"sigmas": data})
