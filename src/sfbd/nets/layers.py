"""Building blocks shared by the paper-scale image networks (:mod:`sfbd.nets.songunet`,
:mod:`sfbd.nets.adm`).

The pieces follow the architecture descriptions of the EDM paper's network re-implementations
(DDPM++/NCSN++ of Song et al. 2021 and ADM of Dhariwal & Nichol 2021): a residual U-Net block
with GroupNorm -> SiLU -> 3x3 conv, noise-embedding conditioning (additive or adaptive
scale/shift), optional up/down-sampling by a separable FIR filter, optional multi-head
self-attention, and the two noise-level feature maps (sinusoidal "positional" features and random
Fourier features). Everything here is written from those descriptions; no code is copied.

References:
    Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
    Models", NeurIPS 2022, Appendix F (network architectures and hyperparameters).
    Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
    ICLR 2021, Appendix H (DDPM++ / NCSN++).
    Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021, Section 3
    (ADM: adaptive GroupNorm, 64 channels per attention head, BigGAN-style resampling blocks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class Init:
    """Weight-initialisation recipe: a scheme and multipliers for weights and biases.

    ``mode`` is one of 'xavier_uniform', 'xavier_normal', 'kaiming_uniform', 'kaiming_normal';
    the fans of a (O, I, k, k) convolution are ``I*k*k`` and ``O*k*k``. The base distribution is
    drawn for both weights and biases (with the layer's fans) and multiplied by ``weight`` and
    ``bias`` respectively, so ``bias=0`` gives zero biases.
    """

    mode: str = "kaiming_normal"
    weight: float = 1.0
    bias: float = 0.0

    def scaled(self, weight: float) -> Init:
        """The same scheme with a different weight multiplier (biases unchanged)."""
        return Init(self.mode, weight, self.bias)


def _base_sample(shape: Sequence[int], mode: str, fan_in: int, fan_out: int) -> Tensor:
    if mode == "xavier_uniform":
        return math.sqrt(6.0 / (fan_in + fan_out)) * (2.0 * torch.rand(*shape) - 1.0)
    if mode == "xavier_normal":
        return math.sqrt(2.0 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == "kaiming_uniform":
        return math.sqrt(3.0 / fan_in) * (2.0 * torch.rand(*shape) - 1.0)
    if mode == "kaiming_normal":
        return math.sqrt(1.0 / fan_in) * torch.randn(*shape)
    raise ValueError(f"unknown init mode {mode!r}")


@torch.no_grad()
def apply_init(layer: nn.Linear | nn.Conv2d, init: Init) -> None:
    """Re-initialise a Linear/Conv2d layer's weight (and bias) in place following ``init``."""
    w = layer.weight
    receptive = w[0, 0].numel() if w.dim() > 2 else 1
    fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
    w.copy_(_base_sample(w.shape, init.mode, fan_in, fan_out) * init.weight)
    if layer.bias is not None:
        b = layer.bias
        b.copy_(_base_sample(b.shape, init.mode, fan_in, fan_out) * init.bias)


def linear(in_features: int, out_features: int, init: Init, *, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` initialised with ``init``."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    apply_init(layer, init)
    return layer


def conv(
    in_ch: int, out_ch: int, kernel: int, init: Init, *, padding: int | None = None
) -> nn.Conv2d:
    """``nn.Conv2d`` (stride 1, 'same' padding by default) initialised with ``init``."""
    pad = kernel // 2 if padding is None else padding
    layer = nn.Conv2d(in_ch, out_ch, kernel, padding=pad)
    apply_init(layer, init)
    return layer


def group_norm(channels: int, eps: float = 1e-5) -> nn.GroupNorm:
    """GroupNorm with ``min(32, channels // 4)`` groups (lowered until it divides ``channels``)."""
    groups = max(1, min(32, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=eps)


class Resample(nn.Module):
    """Factor-2 up- or down-sampling of each channel by a separable FIR filter.

    The 1-D taps ``f`` give the 2-D kernel ``outer(f, f) / sum(f)**2``. Down-sampling is a
    depthwise stride-2 convolution with it; up-sampling a depthwise stride-2 transposed
    convolution with 4 times it. Taps ``(1, 1)`` are exactly 2x2 average pooling / nearest
    neighbour (computed that way); ``(1, 3, 3, 1)`` is the smoother filter of NCSN++.

    Args:
        direction: 'up' or 'down'.
        taps: 1-D filter taps (even length).
        padding: explicit padding of the depthwise conv; default ``(len(taps) - 1) // 2``, which
            maps H to 2H ('up') or H/2 ('down').

    Shapes:
        forward((B, C, H, W)) -> (B, C, 2H, 2W) for 'up', (B, C, H/2, W/2) for 'down'.
    """

    def __init__(self, direction: str, taps: Sequence[float], *, padding: int | None = None):
        super().__init__()
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        taps = [float(t) for t in taps]
        self.direction = direction
        self.padding = (len(taps) - 1) // 2 if padding is None else int(padding)
        self.box = taps == [1.0, 1.0] and self.padding == 0
        f = torch.tensor(taps, dtype=torch.float32)
        kernel = torch.outer(f, f) / f.sum() ** 2
        self.register_buffer("kernel", kernel[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.box:
            if self.direction == "down":
                return F.avg_pool2d(x, 2)
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        c = x.shape[1]
        k = self.kernel.to(x.dtype).expand(c, 1, -1, -1)
        if self.direction == "down":
            return F.conv2d(x, k, stride=2, padding=self.padding, groups=c)
        return F.conv_transpose2d(x, 4 * k, stride=2, padding=self.padding, groups=c)


class FusedDownConv(nn.Module):
    """3x3 conv at full resolution followed by FIR down-sampling (NCSN++ residual input path).

    The conv is padded by ``1 + (len(taps) - 1) // 2`` and the filter applied without padding,
    so (B, C_in, H, W) -> (B, C_out, H/2, W/2). (The bias commutes with the filter, whose taps
    sum to one, so it may as well live in the conv.)
    """

    def __init__(self, in_ch: int, out_ch: int, taps: Sequence[float], init: Init) -> None:
        super().__init__()
        self.conv = conv(in_ch, out_ch, 3, init, padding=1 + (len(taps) - 1) // 2)
        self.down = Resample("down", taps, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.conv(x))


class PositionalEmbedding(nn.Module):
    """Transformer sinusoids of the noise label: (B,) -> (B, channels) as ``[cos, sin]``.

    With ``K = channels // 2`` the frequencies are ``max_positions ** (-k / K')`` for
    ``k = 0..K-1``, where ``K' = K - 1`` if ``endpoint`` (DDPM++: the lowest frequency is exactly
    ``1 / max_positions``) and ``K' = K`` otherwise (ADM).
    """

    def __init__(self, channels: int, *, max_positions: float = 10000.0, endpoint: bool = False):
        super().__init__()
        if channels % 2 or channels < 2 + 2 * int(endpoint):
            raise ValueError(f"embedding size must be even and large enough, got {channels}")
        half = channels // 2
        k = torch.arange(half, dtype=torch.float64) / (half - (1 if endpoint else 0))
        freqs = (1.0 / max_positions) ** k
        self.register_buffer("freqs", freqs.to(torch.float32), persistent=False)

    def forward(self, labels: Tensor) -> Tensor:
        work = torch.promote_types(labels.dtype, torch.float32)
        angles = labels.reshape(-1, 1).to(work) * self.freqs.to(work)
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier features of the noise label (NCSN++): (B,) -> (B, channels) as ``[cos, sin]``.

    Frequencies ``omega ~ N(0, scale**2)`` are drawn once and stored as a (persistent) buffer, so
    they travel with the state dict; the features are ``cos / sin(2 pi omega t)``.
    """

    def __init__(self, channels: int, *, scale: float = 16.0) -> None:
        super().__init__()
        if channels % 2 or channels < 2:
            raise ValueError(f"embedding size must be even and >= 2, got {channels}")
        self.register_buffer("freqs", torch.randn(channels // 2) * scale)

    def forward(self, labels: Tensor) -> Tensor:
        work = torch.promote_types(labels.dtype, torch.float32)
        angles = labels.reshape(-1, 1).to(work) * (2 * math.pi * self.freqs.to(work))
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class UNetBlock(nn.Module):
    """Residual U-Net block with noise conditioning, optional resampling and self-attention.

    ::

        h = Conv3x3(Resample(SiLU(GN(x))))
        p = Linear(emb)                                    # emb already passed through SiLU
        h = SiLU(GN(h) * (1 + scale) + shift)              # adaptive: (scale, shift) = split(p)
        h = SiLU(GN(h + p))                                # additive (DDPM++/NCSN++)
        h = Conv3x3(Dropout(h))
        y = (h + Skip(x)) * skip_scale                     # Skip: Resample then 1x1 conv if needed
        y = (y + Proj(Attn(GN(y)))) * skip_scale           # if heads > 0

    The skip path is the identity when nothing changes; with resampling but equal widths it is
    the bare resample unless ``resample_proj`` (then a 1x1 conv follows). Attention is
    multi-head dot-product attention over the H*W positions, q/k/v from one 1x1 conv whose
    3C output channels are laid out as (head, channel, q|k|v).

    Shapes:
        forward(x: (B, C_in, H, W), emb: (B, E)) -> (B, C_out, H', W') with H' = 2H, H/2 or H.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_ch: int,
        *,
        resample: str | None = None,
        heads: int = 0,
        dropout: float = 0.0,
        skip_scale: float = 1.0,
        eps: float = 1e-5,
        resample_filter: Sequence[float] = (1, 1),
        resample_proj: bool = False,
        adaptive_scale: bool = True,
        init: Init,
        init_zero: Init,
        init_attn: Init | None = None,
    ) -> None:
        super().__init__()
        self.in_ch, self.out_ch = in_ch, out_ch
        self.heads = int(heads)
        self.dropout = float(dropout)
        self.skip_scale = float(skip_scale)
        self.adaptive_scale = adaptive_scale
        if self.heads and out_ch % self.heads:
            raise ValueError(f"{out_ch} channels cannot be split into {self.heads} heads")

        def resampler() -> nn.Module:
            return nn.Identity() if resample is None else Resample(resample, resample_filter)

        self.norm0 = group_norm(in_ch, eps)
        self.resample0 = resampler()
        self.conv0 = conv(in_ch, out_ch, 3, init)
        self.affine = linear(emb_ch, out_ch * (2 if adaptive_scale else 1), init)
        self.norm1 = group_norm(out_ch, eps)
        self.conv1 = conv(out_ch, out_ch, 3, init_zero)

        self.skip: nn.Module = nn.Identity()
        if in_ch != out_ch or resample is not None:
            parts: list[nn.Module] = [resampler()]
            if resample_proj or in_ch != out_ch:
                parts.append(conv(in_ch, out_ch, 1, init))
            self.skip = nn.Sequential(*parts)

        if self.heads:
            self.norm2 = group_norm(out_ch, eps)
            self.qkv = conv(out_ch, 3 * out_ch, 1, init if init_attn is None else init_attn)
            self.proj = conv(out_ch, out_ch, 1, init_zero)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv0(self.resample0(F.silu(self.norm0(x))))
        params = self.affine(emb)[:, :, None, None].to(h.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        else:
            h = F.silu(self.norm1(h + params))
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        y = (h + self.skip(x)) * self.skip_scale
        if self.heads:
            y = (y + self.proj(self._attend(self.norm2(y)))) * self.skip_scale
        return y

    def _attend(self, y: Tensor) -> Tensor:
        b, c, height, width = y.shape
        qkv = self.qkv(y).reshape(b, self.heads, c // self.heads, 3, height * width)
        q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(3))  # (B, heads, HW, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(-1, -2).reshape(b, c, height, width)


__all__ = [
    "FourierEmbedding",
    "FusedDownConv",
    "Init",
    "PositionalEmbedding",
    "Resample",
    "UNetBlock",
    "apply_init",
    "check_unet_shape",
    "conv",
    "group_norm",
    "linear",
]


def add_augment_labels(
    emb: Tensor, map_augment: nn.Module | None, augment_dim: int, aug_labels: Tensor | None
) -> Tensor:
    """emb (B, E) + map_augment(aug_labels (B, augment_dim)); unchanged when either is None.

    ``aug_labels=None`` stands for all-zero labels, which a bias-free map turns into nothing.
    """
    if map_augment is None or aug_labels is None:
        return emb
    if aug_labels.shape != (emb.shape[0], augment_dim):
        raise ValueError(
            f"aug_labels must have shape ({emb.shape[0]}, {augment_dim}), "
            f"got {tuple(aug_labels.shape)}"
        )
    return emb + map_augment(aug_labels.to(emb.dtype))


def check_unet_shape(name: str, shape: tuple[int, ...], mult: list[int]) -> None:
    """Refuse a per-sample shape (C, H, W) and channel multipliers a U-Net of ``len(mult)``
    levels (each halving H and W) cannot be built for, naming the fix."""
    if len(shape) != 3:
        raise ValueError(f"{name} expects a per-sample shape (C, H, W), got {shape}")
    if not mult or min(mult) < 1:
        raise ValueError(f"channel_mult must be a non-empty list of positive ints, got {mult}")
    _, height, width = shape
    factor = 2 ** (len(mult) - 1)
    if height % factor or width % factor:
        raise ValueError(
            f"image size {height}x{width} is not divisible by {factor} "
            f"(needed by channel_mult={mult}); use fewer levels or pad/crop the images"
        )
