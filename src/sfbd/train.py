"""One training stage: Adam on the EDM loss with an EMA of the weights, resumable at any step.

The EMA half-life is a fraction of the stage's length (``train.ema_halflife``), so a short
warm-started update is not dominated by the weights it started from (a lesson of our CPU
prototype, see PAPER.md). Batches, loss noise and augmentations come from a generator seeded per
stage and dropout from the global generator seeded per stage, so a stage is reproducible from
its starting checkpoint alone; a :class:`StageProgress` (saved in step checkpoints) holds the
rest of the loop's state, so a stage resumed from one continues bit-identically on the same
machine.

A step whose loss or gradients are not finite is skipped (no Adam update, no EMA update),
counted and logged; ``max_skipped`` consecutive skipped steps stop the run with an error rather
than writing NaN weights. With fused Adam the skip happens on the device (Adam's ``found_inf``)
and the step loop never waits for the device except at log and checkpoint intervals.
The analytic Gaussian denoiser "trains" by refitting its moments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from sfbd import faults
from sfbd.diffusion.loss import EDMLoss
from sfbd.errors import SfbdError
from sfbd.interrupt import NEVER, StopFlag
from sfbd.nets.gaussian import GaussianDenoiser


@dataclass
class TrainState:
    """What a stage changes: training weights, their EMA, the optimizer and the step count."""

    model: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    step: int = 0  # optimizer steps taken over all stages (drives the warm-up)
    skipped: int = 0  # steps skipped for non-finite loss or gradients, over all stages
    losses: list[float] = field(default_factory=list)


@dataclass
class StageProgress:
    """The training loop's own state within a stage, beyond the weights and Adam's state."""

    done: int = 0  # steps of this stage taken (skipped ones included)
    tail_sum: float = 0.0  # sum of the losses of the stage's last 10% of steps so far
    window: float = 0.0  # sum of losses since the last log record
    skipped: int = 0  # steps skipped for non-finite loss or gradients
    streak: int = 0  # consecutive skipped steps up to now
    worst: int = 0  # longest such run so far
    generator: torch.Tensor | None = None  # state of the batch/noise generator
    torch_rng: torch.Tensor | None = None  # global CPU generator (dropout on CPU)
    cuda_rng: torch.Tensor | None = None  # current CUDA device's generator (dropout on GPU)

    COUNTERS = ("done", "tail_sum", "window", "skipped", "streak", "worst")

    def meta(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.COUNTERS}

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"generator": self.generator, "torch_rng": self.torch_rng, "cuda_rng": self.cuda_rng}
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def restore(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> StageProgress:
        p = cls(**{k: meta[k] for k in cls.COUNTERS})
        for k in ("generator", "torch_rng", "cuda_rng"):
            if k in tensors:
                setattr(p, k, tensors[k].cpu().to(torch.uint8))
        return p


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer | None:
    """Adam (betas 0.9/0.999, eps 1e-8) for networks, fused where this torch supports it;
    None for the analytic model."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None
    try:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # older torch on CPU: no fused kernel
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


@torch.no_grad()
def ema_update(
    ema: nn.Module, model: nn.Module, beta: float, keep: torch.Tensor | None = None
) -> None:
    """ema <- beta * ema + (1 - beta) * model for parameters (skipped where ``keep`` is False);
    buffers are copied."""
    weight: float | torch.Tensor = 1.0 - beta
    if keep is not None:
        weight = keep.to(torch.float32) * (1.0 - beta)
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, weight.to(e.dtype) if isinstance(weight, torch.Tensor) else weight)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def nonfinite(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """0-dim bool tensor: the loss or any gradient holds NaN or inf (computed on the device)."""
    grads = [p.grad for p in params if p.grad is not None]
    bad = ~torch.isfinite(loss)
    if grads:
        bad = bad | ~torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum())
    return bad


