"""The Inception-v3 feature network used for FID, in PyTorch, and a loader for its weights.

FID is not defined by "an Inception-v3" but by one particular network: the TensorFlow graph
``inception-2015-12-05`` used by the reference TTUR implementation (Heusel et al. 2017).
pytorch-fid ported that graph's weights to a PyTorch state dict,
``pt_inception-2015-12-05-6726825d.pth``; reference statistics published with pytorch-fid and
with EDM-style code bases are computed with it. :class:`FIDInceptionV3` rebuilds that graph's
architecture so that the state dict loads unchanged (same module names and shapes as
torchvision's ``Inception3`` layout). It differs from the ImageNet Inception-v3 of
torchvision (Szegedy et al. 2016) in the ways the TF graph does:

* the average-pool branch of the A, C and first E blocks excludes padded zeros from the
  average (``count_include_pad=False``, TF ``SAME`` pooling);
* the pool branch of the last E block (``Mixed_7c``) is a *max* pool, not an average pool;
* the classifier has 1008 outputs (the TF graph's label space), not 1000; it is kept only so
  the weight file loads, features are taken before it;
* there is no auxiliary classifier.

Inputs are images in ``[-1, 1]`` (any size; resized bilinearly to 299x299 with
``align_corners=False`` as pytorch-fid does). The ported weights expect ``[-1, 1]``
(pytorch-fid maps its ``[0, 1]`` input by ``2x - 1``), so no rescaling is applied by default;
``tf_input_scaling=True`` instead reproduces the TF graph's own ``(p - 128) / 128`` on pixel
values ``p = 127.5 (x + 1)`` (a < 0.4% difference). The output is the 2048-d global-average-pool
feature per image.

Weights: ``load_inception`` reads a local copy, or downloads it once from the pytorch-fid
release into a cache directory (``$SFBD_CACHE`` or the platform cache, e.g. ``~/.cache/sfbd``)
and checks its SHA-256.

References
----------
* M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter. "GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium." NeurIPS 2017 (FID).
* C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. "Rethinking the Inception
  Architecture for Computer Vision." CVPR 2016 (Inception-v3).
* M. Seitzer. pytorch-fid (Apache-2.0), https://github.com/mseitzer/pytorch-fid: source of
  the weight file, its URL, and the list of TF-graph differences above (facts only; this is
  an independent implementation).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sfbd.errors import SfbdError
from sfbd.io.cache import (
    cached_verified,
    default_cache_dir,
    file_digest,
    load_strictly,
    read_state_dict,
)

__all__ = [
    "FEATURE_DIM",
    "FID_WEIGHTS_BYTES",
    "FID_WEIGHTS_FILENAME",
    "FID_WEIGHTS_SHA256",
    "FID_WEIGHTS_URL",
    "INPUT_SIZE",
    "NUM_CLASSES",
    "FIDInceptionV3",
    "default_cache_dir",
    "load_inception",
]

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
#: Public release asset of pytorch-fid (its ``FID_WEIGHTS_URL``).
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILENAME
)
#: Full SHA-256 of the file above. Not published by pytorch-fid itself (it downloads without a
#: hash check); taken from independent public code that pins this exact URL with this hash
#: (genforce-style ``InceptionModel``) and from several evaluation set-ups that record the same
#: digest and size for the pytorch-fid file. Consistent with torch.hub's naming convention: the
#: ``6726825d`` in the file name is the first 8 hex digits of the SHA-256.
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
#: Size of the file in bytes (as recorded by the same public sources).
FID_WEIGHTS_BYTES = 95_628_359

FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299

_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


# ----------------------------------------------------------------------------- network


class _ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in the TF graph) -> ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that, like TF ``SAME`` pooling, ignores the padding."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """35x35 block (``Mixed_5b/c/d``): 1x1, 5x5, double 3x3 and pool branches."""

    def __init__(self, in_ch: int, pool_ch: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(in_ch, 64, 1)
        self.branch5x5_1 = _ConvBN(in_ch, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(in_ch, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(in_ch, pool_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class _BlockB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (``Mixed_6a``)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(in_ch, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], dim=1)


class _BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``Mixed_6b..6e``)."""

    def __init__(self, in_ch: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(in_ch, 192, 1)
        self.branch7x7_1 = _ConvBN(in_ch, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(in_ch, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(bd))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], dim=1)


