"""``sfbd demo``: SFBD against the clean-only baseline on ring8, offline, minutes on CPU.

ring8 (8 Gaussians on the unit circle), 2% of the training set clean, the rest seen only with
noise tau = 0.35. Both methods get the same total number of optimizer steps. Writes
DIR/sfbd/ and DIR/clean-only/ (ordinary run directories), DIR/comparison.png and prints a table.
"""

from __future__ import annotations

from pathlib import Path

from sfbd import report
from sfbd.config import load_config
from sfbd.run.runner import Run

DEMO = {
    "data": {"source": "ring8", "sigma": 0.35, "clean_fraction": 0.02, "num_samples": 20000},
    "model": {"kind": "mlp", "hidden": 128, "layers": 3},
    "train": {"pretrain_steps": 3000, "update_steps": 1500, "batch_size": 512},
    "sfbd": {"iterations": 3},
    "eval": {"num_samples": 5000},
}
QUICK = {"train": {"pretrain_steps": 150, "update_steps": 100}, "sfbd": {"iterations": 2}}


def _deep_update(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_update(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def run_demo(out: Path, *, quick: bool = False, progress: bool = True) -> dict[str, list[dict]]:
    """Run the demo into ``out``; returns each method's metrics.json stages."""
    preset = _deep_update(DEMO, QUICK) if quick else DEMO
    results = {}
    for method in ("sfbd", "clean-only"):
        cfg = load_config(base=_deep_update(preset, {"method": method}))
        if progress:
            print(f"== {method} ==", flush=True)
        results[method] = Run(cfg, out / method, progress=progress).execute()
    final = {m: stages[-1]["metrics"] for m, stages in results.items()}
    report.metrics_png(
        out / "comparison.png",
        results["sfbd"],
        keys=["swd", "mmd"],
        baselines={"clean-only": final["clean-only"]},
    )
    if progress:
        print("\nfinal metrics (lower is better; reference: held-out clean data)")
        print(f"{'method':<12}{'swd':>10}{'mmd':>12}")
        for m, v in final.items():
            print(f"{m:<12}{v['swd']:>10.4f}{v['mmd']:>12.2e}")
        print(
            f"\nper-stage metrics: {out}/sfbd/metrics.json; pictures: {out}/*.png, "
            f"{out}/sfbd/stages.png"
        )
    return results
