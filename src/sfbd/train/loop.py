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

Under ``torchrun`` (:mod:`sfbd.runtime.distributed`) every rank draws the same global batch and its
noise from the same generator and trains on its own contiguous slice, split into
micro-batches of at most ``micro_batch`` samples with weights that make DDP's averaged,
accumulated gradient the gradient of the global-batch mean loss: the result equals one process
with the same global batch up to float summation order. The analytic Gaussian denoiser "trains"
by refitting its moments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from sfbd.diffusion.loss import EDMLoss
from sfbd.errors import SfbdError
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.runtime import distributed, fast, faults
from sfbd.runtime.interrupt import NEVER, StopFlag


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
        bad = bad | fast.nonfinite_flag(grads).to(device=loss.device, dtype=torch.bool)
    return bad


def _capture_rng(device: torch.device) -> dict[str, torch.Tensor]:
    """Dropout generators of every rank: rank 0's as torch_rng/cuda_rng, rank r's with '.rR'."""
    mine = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        mine["cuda_rng"] = torch.cuda.get_rng_state(device)
    out: dict[str, torch.Tensor] = {}
    for r, states in enumerate(distributed.all_gather_object(mine)):
        out.update({(k if r == 0 else f"{k}.r{r}"): v.cpu() for k, v in states.items()})
    return out


