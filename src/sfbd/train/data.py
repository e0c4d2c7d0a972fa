"""What the training loop draws its batches from: a :class:`TrainingSet`.

The loop asks a training set for nothing but

* ``draw(generator, n)``: a batch (n, *) on the training device, drawn with ``generator``
  (the stage's one generator, so a seeded stage is reproducible);
* ``hook(step)``: called before step ``step`` of the stage whenever ``step % hook_every == 0``
  (``hook_every`` 0: never); Online SFBD refreshes its bank here;
* ``state()`` / ``load_state(tensors)``: what a step or stage checkpoint must hold to resume
  the set exactly (empty for a fixed array);
* ``population()``: every sample with its weight in the draw (unnormalised: proportional to
  its probability of being drawn), for models that are refitted rather than trained (the
  analytic Gaussian);
* ``denoised()``: the denoised samples the set holds now (E_k or the bank), for metrics.

:class:`IndexedTrainingSet` is a fixed sample array drawn uniformly, what SFBD's stages and
the baselines train on: E_k and the clean set are drawn by index across the sources
(:class:`~sfbd.io.arrays.Stacked`), never concatenated, and on the CPU each batch is read
from the memory-mapped files as it is drawn. :class:`ArrayTrainingSet` is the same draw over one
tensor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from sfbd.io.arrays import SampleArray, chunks, gather


class TrainingSet(ABC):
    """The data of one training stage (see the module docstring)."""

    hook_every: int = 0
    #: the rows of each drawn batch this process trains on (set by the training loop under
    #: DDP); a set may leave the other rows zero instead of reading them
    rows: range | None = None

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
        """All samples (P, *) and their draw weights (P,), unnormalised (proportional to the
        probability of each being drawn; the refit normalises them), None for uniform."""

    def denoised(self) -> SampleArray | None:
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


RESIDENT_FRACTION = 0.5  # at most this share of free GPU memory holds a training set


class IndexedTrainingSet(TrainingSet):
    """A sample array drawn uniformly with replacement: row ``randint(0, N, (n,))`` of it.

    The indices come from the stage's generator on the training device, exactly as
    :class:`ArrayTrainingSet` draws them, so both give the same batches. On a CUDA device the
    array is copied to GPU memory once (chunk by chunk) when it fits in
    :data:`RESIDENT_FRACTION` of the free memory; otherwise, and always on the CPU, each batch
    is gathered from the (memory-mapped) array and moved to the device, so host memory does
    not grow with N.

    Args:
        data: (N, *) sample array (:mod:`sfbd.io.arrays`), in the model space.
        device: the training device.
        denoised: the denoised part of ``data`` (for metrics), if any.
        resident: copy ``data`` to the device (None: decide as above).
    """

    def __init__(
        self,
        data: SampleArray,
        device: torch.device,
        denoised: SampleArray | None = None,
        resident: bool | None = None,
    ) -> None:
        if len(data) < 1:
            raise ValueError("a training set needs at least one sample")
        self.data, self.device, self._denoised = data, torch.device(device), denoised
        if resident is None:
            resident = self.device.type == "cuda" and _fits_on_gpu(data, self.device)
        self.tensor: torch.Tensor | None = _to_device(data, self.device) if resident else None

    def __len__(self) -> int:
        return len(self.data)

    def draw(self, generator: torch.Generator, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self), (n,), generator=generator, device=self.device)
        if self.tensor is not None:
            return self.tensor[idx]
        if self.rows is None or (self.rows.start, self.rows.stop) == (0, n):
            return torch.from_numpy(gather(self.data, idx.cpu().numpy())).to(self.device)
        # under DDP read only this process's rows of the global batch; the others stay zero
        # (the loop never uses them, and the loss's random draws depend only on the shape)
        mine = slice(self.rows.start, self.rows.stop)
        out = torch.zeros((n, *self.data.shape[1:]), dtype=torch.float32)
        out[mine] = torch.from_numpy(gather(self.data, idx[mine].cpu().numpy()))
        return out.to(self.device)

    def population(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.tensor is not None:
            return self.tensor, None
        return torch.as_tensor(np.array(self.data, dtype=np.float32), device=self.device), None

    def denoised(self) -> SampleArray | None:
        return self._denoised


def _fits_on_gpu(data: SampleArray, device: torch.device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return data.nbytes <= RESIDENT_FRACTION * free


def _to_device(data: SampleArray, device: torch.device) -> torch.Tensor:
    """The whole array on ``device``, copied a chunk at a time (host memory stays small)."""
    out = torch.empty(tuple(data.shape), dtype=torch.float32, device=device)
    for start, x in chunks(data):
        out[start : start + len(x)] = torch.from_numpy(x).to(device)
    return out
