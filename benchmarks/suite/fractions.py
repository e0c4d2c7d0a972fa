"""Section 3: the clean-fraction sweep on ring8, SFBD against clean-only (seed 0)."""

from __future__ import annotations

from suite.runner import Runner, final
from suite.section import Context, Output
from suite.settings import Suite, ring8_base
from suite.tables import listing, table


def section_fractions(runner: Runner, suite: Suite) -> tuple[str, list[dict], str]:
    """Section 3: final swd of clean-only and SFBD per clean fraction."""
    rows, data = [], []
    for frac in suite.fractions:
        swd = {}
        for method in ("clean-only", "sfbd"):
            ov = {**ring8_base(suite), "method": method, "data.clean_fraction": str(frac)}
            stages, _ = runner(f"ring8-{method}-frac{frac}", ov)
            swd[method] = final(stages)
        data.append({"clean_fraction": frac, **swd})
        gain = swd["clean-only"] - swd["sfbd"]
        rows.append([f"{frac:g}", f"{swd['clean-only']:.4f}", f"{swd['sfbd']:.4f}", f"{gain:+.4f}"])
    header = ["clean fraction", "clean-only swd", "sfbd final swd", "clean-only − sfbd"]
    wins = [f"{d['clean_fraction']:g}" for d in data if d["sfbd"] < d["clean-only"]]
    losses = [f"{d['clean_fraction']:g}" for d in data if d["sfbd"] >= d["clean-only"]]
    top = max(data, key=lambda d: d["clean-only"] - d["sfbd"])
    sentence = (
        f"SFBD's final swd is below clean-only's at clean fractions {listing(wins)} and not at "
        f"{listing(losses)}; the advantage is largest at {top['clean_fraction']:g} "
        f"({top['clean-only'] - top['sfbd']:+.4f})."
    )
    return table(header, rows), data, sentence


def run(ctx: Context) -> Output:
    print("3. clean fraction on ring8", flush=True)
    t, data, s = section_fractions(ctx.runner, ctx.suite)
    print(t + "\n\n" + s + "\n", flush=True)
    md = ["## 3. Clean fraction (ring8)", "", t, "", s, ""]
    return Output(md, {"clean_fraction": data}, {"fractions": data})
