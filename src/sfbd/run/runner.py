"""The runner: the resumable stage loop over a :class:`~sfbd.methods.base.Method`.

A method plans its stages and says what each trains on; the runner runs them in a run
directory (:mod:`sfbd.run.directory`), each through the :class:`~sfbd.run.execution.Execution`
it builds once per call of :meth:`Run.execute` (the stage's training, sampling, evaluation and
records; the context the method sees). Each finished stage writes its checkpoint, its denoised
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

import sys
from pathlib import Path

import torch

from sfbd.data import Problem, load_problem
from sfbd.data.store import sources_key, store_bytes, store_problem
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.errors import ConfigError
from sfbd.io.disk import require_free
from sfbd.methods import METHODS
from sfbd.methods.base import Stage
from sfbd.nets import parameter_count
from sfbd.run.denoise import denoised_bytes
from sfbd.run.directory import RunDirectory, shard_path
from sfbd.run.evaluate import check_fid
from sfbd.run.execution import Execution
from sfbd.run.pictures import run_plots
from sfbd.runtime import distributed, fast, faults, heap
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.schema import Config

__all__ = ["Run", "Stage", "plan", "resolve_device"]


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
    """One run directory: plans the stages, checks and resumes them, and runs each through an
    :class:`~sfbd.run.execution.Execution` (the :class:`~sfbd.methods.base.StageContext` its
    method sees), which trains, samples, evaluates and plots.
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
        device = resolve_device(cfg.device)
        if self.dist.distributed and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.grid = edm_sigmas(cfg.sample.steps, device=self.device)
        f = cfg.fast
        self.fast = fast.resolve(
            self.device,
            bf16=f.bf16,
            channels_last=f.channels_last,
            compile=f.compile,
            fused_adam=f.fused_adam,
        )

    def metrics(self) -> list[dict]:
        return self.dir.metrics()

    def clear(self) -> None:
        """Remove this tool's outputs from the run directory."""
        self.dir.clear()

    def checkpoint_stem(self, iteration: int) -> Path:
        return self.dir.stage_stem(iteration)

    def execute(
        self, *, max_stages: int | None = None, force: bool = False, stop: StopFlag = NEVER
    ) -> list[dict]:
        """Run (or resume) the remaining stages; at most ``max_stages`` of them this call.

        When ``stop`` is set (by a signal, see :mod:`sfbd.runtime.interrupt`) the run saves a
        step checkpoint at the next step and raises :class:`~sfbd.runtime.interrupt.Interrupted`.
        """
        stop.check("before the run started")  # e.g. preempted while starting up
        prob, done = self._open(force)
        if len(done) >= len(self.stages):
            self.log(f"all {len(self.stages)} stages already finished in {self.out}")
            return done
        prob = prepare_disk(self.cfg, prob, self.dir, self.stages[len(done) :], self.main)
        ex = Execution(self, prob, len(done), stop)
        try:
            for ran, stage in enumerate(self.stages[len(done) :]):
                if max_stages is not None and ran >= max_stages:
                    self.log(f"stopped after {len(done)} stage(s); rerun to continue")
                    break
                entry = distributed.broadcast_object(ex.run_stage(stage))
                heap.release()
                faults.point("stage.end")
                done.append(entry)
                if self.main:
                    self._record(ex, stage, prob, done)
                m = ", ".join(f"{k} {v:.4g}" for k, v in entry["metrics"].items())
                secs = entry["seconds"]
                self.log(f"stage {stage.iteration} ({stage.name}) done in {secs:.1f}s: {m}")
                distributed.barrier()
                stop.check_agreed(ex.stop_requested(), f"after stage {stage.iteration}")
        finally:
            ex.runlog.close()
        return done

    def _open(self, force: bool) -> tuple[Problem, list[dict]]:
        """Check the directory against the config (clearing it when ``force`` says so), load
        and check the input, write the config; the problem and the finished stages' entries
        (every rank gets rank 0's)."""
        clear = self.dir.check(self.cfg, self.method.growable, force, distributed.barrier)
        if clear and self.main:  # every rank has read the old config before it goes
            self.dir.clear()
        # before anything is written: bad input leaves no trace
        prob = load_problem(self.cfg, pretrain=self.method.uses_pretrain(self.cfg))
        check_fid(self.cfg, prob)
        parameter_count(self.cfg, prob.shape)  # a network that cannot be built fails here
        world = f" x {self.dist.world_size} processes" if self.dist.distributed else ""
        self.log(f"{self.cfg.method}: {prob.summary()}; device {self.device}{world}")
        distributed.barrier()
        self.dir.open_manifest()
        if self.main:
            self.dir.write_config(self.cfg)
            done = self.dir.verified(self.dir.metrics(), self.stages, self.warn)
        done = distributed.broadcast_object(done if self.main else None)
        distributed.barrier()
        return prob, done

    def _record(self, ex: Execution, stage: Stage, prob: Problem, done: list[dict]) -> None:
        """Rank 0, after a stage: metrics.json (atomically: the stage is complete), the metric
        plots and the run log's records."""
        entry = done[-1]
        self.dir.write_metrics(done)
        run_plots(self.out, prob, done, self.cfg.method)
        ex.runlog.event("stage", **entry)
        for k, v in entry["metrics"].items():
            ex.runlog.scalar(f"metrics/{k}", v, stage.iteration)

    def warn(self, msg: str) -> None:
        """A warning about redone work: shown even under --quiet (rank 0 only)."""
        self.log(msg, force=True)

    def log(self, msg: str, *, force: bool = False) -> None:
        """Progress messages (hidden by --quiet); warnings about redone work always shown.
        Under torchrun only rank 0 speaks."""
        if not self.main:
            return
        if force:
            print(f"sfbd: {msg}", file=sys.stderr, flush=True)
        elif self.progress:
            print(msg, flush=True)
