"""Batched generation and backward sampling over whole datasets, with a progress bar.

Keys are absolute sample indices, so every result is the same whatever the batch size. A
``stop`` flag (:mod:`sfbd.runtime.interrupt`) is polled between batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from sfbd.diffusion.precond import Denoiser
from sfbd.diffusion.sample import sample_from_noise
from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.runtime.progress import bar as progress_bar


class BackwardSampler(Protocol):
    """What :func:`denoise_all` needs of a noise model (:class:`sfbd.noise.base.Corruption`
    is one): backward sampling of a batch, its noise keyed by ``keys``."""

    def backward(
        self,
        denoiser: Denoiser,
        y: torch.Tensor,
        keys: torch.Tensor,
        grid: torch.Tensor,
        *,
        sampler: str,
        stream: int,
    ) -> torch.Tensor: ...


def generate_batches(
    denoiser: Denoiser,
    n: int,
    shape: tuple[int, ...],
    grid: torch.Tensor,
    *,
    stream: int,
    sampler: str = "heun",
    batch_size: int = 4096,
    device: torch.device | str = "cpu",
    desc: str = "sample",
    progress: bool = True,
    stop: StopFlag = NEVER,
    rank: int = 0,
    world: int = 1,
) -> Iterator[torch.Tensor]:
    """``n`` samples from pure noise, yielded in batches (b, *shape) on ``device``.

    Sample j is keyed j, so the concatenation does not depend on ``batch_size``; consumers that
    only need a statistic per batch (FID features) never hold all samples at once. With
    ``world`` > 1 only the batches ``batch_starts(n, batch_size, rank, world)`` are made.
    """
    starts = batch_starts(n, batch_size, rank, world)
    total = sum(min(batch_size, n - s) for s in starts)
    with progress_bar(total=total, desc=desc, progress=progress) as bar:
        for start in starts:
            stop.check(f"during {desc}")
            keys = torch.arange(start, min(n, start + batch_size), device=device)
            yield sample_from_noise(denoiser, keys, shape, grid, stream=stream, sampler=sampler)
            bar.update(len(keys))


def batch_starts(n: int, batch_size: int, rank: int = 0, world: int = 1) -> list[int]:
    """First sample index of each batch process ``rank`` of ``world`` makes (round-robin)."""
    return list(range(0, n, batch_size))[rank::world]


def generate(
    denoiser: Denoiser,
    n: int,
    shape: tuple[int, ...],
    grid: torch.Tensor,
    *,
    stream: int,
    sampler: str = "heun",
    batch_size: int = 4096,
    device: torch.device | str = "cpu",
    desc: str = "sample",
    progress: bool = True,
    stop: StopFlag = NEVER,
) -> torch.Tensor:
    """``n`` samples (n, *shape) from pure noise, gathered on the CPU; sample j is keyed j."""
    batches = generate_batches(
        denoiser,
        n,
        shape,
        grid,
        stream=stream,
        sampler=sampler,
        batch_size=batch_size,
        device=device,
        desc=desc,
        progress=progress,
        stop=stop,
    )
    out = [x.cpu() for x in batches]
    return torch.cat(out) if out else torch.zeros((0, *shape))


def denoise_all(
    denoiser: Denoiser,
    y: torch.Tensor,
    corruption: BackwardSampler,
    grid: torch.Tensor,
    *,
    stream: int,
    sampler: str = "heun",
    batch_size: int = 4096,
    keys: torch.Tensor | None = None,
    desc: str = "denoise",
    progress: bool = True,
    stop: StopFlag = NEVER,
) -> torch.Tensor:
    """Backward-sample every row of noisy ``y`` (N, *) under ``corruption`` (its noise model,
    e.g. :class:`~sfbd.noise.white.WhiteGaussian` at tau); row i keyed keys[i] (default i).

    ``y`` may live on the CPU; batches move to the denoiser's device and results come back.
    """
    device = grid.device
    if keys is None:
        keys = torch.arange(len(y))
    out = []
    with progress_bar(total=len(y), desc=desc, progress=progress) as bar:
        for start in range(0, len(y), batch_size):
            stop.check(f"during {desc}")
            yb = y[start : start + batch_size].to(device)
            kb = keys[start : start + batch_size].to(device)
            x = corruption.backward(denoiser, yb, kb, grid, sampler=sampler, stream=stream)
            out.append(x.cpu())
            bar.update(len(yb))
    return torch.cat(out) if out else y.clone()
