"""The learning problem: a clean set, a noisy set and its noise model, and held-out data.

* Benchmark mode starts from one clean source, holds out a reference set, keeps a fraction of
  the rest clean and corrupts the remainder with the run's noise model
  (:class:`~sfbd.noise.base.Corruption`, e.g. x_i + tau * eps_i), the noise of sample i a
  function of (noise_seed, i) only, so the noisy set is a fixed, finite dataset that does not
  depend on the split or on batching.
* User mode takes the noisy and clean arrays and the noise model as given.

In both modes ``data.pretrain`` may add clean samples of a *similar* distribution (a builtin
name or a path): stage 0 and the clean-only baseline train on them together with the clean
set, SFBD's updates on E_k together with the clean set only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sfbd.data.sources import BUILTINS, builtin, load_array
from sfbd.errors import DataError
from sfbd.methods import METHODS
from sfbd.noise import Corruption, WhiteGaussian, from_config

if TYPE_CHECKING:
    from sfbd.schema import Config


@dataclass
class Problem:
    """Arrays of one run, float32, shapes (N, *) with the same sample shape.

    The training arrays (clean, noisy, pretrain) are in the noise model's *model space*, where
    the noise is white (the data itself for white and per-sample noise; whitened or
    Anscombe-transformed data otherwise); reference and noisy_truth stay in the data's scale,
    which :meth:`decode` maps model-space samples back to.
    """

    clean: np.ndarray  # (M, *) clean samples, in the noise model's model space
    noisy: np.ndarray  # (N, *) noisy samples, in model space (corruption.encode_noisy)
    corruption: Corruption  # their noise model
    reference: np.ndarray | None = None  # held-out clean samples for metrics (data space)
    noisy_truth: np.ndarray | None = None  # clean originals of the noisy samples (data space)
    scale: str = "float"  # 'uint8' or 'float': the data's own scale, for outputs
    pretrain: np.ndarray | None = None  # clean samples of a similar distribution (data.pretrain)

    @property
    def shape(self) -> tuple[int, ...]:
        ref = self.noisy if len(self.noisy) else self.clean
        return tuple(ref.shape[1:])

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Model-space samples (n, *) in the data's scale (float32)."""
        return self.corruption.decode(z)

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
        return f"samples of shape {self.shape}: " + ", ".join(parts)


def corrupt(x: np.ndarray, index: np.ndarray, sigma: float, noise_seed: int) -> np.ndarray:
    """x + sigma * eps with eps keyed by the source index (fixed per sample): white noise."""
    return WhiteGaussian(sigma).corrupt(x, index, noise_seed)


