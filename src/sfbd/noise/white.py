"""White Gaussian noise at one known level tau: y = x + tau * eps, eps ~ N(0, I).

The noisy sample lies exactly on EDM's variance-exploding forward process at sigma = tau, so
backward sampling is the reverse diffusion started at x(tau) = y: the schedule truncated at tau
(:func:`~sfbd.diffusion.schedule.truncate_sigmas`), run by any registered sampler. With the
reverse SDE it draws from the posterior p(x_0 | x_tau = y) (Lu, Wu, Yu 2025, Sec. 3).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sfbd.errors import ConfigError, SfbdError
from sfbd.noise.base import NOISE_MODELS, WhiteInModelSpace
from sfbd.rng import keyed_randn, stream_id

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig


@NOISE_MODELS.register("white")
class WhiteGaussian(WhiteInModelSpace):
    """Additive white Gaussian noise of standard deviation ``sigma`` (tau), in the data scale."""

    name = "white"
    arguments = {
        "sigma": "their noise level tau, or a .npy of one level per input "
        "(default: the run's noise)"
    }

    @classmethod
    def claims(cls, data: DataConfig) -> list[str]:
        return ["data.sigma"] if isinstance(data.sigma, float) else []

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        sigma = cfg.data.sigma
        if not isinstance(sigma, float) or not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"data.sigma must be a positive number (the noise std), got {sigma}")

    @classmethod
    def from_config(
        cls, cfg: Config, index: np.ndarray | None = None, n: int | None = None
    ) -> WhiteGaussian:
        assert isinstance(cfg.data.sigma, float)
        return cls(cfg.data.sigma)

    @classmethod
    def describe_config(cls, data: DataConfig) -> str:
        assert isinstance(data.sigma, float)
        return f"white Gaussian, sigma {data.sigma:g}"

    @classmethod
    def from_arguments(
        cls, args: dict[str, Any], *, n: int | None, seed: int
    ) -> WhiteGaussian | None:
        """``sigma`` one number (or its text); an array or a .npy path is per-sample's."""
        sigma = args["sigma"]
        if isinstance(sigma, str | Path):
            if str(sigma).endswith(".npy"):
                return None
            try:
                sigma = float(sigma)
            except ValueError:
                raise SfbdError(
                    f"--sigma must be a positive number (the noise std) or a .npy of "
                    f"per-input levels, got {sigma!r}"
                ) from None
        elif np.ndim(sigma) > 0:
            return None
        try:
            tau = float(sigma)
        except (TypeError, ValueError):
            tau = math.nan
        if not (math.isfinite(tau) and tau > 0):
            raise SfbdError(f"--sigma must be a positive number (the noise std), got {sigma}")
        return cls(tau)

    def __init__(self, sigma: float) -> None:
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"the noise level must be a positive number, got {sigma}")
        self.sigma = float(sigma)

    @property
    def tau(self) -> float:
        return self.sigma

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """x + tau * eps_i, eps_i a function of (noise_seed, index[i]) only."""
        eps = keyed_randn(
            torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64),
            tuple(x.shape[1:]),
            stream=stream_id("data-noise", noise_seed),
        ).numpy()
        return (x + self.sigma * eps).astype(np.float32)

    def spec(self) -> dict[str, Any]:
        return {"noise": self.name, "sigma": self.sigma}

    def describe(self) -> str:
        return f"sigma {self.sigma:g}"

    @classmethod
    def example(cls, shape: tuple[int, ...], n: int) -> WhiteGaussian:
        return cls(0.5)
