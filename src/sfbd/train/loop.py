"""One training stage: Adam on the EDM loss with an EMA of the weights, resumable at any step.

The loop takes its settings as one :class:`~sfbd.train.settings.TrainSettings` and the
averaging rule as an :class:`~sfbd.train.ema.EMA`, whose half-life is a fraction of the stage's
length (``train.ema_halflife``), so a short warm-started update is not dominated by the weights
it started from (a lesson of our CPU prototype, see PAPER.md). Batches, loss noise and
augmentations come from a generator seeded per stage and dropout from the global generator
seeded per stage, so a stage is reproducible from its starting checkpoint alone; a
:class:`StageProgress` (saved in step checkpoints) holds the rest of the loop's state, so a
stage resumed from one continues bit-identically on the same machine.

A step whose loss or gradients are not finite is skipped (no Adam update, no EMA update),
counted and logged; ``settings.max_skipped`` consecutive skipped steps stop the run with an
error rather than writing NaN weights. With fused Adam the skip happens on the device (Adam's
``found_inf``) and the step loop never waits for the device except at log and checkpoint
intervals.

Under ``torchrun`` (:mod:`sfbd.runtime.distributed`) every rank draws the same global batch and its
noise from the same generator and trains on its own contiguous slice, split into micro-batches
of at most ``settings.micro_batch`` samples with weights that make DDP's averaged, accumulated
gradient the gradient of the global-batch mean loss: the result equals one process with the
same global batch up to float summation order.

Batches come from a :class:`~sfbd.train.data.TrainingSet` (its hook runs every
``hook_every`` steps, its state goes into step checkpoints). A set whose rows carry white noise
levels tau_i (the ambient mixture of clean and noisy rows: ``draw_levels``) trains on the
ambient loss (:class:`~sfbd.diffusion.loss.AmbientLoss`), which is EDM's for clean rows; the
levels are drawn with the global batch, so every rank sees every row's. A model that is
refitted rather than trained (:class:`Refittable`, the analytic Gaussian) is refitted on the
set's population after each hook instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from sfbd.diffusion.loss import AmbientLoss
from sfbd.errors import SfbdError
from sfbd.runtime import distributed, fast, faults
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.train.data import ArrayTrainingSet, TrainingSet
from sfbd.train.ema import EMA
from sfbd.train.settings import TrainSettings
from sfbd.train.state import StageProgress, TrainState, make_optimizer

__all__ = [
    "EMA",
    "Refittable",
    "StageProgress",
    "TrainSettings",
    "TrainState",
    "make_optimizer",
    "nonfinite",
    "train_stage",
]


@runtime_checkable
class Refittable(Protocol):
    """A denoiser fitted in closed form to weighted samples instead of by gradient steps."""

    def fit(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> None: ...


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


@dataclass
class _Tally:
    """The loop's running sums and counters, kept on the device (no host sync per step)."""

    tail_sum: torch.Tensor
    window: torch.Tensor
    tail_n: torch.Tensor
    window_n: torch.Tensor
    skipped: torch.Tensor
    streak: torch.Tensor
    worst: torch.Tensor

    @classmethod
    def start(cls, pr: StageProgress, device: torch.device, steps: int, tail: int, log_every: int):
        f32 = {"device": device, "dtype": torch.float32}
        if pr.window_n < 0:  # an older step checkpoint: count its steps as finite
            pr.window_n = pr.done % log_every
            pr.tail_n = max(0, pr.done - (steps - tail))
        ints = (pr.tail_n, pr.window_n, pr.skipped, pr.streak, pr.worst)
        tail_n, window_n, skipped, streak, worst = (torch.tensor(v, device=device) for v in ints)
        return cls(
            torch.tensor(pr.tail_sum, **f32),
            torch.tensor(pr.window, **f32),
            tail_n,
            window_n,
            skipped,
            streak,
            worst,
        )

    def add(self, loss: torch.Tensor, bad: torch.Tensor, in_tail: bool) -> None:
        good_loss = torch.where(bad, torch.zeros_like(loss), loss.detach())
        self.skipped += bad
        self.streak = (self.streak + 1) * bad
        self.worst = torch.maximum(self.worst, self.streak)
        if in_tail:
            self.tail_sum += good_loss
            self.tail_n += ~bad
        self.window += good_loss
        self.window_n += ~bad


def _snapshot(t: _Tally, gen: torch.Generator, device: torch.device, done: int) -> StageProgress:
    """The loop's state after ``done`` steps, for a step checkpoint (every rank calls)."""
    rngs = _capture_rng(device)
    sums = distributed.all_gather_object([float(t.tail_sum), float(t.window)])  # per rank
    return StageProgress(
        rank_sums=sums if distributed.info().world_size > 1 else None,
        done=done,
        tail_sum=sum(a for a, _ in sums),
        window=sum(w for _, w in sums),
        tail_n=int(t.tail_n),
        window_n=int(t.window_n),
        skipped=int(t.skipped),
        streak=int(t.streak),
        worst=int(t.worst),
        generator=gen.get_state(),
        torch_rng=rngs.pop("torch_rng"),
        cuda_rng=rngs.pop("cuda_rng", None),
        rank_rngs=rngs,
    )


