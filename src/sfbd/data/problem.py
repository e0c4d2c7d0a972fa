"""The learning problem: a clean set, a noisy set and its noise model, and held-out data.

* Benchmark mode starts from one clean source, holds out a reference set, keeps a fraction of
  the rest clean and corrupts the remainder with the run's noise model
  (:class:`~sfbd.noise.base.Corruption`, e.g. x_i + tau * eps_i), the noise of sample i a
  function of (noise_seed, i) only, so the noisy set is a fixed, finite dataset that does not
  depend on the split or on batching (:mod:`sfbd.data.benchmark`).
* User mode takes the noisy and clean arrays and the noise model as given
  (:mod:`sfbd.data.load`, which builds the problem in both modes).

In both modes ``data.pretrain`` may add clean samples of a *similar* distribution (a builtin
name or a path): stage 0 and the clean-only baseline train on them together with the clean
set, SFBD's updates on E_k together with the clean set only. The method decides whether a run
reads them (:meth:`sfbd.methods.base.Method.uses_pretrain`).

No array is held whole: every field is a sample array (:mod:`sfbd.io.arrays`) over the
memory-mapped inputs. Arrays computed from them (the benchmark's noisy set, keyed noise and
all; model-space transforms) are views that compute their rows when read, until a run stores
them once in ``DIR/data/`` and memory-maps them (:mod:`sfbd.data.store`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sfbd.errors import DataError
from sfbd.io.arrays import SampleArray, Samples
from sfbd.noise import Corruption


@dataclass(frozen=True)
class NoisyHoldout:
    """Noisy samples held out of training, for ``val_noisy`` (:mod:`sfbd.metrics.ambient`)."""

    noisy: SampleArray  # (H, *) in the model space, white noise at ``levels``
    levels: np.ndarray  # (H,) their white noise levels in the model space
    index: np.ndarray  # (H,) their rows in the whole noisy set (keys of the extra noise)
    truth: SampleArray | None = None  # (H, *) their clean originals (data space; benchmark)


@dataclass
class Problem:
    """Arrays of one run, float32, shapes (N, *) with the same sample shape.

    The training arrays (clean, noisy, pretrain) are in the noise model's *model space*, where
    the noise is white (the data itself for white and per-sample noise; whitened or
    Anscombe-transformed data otherwise); reference and noisy_truth stay in the data's scale,
    which :meth:`decode` maps model-space samples back to.
    """

    clean: SampleArray  # (M, *) clean samples, in the noise model's model space
    noisy: SampleArray  # (N, *) noisy samples, in model space (corruption.encode_noisy)
    corruption: Corruption  # their noise model
    reference: SampleArray | None = None  # held-out clean samples for metrics (data space)
    noisy_truth: SampleArray | None = None  # clean originals of the noisy samples (data space)
    scale: str = "float"  # 'uint8' or 'float': the data's own scale, for outputs
    pretrain: SampleArray | None = None  # clean samples of a similar distribution
    holdout: NoisyHoldout | None = None  # noisy samples kept out of training (val_noisy)

    @property
    def shape(self) -> tuple[int, ...]:
        ref = self.noisy if len(self.noisy) else self.clean
        return tuple(ref.shape[1:])

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Model-space samples (n, *) in the data's scale (float32)."""
        return self.corruption.decode(z)

    def decoded(self, z: SampleArray) -> SampleArray:
        """A model-space sample array in the data's scale: ``z`` itself when the model space
        is the data's, else a view decoding rows as they are read."""
        if not self.corruption.transforms:
            return z
        return Samples(z, fn=lambda x, pos: self.decode(x))

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def summary(self) -> str:
        parts = [
            f"clean {len(self.clean)}",
            f"noisy {len(self.noisy)} at {self.corruption.describe()}",
        ]
        if self.pretrain is not None:
            parts.append(f"pretrain {len(self.pretrain)}")
        if self.reference is not None:
            parts.append(f"reference {len(self.reference)}")
        if self.holdout is not None:
            parts.append(f"held-out noisy {len(self.holdout.noisy)}")
        return f"samples of shape {self.shape}: " + ", ".join(parts)


def check_sample_shape(name: str, got: tuple[int, ...], shape: tuple[int, ...], other: str) -> None:
    """Refuse ``name``'s per-sample shape ``got`` unless it is ``other``'s ``shape``."""
    if tuple(got) != tuple(shape):
        raise DataError(
            f"{name} samples have shape {tuple(got)} but {other} samples have {tuple(shape)}; "
            "both must hold the same kind of sample"
        )


def check_shape(name: str, arr: SampleArray, shape: tuple[int, ...], other: str) -> None:
    check_sample_shape(name, tuple(arr.shape[1:]), shape, other)


def at_least_two(name: str, arr: SampleArray, fix: str) -> None:
    if len(arr) < 2:
        raise DataError(f"{name} holds {len(arr)} sample but needs at least 2; {fix}")
