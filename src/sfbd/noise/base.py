"""The noise-model interface: how the noisy data was made, and how to undo it by sampling.

A :class:`Corruption` is everything sfbd knows about the noise of ``data.noisy``:

* ``corrupt(x, index, noise_seed)``: benchmark mode's forward model, with the noise of sample i
  a function of (noise_seed, i) only, so the noisy set is a fixed finite dataset;
* ``backward(denoiser, y, keys, grid, sampler=..., stream=...)``: SFBD's backward sampling of
  noisy samples y (B, *), i.e. draws of p(x_0 | y) under the current model;
* ``evaluations(sampler, grid)``: denoiser calls per sample of one backward pass (the work
  the pipeline records);
* ``spec()`` / :func:`from_spec`: the plain-JSON record kept in checkpoints and the run log.

Implementations register themselves in :data:`NOISE_MODELS` (one file each, see
:mod:`sfbd.noise.white`). References: Lu, Wu, Yu 2025 (SFBD), Sec. 3; PAPER.md, "Noise models".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from sfbd.diffusion.precond import Denoiser
from sfbd.registry import Registry


class Corruption(ABC):
    """A known noise model of the noisy samples (see the module docstring)."""

    name: ClassVar[str]  # the key of NOISE_MODELS and of spec()['noise']

    @abstractmethod
    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """Noisy copies (N, *) float32 of clean samples x (N, *); noise keyed by ``index``."""

    @abstractmethod
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
        """Backward-sample noisy y (B, *) to x_0 (B, *); injected noise keyed by keys (B,)."""

    @abstractmethod
    def evaluations(self, sampler: str, grid: torch.Tensor) -> int:
        """Denoiser calls per sample of one :meth:`backward` pass on the schedule ``grid``."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Plain-JSON description, ``{'noise': name, ...}``, that :func:`from_spec` inverts."""

    @abstractmethod
    def describe(self) -> str:
        """A few words for messages and figure titles, e.g. 'sigma 0.35'."""

    @classmethod
    @abstractmethod
    def example(cls, shape: tuple[int, ...]) -> Corruption:
        """A typical instance for samples of ``shape``: what the contract tests run."""


NOISE_MODELS: Registry[type[Corruption]] = Registry("noise model")


def from_spec(spec: dict[str, Any]) -> Corruption:
    """Rebuild a corruption from :meth:`Corruption.spec`; a spec without 'noise' (a 0.4
    checkpoint, which recorded only 'sigma') is white noise."""
    spec = dict(spec)
    name = spec.pop("noise", "white")
    return NOISE_MODELS[name](**spec)