def _capture_rng(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda_rng"] = torch.cuda.get_rng_state(device)
    return out


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
    log: Callable[[int, float, int], None] | None = None,
    log_every: int = 100,
    resume: StageProgress | None = None,
    checkpoint: Callable[[StageProgress], None] | None = None,
    checkpoint_every: int = 0,
    stop: StopFlag = NEVER,
    max_skipped: int = 50,
) -> float:
    """Train ``state`` in place on ``data`` (N, *) for ``steps`` steps; returns the mean loss
    of the last 10% of steps (NaN for the analytic model, which is refitted instead).

    ``augment`` (non-leaky augmentation, (x, generator) -> (x', labels)) is applied to every
    batch; ``log(step, mean loss, skipped so far)`` is called every ``log_every`` steps.
    ``resume`` continues a stage from a step checkpoint (``state`` already restored from it);
    ``checkpoint(progress)`` is called every ``checkpoint_every`` steps (0: never) and, before
    :class:`~sfbd.interrupt.Interrupted` is raised, when ``stop`` is set.
    """
    if isinstance(state.model, GaussianDenoiser):
        state.model.fit(data)
        state.ema.load_state_dict(state.model.state_dict())
        return float("nan")
    assert state.optimizer is not None
    device = data.device
    gen = torch.Generator(device=device)
    pr = resume if resume is not None else StageProgress()
    if pr.generator is not None:
        gen.set_state(pr.generator)
        if pr.torch_rng is not None:
            torch.set_rng_state(pr.torch_rng)
        if pr.cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state(pr.cuda_rng, device)
    else:
        gen.manual_seed(seed)
        torch.manual_seed(seed)  # dropout: the global generator, seeded per stage
    loss_fn = EDMLoss(augment=augment)
    beta = 0.5 ** (1.0 / max(1.0, ema_halflife * steps))
    params = [p for p in state.model.parameters() if p.requires_grad]
    fused = bool(state.optimizer.defaults.get("fused"))
    tail = max(1, steps // 10)
    f32 = {"device": device, "dtype": torch.float32}
    tail_sum, window = torch.tensor(pr.tail_sum, **f32), torch.tensor(pr.window, **f32)
    skipped, streak, worst = (
        torch.tensor(v, device=device) for v in (pr.skipped, pr.streak, pr.worst)
    )

    def snapshot(done: int) -> StageProgress:
        return StageProgress(
            done=done,
            tail_sum=float(tail_sum),
            window=float(window),
            skipped=int(skipped),
            streak=int(streak),
            worst=int(worst),
            generator=gen.get_state(),
            **_capture_rng(device),
        )

    def check_skipped() -> None:
        if int(worst) >= max_skipped:
            raise SfbdError(
                f"{desc}: {int(worst)} consecutive steps had non-finite loss or gradients "
                f"(at step {state.step}); stopped before writing NaN weights. Lower train.lr, "
                "check the data for extreme values, or raise train.max_skipped"
            )

    state.model.train()
    bar = tqdm(total=steps, initial=pr.done, desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        for i in range(pr.done, steps):
            for g in state.optimizer.param_groups:
                g["lr"] = lr * min(1.0, (state.step + 1) / lr_warmup) if lr_warmup > 0 else lr
            idx = torch.randint(0, data.shape[0], (batch_size,), generator=gen, device=device)
            loss = loss_fn(state.model, data[idx], gen).mean()
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            bad = nonfinite(loss.detach(), params)
            if fused:
                state.optimizer.found_inf = bad.to(torch.float32)  # type: ignore[attr-defined]
                state.optimizer.step()
            elif not bool(bad):
                state.optimizer.step()
            ema_update(state.ema, state.model, beta, keep=~bad)
            state.step += 1
            good_loss = torch.where(bad, torch.zeros_like(loss), loss.detach())
            skipped += bad
            streak = (streak + 1) * bad
            worst = torch.maximum(worst, streak)
            if i >= steps - tail:
                tail_sum += good_loss
            window += good_loss
            faults.point("train.step")
            done = i + 1
            if done % log_every == 0:
                check_skipped()
                if log is not None:
                    log(state.step, float(window) / log_every, int(skipped))
                window.zero_()
            if progress and (i % 50 == 0 or done == steps):
                bar.set_postfix(loss=f"{float(good_loss):.4f}", refresh=False)
            bar.update(1)
            if done == steps:
                break  # the caller saves the finished stage, then honours a stop request
            due = stop.is_set() or (checkpoint_every > 0 and done % checkpoint_every == 0)
            if checkpoint is not None and due:
                checkpoint(snapshot(done))
            stop.check(f"during {desc} at step {done}/{steps}")
    finally:
        bar.close()
        if fused:
            state.optimizer.found_inf = None  # type: ignore[attr-defined]
        state.model.eval()
    check_skipped()
    state.skipped += int(skipped)
    return float(tail_sum / tail)
