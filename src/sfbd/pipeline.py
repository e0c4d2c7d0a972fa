"""The SFBD loop and its baselines, run as resumable stages in a run directory.

SFBD (Lu, Wu, Yu 2025, Algorithm 1): stage 0 pretrains on the clean set; stage k = 1..K
backward-samples every noisy sample from tau with the EMA model of stage k-1 (E_k, keyed by
the noisy sample's index) and then continues training (warm start: weights, EMA and Adam state)
on E_k together with the clean set. Baselines are one stage with the same total step budget:
``clean-only`` (clean set), ``noisy-only`` (noisy set taken as clean) and ``oracle`` (clean
originals of everything; benchmark mode).

Each finished stage writes its checkpoint, its denoised set and pictures, then appends its
metrics to metrics.json (written last, atomically: an entry there means the stage is complete).
Rerunning with the same directory resumes after the last complete stage.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from sfbd import report
from sfbd.atomic import atomic_write_text, save_npy, save_npz
from sfbd.augment import Augment
from sfbd.checkpoint import load_checkpoint, save_checkpoint
from sfbd.config import Config, dump_yaml, to_dict
from sfbd.data import Problem, load_problem
from sfbd.diffusion.batched import denoise_all, generate
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.errors import ConfigError, SfbdError
from sfbd.evaluate import FID, check_fid, distances
from sfbd.models import build_model, parameter_count
from sfbd.rng import stream_id
from sfbd.runlog import RunLog
from sfbd.train import TrainState, make_optimizer, train_stage

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
)
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
        self.device = resolve_device(cfg.device)
        self.grid = edm_sigmas(cfg.sample.steps, device=self.device)

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
        return self.out / "checkpoints" / f"stage-{iteration:02d}"

    # -- the loop ------------------------------------------------------------------------
    def execute(self, *, max_stages: int | None = None, force: bool = False) -> list[dict]:
        """Run (or resume) the remaining stages; at most ``max_stages`` of them this call."""
        self._check_directory(force)
        prob = load_problem(self.cfg)  # before anything is written: bad input leaves no trace
        check_fid(self.cfg, prob)
        parameter_count(self.cfg, prob.shape)  # a network that cannot be built fails here
        self._log(f"{self.cfg.method}: {prob.summary()}; device {self.device}")
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", dump_yaml(self.cfg))
        done = self.metrics()
        if len(done) >= len(self.stages):
            self._log(f"all {len(self.stages)} stages already finished in {self.out}")
            return done
        self.runlog = RunLog(self.out)
        self.fid = FID(self.cfg, prob, self.out, self.device) if self.cfg.eval.fid else None
        state = self._initial_state(prob, len(done))
        try:
            for ran, stage in enumerate(self.stages[len(done) :]):
                if max_stages is not None and ran >= max_stages:
                    self._log(f"stopped after {len(done)} stage(s); rerun to continue")
                    break
                done.append(self._run_stage(stage, state, prob))
                self._write_metrics(done)
                self._plots(prob, done)
                entry = done[-1]
                self.runlog.event("stage", **entry)
                for k, v in entry["metrics"].items():
                    self.runlog.scalar(f"metrics/{k}", v, stage.iteration)
                m = ", ".join(f"{k} {v:.4g}" for k, v in entry["metrics"].items())
                secs = entry["seconds"]
                self._log(f"stage {stage.iteration} ({stage.name}) done in {secs:.1f}s: {m}")
        finally:
            self.runlog.close()
        return done

    def _initial_state(self, prob: Problem, n_done: int) -> TrainState:
        if n_done == 0:
            model = build_model(self.cfg, prob.shape, self.device)
            ema = build_model(self.cfg, prob.shape, self.device).eval()
            ema.load_state_dict(model.state_dict())
            return TrainState(model, ema, make_optimizer(model, self.cfg.train.lr))
        stem = self.checkpoint_stem(self.stages[n_done - 1].iteration)
        model, ema, opt_state, meta = load_checkpoint(stem, self.device)
        optimizer = make_optimizer(model, self.cfg.train.lr)
        if optimizer is not None and opt_state is not None:
            optimizer.load_state_dict(opt_state)
        self._log(f"resuming after stage {meta['iteration']} from {stem}")
        return TrainState(model, ema.eval(), optimizer, step=int(meta["step"]))

    def _training_set(self, stage: Stage, prob: Problem, denoised: np.ndarray | None) -> np.ndarray:
        method = self.cfg.method
        if method == "sfbd":
            return prob.clean if denoised is None else np.concatenate([denoised, prob.clean])
        if method == "clean-only":
            return prob.clean
        if method == "noisy-only":
            return prob.noisy
        assert prob.noisy_truth is not None
        return np.concatenate([prob.clean, prob.noisy_truth])  # oracle

    def _run_stage(self, stage: Stage, state: TrainState, prob: Problem) -> dict:
        cfg, t0 = self.cfg, time.perf_counter()
        k = stage.iteration
        denoised = None
        if stage.name == "update":
            denoised = self._denoise(k, state, prob)
        data = torch.as_tensor(self._training_set(stage, prob, denoised), device=self.device)
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
            log=lambda step, loss: self.runlog.scalar("train/loss", loss, step),
            log_every=cfg.train.log_every,
        )
        meta = {
            "iteration": k,
            "stage": stage.name,
            "step": state.step,
            "shape": list(prob.shape),
            "scale": prob.scale,
            "sigma": prob.sigma,
        }
        save_checkpoint(self.checkpoint_stem(k), state.model, state.ema, state.optimizer, meta)
        samples = generate(
            state.ema,
            cfg.eval.num_samples,
            prob.shape,
            self.grid,
            stream=stream_id("eval", cfg.seed),
            batch_size=cfg.sample.batch_size,
            device=self.device,
            desc=f"stage {k} {stage.name}: sample",
            progress=self.progress,
        ).numpy()
        save_npy(self.out / "samples" / f"stage-{k:02d}.npy", samples[:SAVED_SAMPLES])
        metrics = distances(prob, samples, denoised, cfg)
        if self.fid is not None:
            metrics["fid"] = self.fid(state.ema, prob.shape, self.grid, stream_id("fid", cfg.seed))
        if loss == loss:  # not NaN (the analytic model has no loss)
            metrics["train_loss"] = loss
        self._stage_picture(k, stage, prob, samples, denoised)
        return {
            "iteration": k,
            "stage": stage.name,
            "metrics": metrics,
            "seconds": time.perf_counter() - t0,
            "train_steps": stage.steps,
        }

    def _denoise(self, k: int, state: TrainState, prob: Problem) -> np.ndarray:
        """E_k: every noisy sample backward-sampled from tau, reused if already complete."""
        path = self.out / "denoised" / f"E_{k:02d}.npz"
        if path.is_file():
            with np.load(path) as f:
                if np.array_equal(f["index"], np.arange(len(prob.noisy))):
                    return f["x"]
        x = denoise_all(
            state.ema,
            torch.as_tensor(prob.noisy),
            prob.sigma,
            self.grid,
            stream=stream_id("denoise", self.cfg.seed, k),
            sampler=self.cfg.sample.sampler,
            batch_size=self.cfg.sample.batch_size,
            desc=f"stage {k} update: denoise",
            progress=self.progress,
        ).numpy()
        save_npz(path, index=np.arange(len(x)), x=x)
        return x

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

    def _log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)


def _diff_keys(old: object, new: object, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = set(old) | set(new)
        return [d for k in keys for d in _diff_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]
