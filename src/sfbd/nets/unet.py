"""Compact noise-conditioned U-Net denoiser for small images (e.g. 1x8x8 digits, 3x32x32).

This is the raw network F of EDM preconditioning: the wrapper computes
``D(x, sigma) = c_skip * x + c_out * F(c_in * x, c_noise)``, so F sees unit-scale inputs and the
noise label ``c_noise = ln(sigma) / 4``. The output convolution starts at zero, so D starts as
``c_skip * x``. Only per-sample normalisation (GroupNorm) is used, so the output for one sample
never depends on the other samples of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sfbd.nets.base import NETWORKS, Network
from sfbd.nets.embedding import NoiseEmbedding

if TYPE_CHECKING:
    from sfbd.schema import Config


def _groups(channels: int) -> int:
    """Number of GroupNorm groups: about 4 channels per group, at most 32, dividing ``channels``."""
    g = max(1, min(32, channels // 4))
    while channels % g != 0:
        g -= 1
    return g


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(channels), channels, eps=1e-5)


class _ResBlock(nn.Module):
    """Residual block with adaptive GroupNorm conditioning on the noise embedding.

    ``h = Conv3x3(SiLU(GN(x)))``; ``h = GN(h) * (1 + scale) + shift`` with ``(scale, shift)`` a
    linear function of ``SiLU(emb)``; ``h = Conv3x3(Dropout(SiLU(h)))``;
    ``out = (skip(x) + h) / sqrt(2)`` with ``skip`` the identity or a 1x1 conv.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return (self.skip(x) + h) * (1 / math.sqrt(2))


