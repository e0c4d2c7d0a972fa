"""The training state of a run: built fresh, or restored from a stage or step checkpoint.

A checkpoint (:mod:`sfbd.io.checkpoint`) holds the weights, their EMA, Adam's state, the
loop's counters in its JSON meta and, as extra tensors, the random-generator states of a step
checkpoint and the training set's state (``tset.*``, e.g. Online SFBD's bank).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from sfbd.io.checkpoint import (
    CheckpointError,
    extra_tensors,
    load_tensors,
    module_state,
    optimizer_state,
    read_meta,
)
from sfbd.nets import build_model
from sfbd.runtime import distributed, fast
from sfbd.runtime.fast import FastPath
from sfbd.schema import Config
from sfbd.train.state import StageProgress, TrainState, make_optimizer

TSET = "tset."  # prefix of the training set's tensors among a checkpoint's extras


def build_state(
    cfg: Config, shape: tuple[int, ...], device: torch.device, fp: FastPath
) -> TrainState:
    """Fresh weights (seeded by ``cfg.seed``), their EMA and Adam."""
    model = fast.to_channels_last(build_model(cfg, shape, device), fp.channels_last)
    ema = fast.to_channels_last(build_model(cfg, shape, device), fp.channels_last)
    ema.load_state_dict(model.state_dict())
    ema.eval()
    optimizer = make_optimizer(model, cfg.train.lr, fused=fp.fused_adam)
    return TrainState(model, ema, optimizer)


def wrap_for_training(state: TrainState, device: torch.device, fp: FastPath) -> None:
    """DDP around the model under torchrun; torch.compile where the fast path says so."""
    if state.optimizer is None:
        return  # the analytic model is refitted, not trained
    if distributed.info().distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        state.forward = DistributedDataParallel(state.model, device_ids=ids)
    if fp.compile:
        fast.maybe_compile(state.model, True)  # in place: checkpoints keep plain names
        fast.maybe_compile(state.ema, True)


def restore(state: TrainState, stem: Path, device: torch.device) -> dict:
    """Load a checkpoint into ``state`` (weights, EMA, Adam, counters); returns its meta with
    the extra tensors under ``_extra``."""
    info, tensors = load_tensors(stem, device)
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


def training_set_state(meta: dict) -> dict[str, torch.Tensor]:
    """The training set's tensors among a restored checkpoint's extras."""
    extra = meta.get("_extra", {})
    return {k[len(TSET) :]: v for k, v in extra.items() if k.startswith(TSET)}


def trained(
    state: TrainState, stem: Path, k: int, device: torch.device, log: Callable[[str], None]
) -> dict | None:
    """Load stage k's own checkpoint if an earlier run wrote it intact (its meta, else None)."""
    if not stem.with_suffix(".json").is_file():
        return None
    try:
        meta = read_meta(stem)["meta"]
        if meta.get("iteration") != k or "skipped_steps" not in meta:
            return None  # not a finished stage k of this version: train it
        return restore(state, stem, device)
    except CheckpointError as exc:
        log(f"{exc}: training stage {k} again")
        return None


def step_resume(
    state: TrainState, stem: Path, k: int, device: torch.device, log: Callable[[str], None]
) -> tuple[StageProgress, dict[str, torch.Tensor]] | None:
    """Restore ``state`` from the step checkpoint if it belongs to stage k: the loop's
    progress and the training set's saved tensors."""
    if not stem.with_suffix(".json").is_file():
        return None
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())["meta"]
        if meta["iteration"] != k:
            return None
        meta = restore(state, stem, device)
    except (CheckpointError, ValueError, KeyError, TypeError) as exc:
        log(f"step checkpoint unusable ({exc}): starting stage {k} afresh")
        return None
    extra = {k: v for k, v in meta["_extra"].items() if not k.startswith(TSET)}
    return StageProgress.restore(meta["progress"], extra), training_set_state(meta)
