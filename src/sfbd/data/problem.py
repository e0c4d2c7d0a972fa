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

No array is held whole: every field is a sample array (:mod:`sfbd.io.arrays`) over the
memory-mapped inputs. Arrays computed from them (the benchmark's noisy set, keyed noise and
all; model-space transforms) are views that compute their rows when read, until a run calls
:func:`store_problem`, which writes them once to ``DIR/data/`` and memory-maps them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sfbd.data import cache
from sfbd.data.sources import BUILTINS, builtin, load_array
from sfbd.errors import DataError
from sfbd.io.arrays import SampleArray, Samples, computed, open_npy
from sfbd.methods import METHODS
from sfbd.noise import Corruption, WhiteGaussian, from_config
from sfbd.noise.base import Corruption as _Base

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

    clean: SampleArray  # (M, *) clean samples, in the noise model's model space
    noisy: SampleArray  # (N, *) noisy samples, in model space (corruption.encode_noisy)
    corruption: Corruption  # their noise model
    reference: SampleArray | None = None  # held-out clean samples for metrics (data space)
    noisy_truth: SampleArray | None = None  # clean originals of the noisy samples (data space)
    scale: str = "float"  # 'uint8' or 'float': the data's own scale, for outputs
    pretrain: SampleArray | None = None  # clean samples of a similar distribution

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
        return f"samples of shape {self.shape}: " + ", ".join(parts)


def corrupt(x: np.ndarray, index: np.ndarray, sigma: float, noise_seed: int) -> np.ndarray:
    """x + sigma * eps with eps keyed by the source index (fixed per sample): white noise."""
    return WhiteGaussian(sigma).corrupt(x, index, noise_seed)


def encoded(noise: Corruption, x: SampleArray) -> SampleArray:
    """Clean samples in the noise model's model space: ``x`` itself when the model space is
    the data's, else a view encoding rows as they are read (:meth:`Corruption.encode`)."""
    if not noise.transforms or not len(x):
        return x
    return Samples(x, fn=lambda z, pos: noise.encode(z))


def encoded_noisy(noise: Corruption, y: SampleArray) -> SampleArray:
    """Noisy samples as :meth:`Corruption.backward` takes them: ``y`` itself for white and
    per-sample noise, else a view applying :meth:`Corruption.encode_noisy` keyed by row."""
    identity = type(noise).encode_noisy is _Base.encode_noisy and not noise.transforms
    if identity or not len(y):
        return y
    return Samples(y, fn=noise.encode_noisy)


def in_model_space(
    noise: Corruption, clean: SampleArray, noisy: SampleArray, what: tuple[str, str]
) -> tuple[SampleArray, SampleArray]:
    """Clean and noisy samples checked against the noise model, then mapped to its model space
    (:meth:`Corruption.encode`, :meth:`Corruption.encode_noisy`; the identity for white and
    per-sample noise); ``what`` names them for messages."""
    noise.check(clean, noisy, what)
    return encoded(noise, clean), encoded_noisy(noise, noisy)


def corrupted(source: SampleArray, rows: np.ndarray, noise: Corruption, noise_seed: int) -> Samples:
    """The benchmark's noisy set: rows ``rows`` of ``source`` corrupted by ``noise`` (built
    for those rows, in their order), the noise of each keyed by its source index."""

    def corrupt(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return noise.subset(pos).corrupt(x, rows[pos], noise_seed)

    return Samples(source, rows=rows, fn=corrupt)


def split_benchmark(source: SampleArray, cfg: Config, has_reference: bool) -> Problem:
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
        Samples(source, rows=clean_idx),
        corrupted(source, noisy_idx, noise, d.noise_seed),
        ("data.source", "noisy"),
    )
    return Problem(
        clean=clean,
        noisy=noisy,
        corruption=noise,
        reference=Samples(source, rows=ref_idx) if n_ref > 0 else None,
        noisy_truth=Samples(source, rows=noisy_idx),
    )


def check_sample_shape(name: str, got: tuple[int, ...], shape: tuple[int, ...], other: str) -> None:
    """Refuse ``name``'s per-sample shape ``got`` unless it is ``other``'s ``shape``."""
    if tuple(got) != tuple(shape):
        raise DataError(
            f"{name} samples have shape {tuple(got)} but {other} samples have {tuple(shape)}; "
            "both must hold the same kind of sample"
        )


def _check_shape(name: str, arr: SampleArray, shape: tuple[int, ...], other: str) -> None:
    check_sample_shape(name, tuple(arr.shape[1:]), shape, other)


