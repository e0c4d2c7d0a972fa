"""What the training loop draws its batches from: a :class:`TrainingSet`.

The loop asks a training set for nothing but

* ``draw(generator, n)``: a batch (n, *) on the training device, drawn with ``generator``
  (the stage's one generator, so a seeded stage is reproducible);
* ``hook(step)``: called before step ``step`` of the stage whenever ``step % hook_every == 0``
  (``hook_every`` 0: never); Online SFBD refreshes its bank here;
* ``state()`` / ``load_state(tensors)``: what a step or stage checkpoint must hold to resume
  the set exactly (empty for a fixed array);
* ``population()``: every sample with its probability of being drawn, for models that are
  refitted rather than trained (the analytic Gaussian);
* ``denoised()``: the denoised samples the set holds now (E_k or the bank), for metrics.

:class:`ArrayTrainingSet` is a fixed array drawn uniformly, what SFBD's stages and the
baselines train on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch


class TrainingSet(ABC):
    """The data of one training stage (see the module docstring)."""

    hook_every: int = 0

    @abstractmethod
    def draw(self, generator: torch.Generator, n: int) -> torch.Tensor:
        """A batch (n, *) drawn with ``generator``."""

    def hook(self, step: int) -> None:
        """Called before step ``step`` when ``hook_every`` > 0 and ``step % hook_every == 0``."""
        return None

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors that restore the set with :meth:`load_state` (checkpointed)."""
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state` returned."""
        return None

    @abstractmethod
    def population(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All samples (P, *) and their draw probabilities (P,), None for uniform."""

    def denoised(self) -> np.ndarray | None:
        """The denoised samples the set holds now (N, *), None if it holds none."""
        return None


class ArrayTrainingSet(TrainingSet):
    """A fixed array, drawn uniformly with replacement: ``data[randint(0, N, (n,))]``.

    Args:
        data: (N, *) samples on the training device.
        denoised: the denoised part of ``data`` (for metrics), if any.
    """

    def __init__(self, data: torch.Tensor, denoised: np.ndarray | None = None) -> None:
        if data.shape[0] < 1:
            raise ValueError("a training set needs at least one sample")
        self.data = data
        self._denoised = denoised

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def draw(self, generator: torch.Generator, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self), (n,), generator=generator, device=self.data.device)
        return self.data[idx]

    def population(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.data, None

    def denoised(self) -> np.ndarray | None:
        return self._denoised
