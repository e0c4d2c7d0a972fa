"""Checkpoints of denoisers: :mod:`sfbd.io.checkpoint`'s format with the network registry's
spec and builder (:func:`~sfbd.nets.base.denoiser_spec`, :func:`~sfbd.nets.base.build_denoiser`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sfbd.io import checkpoint as fmt
from sfbd.nets.base import build_denoiser, denoiser_spec


def save_checkpoint(
    stem: Path,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write ``stem.safetensors`` and ``stem.json`` with ``model``'s spec."""
    fmt.save_checkpoint(stem, model, ema, optimizer, meta, extra, spec=denoiser_spec(model))


def load_checkpoint(
    stem: Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, nn.Module, dict | None, dict[str, Any]]:
    """Rebuild (model, ema, optimizer state dict or None, meta) from a checkpoint."""
    return fmt.load_checkpoint(stem, device, build=build_denoiser)
