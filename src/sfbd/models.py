"""From configuration to denoiser: the registry of ``model.kind`` values.

Each kind in :data:`MODEL_KINDS` names the network it builds (a key of
:data:`sfbd.nets.NETWORKS`, or 'gaussian', the analytic denoiser), the sample rank it needs
(1: vectors (N, D), 3: images (N, C, H, W), None: any), whether it takes the non-leaky
augmentation labels, and how its constructor keywords follow from the configuration:

* ``mlp`` (vectors), ``unet`` (small images);
* ``ddpmpp`` / ``ncsnpp``: EDM's SongUNet presets, the paper's networks;
* ``adm``: Dhariwal & Nichol's U-Net as in EDM;
* ``gaussian``: the analytic denoiser of Gaussian data (refitted, not trained).

``model.kind=auto`` is mlp for vectors and unet for images. Validation (:mod:`sfbd.config`)
and the contract tests read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sfbd.errors import ConfigError
from sfbd.nets import build_denoiser
from sfbd.nets.songunet import PRESETS
from sfbd.registry import Registry
from sfbd.train.augment import augment_dim

if TYPE_CHECKING:
    from sfbd.schema import Config

Kwargs = Callable[["Config", tuple[int, ...]], dict[str, Any]]


@dataclass(frozen=True)
class ModelKind:
    """One ``model.kind``: the network it builds and its constructor keywords."""

    network: str  # key of sfbd.nets.NETWORKS, or 'gaussian'
    rank: int | None  # 1: vectors, 3: images, None: any sample shape
    augmented: bool  # takes augmentation labels (train.augment > 0 allowed)
    kwargs: Kwargs


MODEL_KINDS: Registry[ModelKind] = Registry("model kind")


def _mlp(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
    m = cfg.model
    return {"shape": list(shape), "hidden": m.hidden, "layers": m.layers}


def _unet(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
    m = cfg.model
    return {
        "shape": list(shape),
        "channels": m.channels,
        "channel_mult": list(m.channel_mult),
        "blocks_per_level": m.blocks_per_level,
        "dropout": m.dropout,
        "attention": m.attention,
    }


def _edm(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
    """Keywords shared by EDM's networks (SongUNet presets and ADM)."""
    m = cfg.model
    return {
        "shape": list(shape),
        "model_channels": m.channels,
        "channel_mult": list(m.channel_mult),
        "num_blocks": m.blocks_per_level,
        "attn_resolutions": list(m.attn_resolutions),
        "dropout": m.dropout,
        "augment_dim": augment_dim if cfg.train.augment > 0 else 0,
    }


def _songunet(preset: str) -> Kwargs:
    def kwargs(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
        out = {**_edm(cfg, shape), **PRESETS[preset]}
        if cfg.model.channel_mult_noise is not None:
            out["channel_mult_noise"] = cfg.model.channel_mult_noise
        if cfg.model.resample_filter is not None:
            out["resample_filter"] = list(cfg.model.resample_filter)
        return out

    return kwargs


MODEL_KINDS.add("mlp", ModelKind("mlp", 1, False, _mlp))
MODEL_KINDS.add("unet", ModelKind("unet", 3, False, _unet))
MODEL_KINDS.add("ddpmpp", ModelKind("songunet", 3, True, _songunet("ddpmpp")))
MODEL_KINDS.add("ncsnpp", ModelKind("songunet", 3, True, _songunet("ncsnpp")))
MODEL_KINDS.add("adm", ModelKind("adm", 3, True, _edm))
MODEL_KINDS.add("gaussian", ModelKind("gaussian", None, False, lambda c, s: {"shape": list(s)}))

_RANK_NAMES = {1: "vectors (N, D)", 3: "images (N, C, H, W)"}


def resolve_kind(cfg: Config, shape: tuple[int, ...]) -> str:
    """``model.kind`` with ``auto`` resolved: mlp for vectors, unet for images."""
    kind = cfg.model.kind
    return kind if kind != "auto" else ("mlp" if len(shape) == 1 else "unet")


def model_config(cfg: Config, shape: tuple[int, ...]) -> tuple[str, dict]:
    """(registered network, constructor keywords) for samples of ``shape``."""
    kind = resolve_kind(cfg, shape)
    spec = MODEL_KINDS[kind]
    if spec.rank is not None and len(shape) != spec.rank:
        raise ConfigError(
            f"model.kind={kind} needs {_RANK_NAMES[spec.rank]}; samples have shape {shape}"
        )
    return spec.network, spec.kwargs(cfg, shape)


def build_model(
    cfg: Config, shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> nn.Module:
    """A freshly initialised denoiser; initial weights depend only on ``cfg.seed``."""
    kind, kwargs = model_config(cfg, shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        try:
            model = build_denoiser(kind, kwargs)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return model.to(device)


def parameter_count(cfg: Config, shape: tuple[int, ...]) -> int:
    """Number of parameters of the configured network, counted without allocating it."""
    kind, kwargs = model_config(cfg, shape)
    try:
        with torch.device("meta"):
            model = build_denoiser(kind, kwargs)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return sum(p.numel() for p in model.parameters())
