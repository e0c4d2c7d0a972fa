"""The EDM training loss.

Karras et al. 2022, eq. (8) and Table 1: draw ln(sigma) ~ N(P_mean, P_std^2), n ~ N(0, sigma^2 I)
and minimise lambda(sigma) * mean((D(x + n, sigma) - x)^2) with
lambda(sigma) = (sigma^2 + sd^2) / (sigma * sd)^2, which makes the effective target of the raw
network unit-variance at every noise level.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sfbd.diffusion.precond import SIGMA_DATA, Denoiser


class EDMLoss:
    """Callable loss: ``loss(denoiser, x, generator) -> (B,)`` per-sample weighted losses.

    Args:
        p_mean, p_std: log-normal noise-level distribution (EDM: -1.2, 1.2).
        sigma_data: the data's standard deviation used by the weighting (EDM: 0.5).
    """

    def __init__(
        self,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sigma_data: float = SIGMA_DATA,
        augment: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> None:
        self.p_mean = p_mean
        self.p_std = p_std
        self.sigma_data = sigma_data
        self.augment = augment  # non-leaky augmentation: (x, generator) -> (x', labels)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def draw(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        sigma: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """The randomness of one batch: (augmented x, augmentation labels or None, sigma (B,),
        unit noise like x); ``sigma``/``noise`` given are used as they are. Drawn for a whole
        (global) batch so that any split of it into per-process or micro-batches sees the same
        numbers."""
        if sigma is None:
            z = torch.randn(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            sigma = (z * self.p_std + self.p_mean).exp()
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        labels = None
        if self.augment is not None:
            # the clean target is the augmented image; the network is told the augmentation
            x, labels = self.augment(x, generator)
        return x, labels, sigma, noise

    def per_sample(
        self,
        denoiser: Denoiser,
        x: torch.Tensor,
        sigma: torch.Tensor,
        noise: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-sample losses (B,) of clean x (B, *) at levels sigma with unit noise."""
        view = (-1,) + (1,) * (x.ndim - 1)
        y = x + sigma.view(view) * noise
        denoised = denoiser(y, sigma) if labels is None else denoiser(y, sigma, aug_labels=labels)
        # Mean over elements rather than sum keeps the learning rate meaningful across data sizes.
        sq = ((denoised.float() - x) ** 2).reshape(x.shape[0], -1).mean(dim=1)
        return self.weight(sigma) * sq

    def __call__(
        self,
        denoiser: Denoiser,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        sigma: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-sample losses (B,) for clean data x (B, *); sigma/noise may be given for tests.

        With ``augment`` set, x is augmented before the noise is added.
        """
        x, labels, sigma, noise = self.draw(x, generator, sigma=sigma, noise=noise)
        return self.per_sample(denoiser, x, sigma, noise, labels)
