"""White Gaussian noise at one known level tau: y = x + tau * eps, eps ~ N(0, I).

The noisy sample lies exactly on EDM's variance-exploding forward process at sigma = tau, so
backward sampling is the reverse diffusion started at x(tau) = y: the schedule truncated at tau
(:func:`~sfbd.diffusion.schedule.truncate_sigmas`), run by any registered sampler. With the
reverse SDE it draws from the posterior p(x_0 | x_tau = y) (Lu, Wu, Yu 2025, Sec. 3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sfbd.noise.base import NOISE_MODELS, WhiteInModelSpace
from sfbd.rng import keyed_randn, stream_id


@NOISE_MODELS.register("white")
class WhiteGaussian(WhiteInModelSpace):
    """Additive white Gaussian noise of standard deviation ``sigma`` (tau), in the data scale."""

    name = "white"

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
