"""Section 2: the backward sampler and its steps on ring8 (SFBD, seed 0).

heun at several `sample.steps` and sde; final metrics and wall time.
"""

from __future__ import annotations

from suite.runner import Runner, final
from suite.section import Context, Output
from suite.settings import Suite, ring8_base
from suite.tables import table


def section_samplers(
    runner: Runner, suite: Suite, seed_std: float | None, methods_ran: bool = True
) -> tuple[str, list[dict], str]:
    """Section 2: final metrics and wall time per (sampler, steps) on ring8 SFBD, seed 0.

    ``seed_std``: section 1's seed std of ring8 SFBD (None with one seed); ``methods_ran``
    False when section 1 did not run (--only), so there is none.
    """
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

    if not methods_ran:
        noise = "section 1 did not run (--only), so there is no seed spread to compare it with"
    elif seed_std is None:
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


def run(ctx: Context) -> Output:
    print("2. backward sampler and steps on ring8", flush=True)
    if ctx.sfbd_std is None:
        t, data, s = section_samplers(ctx.runner, ctx.suite, None, methods_ran=False)
    else:
        t, data, s = section_samplers(ctx.runner, ctx.suite, ctx.sfbd_std.get("ring8"))
    print(t + "\n\n" + s + "\n", flush=True)
    samplers = ", ".join(f"{s} {n}" for s, n in ctx.suite.samplers)
    md = [
        "## 2. Backward sampler and sampling steps (ring8, SFBD)",
        "",
        f"Settings {samplers} (`sample.sampler`, `sample.steps`: steps of the full EDM schedule, "
        "of which the part below τ runs when denoising; generating from pure noise for the "
        "metrics always uses heun on the same schedule). Wall time is the sum of the stages' "
        "`seconds` (training, backward sampling, evaluation); training is the same in every "
        "row, and each time is from one run (on a busy machine they vary by a few seconds).",
        "",
        t,
        "",
        s,
        "",
    ]
    return Output(md, {"samplers": data})
