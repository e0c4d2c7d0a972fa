"""The runner: the resumable stage loop over a :class:`~sfbd.methods.base.Method`.

A method plans its stages and says what each trains on; the runner runs them in a run
directory (:mod:`sfbd.run.directory`). Each finished stage writes its checkpoint, its denoised
set and pictures, records them with sizes and checksums in manifest.json, then appends its
metrics to metrics.json (written last, atomically: an entry there means the stage is
complete). Rerunning with the same directory resumes where the last run stopped, mid-stage too:

* finished stages are checked against the manifest; anything missing or altered is reported
  and redone from that stage on;
* E_k is written in shards (:mod:`sfbd.run.denoise`); complete shards are kept, unreadable
  ones are redone, so every noisy sample is denoised exactly once per pass;
* training writes a step checkpoint (``checkpoints/step``: weights, EMA, Adam, generator
  states, loop counters and the training set's state) every ``train.checkpoint_every`` steps
  and on SIGTERM/SIGINT, and continues from it bit-identically on the same machine;
* a stage whose checkpoint is written but whose metrics are not only re-evaluates.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sfbd.data import Problem, load_problem
from sfbd.data.problem import sources_key, store_bytes, store_problem
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.errors import ConfigError
from sfbd.io.arrays import SampleArray
from sfbd.io.atomic import save_npy
from sfbd.io.checkpoint import save_checkpoint
from sfbd.io.disk import require_free
from sfbd.io.runlog import RunLog
from sfbd.methods import METHODS
from sfbd.methods.base import Stage
from sfbd.models import parameter_count
from sfbd.rng import stream_id
from sfbd.run import state as run_state
from sfbd.run.denoise import ShardedDenoiser, denoised_bytes
from sfbd.run.directory import RunDirectory, shard_path
from sfbd.run.evaluate import (
    FrechetMetrics,
    check_fid,
    distances,
    frechet_requested,
    generate_eval,
)
from sfbd.run.pictures import run_plots, stage_picture
from sfbd.runtime import distributed, fast, faults, heap
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.schema import Config
from sfbd.train.augment import Augment
from sfbd.train.data import TrainingSet
from sfbd.train.ema import EMA
from sfbd.train.loop import train_stage
from sfbd.train.settings import TrainSettings
from sfbd.train.state import StageProgress, TrainState
from sfbd.version import __version__

__all__ = ["Run", "Stage", "plan", "resolve_device"]

SAVED_SAMPLES = 1000  # generated samples kept per stage in samples/stage-KK.npy


def plan(cfg: Config) -> list[Stage]:
    """The stages of the configured method."""
    return METHODS[cfg.method]().plan(cfg)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu")
    return torch.device(name)


def prepare_disk(
    cfg: Config, prob: Problem, rundir: RunDirectory, todo: list[Stage], main: bool
) -> Problem:
    """Check the disk, then store the run's computed training arrays: ``prob`` memory-mapped.

    Rank 0 (``main``) first refuses a run whose disk cannot hold what it still has to write,
    the stored arrays and every remaining E_k of the stages ``todo``, before any work starts;
    it then writes the computed training arrays (the benchmark's noisy set, model-space
    transforms) once to ``DIR/data``, while the other ranks wait, then memory-map them."""
    if main:
        per = denoised_bytes(cfg, prob.shape)
        shards = distributed.shard_indices(len(prob.noisy), cfg.sample.shard_size)
        denoise_bytes = 0
        for stage in todo:
            if stage.denoises:
                folder = rundir.denoised_dir(stage.iteration)
                missing = [r for r in shards if not shard_path(folder, r).is_file()]
                denoise_bytes += sum(len(r) for r in missing) * per
        key = sources_key(cfg)  # stats every input file: once
        stored = store_bytes(prob, key, rundir.data_dir())
        what = "the rest of this run (the denoised sets E_k"
        what += " and the stored noisy set)" if stored else ")"
        require_free(rundir.out, stored + denoise_bytes, what, "use an --out on a larger disk")
        prob = store_problem(prob, cfg, rundir.data_dir(), write=True, key=key)
    distributed.barrier()
    if not main:
        prob = store_problem(prob, cfg, rundir.data_dir(), write=False)
    return prob


class Run:
    """One run directory: plans the stages, resumes, trains, samples, evaluates and plots.

    It is also the :class:`~sfbd.methods.base.StageContext` its method sees.
    """

    def __init__(self, cfg: Config, out: str | Path, *, progress: bool = True) -> None:
        heap.configure()  # large buffers go back to the system when freed (host memory flat)
        self.cfg = cfg
        self.out = Path(out)
        self.dir = RunDirectory(self.out)
        self.progress = progress
        self.method = METHODS[cfg.method]()
        self.stages = self.method.plan(cfg)
        self.dist = distributed.info()  # rank 0 of 1 unless started by torchrun
        self.main = self.dist.is_main
        self.device = resolve_device(cfg.device)
        if self.dist.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.grid = edm_sigmas(cfg.sample.steps, device=self.device)
        self.stop = NEVER
        f = cfg.fast
        self.fast = fast.resolve(
            self.device,
            bf16=f.bf16,
            channels_last=f.channels_last,
            compile=f.compile,
            fused_adam=f.fused_adam,
        )
        self.carry: dict[str, torch.Tensor] = {}  # the last stage's training-set state

    def metrics(self) -> list[dict]:
        return self.dir.metrics()

    def clear(self) -> None:
        """Remove this tool's outputs from the run directory."""
        self.dir.clear()

    def checkpoint_stem(self, iteration: int) -> Path:
        return self.dir.stage_stem(iteration)

    # -- the StageContext a method sees --------------------------------------------------
    def denoise(self, k: int) -> SampleArray:
        return self.denoiser.full_pass(k, self.state.ema, self.stop)

    def backward(self, index: np.ndarray, visit: int) -> torch.Tensor:
        return self.denoiser.rows(self.state.ema, index, visit).to(self.device)

    def evaluations(self, index: np.ndarray | None = None) -> int:
        return self.denoiser.evaluations(index)

    # -- the loop ------------------------------------------------------------------------
    def execute(
        self, *, max_stages: int | None = None, force: bool = False, stop: StopFlag = NEVER
    ) -> list[dict]:
        """Run (or resume) the remaining stages; at most ``max_stages`` of them this call.

        When ``stop`` is set (by a signal, see :mod:`sfbd.runtime.interrupt`) the run saves a
        step checkpoint at the next step and raises :class:`~sfbd.runtime.interrupt.Interrupted`.
        """
        self.stop = stop
        stop.check("before the run started")  # e.g. preempted while starting up
        clear = self.dir.check(self.cfg, self.method.growable, force, distributed.barrier)
        if clear and self.main:  # every rank has read the old config before it goes
            self.dir.clear()
        prob = load_problem(self.cfg)  # before anything is written: bad input leaves no trace
        check_fid(self.cfg, prob)
        parameter_count(self.cfg, prob.shape)  # a network that cannot be built fails here
        world = f" x {self.dist.world_size} processes" if self.dist.distributed else ""
        self._log(f"{self.cfg.method}: {prob.summary()}; device {self.device}{world}")
        distributed.barrier()
        self.dir.open_manifest()
        if self.main:
            self.dir.write_config(self.cfg)
            done = self.dir.verified(self.dir.metrics(), self.stages, self._warn)
        done = distributed.broadcast_object(done if self.main else None)
        distributed.barrier()
        if len(done) >= len(self.stages):
            self._log(f"all {len(self.stages)} stages already finished in {self.out}")
            return done
        prob = prepare_disk(self.cfg, prob, self.dir, self.stages[len(done) :], self.main)
        self.runlog = RunLog(self.out) if self.main else _NullLog()
        self.runlog.event(
            "start",
            version=__version__,
            noisy=len(prob.noisy),
            clean=len(prob.clean),
            shape=list(prob.shape),
            device=str(self.device),
            world_size=self.dist.world_size,
            finished_stages=len(done),
        )
        self.prob = prob
        self.frechet = None
        if frechet_requested(self.cfg):  # rank 0 computes and caches the reference stats first
            if self.main:
                self.frechet = FrechetMetrics(self.cfg, prob, self.out, self.device)
            distributed.barrier()
            if not self.main:
                self.frechet = FrechetMetrics(self.cfg, prob, self.out, self.device)
        self.denoiser = ShardedDenoiser(
            self.cfg,
            prob,
            self.out,
            self.grid,
            self.fast,
            progress=self.progress,
            log=lambda msg, warn: self._log(msg, force=warn),
            stop_requested=self._stop_requested,
        )
        self.state = self._initial_state(len(done))
        try:
            for ran, stage in enumerate(self.stages[len(done) :]):
                if max_stages is not None and ran >= max_stages:
                    self._log(f"stopped after {len(done)} stage(s); rerun to continue")
                    break
                entry = distributed.broadcast_object(self._run_stage(stage, prob))
                heap.release()
                faults.point("stage.end")
                done.append(entry)
                if self.main:
                    self.dir.write_metrics(done)
                    run_plots(self.out, prob, done, self.cfg.method)
                    self.runlog.event("stage", **entry)
                    for k, v in entry["metrics"].items():
                        self.runlog.scalar(f"metrics/{k}", v, stage.iteration)
                m = ", ".join(f"{k} {v:.4g}" for k, v in entry["metrics"].items())
                secs = entry["seconds"]
                self._log(f"stage {stage.iteration} ({stage.name}) done in {secs:.1f}s: {m}")
                distributed.barrier()
                stop.check_agreed(self._stop_requested(), f"after stage {stage.iteration}")
        finally:
            self.runlog.close()
        return done

    def _stop_requested(self) -> bool:
        """Whether any rank was asked to stop (all ranks get the same answer)."""
        return distributed.any_rank(self.stop.is_set(), self.device)

    def _initial_state(self, n_done: int) -> TrainState:
        state = run_state.build_state(self.cfg, self.prob.shape, self.device, self.fast)
        if n_done > 0:
            stem = self.checkpoint_stem(self.stages[n_done - 1].iteration)
            meta = run_state.restore(state, stem, self.device)
            self.carry = run_state.training_set_state(meta)
            self._log(f"resuming after stage {meta['iteration']} from {stem}")
        run_state.wrap_for_training(state, self.device, self.fast)
        return state

    def _run_stage(self, stage: Stage, prob: Problem) -> dict | None:
        cfg, t0, state = self.cfg, time.perf_counter(), self.state
        k = stage.iteration
        tset = self.method.training_set(stage, self)
        trained = run_state.trained(state, self.checkpoint_stem(k), k, self.device, self._warn)
        if trained is None:
            loss, skipped = self._train(stage, tset)
        else:
            tset.load_state(run_state.training_set_state(trained))
            loss, skipped = trained["train_loss"], trained["skipped_steps"]
            self._log(f"stage {k} ({stage.name}) already trained: evaluating")
        self.carry = tset.state()
        denoised = tset.denoised()
        if denoised is not None:  # E_k in the data's scale, for metrics and pictures
            denoised = prob.decoded(denoised)
        desc = f"stage {k} {stage.name}: sample"
        samples = generate_eval(
            state.ema,
            cfg,
            prob.shape,
            self.grid,
            bf16=self.fast.bf16,
            desc=desc,
            progress=self.progress,
            stop=self.stop,
        )
        samples = prob.decode(samples)
        frechet = {}
        if self.frechet is not None:
            with fast.autocast(self.device, self.fast.bf16):
                frechet = self.frechet(state.ema, prob.shape, self.grid, stream_id("fid", cfg.seed))
        if not self.main:
            return None  # rank 0 evaluates, writes and records the stage
        save_npy(self.dir.samples(k), samples[:SAVED_SAMPLES])
        metrics = distances(prob, samples, denoised, cfg)
        metrics.update(frechet)  # fid, fd_dinov2
        if loss is not None and loss == loss:  # not NaN (the analytic model has no loss)
            metrics["train_loss"] = loss
        metrics["skipped_steps"] = skipped
        nfe = self.method.denoise_evaluations(stage, self)
        if nfe:
            metrics["denoise_nfe"] = nfe
        stage_picture(self.out, stage, prob, samples, denoised, self.runlog)
        files = [self.checkpoint_stem(k).with_suffix(x) for x in (".safetensors", ".json")]
        files.append(self.dir.samples(k))
        if stage.denoises:
            files += self.denoiser.shard_files(k)
        self.dir.manifest.record(k, files)
        return {
            "iteration": k,
            "stage": stage.name,
            "metrics": metrics,
            "seconds": time.perf_counter() - t0,
            "train_steps": stage.steps,
        }

    def _train(self, stage: Stage, tset: TrainingSet) -> tuple[float | None, int]:
        """Train stage ``stage`` (from its step checkpoint if there is one); write its
        checkpoint. Returns (mean loss of the last 10% of steps, steps skipped)."""
        cfg, k, state = self.cfg, stage.iteration, self.state
        step_file = self.dir.step_stem()
        resumed = run_state.step_resume(state, step_file, k, self.device, self._warn)
        resume = None
        if resumed is not None:
            resume, tset_tensors = resumed
            tset.load_state(tset_tensors)
            self._log(f"stage {k}: resuming training at step {resume.done}")
        skipped_before = state.skipped

        def save_step(progress: StageProgress) -> None:
            if not self.main:
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
            fp=self.fast,
            desc=f"stage {k} {stage.name}: train",
            progress=self.progress,
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
        meta = {
            "iteration": k,
            "stage": stage.name,
            "step": state.step,
            "skipped": state.skipped,
            "shape": list(self.prob.shape),
            "scale": self.prob.scale,
            "noise_model": self.prob.corruption.spec(),  # sfbd.noise.from_spec rebuilds it
            "train_loss": None if math.isnan(loss) else loss,
            "skipped_steps": skipped,
        }
        if self.main:
            extra = _prefixed(tset.state())
            save_checkpoint(
                self.checkpoint_stem(k), state.model, state.ema, state.optimizer, meta, extra
            )
            self.dir.remove_step()
        distributed.barrier()
        return meta["train_loss"], skipped

    def _warn(self, msg: str) -> None:
        self._log(msg, force=True)

    def _log(self, msg: str, *, force: bool = False) -> None:
        """Progress messages (hidden by --quiet); warnings about redone work always shown.
        Under torchrun only rank 0 speaks."""
        if not self.main:
            return
        if force:
            print(f"sfbd: {msg}", file=sys.stderr, flush=True)
        elif self.progress:
            print(msg, flush=True)


def _prefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{run_state.TSET}{k}": v for k, v in tensors.items()}


class _NullLog:
    """The run log of ranks other than 0: they record nothing."""

    def scalar(self, *args: object) -> None: ...

    def image(self, *args: object) -> None: ...

    def event(self, *args: object, **kwargs: object) -> None: ...

    def close(self) -> None: ...
