"""Per-stage evaluation: distances of generated samples to held-out data, FID and FD-DINOv2.

* ``swd`` and ``mmd`` compare generated samples with the reference set (flattened);
* ``denoise_psnr`` scores E_k against the clean originals (benchmark mode);
* ``fid`` (images, ``eval.fid``) compares Inception-v3 pool features of ``eval.fid_samples``
  generated images with reference statistics: ``eval.fid_stats`` if given, else computed once
  from the reference images (the hold-out, or the whole clean source when nothing is held out,
  as FID on CIFAR-10 is conventionally computed against the 50,000 training images) and cached
  in the run directory as ``fid_ref.npz``;
* ``fd_dinov2`` (images, ``eval.fd_dinov2``) is the same Fréchet distance on DINOv2 ViT-L/14
  CLS features (:mod:`sfbd.metrics.dinov2`) of the same generated images, against
  ``eval.fd_dinov2_stats`` or statistics of the same reference images cached as
  ``fd_dinov2_ref.npz``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sfbd.data import Problem
from sfbd.diffusion.batched import batch_starts, generate_batches
from sfbd.diffusion.precond import Denoiser
from sfbd.errors import ConfigError, DataError
from sfbd.io.arrays import (
    SampleArray,
    Stacked,
    chunk_rows,
    chunks,
    gather,
    value_range,
)
from sfbd.metrics import data_range_of, mmd_rbf, psnr, sliced_wasserstein
from sfbd.metrics.fid import (
    extract_features,
    feature_stats,
    feature_sums,
    frechet_distance,
    load_feature_network,
    load_stats,
    save_stats,
    stats_from_sums,
)
from sfbd.rng import stream_id
from sfbd.runtime import distributed, fast
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.schema import Config


def distances(
    prob: Problem, samples: np.ndarray, denoised: SampleArray | None, cfg: Config
) -> dict[str, float]:
    """swd and mmd of generated samples against the reference; denoise_psnr of E_k."""
    out: dict[str, float] = {}
    if prob.reference is not None:
        out["swd"] = sliced_wasserstein(
            samples, prob.reference, projections=cfg.eval.swd_projections, seed=0
        )
        out["mmd"] = mmd_rbf(samples, prob.reference, seed=0)
    if denoised is not None and prob.noisy_truth is not None:
        out["denoise_psnr"] = denoise_psnr(denoised, prob.noisy_truth, image=prob.is_image)
    return out


def denoise_psnr(denoised: SampleArray, truth: SampleArray, *, image: bool) -> float:
    """:func:`~sfbd.metrics.psnr` of E_k against the clean originals, read chunk by chunk
    (float64 sums of squared errors; one chunk gives exactly ``psnr``'s value). The range is
    2 for images in [-1, 1], else the originals' max - min (:func:`data_range_of`)."""
    if len(denoised) != len(truth):
        raise ValueError(f"{len(denoised)} denoised samples for {len(truth)} originals")
    if len(truth) <= chunk_rows(truth.shape):
        rng = 2.0 if image else data_range_of(np.asarray(truth))
        return psnr(np.asarray(denoised), np.asarray(truth), data_range=rng)
    lo, hi = value_range(truth)
    rng = 2.0 if image else hi - lo
    sq, count = 0.0, 0
    for start, t in chunks(truth):
        d = gather(denoised, slice(start, start + len(t))).astype(np.float64)
        sq += float(np.sum((d - t.astype(np.float64)) ** 2))
        count += t.size
    if not math.isfinite(sq):
        raise ValueError("E_k or the originals contain non-finite values (NaN or inf)")
    return math.inf if sq == 0.0 else 10.0 * math.log10(rng * rng / (sq / count))


def fid_reference_images(prob: Problem) -> SampleArray | None:
    """The images FID and FD-DINOv2 compare against when no statistics file is given (read
    batch by batch)."""
    if prob.reference is not None:
        return prob.reference
    if prob.noisy_truth is not None:  # every clean original: held-out noisy samples' too
        held = prob.holdout.truth if prob.holdout is not None else None
        parts = [prob.decoded(prob.clean), prob.noisy_truth, held]
        parts = [p for p in parts if p is not None and len(p)]
        return parts[0] if len(parts) == 1 else Stacked(parts)
    return None


@dataclass(frozen=True)
class FrechetSpec:
    """One Fréchet-distance metric: its feature network and where its settings live."""

    network: str  # a name of sfbd.metrics.fid.FEATURE_NETWORKS
    weights_key: str  # eval.<key>: path of the network's weights (None: cache/download)
    stats_key: str  # eval.<key>: .npz reference statistics (None: computed and cached)
    cache: str  # file in the run directory that caches computed reference statistics


#: The per-stage Fréchet metrics, by metrics.json name (= their eval.<name> switch).
FRECHET = {
    "fid": FrechetSpec("inception", "inception", "fid_stats", "fid_ref.npz"),
    "fd_dinov2": FrechetSpec("dinov2", "dinov2", "fd_dinov2_stats", "fd_dinov2_ref.npz"),
}


def frechet_requested(cfg: Config) -> list[str]:
    """The Fréchet metrics switched on (``eval.fid``, ``eval.fd_dinov2``), in FRECHET order."""
    return [name for name in FRECHET if getattr(cfg.eval, name)]


def check_fid(cfg: Config, prob: Problem) -> None:
    """Refuse an FID / FD-DINOv2 request that cannot be met, before anything runs."""
    for name in frechet_requested(cfg):
        key = f"eval.{name}"
        if not prob.is_image:
            raise ConfigError(
                f"{key} needs images (N, C, H, W); these samples are vectors: set {key}=false"
            )
        if prob.shape[0] not in (1, 3):
            raise ConfigError(f"{key} needs 1 or 3 channels, got {prob.shape[0]}")
        stats_key = FRECHET[name].stats_key
        if getattr(cfg.eval, stats_key) is None and fid_reference_images(prob) is None:
            raise DataError(
                f"{key} in user mode needs eval.reference (clean images) or eval.{stats_key} "
                "(an .npz with mu and sigma)"
            )


class FrechetMetrics:
    """FID and/or FD-DINOv2 of a denoiser's generated images against fixed reference
    statistics; both metrics score the same ``eval.fid_samples`` images."""

    def __init__(self, cfg: Config, prob: Problem, out: Path, device: torch.device) -> None:
        self.cfg, self.device, self.noise = cfg, device, prob.corruption
        self.nets: dict[str, tuple[torch.nn.Module, tuple[np.ndarray, np.ndarray]]] = {}
        for name in frechet_requested(cfg):
            spec = FRECHET[name]
            model = load_feature_network(spec.network, getattr(cfg.eval, spec.weights_key))
            model = model.to(device)
            self.nets[name] = (model, self._reference(model, spec, prob, out))

    def _reference(
        self, model: torch.nn.Module, spec: FrechetSpec, prob: Problem, out: Path
    ) -> tuple[np.ndarray, np.ndarray]:
        given = getattr(self.cfg.eval, spec.stats_key)
        if given is not None:
            return load_stats(given)
        cached = out / spec.cache
        if cached.is_file():
            return load_stats(cached)
        images = fid_reference_images(prob)
        assert images is not None  # check_fid ran first
        feats = extract_features(model, images, device=self.device)
        mu, sigma = feature_stats(feats)
        save_stats(cached, mu, sigma)
        return mu, sigma

    @torch.no_grad()
    def __call__(
        self, denoiser: Denoiser, shape: tuple[int, ...], grid: torch.Tensor, stream: int
    ) -> dict[str, float]:
        """Generate ``eval.fid_samples`` images in batches and return each metric's value.

        Under torchrun every process makes its share of the batches and only the feature
        sums (D + D² numbers per metric) are added across processes."""
        me = distributed.info()
        batches = generate_batches(
            denoiser,
            self.cfg.eval.fid_samples,
            shape,
            grid,
            stream=stream,
            batch_size=self.cfg.sample.batch_size,
            device=self.device,
            progress=False,
            rank=me.rank,
            world=me.world_size,
        )
        sums = {}
        for name, (_, (mu_ref, _)) in self.nets.items():
            dim = mu_ref.shape[0]
            sums[name] = (np.zeros(dim), np.zeros((dim, dim)), 0)
        for x in batches:
            if self.noise.transforms:  # generated in model space: map to the data's scale
                x = torch.as_tensor(self.noise.decode(x.float().cpu().numpy()))
            x = x.clamp(-1, 1)
            for name, (model, _) in self.nets.items():
                a, b, m = feature_sums(extract_features(model, x, device=self.device))
                s1, s2, n = sums[name]
                sums[name] = (s1 + a, s2 + b, n + m)
        out = {}
        for name, (s1, s2, n) in sums.items():
            if me.distributed:
                s1, s2, n = self._all_reduce(s1, s2, n)
            mu, sigma = stats_from_sums(s1, s2, n)
            out[name] = frechet_distance(mu, sigma, *self.nets[name][1])
        return out

    def _all_reduce(
        self, s1: np.ndarray, s2: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        dim = s1.shape[0]
        flat = torch.cat([torch.as_tensor(s1), torch.as_tensor(s2).reshape(-1), torch.tensor([n])])
        flat = distributed.all_reduce_sum(flat.to(self.device)).cpu().numpy()
        return flat[:dim], flat[dim:-1].reshape(dim, dim), int(round(flat[-1]))


def generate_eval(
    ema: torch.nn.Module,
    cfg: Config,
    shape: tuple[int, ...],
    grid: torch.Tensor,
    *,
    bf16: bool,
    desc: str,
    progress: bool,
    stop: StopFlag = NEVER,
) -> np.ndarray:
    """The evaluation samples (keys 0..eval.num_samples-1, (n, *shape)); under torchrun each
    process makes its share of the batches and the batches are gathered in key order."""
    me = distributed.info()
    batches = generate_batches(
        ema,
        cfg.eval.num_samples,
        shape,
        grid,
        stream=stream_id("eval", cfg.seed),
        batch_size=cfg.sample.batch_size,
        device=grid.device,
        desc=desc,
        progress=progress,
        stop=stop if not me.distributed else NEVER,
        rank=me.rank,
        world=me.world_size,
    )
    starts = batch_starts(cfg.eval.num_samples, cfg.sample.batch_size, me.rank, me.world_size)
    with fast.autocast(grid.device, bf16):
        mine = [(s, x.float().cpu().numpy()) for s, x in zip(starts, batches, strict=True)]
    gathered = distributed.all_gather_object(mine)
    parts = sorted((p for rank_parts in gathered for p in rank_parts), key=lambda p: p[0])
    if not parts:
        return np.zeros((0, *shape), np.float32)
    return np.concatenate([x for _, x in parts])
