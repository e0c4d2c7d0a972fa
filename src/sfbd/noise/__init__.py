"""Noise models (:class:`Corruption`), one file each, registered in :data:`NOISE_MODELS`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfbd.noise.base import NOISE_MODELS, Corruption, from_spec
from sfbd.noise.white import WhiteGaussian

if TYPE_CHECKING:
    from sfbd.schema import Config

__all__ = ["NOISE_MODELS", "Corruption", "WhiteGaussian", "from_config", "from_spec"]


def from_config(cfg: Config) -> Corruption:
    """The noise model of a run's noisy data (today: white noise at ``data.sigma``)."""
    return WhiteGaussian(cfg.data.sigma)
