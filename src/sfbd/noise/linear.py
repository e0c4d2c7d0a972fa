"""Known linear corruptions y = A x + sigma * eps: what masks and blur share.

A :class:`LinearCorruption` knows its operator A (per row: row i's mask, or one blur kernel for
all) and the level ``sigma`` >= 0 of the white noise added to the observation. Its backward
sampling is a draw of p(x | y) by moment-matching posterior sampling
(:func:`sfbd.diffusion.posterior.posterior_sample`), run from sigma_max with
``sample.cg_steps`` conjugate-gradient steps per denoiser call; the rest of SFBD (pretraining,
"denoise every observation, retrain on clean + E_k", Online SFBD's bank) is unchanged.

Such data has no Gaussian model space (``white_levels`` is None): there is no noisy hold-out
``val_noisy`` and no ambient method for it.

``data.naive: true`` makes the run treat the observations as white-noise data at
``data.sigma`` (:class:`NaiveWhite`): the data is still masked or blurred, but backward
sampling is white noise's truncated start. It is the guess a user without this feature makes,
kept as a baseline (benchmarks/suite/linear.py).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sfbd.diffusion.posterior import LinearOperator, mmps_cost, posterior_sample
from sfbd.diffusion.precond import Denoiser
from sfbd.errors import ConfigError, DataError
from sfbd.noise.base import NOISE_MODELS, Corruption
from sfbd.noise.white import WhiteGaussian
from sfbd.rng import keyed_randn, stream_id

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig


@dataclass
class LinearKeys:
    """The ``data.*`` key every linear corruption shares."""

    naive: bool = False  # mask/blur: treat the observations as white noise at data.sigma
    #                      (the naive guess, a baseline; backward sampling ignores A)


def white_noise(index: np.ndarray, shape: tuple[int, ...], noise_seed: int) -> np.ndarray:
    """The observation noise eps_i (N, *shape), keyed by (noise_seed, index[i]) as white
    noise's (the same stream, so sigma * eps is the noise a white-noise run would add)."""
    return keyed_randn(
        torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64),
        shape,
        stream=stream_id("data-noise", noise_seed),
    ).numpy()


class LinearCorruption(Corruption):
    """y = A x + sigma * eps with A known (see the module docstring).

    Subclasses give :meth:`operator` (the batch's A as a
    :class:`~sfbd.diffusion.posterior.LinearOperator`) and :meth:`observe` (A x in numpy)."""

    shares = ("sigma",)  # data.sigma / the sigma keyword: the observation noise level
    sigma: float
    cg_steps: int

    @classmethod
    def check_keys(cls, data: DataConfig) -> None:
        chosen = dict(NOISE_MODELS.items()).get(data.noise)
        if data.naive and not (isinstance(chosen, type) and issubclass(chosen, LinearCorruption)):
            raise ConfigError(
                "data.naive treats masked or blurred observations as white noise; it needs "
                "data.mask, data.mask_keep, data.blur_kernel or data.blur_sigma (or unset it)"
            )

    @staticmethod
    def check_sigma(cfg: Config, what: str) -> float:
        """``data.sigma`` as the observation noise level: a number >= 0 (> 0 for naive)."""
        s = cfg.data.sigma
        if not isinstance(s, float) or not (math.isfinite(s) and s >= 0):
            raise ConfigError(
                f"data.sigma must be one number >= 0 with {what}: the std of the white noise "
                f"added to every observed value (0: none), got {s!r}"
            )
        if cfg.data.naive and s <= 0:
            raise ConfigError(
                "data.naive treats the observations as white noise at data.sigma, which must "
                "then be > 0"
            )
        return float(s)

    @staticmethod
    def sigma_argument(args: dict[str, Any], own: str) -> float:
        """The ``sigma`` keyword beside ``own`` (the model's flag, e.g. --mask) as the
        observation noise level: one number >= 0, 0 when not given."""
        given = args.get("sigma")
        try:
            sigma = float(given or 0.0)
        except (TypeError, ValueError):
            sigma = math.nan
        if not (math.isfinite(sigma) and sigma >= 0):
            raise DataError(f"--sigma with {own} must be one number >= 0, got {given}")
        return sigma

    def finish(self, cfg: Config) -> Corruption:
        """This model, or its naive white-noise guess when ``data.naive`` is set."""
        return NaiveWhite(self) if cfg.data.naive else self

    @abstractmethod
    def operator(self, keys: torch.Tensor, like: torch.Tensor) -> LinearOperator:
        """A of the rows ``keys`` (B,) of the noisy set, for states shaped like ``like``."""

    @abstractmethod
    def observe(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """A x (N, *) for clean samples x that are the rows ``rows`` of this model."""

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """A x + sigma * eps: rows of x are this model's rows in order (row j: operator j);
        ``index`` are their source indices, which key the noise."""
        ax = self.observe(np.asarray(x, dtype=np.float32), np.arange(len(x)))
        eps = white_noise(index, tuple(x.shape[1:]), noise_seed)
        return (ax + self.sigma * eps).astype(np.float32)

    def backward(
        self,
        denoiser: Denoiser,
        y: torch.Tensor,
        keys: torch.Tensor,
        grid: torch.Tensor,
        *,
        sampler: str,
        stream: int,
    ) -> torch.Tensor:
        """Posterior samples by MMPS from sigma_max (``grid`` whole), keyed by ``keys``."""
        return posterior_sample(
            denoiser,
            self.operator(keys, y),
            y,
            self.sigma**2,
            grid,
            keys=keys,
            stream=stream,
            shape=tuple(y.shape[1:]),
            sampler=sampler,
            cg_steps=self.cg_steps,
        )

    def evaluations(self, sampler: str, grid: torch.Tensor, index: np.ndarray) -> int:
        return len(index) * mmps_cost(sampler, grid, self.cg_steps)[0]

    @property
    def backward_passes(self) -> int:
        """Backward network passes per denoiser call: ``cg_steps`` + 1."""
        return self.cg_steps + 1


class NaiveWhite(WhiteGaussian):
    """A linear corruption's data read as white noise at its ``sigma``: the naive guess.

    The data (:meth:`corrupt`, :meth:`encode_noisy`, :meth:`check`) is the linear model's;
    backward sampling, the record and ``val_noisy`` are white noise's."""

    def __init__(self, inner: LinearCorruption) -> None:
        super().__init__(inner.sigma)
        self.inner = inner

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        return self.inner.corrupt(x, index, noise_seed)

    def encode_noisy(self, y: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self.inner.encode_noisy(y, index)

    def check(
        self,
        clean: np.ndarray | None,
        noisy: np.ndarray | None,
        keys: tuple[str, str] = ("data.clean", "data.noisy"),
    ) -> None:
        self.inner.check(clean, noisy, keys)

    def subset(self, rows: np.ndarray) -> NaiveWhite:
        inner = self.inner.subset(rows)
        assert isinstance(inner, LinearCorruption)
        return NaiveWhite(inner)

    def describe(self) -> str:
        return f"naive: white at sigma {self.sigma:g} for {self.inner.describe()}"
