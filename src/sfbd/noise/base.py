"""The noise-model interface: how the noisy data was made, and how to undo it by sampling.

A :class:`Corruption` is everything sfbd knows about the noise of ``data.noisy``:

* ``corrupt(x, index, noise_seed)``: benchmark mode's forward model, with the noise of sample i
  a function of (noise_seed, i) only, so the noisy set is a fixed finite dataset;
* ``encode(x)``, ``encode_noisy(y, index)`` and ``decode(z)``: the *model space*. Some noise
  models reduce exactly (or approximately) to white noise after a fixed invertible map T of the
  data: whitening z = c W x for coloured noise, the Anscombe transform for photon noise. The
  denoiser then learns the distribution of z = T(x); its noisy copies are
  ``encode_noisy(y)`` = z + tau * eps, and its samples map back through ``decode`` = T^-1.
  For white noise and per-sample levels all three are the identity;
* ``backward(denoiser, z_noisy, keys, grid, sampler=..., stream=...)``: SFBD's backward
  sampling of encoded noisy samples (B, *), i.e. draws of p(z_0 | y) under the current model;
* ``evaluations(sampler, grid, index)``: denoiser calls of one backward pass over the rows
  ``index`` (the work the pipeline records);
* ``check(clean, noisy)``: refuse data the model cannot describe (e.g. negative intensities);
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
from sfbd.diffusion.sample import backward_sample, evaluations
from sfbd.diffusion.schedule import truncate_sigmas
from sfbd.registry import Registry


class Corruption(ABC):
    """A known noise model of the noisy samples (see the module docstring)."""

    name: ClassVar[str]  # the key of NOISE_MODELS and of spec()['noise']

    @abstractmethod
    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """Noisy copies (N, *) float32 of clean samples x (N, *); noise keyed by ``index``."""

    @property
    def transforms(self) -> bool:
        """Whether the model space differs from the data's (encode/decode not the identity)."""
        return False

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Clean samples (N, *) in the data's scale -> model space (default: the identity)."""
        return x

    def encode_noisy(self, y: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Noisy samples (N, *) as stored (rows keyed by ``index``) -> what :meth:`backward`
        takes: model-space samples at white noise (default: :meth:`encode`)."""
        return self.encode(y)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Model-space samples (N, *) -> the data's scale (default: the identity)."""
        return z

    def check(  # noqa: B027
        self,
        clean: np.ndarray | None,
        noisy: np.ndarray | None,
        keys: tuple[str, str] = ("data.clean", "data.noisy"),
    ) -> None:
        """Raise :class:`~sfbd.errors.DataError` for data this model cannot describe; ``keys``
        name the clean and noisy samples in its message (config keys or flags)."""

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
    def evaluations(self, sampler: str, grid: torch.Tensor, index: np.ndarray) -> int:
        """Denoiser calls of one :meth:`backward` pass over the rows ``index`` (keys) on the
        schedule ``grid``, summed over the rows."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Plain-JSON description, ``{'noise': name, ...}``, that :func:`from_spec` inverts."""

    @abstractmethod
    def describe(self) -> str:
        """A few words for messages and figure titles, e.g. 'sigma 0.35'."""

    def subset(self, rows: np.ndarray) -> Corruption:
        """The noise model of the noisy samples ``rows`` alone, renumbered 0..len(rows)-1
        (default: the same model; per-sample levels are taken along)."""
        return self

    @classmethod
    @abstractmethod
    def example(cls, shape: tuple[int, ...], n: int) -> Corruption:
        """A typical instance for n noisy samples of ``shape``: what the contract tests run."""


class WhiteInModelSpace(Corruption):
    """A noise model whose model-space noise is white at one level :attr:`tau`: backward
    sampling is the reverse diffusion from x(tau) = y, the schedule truncated at tau (white
    noise itself, whitened or topped-up coloured noise, Anscombe-transformed photon noise)."""

    @property
    @abstractmethod
    def tau(self) -> float:
        """The white noise level in model space."""

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
        return backward_sample(
            denoiser, y, self.tau, grid, keys=keys, stream=stream, sampler=sampler
        )

    def evaluations(self, sampler: str, grid: torch.Tensor, index: np.ndarray) -> int:
        return len(index) * evaluations(sampler, truncate_sigmas(grid, self.tau))


NOISE_MODELS: Registry[type[Corruption]] = Registry("noise model")


def from_spec(spec: dict[str, Any]) -> Corruption:
    """Rebuild a corruption from :meth:`Corruption.spec`; a spec without 'noise' (a 0.4
    checkpoint, which recorded only 'sigma') is white noise."""
    spec = dict(spec)
    name = spec.pop("noise", "white")
    return NOISE_MODELS[name](**spec)
