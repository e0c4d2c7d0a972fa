"""One training stage: Adam on the EDM loss with an EMA of the weights.

The EMA half-life is a fraction of the stage's length (``train.ema_halflife``), so a short
warm-started update is not dominated by the weights it started from (a lesson of our CPU
prototype, see PAPER.md). Batches and loss noise come from a generator seeded per stage, so a
stage is reproducible from its starting checkpoint alone. Non-finite gradients are zeroed.
The analytic Gaussian denoiser "trains" by refitting its moments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from sfbd.diffusion.loss import EDMLoss
from sfbd.nets.gaussian import GaussianDenoiser


@dataclass
class TrainState:
    """What a stage changes: training weights, their EMA, the optimizer and the step count."""

    model: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    step: int = 0  # optimizer steps taken over all stages (drives the warm-up)
    losses: list[float] = field(default_factory=list)


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer | None:
    """Adam (betas 0.9/0.999, eps 1e-8) for networks; None for the analytic model."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model, for parameters and float buffers."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - beta)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def train_stage(
    state: TrainState,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    lr_warmup: int,
    ema_halflife: float,
    seed: int,
    desc: str = "train",
    progress: bool = True,
    augment: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    log: Callable[[int, float], None] | None = None,
    log_every: int = 100,
) -> float:
    """Train ``state`` in place on ``data`` (N, *) for ``steps`` steps; returns the mean loss
    of the last 10% of steps (NaN for the analytic model, which is refitted instead).

    ``augment`` (non-leaky augmentation, (x, generator) -> (x', labels)) is applied to every
    batch; ``log(step, mean loss)`` is called every ``log_every`` steps.
    """
    if isinstance(state.model, GaussianDenoiser):
        state.model.fit(data)
        state.ema.load_state_dict(state.model.state_dict())
        return float("nan")
    assert state.optimizer is not None
    device = data.device
    gen = torch.Generator(device=device).manual_seed(seed)
    loss_fn = EDMLoss(augment=augment)
    beta = 0.5 ** (1.0 / max(1.0, ema_halflife * steps))
    state.model.train()
    tail = max(1, steps // 10)
    tail_sum = torch.zeros((), device=device)
    window = torch.zeros((), device=device)
    bar = tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    for i in range(steps):
        for g in state.optimizer.param_groups:
            g["lr"] = lr * min(1.0, (state.step + 1) / lr_warmup) if lr_warmup > 0 else lr
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=gen, device=device)
        loss = loss_fn(state.model, data[idx], gen).mean()
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in state.model.parameters():
            if p.grad is not None:
                torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
        state.optimizer.step()
        ema_update(state.ema, state.model, beta)
        state.step += 1
        if i >= steps - tail:
            tail_sum += loss.detach()
        window += loss.detach()
        if log is not None and (i + 1) % log_every == 0:
            log(state.step, float(window) / log_every)
            window.zero_()
        if progress and (i % 50 == 0 or i == steps - 1):
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        bar.update(1)
    bar.close()
    state.model.eval()
    return float(tail_sum / tail)
