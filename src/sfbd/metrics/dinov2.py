"""DINOv2 ViT-L/14 in PyTorch, the feature network of FD-DINOv2, and a loader for its weights.

FD-DINOv2 (Stein et al. 2023; reported next to FID by EDM2, Karras et al. 2024) is the
Fréchet distance of :mod:`sfbd.metrics.fid` computed on the 1024-d CLS feature of the
self-supervised DINOv2 ViT-L/14 (Oquab et al. 2023) instead of Inception pool features. The
network here is written from the architecture so that the published state dict
``dinov2_vitl14_pretrain.pth`` loads with ``strict=True`` (same parameter names and shapes):

* patch embedding: a 14x14 stride-14 convolution ``3 -> 1024`` (``patch_embed.proj``);
* tokens: a learned CLS token (``cls_token``) before the ``(H/14)(W/14)`` patch tokens, plus
  learned positions ``pos_embed`` ``(1, 1 + 37*37, 1024)`` for the 518x518 training input; the
  37x37 patch positions are interpolated bicubically to the input's patch grid (below);
  ``mask_token`` ``(1, 1024)`` is used only in training and kept so the file loads;
* 24 pre-norm blocks ``x += ls1 * attn(norm1(x)); x += ls2 * mlp(norm2(x))`` with LayerNorm
  eps ``1e-6``, 16-head self-attention (head width 64, fused ``qkv`` with bias, output
  ``proj``), MLP ``1024 -> 4096 -> 1024`` with exact GELU, and LayerScale vectors ``ls1.gamma``,
  ``ls2.gamma`` (per-channel gains);
* a final LayerNorm ``norm``; the feature is the normalised CLS token, ``norm(x)[:, 0]``.

Position interpolation as DINOv2 does it: at the native grid ``G = 37`` (a 518x518 input) the
table is used as is; otherwise the ``G x G`` grid is resized with ``F.interpolate(...,
mode="bicubic", align_corners=False)`` at scale factor ``((h + 0.1) / G, (w + 0.1) / G)`` for a
``h x w`` patch grid. The 0.1 offset (kept from DINO for compatibility) makes the output size
``floor(G * s) = h`` robust to round-off and also shifts the sampling positions slightly:
source coordinate ``(i + 0.5) * G / (h + 0.1) - 0.5`` for output index ``i``.

Preprocessing, EDM2's protocol for FD-DINOv2 (its ``calculate_metrics.py``, after dgm-eval):
8-bit pixel values ``p`` ``(N, 3, H, W)`` are resized to 224x224 with
``F.interpolate(p, (224, 224), mode="bicubic", antialias=True)``, scaled by ``1/255`` and
normalised with the ImageNet mean ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``.
Inputs here are images in ``[-1, 1]`` like those of the FID Inception, so ``p = 127.5 (x + 1)``
(exact for 8-bit images); one-channel images are tiled to three (EDM2 handles RGB only).
At 224x224 the patch grid is 16x16: 256 patch tokens and the CLS token.

Weights: :func:`load_dinov2` reads a local copy (config key ``eval.dinov2``), or downloads
the published file once into the cache of :mod:`sfbd.io.cache` and checks its SHA-256.

References
----------
* M. Oquab, T. Darcet, T. Moutakanni et al. "DINOv2: Learning Robust Visual Features without
  Supervision." TMLR 2024 (arXiv:2304.07193).
* A. Dosovitskiy et al. "An Image is Worth 16x16 Words: Transformers for Image Recognition at
  Scale." ICLR 2021 (ViT).
* H. Touvron et al. "Going deeper with Image Transformers." ICCV 2021 (LayerScale).
* G. Stein, J. C. Cresswell, R. Hosseinzadeh et al. "Exposing flaws of generative model
  evaluation metrics and their unfair treatment of diffusion models." NeurIPS 2023 (FD-DINOv2).
* T. Karras, M. Aittala, J. Lehtinen, J. Hellsten, T. Aila, S. Laine. "Analyzing and Improving
  the Training Dynamics of Diffusion Models." CVPR 2024 (EDM2: the preprocessing above).
* facebookresearch/dinov2 (Apache-2.0) and NVlabs/edm2: read for the shapes, names and
  constants above (facts only; this is an independent implementation).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sfbd.errors import SfbdError
from sfbd.io.cache import (
    cached_verified,
    file_digest,
    load_strictly,
    read_state_dict,
)

__all__ = [
    "DINOV2_WEIGHTS_BYTES",
    "DINOV2_WEIGHTS_FILENAME",
    "DINOV2_WEIGHTS_SHA256",
    "DINOV2_WEIGHTS_URL",
    "FEATURE_DIM",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_SIZE",
    "DINOv2ViT",
    "load_dinov2",
]

DINOV2_WEIGHTS_FILENAME = "dinov2_vitl14_pretrain.pth"
#: The published ViT-L/14 backbone (the file torch.hub's ``dinov2_vitl14`` loads).
DINOV2_WEIGHTS_URL = (
    "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/" + DINOV2_WEIGHTS_FILENAME
)
#: SHA-256 of that file. Meta publishes no checksum for it; this digest (with the size below)
#: is the one pinned, for this exact URL, by several independent public code bases that
#: download the file and verify it. It has not been checked against a download by sfbd.
DINOV2_WEIGHTS_SHA256 = "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428"
#: Size of the file in bytes (the same sources; also the server's Content-Length).
DINOV2_WEIGHTS_BYTES = 1_217_586_395

FEATURE_DIM = 1024
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: DINOv2's offset added to the target grid in the position interpolation's scale factor.
POS_OFFSET = 0.1
HEAD_DIM = 64  # every DINOv2 ViT (S, B, L, g) has 64-channel heads
#: ViT-L/14 as published: patch, width, depth, heads, MLP width, native patch grid (518 / 14).
VITL14 = {"patch_size": 14, "embed_dim": 1024, "depth": 24, "num_heads": 16}
VITL14_EXTRA = {"mlp_hidden": 4096, "native_grid": 37}


# ----------------------------------------------------------------------------- network


class LayerScale(nn.Module):
    """Per-channel gain ``x * gamma`` (Touvron et al. 2021); ``gamma`` ``(D,)``."""

    def __init__(self, dim: int, init: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention ``softmax(Q K^T / sqrt(d_h)) V`` with a fused ``qkv`` layer.

    ``qkv`` maps ``(B, T, D)`` to ``(B, T, 3D)`` laid out as ``[q | k | v]``, each split into
    ``num_heads`` heads of width ``d_h = D / num_heads``; ``proj`` mixes the heads back.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, d_h)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1 / sqrt(d_h)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``, ``D -> hidden -> D`` (exact, erf-based GELU)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale:
    ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping ``p x p`` patches -> tokens: ``(B, 3, H, W) -> (B, (H/p)(W/p), D)``."""

    def __init__(self, patch_size: int, dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def interpolate_positions(grid: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """DINOv2's resize of a position grid ``(1, D, G, G)`` to ``(1, D, h, w)``: bicubic
    (``align_corners=False``) at scale factor ``((h + 0.1) / G, (w + 0.1) / G)``."""
    g = grid.shape[-1]
    out = F.interpolate(
        grid.float(),
        scale_factor=((h + POS_OFFSET) / g, (w + POS_OFFSET) / g),
        mode="bicubic",
        align_corners=False,
    )
    if out.shape[-2:] != (h, w):  # cannot happen for h, w >= 1; guards the arithmetic
        raise RuntimeError(f"position grid resized to {tuple(out.shape[-2:])}, not {(h, w)}")
    return out


class DINOv2ViT(nn.Module):
    """DINOv2 vision transformer; ``forward`` maps images in ``[-1, 1]`` to CLS features.

    The defaults are ViT-L/14 as published (304,368,640 parameters); smaller sizes build the
    same architecture (for tests). Parameter names and shapes match the published state dict,
    so ``load_state_dict(..., strict=True)`` accepts ``dinov2_vitl14_pretrain.pth``.

    Args:
        patch_size: side ``p`` of the square patches (14).
        embed_dim: token width ``D`` (1024).
        depth: number of blocks (24).
        num_heads: attention heads (16; head width ``D / num_heads``).
        mlp_hidden: MLP hidden width (``4 D`` = 4096).
        native_grid: side ``G`` of the learned position grid (37: the 518x518 training input).
        input_size: side images are resized to by :meth:`preprocess` (224, EDM2's protocol).
    """

    def __init__(
        self,
        *,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_hidden: int | None = None,
        native_grid: int = 37,
        input_size: int = INPUT_SIZE,
    ) -> None:
        super().__init__()
        if input_size % patch_size:
            raise ValueError(f"input_size {input_size} is not a multiple of patch {patch_size}")
        self.patch_size, self.native_grid, self.input_size = patch_size, native_grid, input_size
        self.embed_dim = embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + native_grid**2, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        hidden = 4 * embed_dim if mlp_hidden is None else mlp_hidden
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        if self.pos_embed.device.type != "meta":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.normal_(self.cls_token, std=1e-6)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in ``[-1, 1]``, ``C`` in {1, 3} -> normalised
        ``(N, 3, S, S)`` (``S = input_size``): pixels ``127.5 (x + 1)``, bicubic antialiased
        resize to ``S x S``, ``/ 255``, ``(v - mean) / std`` per channel (ImageNet)."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
        p = (x.to(dtype=torch.float32) + 1.0) * 127.5
        if p.shape[1] == 1:
            p = p.expand(-1, 3, -1, -1)
        s = self.input_size
        p = F.interpolate(p, size=(s, s), mode="bicubic", align_corners=False, antialias=True)
        mean = p.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = p.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (p / 255.0 - mean) / std

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Positions ``(1, 1 + h w, D)`` for a ``h x w`` patch grid (CLS position first); the
        learned table itself at the native grid, else :func:`interpolate_positions`."""
        g = self.native_grid
        if (h, w) == (g, g):
            return self.pos_embed
        d = self.embed_dim
        grid = self.pos_embed[:, 1:].reshape(1, g, g, d).permute(0, 3, 1, 2)
        grid = interpolate_positions(grid, h, w).permute(0, 2, 3, 1).reshape(1, h * w, d)
        return torch.cat([self.pos_embed[:, :1], grid.to(self.pos_embed.dtype)], dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Network input ``(N, 3, H, W)`` (normalised, ``H, W`` multiples of the patch) ->
        the normalised CLS token ``(N, D)``."""
        n, _, height, width = x.shape
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"input {height}x{width} is not a multiple of the patch size {p}")
        tokens = self.patch_embed(x)  # (N, hw, D)
        tokens = torch.cat([self.cls_token.expand(n, -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embedding(height // p, width // p)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in ``[-1, 1]`` -> FD-DINOv2 features ``(N, D)``."""
        return self.features(self.preprocess(x))


# ----------------------------------------------------------------------------- weights


def architecture_of(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, int]:
    """Constructor arguments of :class:`DINOv2ViT` read off a state dict's shapes (heads:
    width / 64, as in every DINOv2); a file without the DINOv2 layout is refused."""
    needed = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise SfbdError(
            f"{path} is not a DINOv2 ViT state dict (no {missing[0]!r}); give the file "
            f"{DINOV2_WEIGHTS_URL} in eval.dinov2 (or --dinov2), or leave it unset to download"
        )
    dim = int(state["cls_token"].shape[-1])
    grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if dim % HEAD_DIM or grid * grid + 1 != state["pos_embed"].shape[1]:
        raise SfbdError(
            f"{path}: cls_token width {dim} (not a multiple of 64) or pos_embed "
            f"{tuple(state['pos_embed'].shape)} (not 1 + G*G positions) is not DINOv2's layout"
        )
    return {
        "patch_size": int(state["patch_embed.proj.weight"].shape[-1]),
        "embed_dim": dim,
        "depth": max(blocks) + 1,
        "num_heads": dim // HEAD_DIM,
        "mlp_hidden": int(state["blocks.0.mlp.fc1.weight"].shape[0]),
        "native_grid": grid,
    }


def _is_published(file: Path) -> bool:
    return (
        os.path.getsize(file) == DINOV2_WEIGHTS_BYTES
        and file_digest(file, "sha256") == DINOV2_WEIGHTS_SHA256
    )


def load_dinov2(
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
) -> DINOv2ViT:
    """Build :class:`DINOv2ViT` with the published ViT-L/14 weights, in eval mode.

    Args:
        path: a local state dict (``eval.dinov2``): the published
            ``dinov2_vitl14_pretrain.pth`` or one of the same layout. Its architecture is read
            from the tensor shapes and loaded strictly; a file other than the published one
            (by size and SHA-256), or of another size than ViT-L/14, is used with a warning,
            since its FD-DINOv2 values do not compare with published ones.
        cache_dir: where the downloaded file is kept when ``path`` is None; default
            :func:`sfbd.io.cache.default_cache_dir` (``$SFBD_CACHE`` or e.g. ``~/.cache/sfbd``).
        download: when ``path`` is None and the cache lacks the file, fetch it once from
            :data:`DINOV2_WEIGHTS_URL` and keep it only if its SHA-256 is
            :data:`DINOV2_WEIGHTS_SHA256`.

    Returns:
        The model on CPU, in eval mode, with ``requires_grad`` off.

    Raises:
        SfbdError: file missing and not downloadable, checksum mismatch in the cache, or a
            file that is not a DINOv2 state dict; the message names the path and the URL.
    """
    what = ""  # why a given file's values do not compare with published ones
    if path is None:
        file = cached_verified(
            cache_dir,
            DINOV2_WEIGHTS_FILENAME,
            DINOV2_WEIGHTS_URL,  # read at call time so tests can point it elsewhere
            DINOV2_WEIGHTS_SHA256,
            "DINOv2 weights",
            download=download,
            hint=" (or give your copy in eval.dinov2)",
        )
        arch = {**VITL14, **VITL14_EXTRA}
        state = read_state_dict(file, "DINOv2 weights")
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise SfbdError(
                f"DINOv2 weights not found at {file} (eval.dinov2); download "
                f"{DINOV2_WEIGHTS_URL} and put it there, or leave eval.dinov2 unset"
            )
        state = read_state_dict(file, "DINOv2 weights")
        arch = architecture_of(state, file)
        if arch != {**VITL14, **VITL14_EXTRA}:
            what = "are not ViT-L/14"
        elif not _is_published(file):
            what = "are not the published file"
    with torch.device("meta"):
        model = DINOv2ViT(**arch)
    model = model.to_empty(device="cpu")
    what_file = f"a DINOv2 ViT-L/14 backbone state dict ({DINOV2_WEIGHTS_FILENAME})"
    load_strictly(model, state, file, what_file)
    if what:  # warned only once the file has loaded
        warnings.warn(
            f"DINOv2 weights {str(file)!r} {what} (SHA-256 {DINOV2_WEIGHTS_SHA256[:12]}...): "
            "they are used as given, but FD-DINOv2 values with them do not compare with "
            "published ones",
            UserWarning,
            stacklevel=2,
        )
    model.eval()
    model.requires_grad_(False)
    return model
