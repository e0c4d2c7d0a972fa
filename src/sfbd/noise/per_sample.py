"""White Gaussian noise with a known level per sample: y_i = x_i + sigma_i * eps_i.

Sample i lies on EDM's variance-exploding forward process at its own level sigma_i, so its
backward sampling is the reverse diffusion started at x(sigma_i) = y_i: the schedule truncated
at sigma_i, row by row (:func:`~sfbd.diffusion.sample.backward_sample_rows`). Everything else
in SFBD is unchanged (PAPER.md, "Noise models beyond one white level", 1).

Levels come from a user's ``.npy`` file of N levels, in the order of ``data.noisy``, or, in
benchmark mode, from ``data.sigma_range: [lo, hi]``: sigma_i log-uniform on [lo, hi], a
function of (noise_seed, source index i) only, like the noise itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sfbd.diffusion.precond import Denoiser
from sfbd.diffusion.sample import backward_sample_rows, evaluations
from sfbd.diffusion.schedule import truncate_rows
from sfbd.errors import ConfigError, DataError
from sfbd.io.arrays import read_npy
from sfbd.noise.base import NOISE_MODELS, Corruption
from sfbd.rng import keyed_randn, stream_id

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig


@dataclass
class PerSampleKeys:
    """The ``data.*`` keys of per-sample levels (besides ``data.sigma`` as a .npy path)."""

    sigma_range: list[float] | None = None  # benchmark mode: [lo, hi], log-uniform per sample


def check_levels(
    levels: np.ndarray,
    n: int | None,
    what: str,
    rows: tuple[str, str] = ("noisy samples", "data.noisy"),
) -> np.ndarray:
    """Levels as float64 (N,), refused unless 1-D, of length ``n`` (when given), finite, > 0;
    ``rows`` names what they belong to and whose order they follow, for the messages."""
    levels = np.asarray(levels, dtype=np.float64)
    if levels.ndim != 1:
        raise DataError(f"{what} must hold a 1-D array of levels, got shape {levels.shape}")
    if n is not None and len(levels) != n:
        raise DataError(
            f"{what} holds {len(levels)} levels but there are {n} {rows[0]}; it needs one "
            f"level per row, in the order of {rows[1]}"
        )
    bad = ~(np.isfinite(levels) & (levels > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what}: every level must be a finite number > 0, but {int(bad.sum())} are not "
            f"(the first: index {i}, value {levels[i]})"
        )
    return levels


def log_uniform_levels(index: np.ndarray, lo: float, hi: float, noise_seed: int) -> np.ndarray:
    """sigma_i = lo * (hi / lo)^u_i, u_i ~ U(0, 1) a function of (noise_seed, index[i]) only."""
    z = keyed_randn(
        torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64),
        (),
        stream=stream_id("noise-levels", noise_seed),
        dtype=torch.float64,
    )
    u = torch.special.ndtr(z).numpy()  # the normal's CDF of a normal draw: U(0, 1)
    return lo * (hi / lo) ** u


@NOISE_MODELS.register("per-sample")
class PerSampleGaussian(Corruption):
    """White Gaussian noise, sample i at its own known level ``sigma[i]`` (data scale).

    Args:
        sigma: (N,) levels, one per noisy sample in index order (the keys of :meth:`backward`).
        source: where they came from (a path or 'sigma_range [lo, hi]'), for the record.
    """

    name = "per-sample"
    Keys = PerSampleKeys
    arguments = {
        "sigma": "their noise level tau, or a .npy of one level per input "
        "(default: the run's noise)"
    }
    for_inputs = False  # the run's levels belong to its own noisy set

    @classmethod
    def claims(cls, data: DataConfig) -> list[str]:
        keys = ["data.sigma"] if isinstance(data.sigma, str) else []
        return keys + (["data.sigma_range"] if data.sigma_range is not None else [])

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        d = cfg.data
        if d.sigma_range is not None:
            if d.sigma is not None:
                raise ConfigError(
                    "data.sigma is given together with data.sigma_range, which describes the "
                    "noise instead; set data.sigma: null"
                )
            r = d.sigma_range
            if not (len(r) == 2 and all(math.isfinite(v) for v in r) and 0 < r[0] <= r[1]):
                raise ConfigError(f"data.sigma_range must be [lo, hi] with 0 < lo <= hi, got {r}")
            if d.source is None:
                raise ConfigError(
                    "data.sigma_range draws levels in benchmark mode (data.source); in user "
                    "mode give data.sigma as the path of a .npy of the N per-sample levels"
                )
            return
        if not isinstance(d.sigma, str):
            raise ConfigError(
                "per-sample noise needs data.sigma as a .npy of levels (user mode) or "
                "data.sigma_range: [lo, hi] (benchmark mode)"
            )
        if d.sigma.strip() == "":
            raise ConfigError("data.sigma is an empty string; give a level or a path")
        if d.source is not None:
            raise ConfigError(
                "data.sigma as a file of per-sample levels is for user mode (data.noisy); in "
                "benchmark mode draw them with data.sigma_range: [lo, hi] and data.sigma: null"
            )

    @classmethod
    def from_config(
        cls, cfg: Config, index: np.ndarray | None = None, n: int | None = None
    ) -> PerSampleGaussian:
        d = cfg.data
        if d.sigma_range is not None:
            assert index is not None, "validate() allows data.sigma_range in benchmark mode only"
            lo, hi = d.sigma_range
            levels = log_uniform_levels(index, lo, hi, d.noise_seed)
            return cls(levels, source=f"sigma_range [{lo:g}, {hi:g}]")
        assert isinstance(d.sigma, str)
        levels = check_levels(read_npy(d.sigma, "data.sigma"), n, f"data.sigma file {d.sigma!r}")
        return cls(levels, source=d.sigma)

    @classmethod
    def describe_config(cls, data: DataConfig) -> str:
        if data.sigma_range is not None:
            lo, hi = data.sigma_range
            return f"white Gaussian, a level per sample, log-uniform on [{lo:g}, {hi:g}]"
        return f"white Gaussian, a level per sample from {data.sigma}"

    @classmethod
    def from_arguments(
        cls, args: dict[str, Any], *, n: int | None, seed: int
    ) -> PerSampleGaussian | None:
        """``sigma`` an array of ``n`` levels or the path of a .npy of them."""
        sigma = args["sigma"]
        if isinstance(sigma, str | Path):
            if not str(sigma).endswith(".npy"):
                return None
            levels = read_npy(str(sigma), "--sigma")
        elif np.ndim(sigma) > 0:
            levels = np.asarray(sigma, dtype=np.float64)
        else:
            return None
        return cls(check_levels(levels, n, "--sigma", ("inputs", "--input")), source="--sigma")

    def __init__(self, sigma: np.ndarray | list[float], source: str = "given") -> None:
        self.sigma = check_levels(np.asarray(sigma), None, "the noise levels")
        self.source = source

    def _levels(self, keys: torch.Tensor | np.ndarray) -> np.ndarray:
        index = np.asarray(keys.cpu() if isinstance(keys, torch.Tensor) else keys, np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self.sigma)):
            raise DataError(
                f"noisy sample index {int(index.max())} has no level: "
                f"{len(self.sigma)} levels are known"
            )
        return self.sigma[index]

    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """x_i + sigma_i * eps_i; eps_i keyed as white noise's (the same noise stream).

        Rows of x are in the order of the levels (x[j] has level sigma[j]); ``index`` are
        their source indices, which key the noise."""
        if len(x) != len(self.sigma):
            raise DataError(f"{len(x)} samples to corrupt but {len(self.sigma)} levels")
        eps = keyed_randn(
            torch.as_tensor(np.ascontiguousarray(index), dtype=torch.int64),
            tuple(x.shape[1:]),
            stream=stream_id("data-noise", noise_seed),
        ).numpy()
        tau = self.sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return (x + tau * eps).astype(np.float32)

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
        taus = torch.as_tensor(self._levels(keys), device=grid.device)
        return backward_sample_rows(
            denoiser, y, taus, grid, keys=keys, stream=stream, sampler=sampler
        )

    def evaluations(self, sampler: str, grid: torch.Tensor, index: np.ndarray) -> int:
        taus = torch.as_tensor(self._levels(index))
        if not len(taus):
            return 0
        return sum(
            len(rows) * evaluations(sampler, sigmas[0])
            for rows, sigmas in truncate_rows(grid, taus)
        )

    def spec(self) -> dict[str, Any]:
        return {"noise": self.name, "sigma": self.sigma.tolist(), "source": self.source}

    def describe(self) -> str:
        lo, hi = float(self.sigma.min()), float(self.sigma.max())
        return f"sigma {lo:.3g}..{hi:.3g} per sample"

    def white_levels(self, index: np.ndarray) -> np.ndarray:
        return self._levels(np.asarray(index, dtype=np.int64)).astype(np.float64)

    def subset(self, rows: np.ndarray) -> PerSampleGaussian:
        return PerSampleGaussian(self.sigma[np.asarray(rows, dtype=np.int64)], self.source)

    @classmethod
    def example(cls, shape: tuple[int, ...], n: int) -> PerSampleGaussian:
        return cls(np.geomspace(0.1, 1.0, n))
