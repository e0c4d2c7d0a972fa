"""What the training loop draws its batches from: a :class:`TrainingSet`.

The loop asks a training set for nothing but

* ``draw(generator, n)``: a batch (n, *) on the training device, drawn with ``generator``
  (the stage's one generator, so a seeded stage is reproducible);
* ``draw_levels(generator, n)``: the same batch with each row's white noise level tau_i
  (n,) float64 (0: a clean row), or None when every row is clean; what the ambient loss
  (:class:`~sfbd.diffusion.loss.AmbientLoss`) needs. By default ``draw`` and None, so a set
  without levels draws exactly what it always drew;
* ``hook(step)``: called before step ``step`` of the stage whenever ``step % hook_every == 0``
  (``hook_every`` 0: never); Online SFBD refreshes its bank here;
* ``state()`` / ``load_state(tensors)``: what a step or stage checkpoint must hold to resume
  the set exactly (empty for a fixed array);
* ``population()``: every sample with its weight in the draw (unnormalised: proportional to
  its probability of being drawn), for models that are refitted rather than trained (the
  analytic Gaussian);
* ``denoised()``: the denoised samples the set holds now (E_k or the bank), for metrics.

:class:`IndexedTrainingSet` is a fixed sample array drawn uniformly, what SFBD's stages and
the baselines train on (with optional per-row levels, drawn with the same indices, for the
ambient mixture of clean and noisy rows): E_k and the clean set are drawn by index across
the sources (:class:`~sfbd.io.arrays.Stacked`), never concatenated, and on the CPU each batch
is read from the memory-mapped files as it is drawn. :class:`ArrayTrainingSet` is the same draw
over one tensor.
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

    def draw_levels(
        self, generator: torch.Generator, n: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch (n, *) and its rows' white noise levels (n,) float64 on the batch's device
        (0: clean), or None when the set has no noisy rows (default: :meth:`draw`, None)."""
        return self.draw(generator, n), None

    @property
    def has_levels(self) -> bool:
        """Whether :meth:`draw_levels` gives levels (some rows are noisy)."""
        return False

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
        levels: (N,) the white noise level of each row of ``data`` in the model space (0: a
            clean row), drawn with the same indices by :meth:`draw_levels`; None: all clean.
    """

    def __init__(
        self,
        data: SampleArray,
        device: torch.device,
        denoised: SampleArray | None = None,
        resident: bool | None = None,
        levels: np.ndarray | None = None,
    ) -> None:
        if len(data) < 1:
            raise ValueError("a training set needs at least one sample")
        self.data, self.device, self._denoised = data, torch.device(device), denoised
        if resident is None:
            resident = self.device.type == "cuda" and _fits_on_gpu(data, self.device)
        self.tensor: torch.Tensor | None = _to_device(data, self.device) if resident else None
        self.levels: torch.Tensor | None = None
        if levels is not None:
            levels = np.asarray(levels, dtype=np.float64)
            if levels.shape != (len(data),) or not (np.isfinite(levels) & (levels >= 0)).all():
                raise ValueError(f"levels must be {len(data)} finite numbers >= 0, one per row")
            self.levels = torch.as_tensor(levels, device=self.device)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def has_levels(self) -> bool:
        return self.levels is not None

    def draw(self, generator: torch.Generator, n: int) -> torch.Tensor:
        return self._rows(self._index(generator, n), n)

    def draw_levels(
        self, generator: torch.Generator, n: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = self._index(generator, n)  # every rank reads every row's level (DDP)
        return self._rows(idx, n), (None if self.levels is None else self.levels[idx])

    def _index(self, generator: torch.Generator, n: int) -> torch.Tensor:
        return torch.randint(0, len(self), (n,), generator=generator, device=self.device)

    def _rows(self, idx: torch.Tensor, n: int) -> torch.Tensor:
        """Rows ``idx`` (n,) of the data on the device (under DDP only this rank's)."""
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