def in_model_space(
    noise: Corruption, clean: np.ndarray, noisy: np.ndarray, what: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Clean and noisy samples checked against the noise model, then mapped to its model space
    (:meth:`Corruption.encode`, :meth:`Corruption.encode_noisy`; the identity for white and
    per-sample noise); ``what`` names them for messages."""
    noise.check(clean, noisy, what)
    z_noisy = noise.encode_noisy(noisy, np.arange(len(noisy))) if len(noisy) else noisy
    return (noise.encode(clean) if len(clean) else clean), z_noisy


def split_benchmark(source: np.ndarray, cfg: Config, has_reference: bool) -> Problem:
    """Hold out a reference set, keep a clean fraction, corrupt the rest (fixed seeded noise)."""
    d = cfg.data
    n = len(source)
    perm = np.random.default_rng([d.noise_seed, 7]).permutation(n)
    n_ref = 0 if has_reference else int(round(d.holdout * n))
    ref_idx, train_idx = perm[:n_ref], perm[n_ref:]
    n_clean = int(round(d.clean_fraction * len(train_idx)))
    if d.clean_fraction > 0 and n_clean < 2:
        alone = ", or set it to 0 to pretrain on data.pretrain alone" if d.pretrain else ""
        raise DataError(
            f"data.clean_fraction {d.clean_fraction} of {len(train_idx)} training samples leaves "
            f"{n_clean} clean samples; raise data.clean_fraction or data.num_samples{alone}"
        )
    if n_ref == 1:
        raise DataError(
            f"data.holdout {d.holdout} of {n} samples holds out 1 sample, but the metrics need "
            "at least 2; raise data.holdout, or set it to 0 for no reference"
        )
    clean_idx, noisy_idx = np.sort(train_idx[:n_clean]), np.sort(train_idx[n_clean:])
    if len(noisy_idx) == 0:
        raise DataError("no noisy samples left: lower data.clean_fraction or data.holdout")
    noise = from_config(cfg, index=noisy_idx)
    clean, noisy = in_model_space(
        noise,
        source[clean_idx],
        noise.corrupt(source[noisy_idx], noisy_idx, d.noise_seed),
        ("data.source", "noisy"),
    )
    return Problem(
        clean=clean,
        noisy=noisy,
        corruption=noise,
        reference=source[ref_idx] if n_ref > 0 else None,
        noisy_truth=source[noisy_idx],
    )


def check_sample_shape(name: str, got: tuple[int, ...], shape: tuple[int, ...], other: str) -> None:
    """Refuse ``name``'s per-sample shape ``got`` unless it is ``other``'s ``shape``."""
    if tuple(got) != tuple(shape):
        raise DataError(
            f"{name} samples have shape {tuple(got)} but {other} samples have {tuple(shape)}; "
            "both must hold the same kind of sample"
        )


def _check_shape(name: str, arr: np.ndarray, shape: tuple[int, ...], other: str) -> None:
    check_sample_shape(name, tuple(arr.shape[1:]), shape, other)


def _at_least_two(name: str, arr: np.ndarray, fix: str) -> None:
    if len(arr) < 2:
        raise DataError(f"{name} holds {len(arr)} sample but needs at least 2; {fix}")


def uses_pretrain(cfg: Config) -> bool:
    """Whether the run trains on ``data.pretrain``: methods that pretrain on clean data do."""
    return cfg.data.pretrain is not None and METHODS[cfg.method].pretrains


def load_pretrain(cfg: Config) -> np.ndarray:
    """The ``data.pretrain`` samples: a builtin (a draw independent of ``data.source``) or a path.

    Builtins read ``data.num_samples``, ``data.root`` and ``data.image_size`` as
    ``data.source`` does; paths are read like ``data.clean`` (.npy/.npz, image folder or zip).
    """
    d = cfg.data
    assert d.pretrain is not None
    if d.pretrain in BUILTINS:
        x, _ = builtin(d.pretrain, d.num_samples, root=d.root, image_size=d.image_size, draw=1)
    else:
        x, _ = load_array(d.pretrain, "data.pretrain")
    _at_least_two("data.pretrain", x, "give a larger set of clean samples")
    return x


def load_problem(cfg: Config) -> Problem:
    """Build the run's :class:`Problem` from the configuration (benchmark or user mode).

    Every input is read and checked here, before a run writes anything: readable, finite,
    non-empty, one per-sample shape for noisy, clean, pretrain and reference samples, and at
    least 2 clean, pretrain and reference samples where they are given.
    """
    d = cfg.data
    reference, scale = None, "float"
    if cfg.eval.reference is not None:
        reference, _ = load_array(cfg.eval.reference, "eval.reference")
        _at_least_two("eval.reference", reference, "the metrics compare two sets of samples")
    if d.source is not None:
        if d.source in BUILTINS:
            src, scale = builtin(d.source, d.num_samples, root=d.root, image_size=d.image_size)
        else:
            src, scale = load_array(d.source, "data.source")
        prob = split_benchmark(src, cfg, reference is not None)
        prob.scale = scale
    else:
        noisy = clean = None
        if d.noisy is not None:
            noisy, scale = load_array(d.noisy, "data.noisy", images_ok=False)
        if d.clean is not None:
            clean, clean_scale = load_array(d.clean, "data.clean")
            scale = scale if noisy is not None else clean_scale
        if noisy is not None and clean is not None:
            _check_shape("clean", clean, tuple(noisy.shape[1:]), "noisy")
        if clean is not None:
            _at_least_two(
                "data.clean", clean, "add clean samples, or unset it and set data.pretrain"
            )
        template = noisy if noisy is not None else clean
        assert template is not None
        empty = np.zeros((0, *template.shape[1:]), np.float32)
        noise = from_config(cfg, n=len(noisy) if noisy is not None else None)
        z_clean, z_noisy = in_model_space(
            noise,
            clean if clean is not None else empty,
            noisy if noisy is not None else empty,
            ("data.clean", "data.noisy"),
        )
        prob = Problem(clean=z_clean, noisy=z_noisy, corruption=noise, scale=scale)
    if uses_pretrain(cfg):
        pretrain = load_pretrain(cfg)
        _check_shape("data.pretrain", pretrain, prob.shape, "noisy" if len(prob.noisy) else "clean")
        prob.pretrain, _ = in_model_space(
            prob.corruption, pretrain, pretrain[:0], ("data.pretrain", "data.noisy")
        )
    if reference is not None:
        _check_shape("eval.reference", reference, prob.shape, "training")
        prob.reference = reference
    return prob
