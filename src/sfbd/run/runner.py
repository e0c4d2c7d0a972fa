"""The SFBD loop and its baselines, run as resumable stages in a run directory.

SFBD (Lu, Wu, Yu 2025, Algorithm 1): stage 0 pretrains on the clean set; stage k = 1..K
backward-samples every noisy sample from tau with the EMA model of stage k-1 (E_k, keyed by
the noisy sample's index) and then continues training (warm start: weights, EMA and Adam state)
on E_k together with the clean set. Baselines are one stage with the same total step budget:
``clean-only`` (clean set), ``noisy-only`` (noisy set taken as clean) and ``oracle`` (clean
originals of everything; benchmark mode).

Each finished stage writes its checkpoint, its denoised set and pictures, records them with
sizes and checksums in manifest.json, then appends its metrics to metrics.json (written last,
atomically: an entry there means the stage is complete). Rerunning with the same directory
resumes where the last run stopped, mid-stage too:

* finished stages are checked against the manifest; anything missing or altered is reported
  and redone from that stage on;
* E_k is written in shards of ``sample.shard_size`` samples (``denoised/E_KK/shard-*.npz``);
  complete shards are kept, unreadable ones are redone, so every noisy sample is denoised
  exactly once per iteration;
* training writes a step checkpoint (``checkpoints/step``: weights, EMA, Adam, generator
  states, loop counters) every ``train.checkpoint_every`` steps and on SIGTERM/SIGINT, and
  continues from it bit-identically on the same machine;
* a stage whose checkpoint is written but whose metrics are not only re-evaluates.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from sfbd import __version__, report
from sfbd.config import Config, dump_yaml, to_dict
from sfbd.data import Problem, load_problem
from sfbd.diffusion.batched import batch_starts, denoise_all, generate_batches
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.errors import ConfigError, SfbdError
from sfbd.io.atomic import atomic_write_text, save_npy, save_npz
from sfbd.io.checkpoint import (
    CheckpointError,
    extra_tensors,
    load_tensors,
    module_state,
    optimizer_state,
    read_meta,
    save_checkpoint,
)
from sfbd.io.manifest import Manifest
from sfbd.io.runlog import RunLog
from sfbd.models import build_model, parameter_count
from sfbd.rng import stream_id
from sfbd.run.evaluate import FID, check_fid, distances
from sfbd.runtime import distributed, fast, faults
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.train.augment import Augment
from sfbd.train.loop import StageProgress, TrainState, make_optimizer, train_stage

OUTPUTS = (
    "config.yaml",
    "metrics.json",
    "metrics.png",
    "stages.png",
    "checkpoints",
    "denoised",
    "samples",
    "log.jsonl",
    "tensorboard",
    "fid_ref.npz",
    "manifest.json",
)
STEP_CHECKPOINT = "step"  # checkpoints/step.{safetensors,json}: the latest mid-stage state


def stage_stem(out: Path, k: int) -> Path:
    """``DIR/checkpoints/stage-KK``: stage k's checkpoint (add .json / .safetensors)."""
    return Path(out) / "checkpoints" / f"stage-{k:02d}"


def step_stem(out: Path) -> Path:
    """``DIR/checkpoints/step``: the latest mid-stage step checkpoint."""
    return Path(out) / "checkpoints" / STEP_CHECKPOINT


def denoised_dir(out: Path, k: int) -> Path:
    """``DIR/denoised/E_KK``: the shards of E_k."""
    return Path(out) / "denoised" / f"E_{k:02d}"


SAVED_SAMPLES = 1000  # generated samples kept per stage in samples/stage-KK.npy


@dataclass(frozen=True)
class Stage:
    iteration: int
    name: str  # 'pretrain', 'update' or the baseline's method name
    steps: int


