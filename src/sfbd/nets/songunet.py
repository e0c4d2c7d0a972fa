"""DDPM++ / NCSN++ U-Net of Song et al. (2021) as configured in EDM (Karras et al. 2022).

This is the raw network F of EDM preconditioning,
``D(x, sigma) = c_skip * x + c_out * F(c_in * x, c_noise)`` with ``c_noise = ln(sigma) / 4``.

Architecture (:class:`SongUNet`), for ``L = len(channel_mult)`` resolution levels:

* Mapping: noise label -> positional sinusoids (DDPM++) or random Fourier features (NCSN++) of
  size ``model_channels * channel_mult_noise``, ordered [sin, cos]; plus a bias-free linear map of
  the augmentation labels; then Linear -> SiLU -> Linear -> SiLU to the embedding of size
  ``model_channels * channel_mult_emb``.
* Encoder: 3x3 conv to ``model_channels``; per level a down-sampling block (levels > 0) and
  ``num_blocks`` residual blocks of width ``model_channels * channel_mult[level]``, with
  self-attention when the level's resolution is in ``attn_resolutions``. Every block output is
  kept as a skip. ``encoder_type='skip'`` adds a 1x1 projection of the (FIR-down-sampled) input
  image after each down-sampling; ``'residual'`` (NCSN++) adds a fused 3x3-conv-down-sample of a
  running residual input path and divides the sum by sqrt(2).
* Decoder: at the lowest resolution two blocks (the first with attention); per level an
  up-sampling block (except the lowest) and ``num_blocks + 1`` blocks consuming the skips by
  concatenation, the last one with attention at ``attn_resolutions``. The output is
  GroupNorm -> SiLU -> 3x3 conv at full resolution (``decoder_type='standard'``), or the sum of
  such heads at every level, up-sampled by the FIR filter (``'skip'``).
* Blocks: GroupNorm(eps=1e-6) -> SiLU -> 3x3 conv, additive embedding conditioning, dropout,
  residual sum scaled by 1/sqrt(2) (also after attention); resampling by the FIR filter
  ``resample_filter`` (``(1, 1)``: box, ``(1, 3, 3, 1)``: smooth), with a 1x1 conv on the skip.
* Init: xavier_uniform, zero biases; the last conv of each block, the attention output
  projection and the output convs use weights scaled by 1e-5, the q/k/v conv by sqrt(0.2).

:data:`PRESETS` holds the architecture switches of EDM's ``ddpmpp`` and ``ncsnpp`` presets;
their CIFAR-10 setting is ``model_channels=128, channel_mult=(2, 2, 2)`` (plus
``augment_dim=9``, ``dropout=0.13`` for DDPM++), which has 55,733,891 parameters.

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole, "Score-Based Generative Modeling through
    Stochastic Differential Equations", ICLR 2021, Appendix H (DDPM++ and NCSN++).
    Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
    Models", NeurIPS 2022, Section 5 and Appendix F (the re-implementation and its
    hyperparameters; preconditioning Eq. 7, c_noise = ln(sigma)/4 in Table 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sfbd.nets.base import NETWORKS, Kwargs, Network, edm_kwargs
from sfbd.nets.layers import (
    FourierEmbedding,
    FusedDownConv,
    Init,
    PositionalEmbedding,
    Resample,
    UNetBlock,
    add_augment_labels,
    check_unet_shape,
    conv,
    group_norm,
    linear,
)

if TYPE_CHECKING:
    from sfbd.schema import Config

PRESETS: dict[str, dict[str, Any]] = {
    "ddpmpp": {
        "embedding_type": "positional",
        "encoder_type": "standard",
        "decoder_type": "standard",
        "channel_mult_noise": 1,
        "resample_filter": [1, 1],
    },
    "ncsnpp": {
        "embedding_type": "fourier",
        "encoder_type": "residual",
        "decoder_type": "standard",
        "channel_mult_noise": 2,
        "resample_filter": [1, 3, 3, 1],
    },
}
"""Architecture switches of EDM's ``--arch=ddpmpp`` and ``--arch=ncsnpp`` (train.py)."""

