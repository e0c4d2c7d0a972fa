"""Online SFBD (Lu, Wu, Yu, "SFBD Flow", arXiv 2506.02371): one continuous training phase
that keeps refreshing a bank of denoised samples with the latest weights.

* Stage 0 pretrains on the clean set, as SFBD's stage 0 (``sfbd.pretrain: ambient``: on the
  ambient mixture of clean and noisy rows).
* The phase has SFBD's update budget, ``sfbd.iterations x train.update_steps`` steps, run as
  that many evaluation stages (``online``), so metrics, ``sfbd status`` and pictures line up
  with SFBD iteration by iteration. It starts with a full backward-sampling pass of every noisy
  sample with the pretrained EMA (E_01, written in resumable shards): the bank, one denoised
  sample per noisy sample.
* Every ``online.refresh_every`` steps of a stage (counted from the stage's start, and at the
  start of stages 2..K), the next ``online.refresh_size`` noisy samples, round robin, are
  re-denoised with the current EMA. The c-th denoising of sample i draws its noise keyed by
  (c, i): the stream SFBD uses for E_c.
* Batches mix clean and bank samples. The bank's per-sample weight lambda ramps linearly from
  0 to 1 over the first ``online.ramp`` fraction of the phase (updated at each refresh), so a
  batch sample comes from the bank with probability lambda N / (lambda N + M) (N bank, M clean
  samples). At lambda = 1 every sample of bank and clean set is equally likely, SFBD's draw.

The identity that pins it: with refresh_size = N, refresh_every = update_steps and ramp 0,
every stage starts with a full refresh under the EMA SFBD would use, and the phase is SFBD.

Defaults: refresh_every 20 is the paper's (its first figure). Ours: refresh_size (default:
SFBD's backward-sampling budget, K N denoisings in all: the first pass and (K - 1) N
re-denoisings spread evenly over the phase's refreshes), ramp 0.25, and denoising with the EMA.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from sfbd.methods.base import METHODS, Method, Stage, StageContext
from sfbd.methods.sfbd import SFBD
from sfbd.train.data import TrainingSet

if TYPE_CHECKING:
    from sfbd.schema import Config


def refresh_size(cfg: Config, n: int) -> int:
    """Samples re-denoised per refresh: ``online.refresh_size`` (at most n), or by default
    SFBD's budget: SFBD backward-samples all n noisy samples K times; the first pass makes the
    bank, and the other (K - 1) n re-denoisings are spread evenly over the phase's refreshes
    (rounded up; 0 when K = 1)."""
    if cfg.online.refresh_size is not None:
        return min(n, cfg.online.refresh_size)
    k, every, steps = cfg.sfbd.iterations, cfg.online.refresh_every, cfg.train.update_steps
    points = k * len(range(0, steps, every)) - 1  # stage 1 starts with the full pass instead
    return min(n, math.ceil((k - 1) * n / points)) if points > 0 else 0


def ramp_weight(t: int, total: int, ramp: float) -> float:
    """lambda(t): the bank's per-sample weight at phase step t of ``total``, 0 -> 1 linearly
    over the first ``ramp`` fraction, then 1 (ramp 0: 1 throughout)."""
    if ramp <= 0:
        return 1.0
    return min(1.0, t / (ramp * total))


def refresh_points(stage: Stage, every: int) -> list[int]:
    """The steps of an online stage at which the bank is refreshed."""
    return [i for i in range(0, stage.steps, every) if not (stage.iteration == 1 and i == 0)]


class Bank(TrainingSet):
    """The bank of denoised samples and the clean set, drawn as a lambda-weighted mixture.

    Args:
        ctx: the stage's context (backward-samples the refreshed samples).
        stage: the online stage (k >= 1).
        bank: (N, *) denoised samples on the device, one per noisy sample, index order.
        cursor: the next noisy index a refresh starts at.
        visits: (N,) int64, how often each sample has been denoised.
    """

    def __init__(
        self,
        ctx: StageContext,
        stage: Stage,
        bank: torch.Tensor,
        cursor: int,
        visits: torch.Tensor,
    ) -> None:
        cfg = ctx.cfg
        self.ctx, self.stage = ctx, stage
        self.n = int(bank.shape[0])
        # the bank is changed in place, so it and the clean set are held whole (in memory)
        self.clean = torch.as_tensor(np.asarray(ctx.prob.clean), device=bank.device)
        self.data = torch.cat([bank, self.clean])  # bank first: SFBD's order (E_k, clean)
        self.cursor = int(cursor)
        self.visits = visits.to(torch.int64).cpu().clone()
        self.hook_every = cfg.online.refresh_every
        self.size = refresh_size(cfg, self.n)
        self.total = cfg.sfbd.iterations * cfg.train.update_steps
        self.offset = (stage.iteration - 1) * cfg.train.update_steps
        self.ramp = cfg.online.ramp
        self.lam = ramp_weight(self.offset, self.total, self.ramp)

    @property
    def bank(self) -> torch.Tensor:
        return self.data[: self.n]

    def hook(self, step: int) -> None:
        self.lam = ramp_weight(self.offset + step, self.total, self.ramp)
        if (step == 0 and self.stage.iteration == 1) or self.size == 0:
            return  # the bank was just made by the full pass (or nothing to refresh)
        self.refresh()

    def refresh(self) -> None:
        """Re-denoise the next ``size`` samples (round robin) with the current EMA."""
        chunk = (self.cursor + np.arange(self.size)) % self.n
        visit = self.visits[chunk].numpy() + 1
        for v in np.unique(visit):  # at most two visit counts where the chunk wraps
            idx = chunk[visit == v]
            self.data[torch.as_tensor(idx, device=self.data.device)] = self.ctx.backward(
                idx, int(v)
            ).to(self.data.dtype)
        self.visits[chunk] += 1
        self.cursor = int((self.cursor + self.size) % self.n)

    def draw(self, generator: torch.Generator, n: int) -> torch.Tensor:
        m, dev = len(self.clean), self.data.device
        if self.lam >= 1.0 or m == 0:
            idx = torch.randint(0, len(self.data), (n,), generator=generator, device=dev)
            return self.data[idx]
        p = self.lam * self.n / (self.lam * self.n + m)
        from_bank = torch.rand(n, generator=generator, device=dev) < p
        jb = torch.randint(0, self.n, (n,), generator=generator, device=dev)
        jc = self.n + torch.randint(0, m, (n,), generator=generator, device=dev)
        return self.data[torch.where(from_bank, jb, jc)]

    def population(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.lam >= 1.0 or len(self.clean) == 0:
            return self.data, None
        w = torch.ones(len(self.data), dtype=torch.float64, device=self.data.device)
        w[: self.n] = self.lam
        return self.data, w

    def state(self) -> dict[str, torch.Tensor]:
        return {
            "bank": self.bank.detach().cpu().clone(),
            "cursor": torch.tensor([self.cursor], dtype=torch.int64),
            "visits": self.visits.clone(),
            "lam": torch.tensor([self.lam], dtype=torch.float64),
        }

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.data[: self.n] = tensors["bank"].to(self.data.device, self.data.dtype)
        self.cursor = int(tensors["cursor"][0])
        self.visits = tensors["visits"].to(torch.int64).cpu().clone()
        self.lam = float(tensors["lam"][0])

    def denoised(self) -> np.ndarray:
        return self.bank.detach().float().cpu().numpy()


@METHODS.register("online-sfbd")
class OnlineSFBD(Method):
    name = "online-sfbd"
    pretrains = True

    def plan(self, cfg: Config) -> list[Stage]:
        t = cfg.train
        phase = [
            Stage(k, "online", t.update_steps, denoises=k == 1)
            for k in range(1, cfg.sfbd.iterations + 1)
        ]
        return [Stage(0, "pretrain", t.pretrain_steps), *phase]

    def training_set(self, stage: Stage, ctx: StageContext) -> TrainingSet:
        if stage.iteration == 0:
            return SFBD().training_set(stage, ctx)
        if stage.iteration == 1:
            bank = torch.as_tensor(np.asarray(ctx.denoise(1)), device=ctx.device)
            visits = torch.ones(len(bank), dtype=torch.int64)
            return Bank(ctx, stage, bank, 0, visits)
        c = ctx.carry
        if "bank" not in c:
            raise RuntimeError(f"stage {stage.iteration}: the previous stage left no bank")
        bank = c["bank"].to(ctx.device)
        return Bank(ctx, stage, bank.clone(), int(c["cursor"][0]), c["visits"])

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        SFBD.validate_config(cfg)  # stage 0 is SFBD's

    def denoise_evaluations(self, stage: Stage, ctx: StageContext) -> int:
        if stage.iteration == 0:
            return 0  # pretraining denoises nothing
        n, cfg = len(ctx.prob.noisy), ctx.cfg
        full = ctx.evaluations() if stage.denoises else 0
        size, every = refresh_size(cfg, n), cfg.online.refresh_every
        if size == 0:
            return full
        # the bank's cursor at this stage's start: every refresh of the stages before it
        before = sum(len(refresh_points(s, every)) for s in self.plan(cfg)[1 : stage.iteration])
        points = len(refresh_points(stage, every))
        rows = (before * size + np.arange(points * size)) % n
        return full + ctx.evaluations(rows)