def _check_skipped(t: _Tally, max_skipped: int, desc: str, step: int) -> None:
    if int(t.worst) >= max_skipped:
        raise SfbdError(
            f"{desc}: {int(t.worst)} consecutive steps had non-finite loss or gradients "
            f"(at step {step}); stopped before writing NaN weights. Lower train.lr, "
            "check the data for extreme values, or raise train.max_skipped"
        )


def _device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _refit(state: TrainState, data: TrainingSet, steps: int) -> float:
    """The analytic model's "training": refit on the set's population after each hook."""
    if data.has_levels:
        raise SfbdError(
            "the analytic model is fitted to clean samples; it cannot take noisy rows (the "
            "ambient loss needs a network trained by gradient steps)"
        )
    every = data.hook_every if data.hook_every > 0 else steps
    for i in range(0, steps, every):
        if data.hook_every > 0:
            data.hook(i)
        x, weights = data.population()
        assert isinstance(state.model, Refittable)
        state.model.fit(x, weights)
        state.ema.load_state_dict(state.model.state_dict())
    return float("nan")


def _seed_generators(
    gen: torch.Generator, pr: StageProgress, device: torch.device, seed: int
) -> None:
    """The stage's batch generator and this rank's dropout generator, fresh or restored."""
    me = distributed.info()
    if pr.generator is not None:
        gen.set_state(pr.generator)
        _restore_rng(pr, device, me.rank, seed)
    else:
        gen.manual_seed(seed)
        torch.manual_seed(seed + me.rank)  # dropout: the global generator, per stage and rank
    if me.world_size > 1 and pr.rank_sums is not None and len(pr.rank_sums) == me.world_size:
        pr.tail_sum, pr.window = pr.rank_sums[me.rank]  # this rank's own partial sums
    elif me.world_size > 1 and me.rank != 0:  # another world size (or older checkpoint)
        pr.tail_sum = pr.window = 0.0


def _step_loss(
    state: TrainState,
    loss_fn: AmbientLoss,
    batch: torch.Tensor,
    gen: torch.Generator,
    share: distributed.RankBatch,
    *,
    tau: torch.Tensor | None,
    ddp: bool,
    bf16: bool,
    channels_last: bool,
    loss_scale: float,
) -> torch.Tensor:
    """Forward and backward of one global batch (this rank's micro-batches) whose rows carry
    white noise levels ``tau`` (B,) (None: all clean, EDM's loss); its loss (the per-element
    mean), whose gradient is taken of ``loss_scale`` times it."""
    fwd = state.forward if state.forward is not None else state.model
    xa, labels, sigma, noise = loss_fn.draw(batch, gen, tau=tau)
    xa = fast.channels_last_input(xa, channels_last)
    noise = fast.channels_last_input(noise, channels_last)
    assert state.optimizer is not None
    state.optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros((), device=batch.device)  # this rank's part of the global mean
    for j, mb in enumerate(share.micro):
        sl = slice(mb.items.start, mb.items.stop)
        last = j == len(share.micro) - 1
        sync = fwd.no_sync() if ddp and not last else contextlib.nullcontext()
        with sync:
            with fast.autocast(batch.device, bf16):
                lab = None if labels is None else labels[sl]
                lv = None if tau is None else tau[sl]
                part = loss_fn.per_sample(fwd, xa[sl], sigma[sl], noise[sl], lab, lv).mean()
            scaled = part * mb.ddp_weight
            (scaled if loss_scale == 1.0 else scaled * loss_scale).backward()
        loss += part.detach() * mb.weight
    return loss


def _loss(
    loss_fn: AmbientLoss | None, augment: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None
) -> AmbientLoss:
    """The stage's loss: ``loss_fn``, else EDM's with ``augment`` (the ambient loss on noisy
    rows, :class:`AmbientLoss`)."""
    if loss_fn is None:
        return AmbientLoss(augment=augment)
    if augment is not None:
        raise ValueError("give the augmentation to loss_fn, not to train_stage as well")
    return loss_fn


