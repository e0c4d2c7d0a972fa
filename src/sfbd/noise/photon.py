"""Photon (Poisson-Gaussian) noise, through the generalised Anscombe transform.

Intensities u = (x + 1) / 2 in [0, 1]; one observation is y_u = alpha * P + eta with
P ~ Poisson(u / alpha) photons and eta ~ N(0, sigma_r^2) read noise (alpha: the gain, the
intensity of one photon, so 1 / alpha photons at full intensity; sigma_r in intensity units),
stored as y = 2 y_u - 1 (PAPER.md, "Noise models beyond one white level", 3).

The generalised Anscombe transform (Makitalo & Foi, IEEE TIP 2013)

    f(v) = (2 / alpha) * sqrt(max(alpha v + 3 alpha^2 / 8 + sigma_r^2, 0))

makes the noise approximately N(0, 1): f(y_u) ~ f(u) + eps. SFBD runs in the model space
z = 2 (f(u) - f(0)) / (f(1) - f(0)) - 1, which maps intensities [0, 1] onto [-1, 1] and leaves
white noise at tau = 2 / (f(1) - f(0)) (about sqrt(alpha) when read noise is small). The clean
set is mapped by the same f; samples map back through the algebraic inverse of f, which is
right for samples of f(u) (not for estimates of E[f(y_u)], where Makitalo & Foi's unbiased
inverse is needed).

It is an approximation: at low photon counts the transformed noise is neither Gaussian nor of
unit variance, and its mean is biased (benchmarks/quality.py measures where it breaks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sfbd.errors import ConfigError, DataError
from sfbd.io.arrays import value_range
from sfbd.noise.base import NOISE_MODELS, WhiteInModelSpace
from sfbd.rng import keyed_randn, stream_id

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig


@dataclass
class PhotonKeys:
    """The ``data.*`` keys of photon noise."""

    gain: float | None = None  # poisson-gaussian: intensity of one photon (alpha), u = (x + 1) / 2
    read_noise: float = 0.0  # poisson-gaussian: std of the Gaussian read noise, intensity units


@NOISE_MODELS.register("poisson-gaussian")
class PoissonGaussian(WhiteInModelSpace):
    """Poisson noise of gain ``gain`` (alpha) plus Gaussian read noise ``read_noise`` (sigma_r),
    both in intensity units u in [0, 1] (see the module docstring)."""

    name = "poisson-gaussian"
    Keys = PhotonKeys
    white_is_exact = False  # the Anscombe transform makes the noise only roughly Gaussian

    @classmethod
    def claims(cls, data: DataConfig) -> list[str]:
        return ["data.gain"] if data.gain is not None else []

    @classmethod
    def check_keys(cls, data: DataConfig) -> None:
        if not (math.isfinite(data.read_noise) and data.read_noise >= 0):
            raise ConfigError(f"data.read_noise must be a number >= 0, got {data.read_noise}")

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        d = cfg.data
        if d.gain is None or not (math.isfinite(d.gain) and d.gain > 0):
            raise ConfigError(
                f"data.gain must be a number > 0 for poisson-gaussian noise (the intensity of "
                f"one photon, e.g. 0.01 for 100 photons at full scale), got {d.gain}"
            )

    @classmethod
    def from_config(
        cls, cfg: Config, index: np.ndarray | None = None, n: int | None = None
    ) -> PoissonGaussian:
        assert cfg.data.gain is not None  # validate_config() requires it
        return cls(cfg.data.gain, cfg.data.read_noise)

    @classmethod
    def describe_config(cls, data: DataConfig) -> str:
        return (
            f"poisson-gaussian, gain {data.gain:g} ({1 / data.gain:.3g} photons at full "
            f"scale), read noise {data.read_noise:g}"
        )

    def __init__(self, gain: float, read_noise: float = 0.0) -> None:
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(
                f"data.gain must be a number > 0 (intensity of one photon), got {gain}"
            )
        if not (math.isfinite(read_noise) and read_noise >= 0):
            raise ValueError(f"data.read_noise must be a number >= 0, got {read_noise}")
        self.gain, self.read_noise = float(gain), float(read_noise)
        self._f0, self._f1 = self.anscombe(np.array([0.0, 1.0]))

    @property
    def photons(self) -> float:
        """Photons at full intensity (u = 1): 1 / alpha."""
        return 1.0 / self.gain

    def anscombe(self, v: np.ndarray) -> np.ndarray:
        """f(v) of the generalised Anscombe transform, elementwise, float64."""
        a, s = self.gain, self.read_noise
        arg = a * np.asarray(v, dtype=np.float64) + 0.375 * a * a + s * s
        return (2.0 / a) * np.sqrt(np.maximum(arg, 0.0))

    def inverse_anscombe(self, w: np.ndarray) -> np.ndarray:
        """The algebraic inverse of f on w >= 0 (w < 0 is clipped to 0)."""
        a, s = self.gain, self.read_noise
        w = np.maximum(np.asarray(w, dtype=np.float64), 0.0)
        return ((a * w / 2.0) ** 2 - 0.375 * a * a - s * s) / a

    @property
    def transforms(self) -> bool:
        return True

    @property
    def tau(self) -> float:
        """The (approximately) white level in model space: 2 / (f(1) - f(0))."""
        return 2.0 / (self._f1 - self._f0)

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """Exact Poisson draws and read noise, each sample's a function of (noise_seed, i)."""
        u = (np.asarray(x, dtype=np.float64) + 1.0) / 2.0
        if (u < 0).any():
            raise DataError(
                "data.source: poisson-gaussian noise needs intensities >= 0 (values >= -1); "
                f"min {x.min():.3g}"
            )
        photons = np.empty_like(u)
        for j, i in enumerate(np.asarray(index, dtype=np.int64)):
            rng = np.random.default_rng([noise_seed, 0x9E37, int(i)])
            photons[j] = rng.poisson(u[j] / self.gain)
        eta = keyed_randn(
            torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64),
            tuple(x.shape[1:]),
            stream=stream_id("data-noise", noise_seed),
            dtype=torch.float64,
        ).numpy()
        y_u = self.gain * photons + self.read_noise * eta
        return (2.0 * y_u - 1.0).astype(np.float32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        f = self.anscombe((np.asarray(x, dtype=np.float64) + 1.0) / 2.0)
        return (2.0 * (f - self._f0) / (self._f1 - self._f0) - 1.0).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        w = (np.asarray(z, dtype=np.float64) + 1.0) * (self._f1 - self._f0) / 2.0 + self._f0
        return (2.0 * self.inverse_anscombe(w) - 1.0).astype(np.float32)

    def check(
        self,
        clean: np.ndarray | None,
        noisy: np.ndarray | None,
        keys: tuple[str, str] = ("data.clean", "data.noisy"),
    ) -> None:
        low = value_range(clean)[0] if clean is not None and len(clean) else 0.0
        if low < -1.0 - 1e-6:
            raise DataError(
                f"{keys[0]} has negative intensities (values below -1, the zero of the "
                f"[-1, 1] scale; min {low:.3g}); poisson-gaussian noise "
                "needs intensities u = (x + 1) / 2 >= 0"
            )

    def spec(self) -> dict[str, Any]:
        return {"noise": self.name, "gain": self.gain, "read_noise": self.read_noise}

    def describe(self) -> str:
        return f"photon noise, {self.photons:.3g} photons at full scale, read {self.read_noise:g}"

    @classmethod
    def example(cls, shape: tuple[int, ...], n: int) -> PoissonGaussian:
        return cls(0.02, 0.01)