_INIT = Init("xavier_uniform")
_INIT_ZERO = Init("xavier_uniform", weight=1e-5)
_INIT_ATTN = Init("xavier_uniform", weight=math.sqrt(0.2))


def _check_args(
    shape: tuple[int, ...], mult: list[int], embedding: str, encoder: str, decoder: str
) -> None:
    """Refuse constructor arguments SongUNet cannot be built from, naming the fix."""
    check_unet_shape("SongUNet", shape, mult)
    if embedding not in ("positional", "fourier"):
        raise ValueError(f"embedding_type must be 'positional' or 'fourier', not {embedding!r}")
    if encoder not in ("standard", "skip", "residual"):
        raise ValueError(f"encoder_type must be standard/skip/residual, not {encoder!r}")
    if decoder not in ("standard", "skip"):
        raise ValueError(f"decoder_type must be 'standard' or 'skip', not {decoder!r}")


class SongUNet(nn.Module):
    """DDPM++ / NCSN++ noise-conditioned U-Net: (B, C, H, W) -> (B, C, H, W).

    See the module docstring for the layout. Use :meth:`ddpmpp` / :meth:`ncsnpp` (or
    ``**PRESETS[name]``) for the two paper variants.

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
        embedding_type: 'positional' (DDPM++) or 'fourier' (NCSN++).
        channel_mult_noise: noise-feature size as a multiple of ``model_channels``.
        encoder_type: 'standard', 'skip' or 'residual'.
        decoder_type: 'standard' or 'skip'.
        resample_filter: 1-D taps of the FIR resampling filter.
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 2, 2, 2),
        channel_mult_emb: int = 4,
        num_blocks: int = 4,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.10,
        augment_dim: int = 0,
        embedding_type: str = "positional",
        channel_mult_noise: int = 1,
        encoder_type: str = "standard",
        decoder_type: str = "standard",
        resample_filter: Sequence[float] = (1, 1),
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        mult = [int(m) for m in channel_mult]
        _check_args(shape, mult, embedding_type, encoder_type, decoder_type)
        img_ch, height, _ = shape
        self.shape: tuple[int, ...] = shape
        self.model_channels = int(model_channels)
        self.channel_mult = mult
        self.channel_mult_emb = int(channel_mult_emb)
        self.num_blocks = int(num_blocks)
        self.attn_resolutions = [int(r) for r in attn_resolutions]
        self.dropout = float(dropout)
        self.augment_dim = int(augment_dim)
        self.embedding_type = embedding_type
        self.channel_mult_noise = int(channel_mult_noise)
        self.encoder_type = encoder_type
        self.decoder_type = decoder_type
        self.resample_filter = [float(t) if t != int(t) else int(t) for t in resample_filter]

        mc = self.model_channels
        self._emb_ch = mc * self.channel_mult_emb
        self._build_mapping(mc * self.channel_mult_noise)
        skip_ch, cout = self._build_encoder(img_ch, height)
        self._build_decoder(img_ch, height, skip_ch, cout)

    def _block(self, cin: int, cout: int, *, attn: bool = False, resample: str | None = None):
        """One UNetBlock of EDM's SongUNet settings (attention: one head)."""
        return UNetBlock(
            cin,
            cout,
            self._emb_ch,
            resample=resample,
            heads=1 if attn else 0,
            dropout=self.dropout,
            skip_scale=math.sqrt(0.5),
            eps=1e-6,
            resample_filter=self.resample_filter,
            resample_proj=True,
            adaptive_scale=False,
            init=_INIT,
            init_zero=_INIT_ZERO,
            init_attn=_INIT_ATTN,
        )

    def _build_mapping(self, noise_ch: int) -> None:
        """The mapping network: noise (and augmentation) labels -> the embedding (emb_ch)."""
        emb_ch = self._emb_ch
        if self.embedding_type == "positional":
            self.map_noise: nn.Module = PositionalEmbedding(noise_ch, endpoint=True)
        else:
            self.map_noise = FourierEmbedding(noise_ch)
        self.map_augment = (
            linear(self.augment_dim, noise_ch, _INIT, bias=False) if self.augment_dim else None
        )
        self.map_layer0 = linear(noise_ch, emb_ch, _INIT)
        self.map_layer1 = linear(emb_ch, emb_ch, _INIT)

    def _build_encoder(self, img_ch: int, height: int) -> tuple[list[int], int]:
        """The encoder; returns the width of every tensor pushed onto the skip stack, and the
        width at the lowest resolution."""
        mc, block = self.model_channels, self._block
        self.stem = conv(img_ch, mc, 3, _INIT)
        self.enc_down = nn.ModuleDict()  # level -> down-sampling block (levels > 0)
        self.enc_aux = nn.ModuleDict()  # level -> input-path projection ('skip' / 'residual')
        self.enc_blocks = nn.ModuleList()
        self.aux_down = Resample("down", self.resample_filter)  # parameter-free ('skip' encoder)
        skip_ch = [mc]
        cout, caux = mc, img_ch
        for level, m in enumerate(self.channel_mult):
            res = height >> level
            if level > 0:
                self.enc_down[str(level)] = block(cout, cout, resample="down")
                skip_ch.append(cout)
                if self.encoder_type == "skip":
                    self.enc_aux[str(level)] = conv(caux, cout, 1, _INIT)
                elif self.encoder_type == "residual":
                    self.enc_aux[str(level)] = FusedDownConv(
                        caux, cout, self.resample_filter, _INIT
                    )
                    caux = cout
            blocks = nn.ModuleList()
            for _ in range(self.num_blocks):
                blocks.append(block(cout, mc * m, attn=res in self.attn_resolutions))
                cout = mc * m
                skip_ch.append(cout)
            self.enc_blocks.append(blocks)
        return skip_ch, cout

    def _build_decoder(self, img_ch: int, height: int, skip_ch: list[int], cout: int) -> None:
        """The middle blocks and the decoder, popping the encoder's skip widths."""
        mc, mult, block = self.model_channels, self.channel_mult, self._block
        n_levels = len(mult)
        self.mid = nn.ModuleList([block(cout, cout, attn=True), block(cout, cout)])
        self.dec_up = nn.ModuleDict()  # level -> up-sampling block (levels below the lowest)
        self.dec_blocks = nn.ModuleList([nn.ModuleList() for _ in mult])
        self.out_norm = nn.ModuleDict()  # level -> output head (level 0 only unless 'skip')
        self.out_conv = nn.ModuleDict()
        self.aux_up = Resample("up", self.resample_filter)  # parameter-free ('skip' decoder)
        for level in reversed(range(n_levels)):
            res = height >> level
            if level < n_levels - 1:
                self.dec_up[str(level)] = block(cout, cout, resample="up")
            for idx in range(self.num_blocks + 1):
                attn = idx == self.num_blocks and res in self.attn_resolutions
                self.dec_blocks[level].append(
                    block(cout + skip_ch.pop(), mc * mult[level], attn=attn)
                )
                cout = mc * mult[level]
            if self.decoder_type == "skip" or level == 0:
                self.out_norm[str(level)] = group_norm(cout, eps=1e-6)
                self.out_conv[str(level)] = conv(cout, img_ch, 3, _INIT_ZERO)
        assert not skip_ch

    @classmethod
    def ddpmpp(cls, shape: Sequence[int], **kwargs: Any) -> SongUNet:
        """DDPM++ (``PRESETS['ddpmpp']``; other keywords as in the constructor)."""
        return cls(shape, **{**PRESETS["ddpmpp"], **kwargs})

    @classmethod
    def ncsnpp(cls, shape: Sequence[int], **kwargs: Any) -> SongUNet:
        """NCSN++ (``PRESETS['ncsnpp']``; other keywords as in the constructor)."""
        return cls(shape, **{**PRESETS["ncsnpp"], **kwargs})

    def config(self) -> dict[str, Any]:
        """Constructor kwargs (JSON-serialisable): ``SongUNet(**net.config())`` rebuilds it."""
        return {
            "shape": list(self.shape),
            "model_channels": self.model_channels,
            "channel_mult": list(self.channel_mult),
            "channel_mult_emb": self.channel_mult_emb,
            "num_blocks": self.num_blocks,
            "attn_resolutions": list(self.attn_resolutions),
            "dropout": self.dropout,
            "augment_dim": self.augment_dim,
            "embedding_type": self.embedding_type,
            "channel_mult_noise": self.channel_mult_noise,
            "encoder_type": self.encoder_type,
            "decoder_type": self.decoder_type,
            "resample_filter": list(self.resample_filter),
        }

    def embed(self, noise_labels: Tensor, aug_labels: Tensor | None = None) -> Tensor:
        """Conditioning vector: (B,) noise labels [+ (B, augment_dim)] -> (B, E), post-SiLU.

        ``aug_labels=None`` means all-zero augmentation labels (the bias-free augmentation map
        then contributes exactly nothing).
        """
        feats = self.map_noise(noise_labels)
        sin_first = torch.cat(feats.chunk(2, dim=1)[::-1], dim=1)
        emb = sin_first.to(self.map_layer0.weight.dtype)
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
        wdtype = self.stem.weight.dtype
        img = x.to(wdtype)

        h = self.stem(img)
        skips = [h]
        aux = img
        for level, blocks in enumerate(self.enc_blocks):
            if level > 0:
                h = self.enc_down[str(level)](h, emb)
                if self.encoder_type == "skip":
                    aux = self.aux_down(aux)
                    h = h + self.enc_aux[str(level)](aux)
                elif self.encoder_type == "residual":
                    h = aux = (h + self.enc_aux[str(level)](aux)) * math.sqrt(0.5)
                skips.append(h)
            for blk in blocks:
                h = blk(h, emb)
                skips.append(h)

        out: Tensor | None = None
        for level in reversed(range(len(self.channel_mult))):
            if level == len(self.channel_mult) - 1:
                for blk in self.mid:
                    h = blk(h, emb)
            else:
                h = self.dec_up[str(level)](h, emb)
            for blk in self.dec_blocks[level]:
                h = blk(torch.cat([h, skips.pop()], dim=1), emb)
            if str(level) in self.out_conv:
                head = self.out_conv[str(level)](F.silu(self.out_norm[str(level)](h)))
                out = head if out is None else head + self.aux_up(out)
        assert out is not None and not skips
        return out.to(x.dtype)


__all__ = ["PRESETS", "SongUNet"]


@dataclass
class SongUNetKeys:
    """The ``model.*`` keys of DDPM++ and NCSN++ (both presets of :class:`SongUNet`)."""

    channel_mult_noise: int | None = None  # ddpmpp/ncsnpp: noise embedding mult (None: preset)
    resample_filter: list[int] | None = None  # ddpmpp/ncsnpp: FIR filter (None: preset)


def _preset(name: str) -> Kwargs:
    def kwargs(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
        out = {**edm_kwargs(cfg, shape), **PRESETS[name]}
        if cfg.model.channel_mult_noise is not None:
            out["channel_mult_noise"] = cfg.model.channel_mult_noise
        if cfg.model.resample_filter is not None:
            out["resample_filter"] = list(cfg.model.resample_filter)
        return out

    return kwargs


for _name in PRESETS:  # model.kind ddpmpp and ncsnpp: the paper's networks
    NETWORKS.add(
        _name,
        Network(SongUNet, _preset(_name), rank=3, augmented=True, Keys=SongUNetKeys),
    )
