"""Pictures of a run: each stage's samples (and E_k), and the metric curves over stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sfbd import report
from sfbd.data.problem import Problem
from sfbd.io.runlog import RunLog
from sfbd.methods.base import Stage
from sfbd.run.scores import best_stage


def stage_picture(
    out: Path,
    stage: Stage,
    prob: Problem,
    samples: np.ndarray,
    denoised: np.ndarray | None,
    runlog: RunLog,
) -> None:
    """samples/stage-KK.png (generated, and E_k), and for images the paper's triplets."""
    k = stage.iteration
    panels = [(f"generated, stage {k} ({stage.name})", samples)]
    if denoised is not None:
        panels.append((f"denoised E_{k}", denoised))
    path = out / "samples" / f"stage-{k:02d}.png"
    if not prob.is_image:
        report.scatter_panels_png(path, panels, reference=prob.reference)
        return
    report.image_panels_png(path, [(t, a[:64]) for t, a in panels])
    runlog.image("samples/generated", report.image_grid(samples[:64]), k)
    if denoised is not None and prob.noisy_truth is not None:
        # the same noisy indices as clean original, noisy input and E_k (paper's figure)
        idx = slice(0, 16)
        triplets = [
            ("clean", prob.noisy_truth[idx]),
            (f"noisy ({prob.corruption.describe()})", prob.decode(prob.noisy[idx])),
            (f"denoised E_{k}", denoised[idx]),
        ]
        report.image_panels_png(out / "samples" / f"triplets-{k:02d}.png", triplets)
        runlog.image("samples/denoised", report.image_grid(denoised[idx]), k)


def run_plots(out: Path, prob: Problem, done: list[dict], label: str) -> None:
    """metrics.png (metric curves over stages, the best stage by val_noisy marked) and
    stages.png (every stage's samples)."""
    report.metrics_png(out / "metrics.png", done, label=label, best=best_stage(done))
    panels = []
    for entry in done:
        k = entry["iteration"]
        path = out / "samples" / f"stage-{k:02d}.npy"
        if path.is_file():
            panels.append((f"stage {k} ({entry['stage']})", np.load(path)))
    if prob.is_image:
        report.image_panels_png(out / "stages.png", [(t, a[:64]) for t, a in panels])
    else:
        report.scatter_panels_png(out / "stages.png", panels, reference=prob.reference)
