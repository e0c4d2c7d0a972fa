"""Validation from noisy data alone: ``val_noisy``, the ambient loss on held-out noisy samples.

A held-out noisy sample is y = x + tau * eps in the model space (white noise at its level
tau; :meth:`~sfbd.noise.base.Corruption.white_levels`). For a level sigma > tau, adding
fresh noise gives x_t = y + sqrt(sigma^2 - tau^2) * eps', distributed as x + sigma * z, the
diffusion state at sigma. The ambient identity (Daras et al.) is E[y | x_t] =
(tau^2/sigma^2) x_t + (1 - tau^2/sigma^2) D*(x_t), D* = E[x | x_t]. Rescaled, the target

    y_hat = (y - (tau^2 / sigma^2) x_t) / (1 - tau^2 / sigma^2)

is y_hat = x + eta with eta independent of (x, x_t), zero-mean, of per-element variance
v(sigma) = tau^2 sigma^2 / (sigma^2 - tau^2) (given x and x_t, y is Gaussian with mean
x + (tau^2/sigma^2)(x_t - x) and variance tau^2 (1 - tau^2/sigma^2)). Hence, per element,

    E ||D(x_t) - y_hat||^2 / d - v(sigma) = E ||D(x_t) - x||^2 / d,

the clean denoising loss at sigma, estimated without any clean sample: that is ``val_noisy``
(the known constant v removed). Where the clean originals are known (benchmark mode),
``val_clean`` is the clean loss itself on the same x_t. Both are averaged over a fixed grid of
levels, log-spaced from 1.1 tau to the schedule's sigma_max per sample, with EDM's weighting
lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2, and with the extra noise eps' keyed by
(sample, level), so every stage is scored on the same draws and stages compare.

References: Daras, Dimakis, Daskalakis, "Consistent Diffusion Meets Tweedie" (ICML 2024) and
"How much is a noisy image worth?" (ICLR 2025); Karras et al. 2022, Table 1 (the weighting).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sfbd.diffusion.loss import AmbientLoss, EDMLoss
from sfbd.diffusion.precond import Denoiser
from sfbd.io.arrays import SampleArray
from sfbd.rng import keyed_randn

LEVELS = 8  # levels of the validation grid per sample
LOW = 1.1  # the grid starts at LOW * tau


def validation_levels(tau: np.ndarray, sigma_max: float, n: int = LEVELS) -> np.ndarray:
    """(H, n) levels log-spaced from ``LOW * tau_i`` to ``sigma_max`` for each tau_i (H,)."""
    tau = np.asarray(tau, dtype=np.float64)
    lo = np.log(LOW * tau)[:, None]
    t = np.linspace(0.0, 1.0, n)[None, :]
    return np.exp(lo + t * (math.log(sigma_max) - lo))


@torch.no_grad()
def ambient_validation(
    denoiser: Denoiser,
    noisy: SampleArray,
    tau: np.ndarray,
    keys: np.ndarray,
    *,
    sigma_max: float,
    stream: int,
    truth: SampleArray | None = None,
    n_levels: int = LEVELS,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """``val_noisy`` (and ``val_clean`` with ``truth``) of ``denoiser`` (see the module
    docstring).

    Args:
        denoiser: D(x, sigma) (B, *), (B,) -> (B, *), in the model space.
        noisy: (H, *) held-out noisy samples in the model space (white noise at ``tau``).
        tau: (H,) their white noise levels there.
        keys: (H,) integer keys of their extra noise (fixed across stages).
        sigma_max: the top of the validation grid (the schedule's sigma_max).
        stream: the random stream of the extra noise.
        truth: (H, *) their clean originals in the model space (benchmark mode).

    Returns:
        ``{"val_noisy": ..., "val_clean": ...}``: the lambda-weighted per-element losses,
        averaged over samples and levels.
    """
    tau = np.asarray(tau, dtype=np.float64)
    keys = np.asarray(keys, dtype=np.int64)
    weight = EDMLoss().weight  # lambda(sigma), EDM's weighting
    grid = validation_levels(tau, sigma_max, n_levels)
    total_noisy = total_clean = 0.0
    for start in range(0, len(noisy), batch_size):
        stop = min(start + batch_size, len(noisy))
        y = torch.as_tensor(np.asarray(noisy[start:stop]), dtype=torch.float32, device=device)
        x = None
        if truth is not None:
            x = torch.as_tensor(np.asarray(truth[start:stop]), dtype=torch.float32, device=device)
        t = torch.as_tensor(tau[start:stop], dtype=torch.float64, device=device)
        for j in range(n_levels):
            sigma = torch.as_tensor(grid[start:stop, j], dtype=torch.float64, device=device)
            k = torch.as_tensor(keys[start:stop] * n_levels + j)
            eps = keyed_randn(k, tuple(y.shape[1:]), stream=stream).to(device)
            # x_t, the rescaled target y_hat and its noise variance v: the training loss's own
            x_t, target, v = AmbientLoss.targets(y, sigma, eps, t)
            d = denoiser(x_t, sigma.to(torch.float32)).double()
            w = weight(sigma)
            err = ((d - target.double()) ** 2).reshape(len(y), -1).mean(dim=1) - v
            total_noisy += float((w * err).sum())
            if x is not None:
                clean = ((d - x.double()) ** 2).reshape(len(y), -1).mean(dim=1)
                total_clean += float((w * clean).sum())
    count = len(noisy) * n_levels
    out = {"val_noisy": total_noisy / count}
    if truth is not None:
        out["val_clean"] = total_clean / count
    return out