class _BlockD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (``Mixed_7a``)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(in_ch, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(in_ch, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class _BlockE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches (``Mixed_7b``, ``Mixed_7c``).

    ``pool`` is ``"avg"`` (padding excluded) for ``Mixed_7b`` and ``"max"`` for ``Mixed_7c``,
    as in the TF FID graph.
    """

    def __init__(self, in_ch: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = _ConvBN(in_ch, 320, 1)
        self.branch3x3_1 = _ConvBN(in_ch, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(in_ch, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], dim=1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], dim=1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the TF FID graph; ``forward`` returns 2048-d pool features.

    Module names and parameter shapes match pytorch-fid's ``pt_inception-2015-12-05`` state
    dict, so ``load_state_dict`` accepts that file as is. Construct with random weights and load
    real ones with :func:`load_inception`.

    Args:
        resize: resize inputs that are not 299x299 to 299x299 (bilinear,
            ``align_corners=False``, as pytorch-fid).
        tf_input_scaling: if False (default, pytorch-fid), ``[-1, 1]`` inputs go to the network
            unchanged. If True, apply the TF graph's own preprocessing ``(p - 128) / 128`` to
            pixel values ``p = 127.5 (x + 1)``.
    """

    def __init__(self, *, resize: bool = True, tf_input_scaling: bool = False) -> None:
        super().__init__()
        self.resize = resize
        self.tf_input_scaling = tf_input_scaling
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _BlockA(192, pool_ch=32)
        self.Mixed_5c = _BlockA(256, pool_ch=64)
        self.Mixed_5d = _BlockA(288, pool_ch=64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, c7=128)
        self.Mixed_6c = _BlockC(768, c7=160)
        self.Mixed_6d = _BlockC(768, c7=160)
        self.Mixed_6e = _BlockC(768, c7=192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, pool="avg")
        self.Mixed_7c = _BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in ``[-1, 1]``, ``C`` in {1, 3} -> input ``(N, 3, 299, 299)``."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
        x = x.to(dtype=torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize and tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(
                x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False
            )
        if self.tf_input_scaling:
            x = (x * 127.5 + 127.5 - 128.0) / 128.0
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in ``[-1, 1]`` -> pool features ``(N, 2048)``."""
        x = self.preprocess(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        x = self.Mixed_7a(x)  # (N, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (N, 2048, 8, 8)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (N, 2048)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in ``[-1, 1]`` -> the TF graph's 1008 class logits."""
        return self.fc(self.forward(x))


# ----------------------------------------------------------------------------- weights


def load_inception(
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` with pytorch-fid's ported TF FID weights, in eval mode.

    Args:
        path: a local state dict (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` or one
            of the same layout). Loaded as is; a file other than the published one (by
            SHA-256) gives a warning, since its FIDs do not compare with published ones.
        cache_dir: where the downloaded file is kept when ``path`` is None; default
            :func:`default_cache_dir` (``$SFBD_CACHE`` or e.g. ``~/.cache/sfbd``).
        download: when ``path`` is None and the cache lacks the file, fetch it once from
            :data:`FID_WEIGHTS_URL`, checking its SHA-256 against :data:`FID_WEIGHTS_SHA256`.

    Returns:
        The model on CPU, in eval mode, with ``requires_grad`` off.

    Raises:
        SfbdError: file missing and not downloadable (offline), checksum mismatch, or a file
            that is not a state dict of this architecture. The message names the expected path
            and the URL.
    """
    url = FID_WEIGHTS_URL  # read at call time so tests can point it elsewhere
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise SfbdError(
                f"FID Inception weights not found at {file}; download {url} and put it there"
            )
        if file_digest(file, "sha256") != FID_WEIGHTS_SHA256:
            warnings.warn(
                f"FID Inception weights {str(file)!r} are not the published file (SHA-256 "
                f"{FID_WEIGHTS_SHA256[:12]}...): they are used as given, but FIDs with them do "
                f"not compare with published ones",
                UserWarning,
                stacklevel=2,
            )
    else:
        file = cached_verified(
            cache_dir,
            FID_WEIGHTS_FILENAME,
            url,
            FID_WEIGHTS_SHA256,
            "FID Inception weights",
            download=download,
        )
    model = FIDInceptionV3()
    load_strictly(
        model,
        read_state_dict(file, "Inception weights"),
        file,
        "an FID Inception-v3 state dict",
        skip="num_batches_tracked",
    )
    model.eval()
    model.requires_grad_(False)
    return model
