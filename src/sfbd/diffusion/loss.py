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


#: default exponent p of the noisy rows' extra weight (1 - tau^2 / sigma^2)^p (docs/methods.md,
#: "The ambient method": measured by benchmarks/ambient_weighting.py)
AMBIENT_TEMPER = 1.0


class AmbientLoss(EDMLoss):
    """EDM's loss for batches whose rows carry white noise of known level tau_i (0: clean).

    Daras et al., ICLR 2025 ("How much is a noisy image worth?"); PAPER.md, "The ambient
    loss". Row i of the batch is y_i = x_i + tau_i eps_i (x_i unseen). For sigma > tau_i,
    x_t = y_i + sqrt(sigma^2 - tau_i^2) n is distributed as x_i + sigma z, and the rescaled
    target

        y_hat = (y - (tau^2 / sigma^2) x_t) / (1 - tau^2 / sigma^2)
              = y - tau^2 / sqrt(sigma^2 - tau^2) n

    is y_hat = x + eta with eta independent of (x, x_t), mean 0 and per-element variance
    C = tau^2 sigma^2 / (sigma^2 - tau^2). Hence E||D(x_t) - y_hat||^2 / d = E||D - x||^2 / d + C:
    the clean loss plus a known constant, minimised by the clean denoiser E[x | x_t]. A row's
    loss is

        lambda(sigma) (1 - tau^2 / sigma^2)^p (mean((D(x_t, sigma) - y_hat)^2) - C)

    (lambda EDM's weight; subtracting C, which has no gradient, makes its expectation the clean
    loss at that sigma times the extra weight). ``temper`` p = 0 gives noisy rows the clean
    loss's gradient in expectation (Ambient-o's weighting), but the variance of eta, and so of
    the gradient, grows as 1 / (sigma - tau) near the truncation; p >= 1/2 bounds it. The
    default p = 1 (:data:`AMBIENT_TEMPER`) was measured against p = 0, 1/2, 2 (docs/methods.md).

    Noise levels: clean rows (tau = 0) draw EDM's ln(sigma) = P_mean + P_std z; a noisy row
    draws EDM's log-normal conditioned on sigma >= tau, by the inverse CDF from the same
    standard normal z (:meth:`levels`), so tau -> 0 gives EDM's sigma to float precision. Rows
    with tau = 0 are EDM's loss exactly, bit for bit. ``augment`` must be None: EDM's
    augmentation (scaling, translation) does not keep the noise white.

    Args:
        temper: the exponent p of the noisy rows' extra weight (1 - tau^2 / sigma^2)^p.
        p_mean, p_std, sigma_data, augment: as :class:`EDMLoss`.
    """

    def __init__(
        self,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sigma_data: float = SIGMA_DATA,
        augment: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
        temper: float = AMBIENT_TEMPER,
    ) -> None:
        super().__init__(p_mean, p_std, sigma_data, augment)
        self.temper = float(temper)

    def levels(self, z: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """sigma (B,) in z's dtype from standard normals z (B,) and levels tau (B,).

        tau = 0: EDM's exp(P_mean + P_std z), the same float operations. tau > 0: with
        a = (ln tau - P_mean) / P_std, w = Phi^-1(Phi(a) + (1 - Phi(a)) Phi(z)) is N(0, 1)
        conditioned on w >= a, and sigma = exp(P_mean + P_std w) >= tau. In float64, with
        the upper tail 1 - u = Phi(-a) Phi(-z) inverted where u > 1/2, so neither tail
        loses digits."""
        edm = (z * self.p_std + self.p_mean).exp()
        t = tau.to(torch.float64)
        z64 = z.to(torch.float64)
        a = (t.log() - self.p_mean) / self.p_std
        u = torch.special.ndtr(a) + torch.special.ndtr(-a) * torch.special.ndtr(z64)
        v = torch.special.ndtr(-a) * torch.special.ndtr(-z64)  # 1 - u, without cancellation
        w = torch.where(u < 0.5, torch.special.ndtri(u), -torch.special.ndtri(v))
        sigma = torch.maximum((self.p_mean + self.p_std * w).exp(), t * (1 + 1e-12))
        return torch.where(tau > 0, sigma.to(z.dtype), edm)

    def draw(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        sigma: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        tau: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """As :meth:`EDMLoss.draw`, with the rows' levels ``tau`` (B,) (None: EDM's draw): the
        same standard normals, sigma from :meth:`levels`; no augmentation."""
        if tau is None:
            return super().draw(x, generator, sigma=sigma, noise=noise)
        if self.augment is not None:
            raise ValueError("the ambient loss takes no augmentation: it would colour the noise")
        if sigma is None:
            z = torch.randn(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            sigma = self.levels(z, tau)
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x, None, sigma, noise

    @staticmethod
    def targets(
        y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, tau: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, y_hat, C): the network's input x_t = y + sqrt(sigma^2 - tau^2) n (B, *), the
        rescaled target y_hat = y - tau^2 / sqrt(sigma^2 - tau^2) n (B, *) and the target's
        per-element noise variance C = tau^2 sigma^2 / (sigma^2 - tau^2) (B,), float64;
        tau = 0 rows: x + sigma n, y and 0, as EDM's loss computes them."""
        view = (-1,) + (1,) * (y.ndim - 1)
        t, s = tau.to(torch.float64), sigma.to(torch.float64)
        noisy = tau > 0
        gap = (s.square() - t.square()).clamp_min(0).sqrt()  # sigma > tau on the noisy rows
        gap = torch.where(noisy, gap, s)
        c = torch.where(noisy, t.square() / gap, torch.zeros_like(t))
        step = torch.where(noisy, gap.to(sigma.dtype), sigma).to(y.dtype)  # EDM's sigma bits
        x_t = y + step.view(view) * noise
        target = y - c.to(y.dtype).view(view) * noise
        return x_t, target, t.square() + c.square()

    def per_sample(
        self,
        denoiser: Denoiser,
        x: torch.Tensor,
        sigma: torch.Tensor,
        noise: torch.Tensor,
        labels: torch.Tensor | None = None,
        tau: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-sample losses (B,) of rows x (B, *) with levels ``tau`` (B,) (None or 0: clean,
        EDM's loss) at levels sigma (sigma > tau where tau > 0) with unit noise."""
        if tau is None:
            return super().per_sample(denoiser, x, sigma, noise, labels)
        x_t, target, const = self.targets(x, sigma, noise, tau)
        denoised = (
            denoiser(x_t, sigma) if labels is None else denoiser(x_t, sigma, aug_labels=labels)
        )
        sq = ((denoised.float() - target) ** 2).reshape(x.shape[0], -1).mean(dim=1)
        s, t = sigma.to(torch.float64), tau.to(torch.float64)
        extra = (1 - t.square() / s.square()).clamp_min(0) ** self.temper
        # clean rows: const 0 and extra 1 exactly, so this is weight(sigma) * sq, EDM's numbers
        return self.weight(sigma) * extra.to(sq.dtype) * (sq - const.to(sq.dtype))
