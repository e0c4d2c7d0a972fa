"""The state a training stage changes, and what restores it bit-identically.

* :class:`TrainState`: weights, their EMA, Adam and the global step count;
* :class:`StageProgress`: the loop's own counters and generator states within a stage (saved
  in step checkpoints, see :mod:`sfbd.train.loop`).

The rule that averages ``TrainState.model`` into ``TrainState.ema`` is :class:`sfbd.train.ema.EMA`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sfbd.runtime import fast


@dataclass
class TrainState:
    """What a stage changes: training weights, their EMA, the optimizer and the step count."""

    model: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    step: int = 0  # optimizer steps taken over all stages (drives the warm-up)
    skipped: int = 0  # steps skipped for non-finite loss or gradients, over all stages
    forward: nn.Module | None = None  # what runs the training forward pass (compiled/DDP
    #                                   wrapper of ``model``); None: ``model`` itself
    losses: list[float] = field(default_factory=list)


@dataclass
class StageProgress:
    """The training loop's own state within a stage, beyond the weights and Adam's state."""

    done: int = 0  # steps of this stage taken (skipped ones included)
    tail_sum: float = 0.0  # sum of the losses of the stage's last 10% of steps so far
    window: float = 0.0  # sum of losses since the last log record
    tail_n: int = -1  # finite steps in tail_sum (-1: not recorded, a checkpoint before 0.4)
    window_n: int = -1  # finite steps in window (same)
    skipped: int = 0  # steps skipped for non-finite loss or gradients
    streak: int = 0  # consecutive skipped steps up to now
    worst: int = 0  # longest such run so far
    generator: torch.Tensor | None = None  # state of the batch/noise generator
    torch_rng: torch.Tensor | None = None  # global CPU generator (dropout on CPU)
    cuda_rng: torch.Tensor | None = None  # current CUDA device's generator (dropout on GPU)
    rank_rngs: dict[str, torch.Tensor] = field(default_factory=dict)  # other ranks' (DDP)
    # DDP: each rank's own [tail_sum, window] (the totals above are their sums); with them a
    # resumed run adds up its losses in the same order as one never interrupted
    rank_sums: list[list[float]] | None = None

    COUNTERS = ("done", "tail_sum", "window", "tail_n", "window_n", "skipped", "streak", "worst")

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in self.COUNTERS}
        if self.rank_sums is not None:
            out["rank_sums"] = self.rank_sums
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"generator": self.generator, "torch_rng": self.torch_rng, "cuda_rng": self.cuda_rng}
        return {**{k: v for k, v in out.items() if v is not None}, **self.rank_rngs}

    @classmethod
    def restore(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> StageProgress:
        p = cls(**{k: meta[k] for k in cls.COUNTERS if k in meta})
        p.rank_sums = meta.get("rank_sums")
        for k, v in tensors.items():
            v = v.cpu().to(torch.uint8)
            if k in ("generator", "torch_rng", "cuda_rng"):
                setattr(p, k, v)
            elif k.startswith(("torch_rng.r", "cuda_rng.r")):
                p.rank_rngs[k] = v
        return p


def make_optimizer(
    model: nn.Module, lr: float, fused: bool | None = None
) -> torch.optim.Optimizer | None:
    """Adam (betas 0.9/0.999, eps 1e-8) for networks, fused where supported unless ``fused``
    says otherwise; None for the analytic model."""
    params = [p for p in model.parameters() if p.requires_grad]
    return fast.make_adam(params, lr, fused=fused) if params else None
