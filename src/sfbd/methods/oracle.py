"""Baseline ``oracle`` (benchmark mode): the clean originals of every sample, SFBD's budget.

The best any method could do with this data: the clean set together with the clean
originals of the noisy set, which only benchmark mode knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfbd.methods.base import (
    METHODS,
    Method,
    Stage,
    StageContext,
    as_set,
    stacked,
    total_steps,
)
from sfbd.train.data import TrainingSet

if TYPE_CHECKING:
    from sfbd.schema import Config


@METHODS.register("oracle")
class Oracle(Method):
    name = "oracle"
    needs_truth = True

    def plan(self, cfg: Config) -> list[Stage]:
        return [Stage(0, self.name, total_steps(cfg))]

    def training_set(self, stage: Stage, ctx: StageContext) -> TrainingSet:
        truth = ctx.prob.noisy_truth
        assert truth is not None
        truth = ctx.prob.corruption.encoded(truth)  # into model space, like the clean set
        return as_set(ctx, stacked(ctx.prob.clean, truth))
