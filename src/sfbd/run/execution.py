"""One execution of a run: the :class:`~sfbd.methods.base.StageContext` its method sees.

:meth:`sfbd.run.runner.Run.execute` checks the run directory and the input, then builds one
:class:`Execution` for the stages still to run: the problem (memory-mapped), the run log, the
Frechet-distance networks, the sharded denoiser and the training state (fresh, or restored from
the last finished stage's checkpoint), all in its constructor. Per stage
(:meth:`Execution.run_stage`) it builds the method's training set, trains (resuming from a
step checkpoint) or loads the stage's finished checkpoint, samples, evaluates, writes the
samples and pictures and records the stage's files in the manifest.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from sfbd.io.arrays import SampleArray
from sfbd.io.atomic import save_npy
from sfbd.io.runlog import RunLog
from sfbd.nets.checkpoint import save_checkpoint
from sfbd.rng import stream_id
from sfbd.run import state as run_state
from sfbd.run.denoise import ShardedDenoiser
from sfbd.run.evaluate import FrechetMetrics, distances, frechet_requested, generate_eval
from sfbd.run.pictures import stage_picture
from sfbd.run.scores import StageScores
from sfbd.runtime import distributed, fast
from sfbd.runtime.interrupt import StopFlag
from sfbd.train.augment import Augment
from sfbd.train.data import TrainingSet
from sfbd.train.ema import EMA
from sfbd.train.loop import train_stage
from sfbd.train.settings import TrainSettings
from sfbd.train.state import StageProgress
from sfbd.version import __version__

if TYPE_CHECKING:
    from sfbd.data.problem import Problem
    from sfbd.methods.base import Method, Stage
    from sfbd.run.directory import RunDirectory
    from sfbd.runtime.fast import FastPath
    from sfbd.schema import Config

__all__ = ["SAVED_SAMPLES", "Execution", "RunParts"]

SAVED_SAMPLES = 1000  # generated samples kept per stage in samples/stage-KK.npy


class RunParts(Protocol):
    """What an :class:`Execution` uses of its run (:class:`sfbd.run.runner.Run`), fixed for
    the run's lifetime."""

    cfg: Config
    out: Path
    dir: RunDirectory
    progress: bool
    method: Method
    stages: list[Stage]
    dist: distributed.Dist
    main: bool
    device: torch.device
    grid: torch.Tensor  # the EDM noise levels of the sampler, (sample.steps + 1,)
    fast: FastPath

    def checkpoint_stem(self, iteration: int) -> Path: ...

    def log(self, msg: str, *, force: bool = False) -> None: ...

    def warn(self, msg: str) -> None: ...


