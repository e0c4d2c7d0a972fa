"""Blurred observations: y = k * x + sigma * eps, one known point-spread function for all.

A x is exactly ``torch.nn.functional.conv2d(x, k.expand(C, 1, s, s), padding=s // 2,
groups=C)`` for an odd s x s kernel k: a cross-correlation of each channel with k, zero
padding, output the size of the input. Its adjoint is the transposed convolution with the same
weight and padding (``conv_transpose2d``), checked against the dense matrix of A in
tests/test_blur.py. Backward sampling is MMPS (:mod:`sfbd.noise.linear`), so sigma may be 0.

* User mode: ``data.blur_kernel``, a ``.npy`` odd s x s kernel (finite, summing to > 0).
* Benchmark mode: ``data.blur_sigma`` (pixels): the normalised Gaussian kernel of size
  2 ceil(2 sigma) + 1 (:func:`gaussian_kernel`).
Images only (N, C, H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from sfbd.errors import ConfigError, DataError
from sfbd.io.arrays import read_npy
from sfbd.noise.base import NOISE_MODELS, Corruption
from sfbd.noise.linear import LinearCorruption, LinearKeys

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig


@dataclass
class BlurKeys(LinearKeys):
    """The ``data.*`` keys of blurred observations."""

    blur_kernel: str | None = None  # .npy odd k x k point-spread function (each channel)
    blur_sigma: float | None = None  # benchmark mode: std (pixels) of a Gaussian blur


def gaussian_kernel(sigma: float) -> np.ndarray:
    """The normalised Gaussian kernel exp(-(i^2 + j^2) / (2 sigma^2)), i, j in -r..r with
    r = ceil(2 sigma): size 2 ceil(2 sigma) + 1."""
    r = math.ceil(2 * sigma)
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def check_kernel(k: np.ndarray, what: str) -> np.ndarray:
    """A kernel as float64 (s, s), refused unless 2-D, square, odd, finite and summing to > 0."""
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise DataError(f"{what} must be a 2-D square s x s kernel, got shape {k.shape}")
    if k.shape[0] % 2 == 0:
        raise DataError(f"{what} is {k.shape[0]} x {k.shape[1]}; its size must be odd (3, 5, ...)")
    if not np.isfinite(k).all():
        raise DataError(f"{what} holds values that are not finite")
    if k.sum() <= 0:
        raise DataError(f"{what} sums to {k.sum():.3g}; a point-spread function sums to > 0")
    return k


class BlurOperator:
    """A = conv2d with ``kernel`` per channel (zero padding, same size); A^T its transpose."""

    def __init__(self, kernel: torch.Tensor, channels: int) -> None:
        s = kernel.shape[-1]
        self.weight = kernel.expand(channels, 1, s, s)
        self.pad, self.groups = s // 2, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), padding=self.pad, groups=self.groups)

    def adjoint(self, v: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(v, self.weight.to(v.dtype), padding=self.pad, groups=self.groups)


@NOISE_MODELS.register("blur")
class BlurredGaussian(LinearCorruption):
    """Blur by ``kernel`` (s, s) on every channel, then white noise of level ``sigma`` >= 0.

    Args:
        kernel: the point-spread function; source: where it came from, for the record.
        cg_steps: conjugate-gradient steps of the posterior sampler (``sample.cg_steps``).
    """

    name = "blur"
    Keys = BlurKeys
    arguments = {
        "blur_kernel": "blurred inputs: .npy odd k x k kernel (each channel, zero padding); "
        "--sigma gives the noise level (default 0)"
    }
    data_ndim: ClassVar[int | None] = 3  # (C, H, W) images only

    @classmethod
    def claims(cls, data: DataConfig) -> list[str]:
        return [f"data.{k}" for k in ("blur_kernel", "blur_sigma") if getattr(data, k) is not None]

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        d = cfg.data
        if d.blur_kernel is not None and d.blur_sigma is not None:
            raise ConfigError(
                "give data.blur_kernel (user mode) or data.blur_sigma (benchmark), not both"
            )
        cls.check_sigma(cfg, "a blur")
        if d.blur_sigma is not None:
            if not (math.isfinite(d.blur_sigma) and d.blur_sigma > 0):
                raise ConfigError(f"data.blur_sigma must be > 0 pixels, got {d.blur_sigma}")
            if d.source is None:
                raise ConfigError(
                    "data.blur_sigma blurs benchmark data (data.source); in user mode give "
                    "data.blur_kernel, the .npy of the kernel that blurred data.noisy"
                )

    @classmethod
    def from_config(
        cls, cfg: Config, index: np.ndarray | None = None, n: int | None = None
    ) -> Corruption:
        d = cfg.data
        if d.blur_sigma is not None:
            kernel, source = gaussian_kernel(d.blur_sigma), f"Gaussian {d.blur_sigma:g} px"
        else:
            assert d.blur_kernel is not None
            kernel = check_kernel(read_npy(d.blur_kernel, "data.blur_kernel"), "data.blur_kernel")
            source = d.blur_kernel
        model = cls(kernel, float(d.sigma), source, cfg.sample.cg_steps)  # type: ignore[arg-type]
        return model.finish(cfg)

    @classmethod
    def describe_config(cls, data: DataConfig) -> str:
        psf = f"kernel {data.blur_kernel}"
        if data.blur_sigma is not None:
            psf = f"Gaussian {data.blur_sigma:g} px"
        return f"blurred ({psf}), white noise sigma {data.sigma}"

    @classmethod
    def from_arguments(
        cls, args: dict[str, Any], *, n: int | None, seed: int
    ) -> BlurredGaussian | None:
        path = args.get("blur_kernel")
        if path is None:
            return None
        k = np.asarray(path) if not isinstance(path, str) else read_npy(path, "--blur-kernel")
        sigma = cls.sigma_argument(args, "--blur-kernel")
        return cls(check_kernel(k, "--blur-kernel"), sigma, str(path)[:80])

    def __init__(
        self, kernel: np.ndarray | list, sigma: float, source: str = "given", cg_steps: int = 1
    ) -> None:
        self.kernel = check_kernel(np.asarray(kernel), "the blur kernel")
        self.sigma, self.source, self.cg_steps = float(sigma), source, int(cg_steps)

    def operator(self, keys: torch.Tensor, like: torch.Tensor) -> BlurOperator:
        k = torch.as_tensor(self.kernel, dtype=like.dtype, device=like.device)
        return BlurOperator(k, like.shape[1])

    def observe(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(x, dtype=torch.float64)
        return self.operator(torch.as_tensor(rows), t).forward(t).numpy()

    def check(
        self,
        clean: np.ndarray | None,
        noisy: np.ndarray | None,
        keys: tuple[str, str] = ("data.clean", "data.noisy"),
    ) -> None:
        for what, x in zip(keys, (clean, noisy), strict=True):
            if x is not None and len(x) and x.ndim != 4:
                raise DataError(
                    f"blur is for images (N, C, H, W), but {what} holds samples of shape "
                    f"{tuple(x.shape[1:])}; for vectors use data.mask or white noise"
                )

    def spec(self) -> dict[str, Any]:
        return {
            "noise": self.name,
            "kernel": self.kernel.tolist(),
            "sigma": self.sigma,
            "source": self.source,
            "cg_steps": self.cg_steps,
        }

    def describe(self) -> str:
        s = self.kernel.shape[0]
        return f"blurred ({self.source}, {s}x{s}), sigma {self.sigma:g}"

    @classmethod
    def example(cls, shape: tuple[int, ...], n: int) -> BlurredGaussian:
        kernel = np.array([[0, 0, 0], [0.25, 0.5, 0.25], [0, 0, 0]])
        return cls(kernel, 0.1, cg_steps=int(np.prod(shape)))
