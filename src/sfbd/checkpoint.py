"""Checkpoints: tensors in safetensors, everything else in a JSON file beside them.

``stem.safetensors`` holds ``model.*`` (training weights), ``ema.*`` (EMA weights) and
``opt.<param>.<name>`` (Adam state); ``stem.json`` holds the denoiser's spec (kind and
constructor keywords), the optimizer's hyperparameters and free-form metadata. No pickles: a
checkpoint never executes code when loaded. Both files are written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sfbd.atomic import atomic_write_text
from sfbd.errors import SfbdError
from sfbd.nets import build_denoiser, denoiser_spec


def _state(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    stem: Path,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
) -> None:
    """Write ``stem.safetensors`` and ``stem.json`` (the JSON last: it marks completeness)."""
    tensors = {**_state(model, "model"), **_state(ema, "ema")}
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
    os.replace(tmp, stem.with_suffix(".safetensors"))
    info = {"denoiser": denoiser_spec(model), "optimizer": groups, "meta": meta}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(info, indent=1))


def read_meta(stem: Path) -> dict[str, Any]:
    """The JSON half of a checkpoint."""
    path = stem.with_suffix(".json")
    if not path.is_file():
        raise SfbdError(f"checkpoint {str(path)!r} not found")
    return json.loads(path.read_text())


def load_checkpoint(
    stem: Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, nn.Module, dict | None, dict[str, Any]]:
    """Rebuild (model, ema, optimizer state dict or None, meta) from a checkpoint."""
    info = read_meta(stem)
    tensors = load_file(str(stem.with_suffix(".safetensors")), device=str(device))
    spec = info["denoiser"]
    model = build_denoiser(spec["kind"], spec["config"]).to(device)
    ema = build_denoiser(spec["kind"], spec["config"]).to(device)
    for module, prefix in ((model, "model."), (ema, "ema.")):
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(sd)
    opt_state = None
    if info["optimizer"] is not None:
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        opt_state = {"state": state, "param_groups": info["optimizer"]}
    return model, ema, opt_state, info["meta"]
