"""The held-out noisy set: noisy samples kept out of training to score each stage.

``eval.noisy_holdout`` (a fraction of the noisy set, at most ``eval.noisy_holdout_max``) of
the noisy samples, drawn by a permutation seeded by ``data.noise_seed``, are moved from
``Problem.noisy`` to ``Problem.holdout``: they are never trained on, never denoised into E_k
and never in Online SFBD's bank, in both modes, because every method draws from
``Problem.noisy`` only. Each stage scores its model on them by the ambient loss
(:mod:`sfbd.metrics.ambient`, ``val_noisy``), which needs no clean data.

A noise model with no Gaussian model space (``white_levels`` None) keeps every noisy sample
for training: there is no ``val_noisy`` to compute. Fewer than 2 held-out samples: none.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from sfbd.data.problem import NoisyHoldout, Problem
from sfbd.errors import DataError
from sfbd.io.arrays import Samples

if TYPE_CHECKING:
    from sfbd.schema import Config


def holdout_rows(n: int, cfg: Config) -> np.ndarray:
    """The rows (sorted) of an n-sample noisy set that are held out."""
    e = cfg.eval
    h = min(e.noisy_holdout_max, int(round(e.noisy_holdout * n)))
    if h < 2:
        return np.zeros(0, dtype=np.int64)
    perm = np.random.default_rng([cfg.data.noise_seed, 11]).permutation(n)
    return np.sort(perm[:h]).astype(np.int64)


def hold_out_noisy(prob: Problem, cfg: Config) -> Problem:
    """``prob`` with its held-out noisy samples moved to ``holdout`` (see the module
    docstring); the noise model and the clean originals follow the rows they keep."""
    n = len(prob.noisy)
    rows = holdout_rows(n, cfg)
    levels = prob.corruption.white_levels(rows) if len(rows) else None
    if levels is None:
        return prob
    if len(rows) == n:
        raise DataError(
            f"eval.noisy_holdout {cfg.eval.noisy_holdout} holds out every one of the {n} noisy "
            "samples; lower it (0: no held-out noisy set)"
        )
    keep = np.setdiff1d(np.arange(n, dtype=np.int64), rows)
    truth = prob.noisy_truth
    holdout = NoisyHoldout(
        noisy=Samples(prob.noisy, rows=rows),
        levels=np.asarray(levels, dtype=np.float64),
        index=rows,
        truth=None if truth is None else Samples(truth, rows=rows),
    )
    return dataclasses.replace(
        prob,
        noisy=Samples(prob.noisy, rows=keep),
        corruption=prob.corruption.subset(keep),
        noisy_truth=None if truth is None else Samples(truth, rows=keep),
        holdout=holdout,
    )