def plan(cfg: Config) -> list[Stage]:
    """The stages a method runs; baselines get SFBD's total step budget in one stage."""
    t, k = cfg.train, cfg.sfbd.iterations
    if cfg.method == "sfbd":
        return [Stage(0, "pretrain", t.pretrain_steps)] + [
            Stage(i, "update", t.update_steps) for i in range(1, k + 1)
        ]
    return [Stage(0, cfg.method, t.pretrain_steps + k * t.update_steps)]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu")
    return torch.device(name)


class Run:
    """One run directory: plans the stages, resumes, trains, samples, evaluates and plots."""

    def __init__(self, cfg: Config, out: str | Path, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress
        self.stages = plan(cfg)
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

    # -- run directory -------------------------------------------------------------------
    def _check_directory(self, force: bool) -> None:
        saved = self.out / "config.yaml"
        if saved.is_file():
            old = yaml.safe_load(saved.read_text())
            new = to_dict(self.cfg)
            diff = sorted(_diff_keys(old, new))
            if self.cfg.method == "sfbd" and diff == ["sfbd.iterations"]:
                diff = []  # more (or fewer) iterations of the same run: the stages are a prefix
            if diff:
                if not force:
                    raise SfbdError(
                        f"{self.out} holds a run with a different configuration "
                        f"(differs in {', '.join(diff)}); use another --out, or --force to "
                        "start over"
                    )
                distributed.barrier()  # every rank has read the old config before it goes
                if self.main:
                    self.clear()
        elif self.out.exists() and any(self.out.iterdir()) and not force:
            raise SfbdError(
                f"{self.out} exists and is not an sfbd run directory; use another --out or --force"
            )

    def clear(self) -> None:
        """Remove this tool's outputs from the run directory."""
        for name in OUTPUTS:
            path = self.out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def metrics(self) -> list[dict]:
        path = self.out / "metrics.json"
        return json.loads(path.read_text())["stages"] if path.is_file() else []

    def _write_metrics(self, stages: list[dict]) -> None:
        atomic_write_text(self.out / "metrics.json", json.dumps({"stages": stages}, indent=1))

    def checkpoint_stem(self, iteration: int) -> Path:
        return stage_stem(self.out, iteration)

    # -- the loop ------------------------------------------------------------------------
    def execute(
        self, *, max_stages: int | None = None, force: bool = False, stop: StopFlag = NEVER
    ) -> list[dict]:
        """Run (or resume) the remaining stages; at most ``max_stages`` of them this call.

        When ``stop`` is set (by a signal, see :mod:`sfbd.runtime.interrupt`) the run saves a step
        checkpoint at the next step and raises :class:`~sfbd.runtime.interrupt.Interrupted`.
        """
        self.stop = stop
        stop.check("before the run started")  # e.g. preempted while starting up
        self._check_directory(force)
        prob = load_problem(self.cfg)  # before anything is written: bad input leaves no trace
        check_fid(self.cfg, prob)
        parameter_count(self.cfg, prob.shape)  # a network that cannot be built fails here
        world = f" x {self.dist.world_size} processes" if self.dist.distributed else ""
        self._log(f"{self.cfg.method}: {prob.summary()}; device {self.device}{world}")
        distributed.barrier()
        self.manifest = Manifest(self.out)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.yaml", dump_yaml(self.cfg))
            done = self._verified(self.metrics())
        done = distributed.broadcast_object(done if self.main else None)
        distributed.barrier()
        if len(done) >= len(self.stages):
            self._log(f"all {len(self.stages)} stages already finished in {self.out}")
            return done
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
        self.fid = None
        if self.cfg.eval.fid:  # rank 0 computes and caches the reference statistics first
            if self.main:
                self.fid = FID(self.cfg, prob, self.out, self.device)
            distributed.barrier()
            if not self.main:
                self.fid = FID(self.cfg, prob, self.out, self.device)
        state = self._initial_state(prob, len(done))
        try:
            for ran, stage in enumerate(self.stages[len(done) :]):
                if max_stages is not None and ran >= max_stages:
                    self._log(f"stopped after {len(done)} stage(s); rerun to continue")
                    break
                entry = distributed.broadcast_object(self._run_stage(stage, state, prob))
                faults.point("stage.end")
                done.append(entry)
                if self.main:
                    self._write_metrics(done)
                    self._plots(prob, done)
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

    def _initial_state(self, prob: Problem, n_done: int) -> TrainState:
        fp = self.fast
        model = fast.to_channels_last(
            build_model(self.cfg, prob.shape, self.device), fp.channels_last
        )
        ema = fast.to_channels_last(
            build_model(self.cfg, prob.shape, self.device), fp.channels_last
        )
        ema.load_state_dict(model.state_dict())
        ema.eval()
        optimizer = make_optimizer(model, self.cfg.train.lr, fused=fp.fused_adam)
        state = TrainState(model, ema, optimizer)
        if n_done > 0:
            stem = self.checkpoint_stem(self.stages[n_done - 1].iteration)
            meta = self._restore(state, stem)
            self._log(f"resuming after stage {meta['iteration']} from {stem}")
        if self.dist.distributed and state.optimizer is not None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            state.forward = DistributedDataParallel(model, device_ids=ids)
        if fp.compile and state.optimizer is not None:
            fast.maybe_compile(model, True)  # in place: checkpoints keep plain parameter names
            fast.maybe_compile(ema, True)
        return state

    def _restore(self, state: TrainState, stem: Path) -> dict:
        """Load a checkpoint into ``state`` (weights, EMA, Adam, counters); returns its meta."""
        info, tensors = load_tensors(stem, self.device)
        state.model.load_state_dict(module_state(tensors, "model"))
        state.ema.load_state_dict(module_state(tensors, "ema"))
        opt_state = optimizer_state(info, tensors)
        if state.optimizer is not None and opt_state is not None:
            state.optimizer.load_state_dict(opt_state)
        meta = info["meta"]
        state.step = int(meta["step"])
        state.skipped = int(meta.get("skipped", 0))
        meta["_extra"] = extra_tensors(tensors)
        return meta

    def _verified(self, done: list[dict]) -> list[dict]:
        """The finished stages whose outputs match the manifest; later ones are redone."""
        for pos, entry in enumerate(done):
            k = entry["iteration"]
            problems = self.manifest.problems(k)
            if problems:
                self._log(
                    f"stage {k} outputs cannot be trusted ({'; '.join(problems)}): "
                    f"redoing from stage {k}",
                    force=True,
                )
                self._invalidate(k)
                done = done[:pos]
                self._write_metrics(done)
                break
        return done

    def _invalidate(self, k: int) -> None:
        """Remove what stage k and later stages produced (E_k itself stems from stage k-1)."""
        self.manifest.forget(k)
        for stage in self.stages:
            j = stage.iteration
            if j >= k:
                for suffix in (".safetensors", ".json"):
                    self.checkpoint_stem(j).with_suffix(suffix).unlink(missing_ok=True)
            if j > k:
                shutil.rmtree(self._denoised_dir(j), ignore_errors=True)
        step = step_stem(self.out)
        try:
            meta = json.loads(step.with_suffix(".json").read_text())["meta"]
            stale = meta["iteration"] > k
        except (OSError, ValueError, KeyError, TypeError):
            stale = True
        if stale:
            for suffix in (".safetensors", ".json"):
                step.with_suffix(suffix).unlink(missing_ok=True)

    def _training_set(self, stage: Stage, prob: Problem, denoised: np.ndarray | None) -> np.ndarray:
        method = self.cfg.method
        first = prob.clean if prob.pretrain is None else np.concatenate([prob.pretrain, prob.clean])
        if method == "sfbd":
            return first if denoised is None else np.concatenate([denoised, prob.clean])
        if method == "clean-only":
            return first  # what SFBD pretrains on: the run without its noisy data
        if method == "noisy-only":
            return prob.noisy
        assert prob.noisy_truth is not None
        return np.concatenate([prob.clean, prob.noisy_truth])  # oracle

    def _run_stage(self, stage: Stage, state: TrainState, prob: Problem) -> dict | None:
        cfg, t0 = self.cfg, time.perf_counter()
        k = stage.iteration
        denoised = None
        if stage.name == "update":
            denoised = self._denoise(k, state, prob)
        trained = self._trained(k, state)
        if trained is None:
            loss, skipped = self._train(stage, state, prob, denoised)
        else:
            loss, skipped = trained["train_loss"], trained["skipped_steps"]
            self._log(f"stage {k} ({stage.name}) already trained: evaluating")
        samples = self._generate(state.ema, prob.shape, f"stage {k} {stage.name}: sample")
        fid = None
        if self.fid is not None:
            with fast.autocast(self.device, self.fast.bf16):
                fid = self.fid(state.ema, prob.shape, self.grid, stream_id("fid", cfg.seed))
        if not self.main:
            return None  # rank 0 evaluates, writes and records the stage
        save_npy(self.out / "samples" / f"stage-{k:02d}.npy", samples[:SAVED_SAMPLES])
        metrics = distances(prob, samples, denoised, cfg)
        if fid is not None:
            metrics["fid"] = fid
        if loss is not None and loss == loss:  # not NaN (the analytic model has no loss)
            metrics["train_loss"] = loss
        metrics["skipped_steps"] = skipped
        self._stage_picture(k, stage, prob, samples, denoised)
        files = [self.checkpoint_stem(k).with_suffix(x) for x in (".safetensors", ".json")]
        files.append(self.out / "samples" / f"stage-{k:02d}.npy")
        if denoised is not None:
            files += sorted(self._denoised_dir(k).glob("shard-*.npz"))
        self.manifest.record(k, files)
        return {
            "iteration": k,
            "stage": stage.name,
            "metrics": metrics,
            "seconds": time.perf_counter() - t0,
            "train_steps": stage.steps,
        }

    def _generate(self, ema: torch.nn.Module, shape: tuple[int, ...], desc: str) -> np.ndarray:
        """The evaluation samples (keys 0..eval.num_samples-1); under torchrun each process
        makes its share of the batches and the batches are gathered in key order."""
        cfg, me = self.cfg, self.dist
        batches = generate_batches(
            ema,
            cfg.eval.num_samples,
            shape,
            self.grid,
            stream=stream_id("eval", cfg.seed),
            batch_size=cfg.sample.batch_size,
            device=self.device,
            desc=desc,
            progress=self.progress,
            stop=self.stop if not me.distributed else NEVER,
            rank=me.rank,
            world=me.world_size,
        )
        starts = batch_starts(cfg.eval.num_samples, cfg.sample.batch_size, me.rank, me.world_size)
        with fast.autocast(self.device, self.fast.bf16):
            mine = [(s, x.float().cpu().numpy()) for s, x in zip(starts, batches, strict=True)]
        gathered = distributed.all_gather_object(mine)
        parts = sorted((p for rank_parts in gathered for p in rank_parts), key=lambda p: p[0])
        if not parts:
            return np.zeros((0, *shape), np.float32)
        return np.concatenate([x for _, x in parts])

    def _train(
        self, stage: Stage, state: TrainState, prob: Problem, denoised: np.ndarray | None
    ) -> tuple[float | None, int]:
        """Train stage ``stage`` (from its step checkpoint if there is one); write its
        checkpoint. Returns (mean loss of the last 10% of steps, steps skipped)."""
        cfg, k = self.cfg, stage.iteration
        data = torch.as_tensor(self._training_set(stage, prob, denoised), device=self.device)
        resume = self._step_resume(k, state)
        skipped_before = state.skipped
        step_file = step_stem(self.out)

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
            save_checkpoint(
                step_file, state.model, state.ema, state.optimizer, meta, progress.tensors()
            )
            distributed.barrier()

        def log(step: int, loss: float, skipped: int) -> None:
            if not math.isnan(loss):  # NaN: every step of the window was skipped
                self.runlog.scalar("train/loss", loss, step)
            self.runlog.scalar("train/skipped_steps", skipped_before + skipped, step)

        loss = train_stage(
            state,
            data,
            steps=stage.steps,
            batch_size=cfg.train.batch_size,
            lr=cfg.train.lr,
            lr_warmup=cfg.train.lr_warmup,
            ema_halflife=cfg.train.ema_halflife,
            seed=stream_id("train", cfg.seed, k),
            desc=f"stage {k} {stage.name}: train",
            progress=self.progress,
            augment=Augment(cfg.train.augment) if cfg.train.augment > 0 else None,
            log=log,
            log_every=cfg.train.log_every,
            resume=resume,
            checkpoint=save_step,
            checkpoint_every=cfg.train.checkpoint_every,
            stop=self.stop,
            max_skipped=cfg.train.max_skipped,
            micro_batch=cfg.train.micro_batch,
            bf16=self.fast.bf16,
            channels_last=self.fast.channels_last,
        )
        skipped = state.skipped - skipped_before
        meta = {
            "iteration": k,
            "stage": stage.name,
            "step": state.step,
            "skipped": state.skipped,
            "shape": list(prob.shape),
            "scale": prob.scale,
            "sigma": prob.sigma,
            "train_loss": None if math.isnan(loss) else loss,
            "skipped_steps": skipped,
        }
        if self.main:
            stem = self.checkpoint_stem(k)
            save_checkpoint(stem, state.model, state.ema, state.optimizer, meta)
            for suffix in (".json", ".safetensors"):  # JSON first: no JSON, no step checkpoint
                step_file.with_suffix(suffix).unlink(missing_ok=True)
        distributed.barrier()
        return meta["train_loss"], skipped

    def _trained(self, k: int, state: TrainState) -> dict | None:
        """Load stage k's own checkpoint if an earlier run wrote it intact (meta, else None)."""
        stem = self.checkpoint_stem(k)
        if not stem.with_suffix(".json").is_file():
            return None
        try:
            meta = read_meta(stem)["meta"]
            if meta.get("iteration") != k or "skipped_steps" not in meta:
                return None  # not a finished stage k of this version: train it
            return self._restore(state, stem)
        except CheckpointError as exc:
            self._log(f"{exc}: training stage {k} again", force=True)
            return None

    def _step_resume(self, k: int, state: TrainState) -> StageProgress | None:
        """Restore ``state`` from the step checkpoint if it belongs to stage k."""
        stem = step_stem(self.out)
        if not stem.with_suffix(".json").is_file():
            return None
        try:
            meta = json.loads(stem.with_suffix(".json").read_text())["meta"]
            if meta["iteration"] != k:
                return None
            meta = self._restore(state, stem)
        except (CheckpointError, ValueError, KeyError, TypeError) as exc:
            self._log(f"step checkpoint unusable ({exc}): starting stage {k} afresh", force=True)
            return None
        progress = StageProgress.restore(meta["progress"], meta["_extra"])
        self._log(f"stage {k}: resuming training at step {progress.done}")
        return progress

    def _denoised_dir(self, k: int) -> Path:
        return denoised_dir(self.out, k)

    def _denoise(self, k: int, state: TrainState, prob: Problem) -> np.ndarray:
        """E_k: every noisy sample backward-sampled from tau with the EMA model, written in
        shards; complete shards from an earlier run are kept, broken ones redone."""
        folder = self._denoised_dir(k)
        n, size = len(prob.noisy), self.cfg.sample.shard_size
        shards = distributed.shard_indices(n, size)
        rank, world = self.dist.rank, self.dist.world_size
        parts: dict[int, np.ndarray] = {}
        for i, r in enumerate(shards):  # each rank checks (and may redo) only its own shards
            x = self._read_shard(folder, r, prob.shape) if i % world == rank else None
            if x is not None:
                parts[r.start] = x
        mine = distributed.my_shards(shards, rank, world)
        todo = [r for r in mine if r.start not in parts]
        if todo:
            self._check_disk(folder, sum(len(r) for r in todo) * math.prod(prob.shape) * 4)
            folder.mkdir(parents=True, exist_ok=True)  # `sfbd status`: denoising has begun
        if parts and todo:
            self._log(f"stage {k}: {len(parts)} of {len(mine)} denoised shards kept")
        # under DDP the ranks agree on a stop request after each round of shards
        stop = self.stop if not self.dist.distributed else NEVER
        rounds = len(distributed.my_shards(shards, 0, world))
        for j in range(rounds):
            r = mine[j] if j < len(mine) else None
            if r is not None and r.start not in parts:
                parts[r.start] = self._denoise_shard(k, state, prob, folder, r, stop)
            if self.dist.distributed:  # every rank, every round, also with nothing to do
                self.stop.check_agreed(self._stop_requested(), f"during stage {k} denoising")
        if self.dist.distributed:
            distributed.barrier()  # every shard is written: read the other ranks' ones
            for r in shards:
                if r.start not in parts:
                    x = self._read_shard(folder, r, prob.shape, redo=False)
                    if x is None:
                        raise SfbdError(f"denoised shard {_shard_path(folder, r)} is missing")
                    parts[r.start] = x
        return np.concatenate([parts[r.start] for r in shards]) if shards else prob.noisy.copy()

    def _denoise_shard(
        self,
        k: int,
        state: TrainState,
        prob: Problem,
        folder: Path,
        r: range,
        stop: StopFlag,
    ) -> np.ndarray:
        """Backward-sample the noisy samples of ``r`` and write them as one shard file."""
        with fast.autocast(self.device, self.fast.bf16):
            x = denoise_all(
                state.ema,
                torch.as_tensor(prob.noisy[r.start : r.stop]),
                prob.sigma,
                self.grid,
                stream=stream_id("denoise", self.cfg.seed, k),
                sampler=self.cfg.sample.sampler,
                batch_size=self.cfg.sample.batch_size,
                keys=torch.arange(r.start, r.stop),
                desc=f"stage {k} update: denoise {r.start}-{r.stop - 1} of {len(prob.noisy)}",
                progress=self.progress,
                stop=stop,
            ).numpy()
        save_npz(_shard_path(folder, r), index=np.arange(r.start, r.stop), x=x)
        faults.point("denoise.shard")
        return x

    def _read_shard(
        self, folder: Path, r: range, shape: tuple[int, ...], redo: bool = True
    ) -> np.ndarray | None:
        """A shard's samples if its file is complete and holds exactly the indices of ``r``."""
        path = _shard_path(folder, r)
        if not path.is_file():
            return None
        try:
            with np.load(path) as f:
                index, x = f["index"], f["x"]
            ok = np.array_equal(index, np.arange(r.start, r.stop)) and x.shape == (
                len(r),
                *shape,
            )
            why = "holds other indices or shapes"
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            ok, why = False, f"unreadable: {type(exc).__name__}"
        if not ok:
            if not redo:
                raise SfbdError(f"denoised shard {path} {why}")
            self._log(f"denoised shard {path.name} {why}; redoing it", force=True)
            path.unlink()
            return None
        return x

    def _check_disk(self, folder: Path, needed: int) -> None:
        """Refuse to start denoising when the disk cannot hold the denoised set."""
        probe = folder
        while not probe.exists():
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if free < needed * 1.05 + 64 * 2**20:
            raise SfbdError(
                f"not enough disk space for the denoised set in {folder}: about "
                f"{needed / 2**30:.2f} GiB needed, {free / 2**30:.2f} GiB free; free some space "
                "or use an --out on a larger disk"
            )

    # -- pictures and logging ------------------------------------------------------------
    def _stage_picture(
        self, k: int, stage: Stage, prob: Problem, samples: np.ndarray, denoised: np.ndarray | None
    ) -> None:
        panels = [(f"generated, stage {k} ({stage.name})", samples)]
        if denoised is not None:
            panels.append((f"denoised E_{k}", denoised))
        path = self.out / "samples" / f"stage-{k:02d}.png"
        if not prob.is_image:
            report.scatter_panels_png(path, panels, reference=prob.reference)
            return
        report.image_panels_png(path, [(t, a[:64]) for t, a in panels])
        self.runlog.image("samples/generated", report.image_grid(samples[:64]), k)
        if denoised is not None and prob.noisy_truth is not None:
            # the same noisy indices as clean original, noisy input and E_k (paper's figure)
            idx = slice(0, 16)
            triplets = [
                ("clean", prob.noisy_truth[idx]),
                (f"noisy (sigma {prob.sigma:g})", prob.noisy[idx]),
                (f"denoised E_{k}", denoised[idx]),
            ]
            report.image_panels_png(self.out / "samples" / f"triplets-{k:02d}.png", triplets)
            self.runlog.image("samples/denoised", report.image_grid(denoised[idx]), k)

    def _plots(self, prob: Problem, done: list[dict]) -> None:
        report.metrics_png(self.out / "metrics.png", done, label=self.cfg.method)
        panels = []
        for entry in done:
            k = entry["iteration"]
            path = self.out / "samples" / f"stage-{k:02d}.npy"
            if path.is_file():
                panels.append((f"stage {k} ({entry['stage']})", np.load(path)))
        if prob.is_image:
            report.image_panels_png(self.out / "stages.png", [(t, a[:64]) for t, a in panels])
        else:
            report.scatter_panels_png(self.out / "stages.png", panels, reference=prob.reference)

    def _log(self, msg: str, *, force: bool = False) -> None:
        """Progress messages (hidden by --quiet); warnings about redone work always shown.
        Under torchrun only rank 0 speaks."""
        if not self.main:
            return
        if force:
            print(f"sfbd: {msg}", file=sys.stderr, flush=True)
        elif self.progress:
            print(msg, flush=True)


class _NullLog:
    """The run log of ranks other than 0: they record nothing."""

    def scalar(self, *args: object) -> None: ...

    def image(self, *args: object) -> None: ...

    def event(self, *args: object, **kwargs: object) -> None: ...

    def close(self) -> None: ...


def _shard_path(folder: Path, r: range) -> Path:
    return folder / f"shard-{r.start:09d}.npz"


def read_denoised(run_dir: str | Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, x) of the denoised set E_k of a run: its shards joined in index order."""
    folder = denoised_dir(Path(run_dir), k)
    shards = sorted(folder.glob("shard-*.npz"))
    if not shards:
        raise SfbdError(f"no denoised set E_{k:02d} in {run_dir}")
    index, x = [], []
    for path in shards:
        with np.load(path) as f:
            index.append(f["index"])
            x.append(f["x"])
    return np.concatenate(index), np.concatenate(x)


_ABSENT = object()


def _diff_keys(old: object, new: object) -> list[str]:
    """Dotted keys whose values differ. A key the saved configuration lacks (written by an
    older sfbd) counts as equal when the new value is that key's default."""
    return _diff(old, new, "", to_dict(Config()))


def _diff(old: object, new: object, prefix: str, default: object) -> list[str]:
    if old is _ABSENT:
        return [] if new == default else [prefix.rstrip(".")]
    if isinstance(old, dict) and isinstance(new, dict):
        sub = default if isinstance(default, dict) else {}
        return [
            d
            for k in sorted(set(old) | set(new))
            for d in _diff(old.get(k, _ABSENT), new.get(k), f"{prefix}{k}.", sub.get(k, _ABSENT))
        ]
    return [] if old == new else [prefix.rstrip(".")]