def _at_least_two(name: str, arr: SampleArray, fix: str) -> None:
    if len(arr) < 2:
        raise DataError(f"{name} holds {len(arr)} sample but needs at least 2; {fix}")


def uses_pretrain(cfg: Config) -> bool:
    """Whether the run trains on ``data.pretrain``: methods that pretrain on clean data do."""
    return cfg.data.pretrain is not None and METHODS[cfg.method].pretrains


def load_pretrain(cfg: Config) -> SampleArray:
    """The ``data.pretrain`` samples: a builtin (a draw independent of ``data.source``) or a path.

    Builtins read ``data.num_samples``, ``data.root`` and ``data.image_size`` as
    ``data.source`` does; paths are read like ``data.clean`` (.npy/.npz, image folder or zip).
    """
    d = cfg.data
    assert d.pretrain is not None
    if d.pretrain in BUILTINS:
        x, _ = builtin(
            d.pretrain,
            d.num_samples,
            root=d.root,
            image_size=d.image_size,
            draw=1,
            cache_dir=d.cache_dir,
        )
    else:
        x, _ = load_array(d.pretrain, "data.pretrain", cache_dir=d.cache_dir)
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
        reference, _ = load_array(cfg.eval.reference, "eval.reference", cache_dir=d.cache_dir)
        _at_least_two("eval.reference", reference, "the metrics compare two sets of samples")
    if d.source is not None:
        if d.source in BUILTINS:
            src, scale = builtin(
                d.source,
                d.num_samples,
                root=d.root,
                image_size=d.image_size,
                cache_dir=d.cache_dir,
            )
        else:
            src, scale = load_array(d.source, "data.source", cache_dir=d.cache_dir)
        prob = split_benchmark(src, cfg, reference is not None)
        prob.scale = scale
    else:
        noisy = clean = None
        if d.noisy is not None:
            noisy, scale = load_array(d.noisy, "data.noisy", images_ok=False, cache_dir=d.cache_dir)
        if d.clean is not None:
            clean, clean_scale = load_array(d.clean, "data.clean", cache_dir=d.cache_dir)
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


# -- the arrays a run stores in DIR/data ---------------------------------------------------

STORED = ("noisy", "clean", "pretrain")  # the training arrays stored in DIR/data
FIX = "use an --out on a larger disk"


def sources_key(cfg: Config) -> dict[str, Any]:
    """What the stored arrays are made from: the data configuration and each input file's
    identity (path, size, modification time), so a changed input is never trusted."""
    d = dataclasses.asdict(cfg.data)
    files = {}
    for name in ("source", "root", "noisy", "clean", "pretrain", "sigma", "noise_cov"):
        value = d.get(name)
        if isinstance(value, str) and value not in BUILTINS and Path(value).expanduser().exists():
            files[name] = cache.file_key(value)
    d.pop("cache_dir", None)  # where caches live does not change what they hold
    return {"data": d, "files": files, "method": cfg.method}


def _stored_paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.npy", folder / f"{name}.json"


def to_store(prob: Problem) -> list[str]:
    """The fields of ``prob`` that are computed views (worth storing once)."""
    return [n for n in STORED if getattr(prob, n) is not None and computed(getattr(prob, n))]


def store_bytes(prob: Problem, key: dict[str, Any], folder: Path) -> int:
    """Bytes :func:`store_problem` still has to write to ``folder`` (``key``:
    :func:`sources_key`)."""
    total = 0
    for name in to_store(prob):
        npy, meta = _stored_paths(folder, name)
        if not cache.valid(npy, meta, {**key, "array": name}):
            total += getattr(prob, name).nbytes
    return total


def store_problem(
    prob: Problem, cfg: Config, folder: Path, *, write: bool, key: dict[str, Any] | None = None
) -> Problem:
    """``prob`` with its computed training arrays (the benchmark's noisy set, model-space
    transforms) stored in ``folder`` as float32 .npy and memory-mapped.

    With ``write`` (rank 0) a missing, truncated or stale file is written first, chunk by
    chunk and atomically, after a disk-space check; without it (the other ranks, after a
    barrier) the files are only opened. Each file's JSON record holds the key it was made
    from: the data configuration and the identity of every input file (``key``, default
    :func:`sources_key` of ``cfg``, computed only when writing)."""
    changes = {}
    for name in to_store(prob):
        npy, meta = _stored_paths(folder, name)
        if write:
            key = sources_key(cfg) if key is None else key
            k = {**key, "array": name}
            if not cache.valid(npy, meta, k):
                cache.store(npy, meta, k, getattr(prob, name), f"the run's {name} set", FIX)
        changes[name] = open_npy(npy)
    return dataclasses.replace(prob, **changes)
