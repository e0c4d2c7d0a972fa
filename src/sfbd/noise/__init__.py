"""Noise models (:class:`Corruption`), one file each, registered in :data:`NOISE_MODELS`.

* ``white``: one known level for every sample (:mod:`sfbd.noise.white`);
* ``per-sample``: a known level per sample (:mod:`sfbd.noise.per_sample`);
* ``coloured``: Gaussian noise of known covariance or spectrum (:mod:`sfbd.noise.coloured`);
* ``poisson-gaussian``: photon noise, via the Anscombe transform (:mod:`sfbd.noise.photon`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sfbd.errors import DataError
from sfbd.noise.base import NOISE_MODELS, Corruption, from_spec
from sfbd.noise.coloured import ColouredGaussian
from sfbd.noise.per_sample import PerSampleGaussian, check_levels, log_uniform_levels
from sfbd.noise.photon import PoissonGaussian
from sfbd.noise.white import WhiteGaussian

if TYPE_CHECKING:
    from sfbd.schema import Config

__all__ = [
    "NOISE_MODELS",
    "ColouredGaussian",
    "Corruption",
    "PerSampleGaussian",
    "PoissonGaussian",
    "WhiteGaussian",
    "describe_config",
    "from_config",
    "from_spec",
    "read_npy",
]


def read_npy(path: str, key: str) -> np.ndarray:
    """A small .npy array (levels, a covariance) as float64; a one-line error naming ``key``."""
    p = Path(path).expanduser()
    if p.suffix != ".npy":
        raise DataError(f"{key} must name a .npy file, got {path!r}")
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{key}: file {path!r} not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{key}: cannot read {path!r} as a .npy array ({exc})") from None
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{key}: {path!r} holds {arr.dtype} values, not real numbers")
    return np.asarray(arr, dtype=np.float64)


def from_config(cfg: Config, index: np.ndarray | None = None, n: int | None = None) -> Corruption:
    """The noise model of a run's noisy data, from the ``data.*`` keys.

    Args:
        cfg: the run's configuration (validated).
        index: benchmark mode: source indices of the noisy samples (keys ``data.sigma_range``'s
            per-sample levels).
        n: user mode: the number of noisy samples (a levels file must hold that many).
    """
    d = cfg.data
    if d.noise == "poisson-gaussian":
        assert d.gain is not None  # validate() requires it
        return PoissonGaussian(d.gain, d.read_noise)
    if d.noise_cov is not None:
        return ColouredGaussian(
            read_npy(d.noise_cov, "data.noise_cov"), d.noise_method, d.noise_seed
        )
    if d.sigma_range is not None:
        assert index is not None, "validate() allows data.sigma_range in benchmark mode only"
        lo, hi = d.sigma_range
        levels = log_uniform_levels(index, lo, hi, d.noise_seed)
        return PerSampleGaussian(levels, source=f"sigma_range [{lo:g}, {hi:g}]")
    if isinstance(d.sigma, str):
        levels = check_levels(read_npy(d.sigma, "data.sigma"), n, f"data.sigma file {d.sigma!r}")
        return PerSampleGaussian(levels, source=d.sigma)
    assert d.sigma is not None
    return WhiteGaussian(d.sigma)


def describe_config(cfg: Config) -> str:
    """The noise model the ``data.*`` keys describe, in a few words (reads no file)."""
    d = cfg.data
    if d.noise == "poisson-gaussian":
        assert d.gain is not None
        return (
            f"poisson-gaussian, gain {d.gain:g} ({1 / d.gain:.3g} photons at full scale), "
            f"read noise {d.read_noise:g}"
        )
    if d.noise_cov is not None:
        return f"coloured Gaussian, covariance {d.noise_cov}, {d.noise_method}"
    if d.sigma_range is not None:
        lo, hi = d.sigma_range
        return f"white Gaussian, a level per sample, log-uniform on [{lo:g}, {hi:g}]"
    if isinstance(d.sigma, str):
        return f"white Gaussian, a level per sample from {d.sigma}"
    return f"white Gaussian, sigma {d.sigma:g}"