class Execution:
    """The stages of one :meth:`~sfbd.run.runner.Run.execute` call past its checks, after
    ``n_done`` finished stages; the :class:`~sfbd.methods.base.StageContext` of its method.

    Holds the problem ``prob`` (its training arrays memory-mapped), the run log ``runlog``
    (rank 0's; the other ranks record nothing), the Frechet-distance networks ``frechet`` (None
    unless configured), the sharded denoiser, the training state ``state`` and ``carry``, the
    last stage's training-set state. ``stop`` set (by a signal) makes training save a step
    checkpoint and raise :class:`~sfbd.runtime.interrupt.Interrupted`.
    """

    def __init__(self, run: RunParts, prob: Problem, n_done: int, stop: StopFlag) -> None:
        self.run = run
        self.cfg = run.cfg
        self.device = run.device
        self.stop = stop
        self.prob = prob
        self.runlog: RunLog | _NullLog = RunLog(run.out) if run.main else _NullLog()
        self.runlog.event(
            "start",
            version=__version__,
            noisy=len(prob.noisy),
            clean=len(prob.clean),
            shape=list(prob.shape),
            device=str(run.device),
            world_size=run.dist.world_size,
            finished_stages=n_done,
        )
        self.frechet: FrechetMetrics | None = None
        if frechet_requested(run.cfg):  # rank 0 computes and caches the reference stats first
            if run.main:
                self.frechet = FrechetMetrics(run.cfg, prob, run.out, run.device)
            distributed.barrier()
            if not run.main:
                self.frechet = FrechetMetrics(run.cfg, prob, run.out, run.device)
        self.denoiser = ShardedDenoiser(
            run.cfg,
            prob,
            run.out,
            run.grid,
            run.fast,
            progress=run.progress,
            log=lambda msg, warn: run.log(msg, force=warn),
            stop_requested=self.stop_requested,
        )
        self.state = run_state.build_state(run.cfg, prob.shape, run.device, run.fast)
        self.scores = StageScores(run.cfg, prob, run.grid, run.device) if run.main else None
        self.carry: dict[str, torch.Tensor] = {}  # the last stage's training-set state
        if n_done > 0:
            stem = run.checkpoint_stem(run.stages[n_done - 1].iteration)
            meta = run_state.restore(self.state, stem, run.device)
            self.carry = run_state.training_set_state(meta)
            run.log(f"resuming after stage {meta['iteration']} from {stem}")
        run_state.wrap_for_training(self.state, run.device, run.fast)

    # -- the StageContext a method sees --------------------------------------------------
    def denoise(self, k: int) -> SampleArray:
        return self.denoiser.full_pass(k, self.state.ema, self.stop)

    def backward(self, index: np.ndarray, visit: int) -> torch.Tensor:
        return self.denoiser.rows(self.state.ema, index, visit).to(self.device)

    def evaluations(self, index: np.ndarray | None = None) -> int:
        return self.denoiser.evaluations(index)

    # -- one stage -----------------------------------------------------------------------
    def stop_requested(self) -> bool:
        """Whether any rank was asked to stop (all ranks get the same answer)."""
        return distributed.any_rank(self.stop.is_set(), self.device)

    def run_stage(self, stage: Stage) -> dict | None:
        """Train (or load), sample and evaluate ``stage``; rank 0 writes its samples and
        picture, records its files in the manifest and returns its metrics.json entry (the
        other ranks None)."""
        run, prob, state, t0 = self.run, self.prob, self.state, time.perf_counter()
        k = stage.iteration
        tset = run.method.training_set(stage, self)
        trained = run_state.trained(state, run.checkpoint_stem(k), k, self.device, run.warn)
        if trained is None:
            loss, skipped = self._train(stage, tset)
        else:
            tset.load_state(run_state.training_set_state(trained))
            loss, skipped = trained["train_loss"], trained["skipped_steps"]
            run.log(f"stage {k} ({stage.name}) already trained: evaluating")
        self.carry = tset.state()
        denoised = tset.denoised()
        if denoised is not None:  # E_k in the data's scale, for metrics and pictures
            denoised = prob.decoded(denoised)
        samples = prob.decode(self._sample(f"stage {k} {stage.name}: sample"))
        frechet = {}
        if self.frechet is not None:
            with fast.autocast(self.device, run.fast.bf16):
                stream = stream_id("fid", self.cfg.seed)
                frechet = self.frechet(state.ema, prob.shape, run.grid, stream)
        if not run.main:
            return None  # rank 0 evaluates, writes and records the stage
        save_npy(run.dir.samples(k), samples[:SAVED_SAMPLES])
        metrics = distances(prob, samples, denoised, self.cfg)
        assert self.scores is not None  # rank 0's
        with fast.autocast(self.device, run.fast.bf16):
            metrics.update(self.scores(state.ema, samples))  # val_noisy, copy_rate, ...
        metrics.update(frechet)  # fid, fd_dinov2
        if loss is not None and loss == loss:  # not NaN (the analytic model has no loss)
            metrics["train_loss"] = loss
        metrics["skipped_steps"] = skipped
        nfe = run.method.denoise_evaluations(stage, self)
        if nfe:
            metrics["denoise_nfe"] = nfe  # forward passes; posterior sampling adds backward ones
            if prob.corruption.backward_passes:
                metrics["denoise_backward"] = nfe * prob.corruption.backward_passes
        stage_picture(run.out, stage, prob, samples, denoised, self.runlog)
        title = f"stage {k} ({stage.name}): generated beside the nearest clean sample"
        self.scores.picture(run.out / "samples" / f"nearest-{k:02d}.png", samples, title)
        files = [run.checkpoint_stem(k).with_suffix(x) for x in (".safetensors", ".json")]
        files.append(run.dir.samples(k))
        if stage.denoises:
            files += self.denoiser.shard_files(k)
        run.dir.manifest.record(k, files)
        return {
            "iteration": k,
            "stage": stage.name,
            "metrics": metrics,
            "seconds": time.perf_counter() - t0,
            "train_steps": stage.steps,
        }

    def _sample(self, desc: str) -> torch.Tensor:
        """``eval.num_samples`` generated samples of the EMA (model space)."""
        run = self.run
        return generate_eval(
            self.state.ema,
            self.cfg,
            self.prob.shape,
            run.grid,
            bf16=run.fast.bf16,
            desc=desc,
            progress=run.progress,
            stop=self.stop,
        )

    def _train(self, stage: Stage, tset: TrainingSet) -> tuple[float | None, int]:
        """Train stage ``stage`` (from its step checkpoint if there is one); write its
        checkpoint. Returns (mean loss of the last 10% of steps, steps skipped)."""
        run, cfg, k, state = self.run, self.cfg, stage.iteration, self.state
        step_file = run.dir.step_stem()
        resumed = run_state.step_resume(state, step_file, k, self.device, run.warn)
        resume = None
        if resumed is not None:
            resume, tset_tensors = resumed
            tset.load_state(tset_tensors)
            run.log(f"stage {k}: resuming training at step {resume.done}")
        skipped_before = state.skipped

        def save_step(progress: StageProgress) -> None:
            if not run.main:
                distributed.barrier()
                return
            meta = {
                "iteration": k,
                "stage": stage.name,
                "step": state.step,
                "skipped": skipped_before,
                "progress": progress.meta(),
            }
            extra = {**progress.tensors(), **_prefixed(tset.state())}
            save_checkpoint(step_file, state.model, state.ema, state.optimizer, meta, extra)
            distributed.barrier()

        def log(step: int, loss: float, skipped: int) -> None:
            if not math.isnan(loss):  # NaN: every step of the window was skipped
                self.runlog.scalar("train/loss", loss, step)
            self.runlog.scalar("train/skipped_steps", skipped_before + skipped, step)

        t = cfg.train
        settings = TrainSettings.from_config(
            t,
            steps=stage.steps,
            seed=stream_id("train", cfg.seed, k),
            fp=run.fast,
            desc=f"stage {k} {stage.name}: train",
            progress=run.progress,
        )
        loss = train_stage(
            state,
            tset,
            settings,
            EMA.for_stage(t.ema_halflife, stage.steps),
            augment=Augment(t.augment) if t.augment > 0 else None,
            log=log,
            resume=resume,
            checkpoint=save_step,
            stop=self.stop,
        )
        skipped = state.skipped - skipped_before
        self._save_stage(stage, tset, loss, skipped)
        return (None if math.isnan(loss) else loss), skipped

    def _save_stage(self, stage: Stage, tset: TrainingSet, loss: float, skipped: int) -> None:
        """Rank 0 writes the trained stage's checkpoint and drops the step checkpoint."""
        run, state, prob = self.run, self.state, self.prob
        meta = {
            "iteration": stage.iteration,
            "stage": stage.name,
            "step": state.step,
            "skipped": state.skipped,
            "shape": list(prob.shape),
            "scale": prob.scale,
            "noise_model": prob.corruption.spec(),  # sfbd.noise.from_spec rebuilds it
            "train_loss": None if math.isnan(loss) else loss,
            "skipped_steps": skipped,
        }
        if run.main:
            stem = run.checkpoint_stem(stage.iteration)
            extra = _prefixed(tset.state())
            save_checkpoint(stem, state.model, state.ema, state.optimizer, meta, extra)
            run.dir.remove_step()
        distributed.barrier()


def _prefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{run_state.TSET}{k}": v for k, v in tensors.items()}


class _NullLog:
    """The run log of ranks other than 0: they record nothing."""

    def scalar(self, *args: object) -> None: ...

    def image(self, *args: object) -> None: ...

    def event(self, *args: object, **kwargs: object) -> None: ...

    def close(self) -> None: ...
