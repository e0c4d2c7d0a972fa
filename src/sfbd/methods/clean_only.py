"""Baseline ``clean-only``: SFBD's pretraining for the whole budget, the noisy data unused.

One stage of ``train.pretrain_steps + sfbd.iterations * train.update_steps`` steps on the
clean set (with data.pretrain's samples): what the run would give without its noisy data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfbd.methods.base import (
    METHODS,
    Method,
    Stage,
    StageContext,
    as_set,
    pretraining_data,
    total_steps,
)
from sfbd.train.data import TrainingSet

if TYPE_CHECKING:
    from sfbd.schema import Config


@METHODS.register("clean-only")
class CleanOnly(Method):
    name = "clean-only"
    needs_noisy = False
    pretrains = True

    def plan(self, cfg: Config) -> list[Stage]:
        return [Stage(0, self.name, total_steps(cfg))]

    def training_set(self, stage: Stage, ctx: StageContext) -> TrainingSet:
        return as_set(ctx, pretraining_data(ctx.prob))
