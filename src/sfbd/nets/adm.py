"""ADM U-Net of Dhariwal & Nichol (2021) as re-implemented in EDM (Karras et al. 2022).

This is the raw network F of EDM preconditioning,
``D(x, sigma) = c_skip * x + c_out * F(c_in * x, c_noise)`` with ``c_noise = ln(sigma) / 4``.

Architecture (:class:`ADMUNet`), for ``L = len(channel_mult)`` resolution levels:

* Mapping: noise label -> ``model_channels`` positional sinusoids ([cos, sin], frequencies
  ``10000 ** (-k / K)``) plus a bias-free linear map of the augmentation labels (initialised to
  zero); then Linear -> SiLU -> Linear -> SiLU to the embedding of size
  ``model_channels * channel_mult_emb``.
* Encoder: 3x3 conv to ``model_channels * channel_mult[0]``; per level a down-sampling residual
  block (levels > 0) and ``num_blocks`` residual blocks of width
  ``model_channels * channel_mult[level]``, with self-attention at ``attn_resolutions``; every
  output is kept as a skip.
* Decoder: at the lowest resolution two blocks (the first with attention); per level an
  up-sampling block (except the lowest) and ``num_blocks + 1`` blocks consuming the skips by
  concatenation, with attention at ``attn_resolutions``; then GroupNorm -> SiLU -> 3x3 conv.
* Blocks: GroupNorm(eps=1e-5) -> SiLU -> 3x3 conv, adaptive GroupNorm
  ``GN(h) * (1 + scale) + shift`` from the embedding, SiLU, dropout, 3x3 conv, plain residual
  sum (no 1/sqrt(2)); down/up-sampling by 2x2 average pooling / nearest neighbour, on the skip
  path too (a 1x1 conv only where the width changes); multi-head attention with
  ``channels_per_head`` (64) channels per head, so, as in EDM, a block narrower than that
  has no attention at all.
* Init: uniform with bound ``1/sqrt(fan_in)`` for weights and biases; the second conv of every
  block, the attention output projection, the augmentation map and the output conv are zero,
  so the network starts as F = 0.

With the defaults (EDM's ImageNet-64 setting: ``model_channels=192, channel_mult=(1, 2, 3, 4),
num_blocks=3, attn_resolutions=(32, 16, 8)``) on 3x64x64 images the network has 295,131,267
parameters; EDM's class-conditional model adds a 1000 x 768 label map (768,000), giving the
295.9M that EDM reports for its ImageNet-64 model.

References:
    Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021, Section 3
    (architecture improvements, adaptive GroupNorm) and Appendix A.
    Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
    Models", NeurIPS 2022, Section 5 and Appendix F (the re-implementation; preconditioning
    Eq. 7, c_noise = ln(sigma)/4 in Table 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sfbd.nets.base import NETWORKS, Network, edm_kwargs
from sfbd.nets.layers import (
    Init,
    PositionalEmbedding,
    UNetBlock,
    add_augment_labels,
    check_unet_shape,
    conv,
    group_norm,
    linear,
)

_INIT = Init("kaiming_uniform", weight=math.sqrt(1 / 3), bias=math.sqrt(1 / 3))
_INIT_ZERO = Init("kaiming_uniform", weight=0.0, bias=0.0)


class ADMUNet(nn.Module):
    """ADM noise-conditioned U-Net: (B, C, H, W) -> (B, C, H, W).

    See the module docstring for the layout.

    Args:
        shape: per-sample shape ``(C, H, W)``; H and W divisible by ``2 ** (L - 1)``. Attention
            resolutions refer to the height ``H >> level``.
        model_channels: base width.
        channel_mult: width multiplier per resolution level.
        channel_mult_emb: embedding size as a multiple of ``model_channels``.
        num_blocks: residual blocks per encoder level (the decoder has one more).
        attn_resolutions: resolutions (heights) with self-attention.
        dropout: dropout probability inside the blocks.
        augment_dim: size of the augmentation labels (0: none).
        channels_per_head: attention head width; a block of C channels at an attention
            resolution uses ``C // channels_per_head`` heads (none below that width, as EDM).
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        model_channels: int = 192,
        channel_mult: Sequence[int] = (1, 2, 3, 4),
        channel_mult_emb: int = 4,
        num_blocks: int = 3,
        attn_resolutions: Sequence[int] = (32, 16, 8),
        dropout: float = 0.10,
        augment_dim: int = 0,
        channels_per_head: int = 64,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        mult = [int(m) for m in channel_mult]
        check_unet_shape("ADMUNet", shape, mult)
        img_ch, height, _ = shape
        self.shape: tuple[int, ...] = shape
        self.model_channels = int(model_channels)
        self.channel_mult = mult
        self.channel_mult_emb = int(channel_mult_emb)
        self.num_blocks = int(num_blocks)
        self.attn_resolutions = [int(r) for r in attn_resolutions]
        self.dropout = float(dropout)
        self.augment_dim = int(augment_dim)
        self.channels_per_head = int(channels_per_head)

        mc = self.model_channels
        emb_ch = mc * self.channel_mult_emb

        def block(cin: int, cout: int, *, attn: bool = False, resample: str | None = None):
            heads = cout // self.channels_per_head if attn else 0
            return UNetBlock(
                cin,
                cout,
                emb_ch,
                resample=resample,
                heads=heads,
                dropout=self.dropout,
                init=_INIT,
                init_zero=_INIT_ZERO,
            )

        # Mapping network.
        self.map_noise = PositionalEmbedding(mc)
        self.map_augment = (
            linear(self.augment_dim, mc, _INIT_ZERO, bias=False) if self.augment_dim else None
        )
        self.map_layer0 = linear(mc, emb_ch, _INIT)
        self.map_layer1 = linear(emb_ch, emb_ch, _INIT)

        # Encoder. `skip_ch` lists the width of every tensor pushed onto the skip stack.
        cout = mc * mult[0]
        self.stem = conv(img_ch, cout, 3, _INIT)
        skip_ch = [cout]
        self.enc_down = nn.ModuleDict()  # level -> down-sampling block (levels > 0)
        self.enc_blocks = nn.ModuleList()
        for level, m in enumerate(mult):
            res = height >> level
            if level > 0:
                self.enc_down[str(level)] = block(cout, cout, resample="down")
                skip_ch.append(cout)
            blocks = nn.ModuleList()
            for _ in range(self.num_blocks):
                blocks.append(block(cout, mc * m, attn=res in self.attn_resolutions))
                cout = mc * m
                skip_ch.append(cout)
            self.enc_blocks.append(blocks)

        # Decoder.
        self.mid = nn.ModuleList([block(cout, cout, attn=True), block(cout, cout)])
        self.dec_up = nn.ModuleDict()  # level -> up-sampling block (levels below the lowest)
        self.dec_blocks = nn.ModuleList([nn.ModuleList() for _ in mult])
        for level in reversed(range(len(mult))):
            res = height >> level
            if level < len(mult) - 1:
                self.dec_up[str(level)] = block(cout, cout, resample="up")
            for _ in range(self.num_blocks + 1):
                attn = res in self.attn_resolutions
                self.dec_blocks[level].append(
                    block(cout + skip_ch.pop(), mc * mult[level], attn=attn)
                )
                cout = mc * mult[level]
        assert not skip_ch
        self.out_norm = group_norm(cout)
        self.out_conv = conv(cout, img_ch, 3, _INIT_ZERO)

    def config(self) -> dict[str, Any]:
        """Constructor kwargs (JSON-serialisable): ``ADMUNet(**net.config())`` rebuilds it."""
        return {
            "shape": list(self.shape),
            "model_channels": self.model_channels,
            "channel_mult": list(self.channel_mult),
            "channel_mult_emb": self.channel_mult_emb,
            "num_blocks": self.num_blocks,
            "attn_resolutions": list(self.attn_resolutions),
            "dropout": self.dropout,
            "augment_dim": self.augment_dim,
            "channels_per_head": self.channels_per_head,
        }

    def embed(self, noise_labels: Tensor, aug_labels: Tensor | None = None) -> Tensor:
        """Conditioning vector: (B,) noise labels [+ (B, augment_dim)] -> (B, E), post-SiLU.

        ``aug_labels=None`` means all-zero augmentation labels (the bias-free augmentation map
        then contributes exactly nothing).
        """
        emb = self.map_noise(noise_labels).to(self.map_layer0.weight.dtype)
        emb = add_augment_labels(emb, self.map_augment, self.augment_dim, aug_labels)
        emb = F.silu(self.map_layer0(emb))
        return F.silu(self.map_layer1(emb))

    def forward(self, x: Tensor, noise_labels: Tensor, aug_labels: Tensor | None = None) -> Tensor:
        """Raw denoiser output.

        Args:
            x: (B, C, H, W) inputs already scaled by c_in.
            noise_labels: (B,) noise labels c_noise = ln(sigma)/4.
            aug_labels: (B, augment_dim) augmentation labels, or None for zeros; ignored when
                ``augment_dim == 0``.

        Returns:
            (B, C, H, W) tensor with the dtype of ``x``.
        """
        emb = self.embed(noise_labels, aug_labels)
        h = self.stem(x.to(self.stem.weight.dtype))
        skips = [h]
        for level, blocks in enumerate(self.enc_blocks):
            if level > 0:
                h = self.enc_down[str(level)](h, emb)
                skips.append(h)
            for blk in blocks:
                h = blk(h, emb)
                skips.append(h)
        for blk in self.mid:
            h = blk(h, emb)
        for level in reversed(range(len(self.channel_mult))):
            if level < len(self.channel_mult) - 1:
                h = self.dec_up[str(level)](h, emb)
            for blk in self.dec_blocks[level]:
                h = blk(torch.cat([h, skips.pop()], dim=1), emb)
        assert not skips
        return self.out_conv(F.silu(self.out_norm(h))).to(x.dtype)


__all__ = ["ADMUNet"]


NETWORKS.add("adm", Network(ADMUNet, edm_kwargs, rank=3, augmented=True))
