"""Benchmark mode's problem: one clean source split into a reference, a clean set and a noisy
set corrupted by the run's noise model, the noise of sample i keyed by (noise_seed, i).

The split is a permutation seeded by ``data.noise_seed``: the first ``data.holdout`` of the
source is the reference (unless ``eval.reference`` is given), ``data.clean_fraction`` of the
rest stays clean, the remainder is corrupted (:func:`corrupted`) and its clean originals are
kept as ``noisy_truth`` for the metrics that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sfbd.data.problem import Problem
from sfbd.errors import DataError
from sfbd.io.arrays import SampleArray, Samples
from sfbd.noise import Corruption, from_config

if TYPE_CHECKING:
    from sfbd.schema import Config


def corrupted(source: SampleArray, rows: np.ndarray, noise: Corruption, noise_seed: int) -> Samples:
    """The benchmark's noisy set: rows ``rows`` of ``source`` corrupted by ``noise`` (built
    for those rows, in their order), the noise of each keyed by its source index."""

    def corrupt(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return noise.subset(pos).corrupt(x, rows[pos], noise_seed)

    return Samples(source, rows=rows, fn=corrupt)


def split_benchmark(source: SampleArray, cfg: Config, has_reference: bool) -> Problem:
    """Hold out a reference set, keep a clean fraction, corrupt the rest (fixed seeded noise)."""
    d = cfg.data
    n = len(source)
    perm = np.random.default_rng([d.noise_seed, 7]).permutation(n)
    n_ref = 0 if has_reference else int(round(d.holdout * n))
    ref_idx, train_idx = perm[:n_ref], perm[n_ref:]
    n_clean = int(round(d.clean_fraction * len(train_idx)))
    if d.clean_fraction > 0 and n_clean < 2:
        alone = ", or set it to 0 to pretrain on data.pretrain alone" if d.pretrain else ""
        raise DataError(
            f"data.clean_fraction {d.clean_fraction} of {len(train_idx)} training samples leaves "
            f"{n_clean} clean samples; raise data.clean_fraction or data.num_samples{alone}"
        )
    if n_ref == 1:
        raise DataError(
            f"data.holdout {d.holdout} of {n} samples holds out 1 sample, but the metrics need "
            "at least 2; raise data.holdout, or set it to 0 for no reference"
        )
    clean_idx, noisy_idx = np.sort(train_idx[:n_clean]), np.sort(train_idx[n_clean:])
    if len(noisy_idx) == 0:
        raise DataError("no noisy samples left: lower data.clean_fraction or data.holdout")
    noise = from_config(cfg, index=noisy_idx)
    clean, noisy = noise.to_model_space(
        Samples(source, rows=clean_idx),
        corrupted(source, noisy_idx, noise, d.noise_seed),
        ("data.source", "noisy"),
    )
    return Problem(
        clean=clean,
        noisy=noisy,
        corruption=noise,
        reference=Samples(source, rows=ref_idx) if n_ref > 0 else None,
        noisy_truth=Samples(source, rows=noisy_idx),
    )
