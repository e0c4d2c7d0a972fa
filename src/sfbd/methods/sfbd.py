"""SFBD (Lu, Wu, Yu 2025, Algorithm 1): pretrain on the clean set, then K rounds of
backward sampling and a warm-started denoiser update.

Stage 0 trains ``train.pretrain_steps`` on the clean set (with data.pretrain's samples), or,
with ``sfbd.pretrain: ambient``, on the ambient mixture of clean and noisy rows
(:func:`~sfbd.methods.base.ambient_set`), so that the first backward sampling starts from a
model that has already seen the noisy data.
Stage k = 1..K backward-samples every noisy sample from its noise level with the EMA of stage
k-1 (E_k, keyed by the noisy sample's index) and continues training (weights, EMA and Adam
state) for ``train.update_steps`` on E_k together with the clean set, drawn uniformly.
More iterations (``sfbd.iterations``) extend a finished run: its stages are a prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfbd.errors import ConfigError
from sfbd.methods.base import (
    AMBIENT,
    CLEAN,
    METHODS,
    PRETRAIN_CHOICES,
    Method,
    Stage,
    StageContext,
    as_set,
    check_ambient,
    pretrain_set,
    stacked,
)
from sfbd.train.data import TrainingSet

if TYPE_CHECKING:
    from sfbd.schema import Config


@METHODS.register("sfbd")
class SFBD(Method):
    name = "sfbd"
    pretrains = True
    growable = ("sfbd.iterations",)

    def plan(self, cfg: Config) -> list[Stage]:
        t = cfg.train
        updates = [Stage(k, "update", t.update_steps, denoises=True) for k in _rounds(cfg)]
        return [Stage(0, "pretrain", t.pretrain_steps), *updates]

    def training_set(self, stage: Stage, ctx: StageContext) -> TrainingSet:
        if stage.iteration == 0:
            return pretrain_set(ctx)
        denoised = ctx.denoise(stage.iteration)
        return as_set(ctx, stacked(denoised, ctx.prob.clean), denoised)

    @classmethod
    def check_keys(cls, cfg: Config) -> None:
        if cfg.sfbd.pretrain not in PRETRAIN_CHOICES:
            raise ConfigError(
                f"sfbd.pretrain must be one of {', '.join(PRETRAIN_CHOICES)}, "
                f"not {cfg.sfbd.pretrain!r}"
            )

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        if cfg.sfbd.pretrain == AMBIENT:
            check_ambient(cfg, f"sfbd.pretrain={AMBIENT}", f"set sfbd.pretrain={CLEAN}")


def _rounds(cfg: Config) -> range:
    return range(1, cfg.sfbd.iterations + 1)