def _restore_rng(pr: StageProgress, device: torch.device, rank: int, seed: int) -> None:
    """This rank's dropout generators from the snapshot; a rank the snapshot has none for (a
    resume with more processes) is seeded from (seed, rank, step), so the resume is still
    deterministic."""
    suffix = "" if rank == 0 else f".r{rank}"
    states = pr.tensors() if rank == 0 else pr.rank_rngs
    if f"torch_rng{suffix}" not in states:
        torch.manual_seed(seed + rank + 7919 * pr.done)
    else:
        torch.set_rng_state(states[f"torch_rng{suffix}"])
    if f"cuda_rng{suffix}" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states[f"cuda_rng{suffix}"], device)


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
    micro_batch: int | None = None,
    bf16: bool = False,
    channels_last: bool = False,
    stop_sync_every: int = 25,
) -> float:
    """Train ``state`` in place on ``data`` (N, *) for ``steps`` steps; returns the mean loss
    of the last 10% of steps (NaN for the analytic model, which is refitted instead).

    ``augment`` (non-leaky augmentation, (x, generator) -> (x', labels)) is applied to every
    batch; ``log(step, mean loss, skipped so far)`` is called every ``log_every`` steps.
    ``resume`` continues a stage from a step checkpoint (``state`` already restored from it);
    ``checkpoint(progress)`` is called every ``checkpoint_every`` steps (0: never) and, before
    :class:`~sfbd.runtime.interrupt.Interrupted` is raised, when ``stop`` is set.
    ``micro_batch`` caps the samples per forward pass (gradient accumulation); ``bf16`` runs
    the forward pass under bfloat16 autocast (weights stay float32). Under DDP the ranks agree
    on a stop request every ``stop_sync_every`` steps (one host synchronisation each).
    """
    if isinstance(state.model, GaussianDenoiser):
        state.model.fit(data)
        state.ema.load_state_dict(state.model.state_dict())
        return float("nan")
    assert state.optimizer is not None
    device = data.device
    me = distributed.info()
    ddp = me.world_size > 1
    share = distributed.rank_batch(batch_size, me.rank, me.world_size, micro_batch)
    fwd = state.forward if state.forward is not None else state.model
    gen = torch.Generator(device=device)
    pr = resume if resume is not None else StageProgress()
    if pr.generator is not None:
        gen.set_state(pr.generator)
        _restore_rng(pr, device, me.rank, seed)
    else:
        gen.manual_seed(seed)
        torch.manual_seed(seed + me.rank)  # dropout: the global generator, per stage and rank
    if ddp and pr.rank_sums is not None and len(pr.rank_sums) == me.world_size:
        pr.tail_sum, pr.window = pr.rank_sums[me.rank]  # this rank's own partial sums
    elif ddp and me.rank != 0:  # another world size (or older checkpoint): totals on rank 0
        pr.tail_sum = pr.window = 0.0
    loss_fn = EDMLoss(augment=augment)
    beta = 0.5 ** (1.0 / max(1.0, ema_halflife * steps))
    params = [p for p in state.model.parameters() if p.requires_grad]
    fused = fast.is_fused(state.optimizer)
    tail = max(1, steps // 10)
    f32 = {"device": device, "dtype": torch.float32}
    tail_sum, window = torch.tensor(pr.tail_sum, **f32), torch.tensor(pr.window, **f32)
    if pr.window_n < 0:  # an older step checkpoint: count its steps as finite
        pr.window_n = pr.done % log_every
        pr.tail_n = max(0, pr.done - (steps - tail))
    tail_n, window_n = (torch.tensor(v, device=device) for v in (pr.tail_n, pr.window_n))
    skipped, streak, worst = (
        torch.tensor(v, device=device) for v in (pr.skipped, pr.streak, pr.worst)
    )

    def snapshot(done: int) -> StageProgress:
        rngs = _capture_rng(device)
        sums = distributed.all_gather_object([float(tail_sum), float(window)])  # per rank
        return StageProgress(
            rank_sums=sums if ddp else None,
            done=done,
            tail_sum=sum(t for t, _ in sums),
            window=sum(w for _, w in sums),
            tail_n=int(tail_n),
            window_n=int(window_n),
            skipped=int(skipped),
            streak=int(streak),
            worst=int(worst),
            generator=gen.get_state(),
            torch_rng=rngs.pop("torch_rng"),
            cuda_rng=rngs.pop("cuda_rng", None),
            rank_rngs=rngs,
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
            xa, labels, sigma, noise = loss_fn.draw(data[idx], gen)
            xa = fast.channels_last_input(xa, channels_last)
            noise = fast.channels_last_input(noise, channels_last)
            state.optimizer.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=device)  # this rank's part of the global mean
            for j, mb in enumerate(share.micro):
                sl = slice(mb.items.start, mb.items.stop)
                last = j == len(share.micro) - 1
                sync = fwd.no_sync() if ddp and not last else contextlib.nullcontext()
                with sync:
                    with fast.autocast(device, bf16):
                        lab = None if labels is None else labels[sl]
                        part = loss_fn.per_sample(fwd, xa[sl], sigma[sl], noise[sl], lab).mean()
                    (part * mb.ddp_weight).backward()
                loss += part.detach() * mb.weight
            bad = nonfinite(loss, params)
            if ddp:  # gradients agree after DDP's all-reduce; the local losses may not
                bad = distributed.all_reduce_max(bad)
            fast.step_or_skip(state.optimizer, bad)
            ema_update(state.ema, state.model, beta, keep=~bad)
            state.step += 1
            good_loss = torch.where(bad, torch.zeros_like(loss), loss.detach())
            skipped += bad
            streak = (streak + 1) * bad
            worst = torch.maximum(worst, streak)
            if i >= steps - tail:
                tail_sum += good_loss
                tail_n += ~bad
            window += good_loss
            window_n += ~bad
            faults.point("train.step")
            done = i + 1
            if done % log_every == 0:
                check_skipped()
                mean = _mean(distributed.all_reduce_sum(window), window_n)
                if log is not None and me.is_main:
                    log(state.step, mean, int(skipped))
                window.zero_()
                window_n.zero_()
                bar.set_postfix(loss=f"{mean:.4f}", refresh=False)  # no extra device sync
            bar.update(1)
            if done == steps:
                break  # the caller saves the finished stage, then honours a stop request
            stopping = stop.is_set()
            if ddp:  # every rank must stop at the same step
                stopping = done % stop_sync_every == 0 and distributed.any_rank(stopping, device)
            due = stopping or (checkpoint_every > 0 and done % checkpoint_every == 0)
            if checkpoint is not None and due:
                checkpoint(snapshot(done))
            stop.check_agreed(stopping, f"during {desc} at step {done}/{steps}")
    finally:
        bar.close()
        if fused:
            state.optimizer.found_inf = None  # type: ignore[attr-defined]
        state.model.eval()
    check_skipped()
    state.skipped += int(skipped)
    return _mean(distributed.all_reduce_sum(tail_sum), tail_n)


def _mean(total: torch.Tensor, n: torch.Tensor) -> float:
    """Mean of the finite steps' losses; NaN when every step was skipped."""
    count = int(n)
    return float(total) / count if count > 0 else float("nan")
