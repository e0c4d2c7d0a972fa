"""Per-stage evaluation: distances of generated samples to held-out data, and FID.

* ``swd`` and ``mmd`` compare generated samples with the reference set (flattened);
* ``denoise_psnr`` scores E_k against the clean originals (benchmark mode);
* ``fid`` (images, ``eval.fid``) compares Inception-v3 pool features of ``eval.fid_samples``
  generated images with reference statistics: ``eval.fid_stats`` if given, else computed once
  from the reference images (the hold-out, or the whole clean source when nothing is held out,
  as FID on CIFAR-10 is conventionally computed against the 50,000 training images) and cached
  in the run directory as ``fid_ref.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sfbd.data import Problem
from sfbd.diffusion.batched import batch_starts, generate_batches
from sfbd.diffusion.precond import Denoiser
from sfbd.errors import ConfigError, DataError
from sfbd.metrics import data_range_of, mmd_rbf, psnr, sliced_wasserstein
from sfbd.metrics.fid import (
    extract_features,
    feature_stats,
    feature_sums,
    frechet_distance,
    load_stats,
    save_stats,
    stats_from_sums,
)
from sfbd.rng import stream_id
from sfbd.runtime import distributed, fast
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.schema import Config


def distances(
    prob: Problem, samples: np.ndarray, denoised: np.ndarray | None, cfg: Config
) -> dict[str, float]:
    """swd and mmd of generated samples against the reference; denoise_psnr of E_k."""
    out: dict[str, float] = {}
    if prob.reference is not None:
        out["swd"] = sliced_wasserstein(
            samples, prob.reference, projections=cfg.eval.swd_projections, seed=0
        )
        out["mmd"] = mmd_rbf(samples, prob.reference, seed=0)
    if denoised is not None and prob.noisy_truth is not None:
        rng = 2.0 if prob.is_image else data_range_of(prob.noisy_truth)
        out["denoise_psnr"] = psnr(denoised, prob.noisy_truth, data_range=rng)
    return out


def fid_reference_images(prob: Problem) -> np.ndarray | None:
    """The images FID compares against when no statistics file is given."""
    if prob.reference is not None:
        return prob.reference
    if prob.noisy_truth is not None:
        return np.concatenate([prob.decode(prob.clean), prob.noisy_truth])
    return None


def check_fid(cfg: Config, prob: Problem) -> None:
    """Refuse an FID request that cannot be met, before anything runs."""
    if not cfg.eval.fid:
        return
    if not prob.is_image:
        raise ConfigError("eval.fid needs images (N, C, H, W); these samples are vectors")
    if prob.shape[0] not in (1, 3):
        raise ConfigError(f"eval.fid needs 1 or 3 channels, got {prob.shape[0]}")
    if cfg.eval.fid_stats is None and fid_reference_images(prob) is None:
        raise DataError(
            "eval.fid in user mode needs eval.reference (clean images) or eval.fid_stats "
            "(an .npz with mu and sigma)"
        )


class FID:
    """FID of a denoiser's generated images against fixed reference statistics."""

    def __init__(self, cfg: Config, prob: Problem, out: Path, device: torch.device) -> None:
        from sfbd.metrics.inception import load_inception

        self.cfg, self.device, self.noise = cfg, device, prob.corruption
        self.model = load_inception(cfg.eval.inception).to(device)
        self.ref = self._reference(prob, out)

    def _reference(self, prob: Problem, out: Path) -> tuple[np.ndarray, np.ndarray]:
        if self.cfg.eval.fid_stats is not None:
            return load_stats(self.cfg.eval.fid_stats)
        cached = out / "fid_ref.npz"
        if cached.is_file():
            return load_stats(cached)
        images = fid_reference_images(prob)
        assert images is not None  # check_fid ran first
        feats = extract_features(self.model, images, device=self.device)
        mu, sigma = feature_stats(feats)
        save_stats(cached, mu, sigma)
        return mu, sigma

    @torch.no_grad()
    def __call__(
        self, denoiser: Denoiser, shape: tuple[int, ...], grid: torch.Tensor, stream: int
    ) -> float:
        """Generate ``eval.fid_samples`` images in batches and return their FID.

        Under torchrun every process makes its share of the batches and only the feature
        sums (2048 + 2048² numbers) are added across processes."""
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
        dim = self.ref[0].shape[0]
        s1, s2, n = np.zeros(dim), np.zeros((dim, dim)), 0
        for x in batches:
            if self.noise.transforms:  # generated in model space: map to the data's scale
                x = torch.as_tensor(self.noise.decode(x.float().cpu().numpy()))
            a, b, m = feature_sums(extract_features(self.model, x.clamp(-1, 1), device=self.device))
            s1, s2, n = s1 + a, s2 + b, n + m
        if me.distributed:
            sums = torch.cat(
                [torch.as_tensor(s1), torch.as_tensor(s2).reshape(-1), torch.tensor([n])]
            )
            sums = distributed.all_reduce_sum(sums.to(self.device)).cpu().numpy()
            s1, s2, n = sums[:dim], sums[dim:-1].reshape(dim, dim), int(round(sums[-1]))
        mu, sigma = stats_from_sums(s1, s2, n)
        return frechet_distance(mu, sigma, *self.ref)


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
