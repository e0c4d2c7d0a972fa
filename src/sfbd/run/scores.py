"""Per-stage scores that need no clean reference, so user-mode runs report them too.

* ``val_noisy`` (and ``val_clean`` in benchmark mode): the stage's EMA denoiser on the
  held-out noisy set (:mod:`sfbd.data.holdout`) by the ambient loss
  (:func:`sfbd.metrics.ambient.ambient_validation`): the clean denoising loss estimated
  from noisy data, lower is better, on the same extra-noise draws at every stage. The stage
  with the lowest ``val_noisy`` is the run's best (:func:`best_stage`).
* ``copy_rate`` and ``nn_ratio``: how much the generated samples copy the clean training set
  (:mod:`sfbd.metrics.memorisation`), in the data's scale; the clean set's own
  leave-one-out median distance is computed once per run. ``samples/nearest-KK.png`` shows
  generated samples beside their nearest clean sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sfbd import report
from sfbd.data.problem import Problem
from sfbd.metrics.ambient import ambient_validation
from sfbd.metrics.memorisation import leave_one_out, memorisation_metrics, nearest_pairs
from sfbd.rng import stream_id
from sfbd.schema import Config

PAIRS = 32  # generated samples shown beside their nearest clean sample


class StageScores:
    """The reference-free scores of a run's stages (see the module docstring); rank 0 builds
    it once per execution: the clean set's leave-one-out median is computed here."""

    def __init__(self, cfg: Config, prob: Problem, grid: torch.Tensor, device: torch.device):
        self.cfg, self.prob, self.device = cfg, prob, device
        self.sigma_max = float(grid[0])
        self.clean = prob.decoded(prob.clean)  # the data's scale, as generated samples are
        self.clean_median: float | None = None
        if len(self.clean) >= 2:
            self.clean_median = float(np.median(leave_one_out(self.clean, device=device)))
        h = prob.holdout
        self.truth = None
        if h is not None and h.truth is not None:  # into the model space, where D works
            self.truth = prob.corruption.encoded(h.truth)

    def __call__(self, denoiser: torch.nn.Module, samples: np.ndarray) -> dict[str, float]:
        """``val_noisy`` / ``val_clean`` of ``denoiser`` and ``copy_rate`` / ``nn_ratio`` of
        its generated ``samples`` (data scale)."""
        out: dict[str, float] = {}
        h = self.prob.holdout
        if h is not None:
            out.update(
                ambient_validation(
                    denoiser,
                    h.noisy,
                    h.levels,
                    h.index,
                    sigma_max=self.sigma_max,
                    stream=stream_id("val-noisy", self.cfg.seed),
                    truth=self.truth,
                    batch_size=self.cfg.sample.batch_size,
                    device=self.device,
                )
            )
        if self.clean_median is not None:
            out.update(
                memorisation_metrics(
                    samples, self.clean, clean_median=self.clean_median, device=self.device
                )
            )
        return out

    def picture(self, path: Path, samples: np.ndarray, title: str) -> None:
        """``path``: the first generated samples beside their nearest clean sample."""
        if len(self.clean) < 2:
            return
        s, nearest, ratios = nearest_pairs(samples, self.clean, PAIRS, device=self.device)
        reference = None if self.prob.is_image else np.asarray(self.clean[:5000])
        report.nearest_png(path, s, nearest, ratios, title=title, reference=reference)


def best_stage(stages: Sequence[Mapping[str, Any]], key: str = "val_noisy") -> int | None:
    """The iteration of the finished stage with the lowest finite ``key`` (the earliest among
    equals), None when no stage has it."""
    best: tuple[float, int] | None = None
    for entry in stages:
        value = (entry.get("metrics") or {}).get(key)
        finite = isinstance(value, int | float) and math.isfinite(value)
        if finite and (best is None or value < best[0]):
            best = (float(value), int(entry["iteration"]))
    return None if best is None else best[1]
