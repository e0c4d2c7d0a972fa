"""Coloured Gaussian noise of known covariance: y = x + n, n ~ N(0, Sigma).

Sigma is given as
* a D x D symmetric positive definite matrix, for vectors (D,); or
* a power spectrum S (C, H, W) of stationary noise per channel, for images (C, H, W):
  n = F^-1(sqrt(S) * F(eps)) with F the orthonormal 2-D DFT over (H, W) and eps white. Then
  Sigma = F^-1 diag(S) F, a circulant per channel, whose eigenvalues are the entries of S; S
  must be symmetric, S[c, k] = S[c, -k mod (H, W)], for the noise to be real.

Two exact reductions to white noise (PAPER.md, "Noise models beyond one white level", 2):
* **whiten** (default): z = c W x with W = Sigma^(-1/2) and c = sqrt(lambda_min), so that
  c W y = z + c eps is white at tau = c. SFBD learns z; samples map back x = W^-1 z / c. With
  this c the map c W has eigenvalues sqrt(lambda_min / lambda_i) <= 1: it never stretches the
  data, only shrinks it along its noisier directions (c W = I for white noise), so z stays
  within the data's own scale, which EDM's sigma_data assumes. (Measured on ring8, seed 0,
  the quality benchmark's settings, condition number 12: final swd 0.088 with this c, against
  0.110 with the geometric mean of the noise std, 0.120 with its rms and 0.127 with
  sqrt(lambda_max); top-up 0.092.) It needs
  Sigma well conditioned: the condition number sets how unevenly z is scaled.
* **top-up**: y' = y + m, m ~ N(0, lambda_max I - Sigma) drawn once per sample (keyed by its
  index), is white at tau = sqrt(lambda_max). Exact, but it throws information away.

In both, the noise of benchmark mode's sample i is a function of (noise_seed, i) only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sfbd.errors import ConfigError, DataError
from sfbd.io.arrays import read_npy
from sfbd.noise.base import NOISE_MODELS, Corruption, WhiteInModelSpace
from sfbd.rng import keyed_randn, stream_id

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig

REDUCTIONS = ("whiten", "top-up")  # the two reductions to white noise (data.noise_method)
WARN_CONDITION = 1e2  # whitening warns above this condition number
MAX_CONDITION = 1e8  # and refuses above it (numerically singular)


def spectrum_is_symmetric(spec: np.ndarray) -> bool:
    """S[c, k1, k2] == S[c, -k1 mod H, -k2 mod W]: the spectrum of real noise."""
    flipped = np.roll(spec[:, ::-1, ::-1], shift=(1, 1), axis=(1, 2))
    return bool(np.allclose(spec, flipped, rtol=1e-6, atol=1e-12 * float(np.abs(spec).max())))


def check_cov(cov: np.ndarray, what: str = "data.noise_cov") -> np.ndarray:
    """The eigenvalues of a covariance (matrix or spectrum), refused unless valid."""
    cov = np.asarray(cov, dtype=np.float64)
    if not np.isfinite(cov).all():
        raise DataError(f"{what} holds values that are not finite")
    if cov.ndim == 2:
        if cov.shape[0] != cov.shape[1]:
            raise DataError(f"{what} must be a square D x D matrix, got shape {cov.shape}")
        if not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-9 * float(np.abs(cov).max())):
            raise DataError(f"{what} is not symmetric; a covariance matrix must be")
        lam = np.linalg.eigvalsh(cov)
        if lam.min() <= 0:
            raise DataError(
                f"{what} is not positive definite (smallest eigenvalue {lam.min():.3g}); a "
                "noise covariance must have every eigenvalue > 0"
            )
        return lam
    if cov.ndim == 3:
        if (cov <= 0).any():
            raise DataError(
                f"{what}: a power spectrum (C, H, W) must be > 0 everywhere; min {cov.min():.3g}"
            )
        if not spectrum_is_symmetric(cov):
            raise DataError(
                f"{what} is not the power spectrum of real noise: S[c, k] must equal "
                "S[c, -k] (orthonormal 2-D DFT over H, W)"
            )
        return cov.reshape(-1)
    raise DataError(
        f"{what} must be a D x D covariance matrix (vectors) or a (C, H, W) power spectrum "
        f"(images), got an array of shape {cov.shape}"
    )


@dataclass
class ColouredKeys:
    """The ``data.*`` keys of coloured Gaussian noise."""

    # .npy covariance of coloured Gaussian noise: D x D matrix (vectors) or (C, H, W) power
    # spectrum (images, orthonormal 2-D DFT); data.sigma must then be null
    noise_cov: str | None = None
    noise_method: str = "whiten"  # coloured noise: whiten (exact) | top-up (exact, loses info)


@NOISE_MODELS.register("coloured")
class ColouredGaussian(WhiteInModelSpace):
    """Gaussian noise of covariance ``cov`` (see the module docstring), reduced to white noise
    by ``method`` ('whiten' or 'top-up'); ``seed`` keys top-up's extra noise."""

    name = "coloured"
    Keys = ColouredKeys
    arguments = {"noise_cov": "coloured noise: .npy covariance (D x D) or power spectrum (C, H, W)"}

    @classmethod
    def claims(cls, data: DataConfig) -> list[str]:
        return ["data.noise_cov"] if data.noise_cov is not None else []

    @classmethod
    def check_keys(cls, data: DataConfig) -> None:
        if data.noise_method not in REDUCTIONS:
            raise ConfigError(
                f"data.noise_method must be one of {', '.join(REDUCTIONS)}; "
                f"got {data.noise_method!r}"
            )

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        d = cfg.data
        if d.noise_cov is None or d.noise_cov.strip() == "":
            raise ConfigError(
                "coloured noise needs data.noise_cov: the path of a .npy covariance (D x D) "
                "or power spectrum (C, H, W)"
            )

    @classmethod
    def from_config(
        cls, cfg: Config, index: np.ndarray | None = None, n: int | None = None
    ) -> ColouredGaussian:
        d = cfg.data
        return cls(read_npy(d.noise_cov, "data.noise_cov"), d.noise_method, d.noise_seed)

    @classmethod
    def describe_config(cls, data: DataConfig) -> str:
        return f"coloured Gaussian, covariance {data.noise_cov}, {data.noise_method}"

    @classmethod
    def from_arguments(cls, args: dict[str, Any], *, n: int | None, seed: int) -> ColouredGaussian:
        """``noise_cov`` an array or a .npy path; new inputs are reduced by top-up."""
        cov = args["noise_cov"]
        if isinstance(cov, str | Path):
            cov = read_npy(str(cov), "--noise-cov")
        cov = np.asarray(cov, dtype=np.float64)
        check_cov(cov, "--noise-cov")
        return cls(cov, "top-up", seed)

    def matches(self, other: Corruption) -> bool:
        """The same covariance (to 1e-6 relative): the reduction may differ."""
        return (
            isinstance(other, ColouredGaussian)
            and other.cov.shape == self.cov.shape
            and bool(np.allclose(other.cov, self.cov, rtol=1e-6, atol=0.0))
        )

    def __init__(self, cov: np.ndarray | list, method: str = "whiten", seed: int = 0) -> None:
        if method not in REDUCTIONS:
            raise ValueError(
                f"data.noise_method must be one of {', '.join(REDUCTIONS)}, got {method!r}"
            )
        self.cov = np.asarray(cov, dtype=np.float64)
        lam = check_cov(self.cov)
        self.method, self.seed = method, int(seed)
        self.lam_max = float(lam.max())
        self.condition = float(lam.max() / lam.min())
        self.scale = float(np.sqrt(lam.min()))  # c: c W never stretches the data
        if self.cov.ndim == 2:
            self._lam, self._vecs = np.linalg.eigh(self.cov)
        if method == "whiten":
            self._check_condition()

    def _check_condition(self) -> None:
        if self.condition > MAX_CONDITION:
            raise DataError(
                f"data.noise_cov has condition number {self.condition:.3g}: too ill-conditioned "
                "to whiten; set data.noise_method: top-up"
            )
        if self.condition > WARN_CONDITION:
            warnings.warn(
                f"data.noise_cov has condition number {self.condition:.3g}: whitening scales the "
                f"data {math.sqrt(self.condition):.3g}x more along its least noisy directions "
                "than along its noisiest; if training struggles, set data.noise_method: top-up",
                stacklevel=2,
            )

    @property
    def transforms(self) -> bool:
        return self.method == "whiten"

    @property
    def tau(self) -> float:
        """The white level in model space."""
        return self.scale if self.method == "whiten" else math.sqrt(self.lam_max)

    def apply(self, x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """f(Sigma) x for each row: V f(lambda) V^T x, or F^-1(f(S) * F(x)) per channel."""
        x64 = np.asarray(x, dtype=np.float64)
        if self.cov.ndim == 2:
            if x64.shape[1:] != self.cov.shape[:1]:
                raise DataError(
                    f"data.noise_cov is {self.cov.shape[0]} x {self.cov.shape[0]} but samples "
                    f"have shape {x64.shape[1:]}"
                )
            op = (self._vecs * fn(self._lam)) @ self._vecs.T
            return (x64 @ op).astype(np.float32)
        if x64.shape[1:] != self.cov.shape:
            raise DataError(
                f"data.noise_cov is a spectrum of shape {self.cov.shape} but samples have shape "
                f"{x64.shape[1:]}"
            )
        f = torch.fft.fft2(torch.as_tensor(x64), norm="ortho")
        f = f * torch.as_tensor(fn(self.cov))
        return torch.fft.ifft2(f, norm="ortho").real.numpy().astype(np.float32)

    def _eps(self, index: np.ndarray, shape: tuple[int, ...], name: str, seed: int) -> np.ndarray:
        return keyed_randn(
            torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64),
            shape,
            stream=stream_id(name, seed),
            dtype=torch.float64,
        ).numpy()

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """x_i + Sigma^(1/2) eps_i, eps_i white and a function of (noise_seed, index[i])."""
        eps = self._eps(index, tuple(x.shape[1:]), "data-noise", noise_seed)
        return (x + self.apply(eps, np.sqrt)).astype(np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.method == "top-up":
            return np.asarray(x, dtype=np.float32)
        return self.apply(x, lambda lam: self.scale / np.sqrt(lam))

    def encode_noisy(self, y: np.ndarray, index: np.ndarray) -> np.ndarray:
        if self.method == "whiten":
            return self.encode(y)
        eps = self._eps(index, tuple(y.shape[1:]), "noise-topup", self.seed)
        top = self.apply(eps, lambda lam: np.sqrt(np.maximum(self.lam_max - lam, 0.0)))
        return (y + top).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        if self.method == "top-up":
            return np.asarray(z, dtype=np.float32)
        return self.apply(z, lambda lam: np.sqrt(lam) / self.scale)

    def check(
        self,
        clean: np.ndarray | None,
        noisy: np.ndarray | None,
        keys: tuple[str, str] = ("data.clean", "data.noisy"),
    ) -> None:
        for arr in (clean, noisy):
            if arr is not None and len(arr):
                self.apply(arr[:1], np.sqrt)  # raises on a shape mismatch

    def spec(self) -> dict[str, Any]:
        return {
            "noise": self.name,
            "cov": self.cov.tolist(),
            "method": self.method,
            "seed": self.seed,
        }

    def describe(self) -> str:
        rms = math.sqrt(float(np.mean(self.cov if self.cov.ndim == 3 else np.diag(self.cov))))
        return f"coloured, rms {rms:.3g}, {self.method}"

    @classmethod
    def example(cls, shape: tuple[int, ...], n: int) -> ColouredGaussian:
        if len(shape) == 1:
            d = shape[0]
            i = np.arange(d)
            return cls(0.25 * 0.6 ** np.abs(i[:, None] - i[None, :]) + 0.01 * np.eye(d))
        return cls(example_spectrum(shape, corr=0.1))


def example_spectrum(shape: tuple[int, ...], level: float = 0.3, corr: float = 1.0) -> np.ndarray:
    """A low-pass spectrum (C, H, W) of noise with rms ``level``: S(k) proportional to
    1 / (1 + corr * |k|^2) with |k| the wrapped frequency; symmetric, so the noise is real."""
    c, h, w = shape
    kh = np.minimum(np.arange(h), h - np.arange(h))[:, None]
    kw = np.minimum(np.arange(w), w - np.arange(w))[None, :]
    s = 1.0 / (1.0 + corr * (kh**2 + kw**2))
    s = np.broadcast_to(s, (c, h, w)).astype(np.float64)
    return level**2 * s / s.mean()
