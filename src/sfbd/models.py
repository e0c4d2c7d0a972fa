"""From configuration to denoiser: which network, with which constructor keywords.

``model.kind`` picks the architecture: ``mlp`` (vectors), ``unet`` (small images), ``ddpmpp`` /
``ncsnpp`` (EDM's SongUNet presets, the paper's networks), ``adm`` (Dhariwal & Nichol) or
``gaussian`` (the analytic denoiser); ``auto`` is mlp for vectors and unet for images.
"""

from __future__ import annotations

import torch
from torch import nn

from sfbd.config import Config
from sfbd.errors import ConfigError
from sfbd.nets import build_denoiser
from sfbd.nets.songunet import PRESETS
from sfbd.train.augment import augment_dim

IMAGE_KINDS = ("unet", "ddpmpp", "ncsnpp", "adm")


def model_config(cfg: Config, shape: tuple[int, ...]) -> tuple[str, dict]:
    """(registered network kind, constructor keywords) for samples of ``shape``."""
    m = cfg.model
    kind = m.kind if m.kind != "auto" else ("mlp" if len(shape) == 1 else "unet")
    if kind == "mlp" and len(shape) != 1:
        raise ConfigError(f"model.kind=mlp needs vectors (N, D); samples have shape {shape}")
    if kind in IMAGE_KINDS and len(shape) != 3:
        raise ConfigError(
            f"model.kind={kind} needs images (N, C, H, W); samples have shape {shape}"
        )
    if kind == "mlp":
        return kind, {"shape": list(shape), "hidden": m.hidden, "layers": m.layers}
    if kind == "unet":
        return kind, {
            "shape": list(shape),
            "channels": m.channels,
            "channel_mult": list(m.channel_mult),
            "blocks_per_level": m.blocks_per_level,
            "dropout": m.dropout,
            "attention": m.attention,
        }
    if kind in ("ddpmpp", "ncsnpp", "adm"):
        kwargs = {
            "shape": list(shape),
            "model_channels": m.channels,
            "channel_mult": list(m.channel_mult),
            "num_blocks": m.blocks_per_level,
            "attn_resolutions": list(m.attn_resolutions),
            "dropout": m.dropout,
            "augment_dim": augment_dim if cfg.train.augment > 0 else 0,
        }
        if kind == "adm":
            return "adm", kwargs
        kwargs.update(PRESETS[kind])
        if m.channel_mult_noise is not None:
            kwargs["channel_mult_noise"] = m.channel_mult_noise
        if m.resample_filter is not None:
            kwargs["resample_filter"] = list(m.resample_filter)
        return "songunet", kwargs
    return kind, {"shape": list(shape)}


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