def train_stage(
    state: TrainState,
    data: TrainingSet | torch.Tensor,
    settings: TrainSettings,
    ema: EMA,
    *,
    augment: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    log: Callable[[int, float, int], None] | None = None,
    resume: StageProgress | None = None,
    checkpoint: Callable[[StageProgress], None] | None = None,
    stop: StopFlag = NEVER,
    loss_fn: AmbientLoss | None = None,
) -> float:
    """Train ``state`` in place on ``data`` for ``settings.steps`` steps, averaging its weights
    into ``state.ema`` by ``ema``; returns the mean loss of the last 10% of steps (NaN for a
    :class:`Refittable` model, which is refitted instead).

    ``data`` is a :class:`~sfbd.train.data.TrainingSet` or an (N, *) tensor (drawn uniformly).
    ``augment`` (non-leaky augmentation, (x, generator) -> (x', labels)) is applied to every
    batch; ``log(step, mean loss, skipped so far)`` is called every ``settings.log_every``
    steps. ``resume`` continues a stage from a step checkpoint (``state`` and ``data`` already
    restored from it); ``checkpoint(progress)`` is called every ``settings.checkpoint_every``
    steps and, before :class:`~sfbd.runtime.interrupt.Interrupted` is raised, when ``stop`` is
    set. ``loss_fn`` replaces the default loss ``AmbientLoss(augment=augment)`` (EDM's on
    clean rows), e.g. with another weighting of noisy rows. With ``settings.loss_reduction``
    'sum' the gradients are those of the loss summed over a sample's D elements (EDM's
    reduction, which Adam's eps notices); the returned and logged losses are per-element means
    either way.
    """
    s = settings
    tset = data if isinstance(data, TrainingSet) else ArrayTrainingSet(data)
    if isinstance(state.model, Refittable):
        return _refit(state, tset, s.steps)
    assert state.optimizer is not None
    device = _device_of(state.model)
    me = distributed.info()
    ddp = me.world_size > 1
    share = distributed.rank_batch(s.batch_size, me.rank, me.world_size, s.micro_batch)
    tset.rows = share.items if ddp else None  # the rows of each batch this rank reads
    gen = torch.Generator(device=device)
    pr = resume if resume is not None else StageProgress()
    _seed_generators(gen, pr, device, s.seed)
    loss_fn = _loss(loss_fn, augment)
    params = [p for p in state.model.parameters() if p.requires_grad]
    fused = fast.is_fused(state.optimizer)
    t = _Tally.start(pr, device, s.steps, s.tail, s.log_every)
    state.model.train()
    bar = tqdm(
        total=s.steps, initial=pr.done, desc=s.desc, disable=not s.progress, dynamic_ncols=True
    )
    try:
        for i in range(pr.done, s.steps):
            if tset.hook_every > 0 and i % tset.hook_every == 0:
                tset.hook(i)
                state.model.train()  # the hook may sample with the EMA
            for g in state.optimizer.param_groups:
                g["lr"] = s.lr_at(state.step)
            batch, tau = tset.draw_levels(gen, s.batch_size)
            loss = _step_loss(
                state,
                loss_fn,
                batch,
                gen,
                share,
                tau=tau,
                ddp=ddp,
                bf16=s.bf16,
                channels_last=s.channels_last,
                loss_scale=s.loss_scale(batch[0].numel()),
            )
            bad = nonfinite(loss, params)
            if ddp:  # gradients agree after DDP's all-reduce; the local losses may not
                bad = distributed.all_reduce_max(bad)
            fast.step_or_skip(state.optimizer, bad)
            ema.update(state.ema, state.model, keep=~bad)
            state.step += 1
            t.add(loss, bad, i >= s.steps - s.tail)
            faults.point("train.step")
            done = i + 1
            if done % s.log_every == 0:
                _log_window(t, s, state.step, log if me.is_main else None, bar)
            bar.update(1)
            if done == s.steps:
                break  # the caller saves the finished stage, then honours a stop request
            stopping = stop.is_set()
            if ddp:  # every rank must stop at the same step
                stopping = done % s.stop_sync_every == 0 and distributed.any_rank(stopping, device)
            due = stopping or (s.checkpoint_every > 0 and done % s.checkpoint_every == 0)
            if checkpoint is not None and due:
                checkpoint(_snapshot(t, gen, device, done))
            stop.check_agreed(stopping, f"during {s.desc} at step {done}/{s.steps}")
    finally:
        bar.close()
        if fused:
            state.optimizer.found_inf = None  # type: ignore[attr-defined]
        state.model.eval()
    _check_skipped(t, s.max_skipped, s.desc, state.step)
    state.skipped += int(t.skipped)
    return _mean(distributed.all_reduce_sum(t.tail_sum), t.tail_n)


def _log_window(
    t: _Tally,
    s: TrainSettings,
    step: int,
    log: Callable[[int, float, int], None] | None,
    bar: tqdm,
) -> None:
    """End of a log window: stop on too many skipped steps, else report the window's mean
    loss over all ranks (every rank calls; ``log`` is None but on rank 0) and restart it."""
    _check_skipped(t, s.max_skipped, s.desc, step)
    mean = _mean(distributed.all_reduce_sum(t.window), t.window_n)
    if log is not None:
        log(step, mean, int(t.skipped))
    t.window.zero_()
    t.window_n.zero_()
    bar.set_postfix(loss=f"{mean:.4f}", refresh=False)  # no extra device sync


def _mean(total: torch.Tensor, n: torch.Tensor) -> float:
    """Mean of the finite steps' losses; NaN when every step was skipped."""
    count = int(n)
    return float(total) / count if count > 0 else float("nan")
