"""Checkpoints: tensors in safetensors, everything else in a JSON file beside them.

``stem.safetensors`` holds ``model.*`` (training weights), ``ema.*`` (EMA weights) and
``opt.<param>.<name>`` (Adam state) and ``extra.<name>`` (e.g. random-generator states of a
step checkpoint); ``stem.json`` holds the denoiser's spec (kind and constructor keywords), the
optimizer's hyperparameters, free-form metadata and the SHA-256 of the tensor file, checked on
load. No pickles: a checkpoint never executes code when loaded. Both files are written
atomically, the JSON last, so a pair whose checksum does not match is an interrupted write.

This module knows the file format, not the networks: the caller passes the denoiser's spec
when saving and a builder when loading (:mod:`sfbd.nets.checkpoint` passes the network
registry's, and is what the rest of sfbd calls).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sfbd.errors import SfbdError
from sfbd.io.atomic import atomic_write_text
from sfbd.io.cache import file_digest
from sfbd.runtime import faults


class CheckpointError(SfbdError):
    """A checkpoint is missing, incomplete or corrupt."""


def _state(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    stem: Path,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
    *,
    spec: dict[str, Any],
) -> None:
    """Write ``stem.safetensors`` and ``stem.json`` (the JSON last: it marks completeness);
    ``spec`` is the denoiser's ``{'kind': ..., 'config': ...}``, recorded for loading."""
    tensors = {**_state(model, "model"), **_state(ema, "ema")}
    for name, val in (extra or {}).items():
        tensors[f"extra.{name}"] = val.detach().cpu().contiguous()
    groups = None
    if optimizer is not None:
        sd = optimizer.state_dict()
        for pid, st in sd["state"].items():
            for name, val in st.items():
                tensors[f"opt.{pid}.{name}"] = torch.as_tensor(val).detach().cpu().contiguous()
        groups = sd["param_groups"]
    tmp = stem.with_name(f".{stem.name}.safetensors.tmp")
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp))
    digest = file_digest(tmp, "sha256")
    faults.point("checkpoint.write")
    os.replace(tmp, stem.with_suffix(".safetensors"))
    info = {"denoiser": spec, "optimizer": groups, "meta": meta, "sha256": digest}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(info, indent=1))


def read_meta(stem: Path) -> dict[str, Any]:
    """The JSON half of a checkpoint."""
    path = stem.with_suffix(".json")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is not valid JSON ({exc})") from None


def load_tensors(stem: Path, device: torch.device | str = "cpu") -> tuple[dict, dict]:
    """(JSON info, tensors) of a checkpoint, the tensor file checked against its SHA-256."""
    info = read_meta(stem)
    path = stem.with_suffix(".safetensors")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    want = info.get("sha256")  # absent in checkpoints written before 0.3
    if want is not None and file_digest(path, "sha256") != want:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the checksum in {stem.name}.json "
            "(corrupt, or an interrupted write)"
        )
    try:
        return info, load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({exc})") from None


def extra_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``extra.*`` tensors of a checkpoint, without the prefix."""
    return {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}


def optimizer_state(info: dict, tensors: dict[str, torch.Tensor]) -> dict | None:
    """The optimizer's state dict stored in a checkpoint (None for the analytic model)."""
    if info["optimizer"] is None:
        return None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": info["optimizer"]}


def module_state(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` or ``ema`` stored in a checkpoint."""
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def load_checkpoint(
    stem: Path,
    device: torch.device | str = "cpu",
    *,
    build: Callable[[str, dict], nn.Module],
) -> tuple[nn.Module, nn.Module, dict | None, dict[str, Any]]:
    """Rebuild (model, ema, optimizer state dict or None, meta) from a checkpoint;
    ``build(kind, config)`` makes a module of the recorded spec."""
    info, tensors = load_tensors(stem, device)
    spec = info["denoiser"]
    model = build(spec["kind"], spec["config"]).to(device)
    ema = build(spec["kind"], spec["config"]).to(device)
    model.load_state_dict(module_state(tensors, "model"))
    ema.load_state_dict(module_state(tensors, "ema"))
    return model, ema, optimizer_state(info, tensors), info["meta"]
