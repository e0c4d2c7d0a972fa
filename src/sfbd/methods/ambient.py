"""Ambient diffusion (Daras et al., ICLR 2025, "How much is a noisy image worth?"): one
stage of SFBD's whole budget on clean and noisy samples together, the noisy ones through the
ambient loss.

One stage of ``train.pretrain_steps + sfbd.iterations * train.update_steps`` steps on batches
drawn uniformly from clean ∪ noisy (so in proportion to their numbers; data.pretrain's
samples join as clean rows). Clean rows get EDM's loss at EDM's noise levels. A noisy row
y = x + tau_i eps (in the model space, where the noise is white at
``corruption.white_levels``: tau, each sample's tau_i, whitened or topped-up coloured noise,
Anscombe-transformed photon noise) is trained only at sigma >= tau_i, drawn from EDM's
log-normal conditioned on it: x_t = y + sqrt(sigma^2 - tau_i^2) n is distributed as x + sigma z,
and the rescaled target y - tau_i^2 / sqrt(sigma^2 - tau_i^2) n is x plus noise independent of
x_t, so its minimiser is the clean denoiser (:class:`~sfbd.diffusion.loss.AmbientLoss`, whose
docstring and docs/methods.md give the weighting and why).

Nothing is backward-sampled, so the method costs what clean-only costs. ``train.augment`` is
refused (it would colour the noise), as is the analytic Gaussian model (fitted, not trained).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfbd.methods.base import (
    METHODS,
    Method,
    Stage,
    StageContext,
    ambient_set,
    check_ambient,
    total_steps,
)
from sfbd.train.data import TrainingSet

if TYPE_CHECKING:
    from sfbd.schema import Config


@METHODS.register("ambient")
class Ambient(Method):
    name = "ambient"
    pretrains = True  # its clean rows: the clean set and data.pretrain's samples

    def plan(self, cfg: Config) -> list[Stage]:
        return [Stage(0, self.name, total_steps(cfg))]

    def training_set(self, stage: Stage, ctx: StageContext) -> TrainingSet:
        return ambient_set(ctx)

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        check_ambient(cfg, f"method={cls.name}", "choose another method")
