"""Baseline ``noisy-only``: the noisy samples taken as clean, for SFBD's whole budget.

What a user gets who ignores the noise: a model of the data convolved with N(0, tau^2 I).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfbd.methods.base import METHODS, Method, Stage, StageContext, as_set, total_steps
from sfbd.train.data import TrainingSet

if TYPE_CHECKING:
    from sfbd.schema import Config


@METHODS.register("noisy-only")
class NoisyOnly(Method):
    name = "noisy-only"

    def plan(self, cfg: Config) -> list[Stage]:
        return [Stage(0, self.name, total_steps(cfg))]

    def training_set(self, stage: Stage, ctx: StageContext) -> TrainingSet:
        return as_set(ctx, ctx.prob.noisy)