class _SelfAttention(nn.Module):
    """Multi-head self-attention over spatial positions, residual: (B, C, H, W) -> same."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if channels % self.heads != 0:
            self.heads = 1
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(1))  # (B, heads, HW, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return (x + self.proj(out)) * (1 / math.sqrt(2))


class _Downsample(nn.Module):
    """Stride-2 3x3 convolution: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _Upsample(nn.Module):
    """Nearest-neighbour x2 then 3x3 convolution: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """Noise-conditioned U-Net: (B, C, H, W) -> (B, C, H, W).

    Layout (DDPM-style): a 3x3 input conv; per resolution level ``i`` with width
    ``channels * channel_mult[i]``, ``blocks_per_level`` residual blocks, each output kept as a
    skip connection, then a stride-2 downsampling conv (except at the last level); a middle of
    two residual blocks (with self-attention between them if ``attention``) at the lowest
    resolution; a mirrored decoder with ``blocks_per_level + 1`` blocks per level, each taking
    the concatenation of the current features and one skip, and nearest+conv upsampling between
    levels; finally GroupNorm -> SiLU -> zero-initialised 3x3 conv to C channels.

    Every residual block receives the noise embedding as an adaptive-GroupNorm scale/shift.

    Parameter counts with the defaults: ``UNet((1, 8, 8))`` 991,841 and ``UNet((3, 32, 32))``
    992,995 (the count depends on C only, not on H or W); ``channels=64`` gives about 3.5 M.

    Args:
        shape: per-sample shape ``(C, H, W)``; H and W must be divisible by
            ``2 ** (len(channel_mult) - 1)``.
        channels: base width.
        channel_mult: width multiplier per resolution level.
        blocks_per_level: residual blocks per encoder level.
        emb_dim: size of the noise embedding.
        dropout: dropout rate inside residual blocks.
        attention: add a self-attention layer at the lowest resolution.
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2),
        blocks_per_level: int = 2,
        emb_dim: int = 128,
        dropout: float = 0.0,
        attention: bool = False,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"UNet expects a per-sample shape (C, H, W), got {shape}")
        mult = [int(m) for m in channel_mult]
        if not mult or min(mult) < 1:
            raise ValueError(f"channel_mult must be a non-empty list of positive ints, got {mult}")
        c_in, height, width = shape
        factor = 2 ** (len(mult) - 1)
        if height % factor != 0 or width % factor != 0:
            raise ValueError(
                f"image size {height}x{width} is not divisible by {factor} "
                f"(needed by channel_mult={mult}); use fewer levels in channel_mult or pad/crop "
                f"the images to a multiple of {factor}"
            )
        self.shape: tuple[int, ...] = shape
        self.channels = int(channels)
        self.channel_mult = mult
        self.blocks_per_level = int(blocks_per_level)
        self.emb_dim = int(emb_dim)
        self.dropout = float(dropout)
        self.attention = bool(attention)

        self.embed = NoiseEmbedding(self.emb_dim)
        self.in_conv = nn.Conv2d(c_in, self.channels, 3, padding=1)

        # Encoder. `skip_ch` records the width of every tensor pushed onto the skip stack.
        self.down = nn.ModuleList()
        skip_ch = [self.channels]
        ch = self.channels
        for level, m in enumerate(mult):
            for _ in range(self.blocks_per_level):
                self.down.append(_ResBlock(ch, self.channels * m, self.emb_dim, self.dropout))
                ch = self.channels * m
                skip_ch.append(ch)
            if level != len(mult) - 1:
                self.down.append(_Downsample(ch))
                skip_ch.append(ch)

        # Middle at the lowest resolution.
        self.mid1 = _ResBlock(ch, ch, self.emb_dim, self.dropout)
        self.mid_attn = _SelfAttention(ch) if self.attention else None
        self.mid2 = _ResBlock(ch, ch, self.emb_dim, self.dropout)

        # Decoder: one block per skip tensor, upsampling between levels.
        self.up = nn.ModuleList()
        for level in reversed(range(len(mult))):
            out_ch = self.channels * mult[level]
            for _ in range(self.blocks_per_level + 1):
                self.up.append(_ResBlock(ch + skip_ch.pop(), out_ch, self.emb_dim, self.dropout))
                ch = out_ch
            if level != 0:
                self.up.append(_Upsample(ch))
        assert not skip_ch

        self.out_norm = _norm(ch)
        self.out_conv = nn.Conv2d(ch, c_in, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def config(self) -> dict[str, Any]:
        """Constructor kwargs (JSON-serialisable): ``UNet(**net.config())`` rebuilds the net."""
        return {
            "shape": list(self.shape),
            "channels": self.channels,
            "channel_mult": list(self.channel_mult),
            "blocks_per_level": self.blocks_per_level,
            "emb_dim": self.emb_dim,
            "dropout": self.dropout,
            "attention": self.attention,
        }

    def forward(self, x: Tensor, noise_labels: Tensor, aug_labels: Tensor | None = None) -> Tensor:
        """Raw denoiser output.

        Args:
            x: (B, C, H, W) inputs already scaled by c_in.
            noise_labels: (B,) noise labels c_noise = ln(sigma)/4.
            aug_labels: ignored (reserved for augmentation conditioning).

        Returns:
            (B, C, H, W) tensor with the dtype of ``x``.
        """
        del aug_labels
        emb = self.embed(noise_labels)
        h = self.in_conv(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _ResBlock) else layer(h)
            skips.append(h)
        h = self.mid1(h, emb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, emb)
        for layer in self.up:
            if isinstance(layer, _ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.out_conv(F.silu(self.out_norm(h))).to(x.dtype)


__all__ = ["UNet"]


@dataclass
class UNetKeys:
    """The ``model.*`` key of the small U-Net (the image keys it shares are general)."""

    attention: bool = False  # unet: self-attention at the lowest resolution


def _kwargs(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
    m = cfg.model
    return {
        "shape": list(shape),
        "channels": m.channels,
        "channel_mult": list(m.channel_mult),
        "blocks_per_level": m.blocks_per_level,
        "dropout": m.dropout,
        "attention": m.attention,
    }


NETWORKS.add("unet", Network(UNet, _kwargs, rank=3, auto_for_rank=3, Keys=UNetKeys))
