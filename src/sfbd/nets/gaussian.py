"""The exact denoiser of Gaussian data, fitted by moments.

For data x ~ N(mu, S) and x_sigma = x + sigma * eps, Tweedie's formula gives
    D(x, sigma) = E[x_0 | x_sigma = x] = mu + S (S + sigma^2 I)^-1 (x - mu).
With S = U diag(lam) U^T this is mu + U diag(lam / (lam + sigma^2)) U^T (x - mu). The same
eigendecomposition gives the closed forms the tests compare samplers against:
* probability-flow map from tau to 0: x_0 = mu + S^(1/2) (S + tau^2 I)^(-1/2) (y - mu);
* posterior p(x_0 | x_tau = y) = N(mu + S (S + tau^2)^-1 (y - mu), S - S (S + tau^2)^-1 S).
It is a denoiser ``D(x, sigma)`` like any preconditioned network, so a whole run works
on it; "training" is refitting the moments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sfbd.nets.base import NETWORKS, Network

if TYPE_CHECKING:
    from sfbd.schema import Config


class GaussianDenoiser(nn.Module):
    """Analytic denoiser of N(mean, cov) data; per-sample shape ``shape`` flattened to D."""

    def __init__(self, shape: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        d = 1
        for s in self.shape:
            d *= s
        self.register_buffer("mean", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("evals", torch.ones(d, dtype=torch.float64))
        self.register_buffer("evecs", torch.eye(d, dtype=torch.float64))

    def config(self) -> dict:
        return {"shape": list(self.shape)}

    @property
    def cov(self) -> torch.Tensor:
        """(D, D) covariance U diag(lam) U^T."""
        return (self.evecs * self.evals) @ self.evecs.T

    @torch.no_grad()
    def set_moments(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        """Set mean (D,) and symmetric PSD covariance (D, D)."""
        cov = cov.to(torch.float64)
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        self.mean.copy_(mean.to(torch.float64).reshape(-1))
        self.evals.copy_(evals.clamp_min(0.0))
        self.evecs.copy_(evecs)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Fit mean and (unbiased) covariance to samples x (N, *shape), N >= 2.

        ``weights`` (N,), non-negative: the samples' probabilities (normalised here); the
        covariance is then ``torch.cov`` with these analytic weights (its unbiased form).
        """
        if x.shape[0] < 2:
            raise ValueError("fitting a Gaussian needs at least 2 samples")
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        d = flat.shape[1]
        if weights is None:
            self.set_moments(flat.mean(0), torch.cov(flat.T).reshape(d, d))
            return
        w = weights.to(torch.float64)
        w = w / w.sum()
        cov = torch.cov(flat.T, aweights=w).reshape(d, d)
        self.set_moments(w @ flat, cov)

    def _apply_spectral(self, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """mean + U diag(gain) U^T (x - mean) with gain (B, D) or (D,).

        Each row is computed on its own (products summed along D, in chunks of rows), not by
        a matrix product whose kernel, and so whose rounding, depends on the batch size: a
        sample's result is the same whatever batch it is in.
        """
        flat = x.reshape(x.shape[0], -1).to(torch.float64) - self.mean
        gain = gain.expand(flat.shape)  # (D,) or (B, D) -> (B, D)
        out = torch.empty_like(flat)
        rows = max(1, 2**22 // max(1, flat.shape[1] ** 2))  # ~32 MB of products per chunk
        for s in range(0, flat.shape[0], rows):
            f, g = flat[s : s + rows], gain[s : s + rows]
            z = (f[:, :, None] * self.evecs[None]).sum(1) * g  # (b, D): U^T (x - mean), scaled
            out[s : s + rows] = (z[:, None, :] * self.evecs[None]).sum(2)  # U z
        return (self.mean + out).to(x.dtype).reshape(x.shape)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma): x (B, *shape), sigma (B,) -> (B, *shape)."""
        s2 = sigma.to(torch.float64).reshape(-1, 1) ** 2
        return self._apply_spectral(x, self.evals / (self.evals + s2))

    def flow_map(self, y: torch.Tensor, tau: float) -> torch.Tensor:
        """Exact probability-flow map from level tau to 0: mu + S^½ (S + tau² I)^-½ (y - mu)."""
        return self._apply_spectral(y, (self.evals / (self.evals + tau**2)).sqrt())

    def posterior(self, y: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior of x_0 given x_tau = y: means (B, D) and the shared covariance (D, D)."""
        gain = self.evals / (self.evals + tau**2)
        means = self._apply_spectral(y, gain).reshape(y.shape[0], -1).to(torch.float64)
        cov = (self.evecs * (self.evals * (1.0 - gain))) @ self.evecs.T
        return means, cov


def _kwargs(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
    return {"shape": list(shape)}


# the analytic denoiser of Gaussian data: refitted by moments each stage, not trained
NETWORKS.add("gaussian", Network(GaussianDenoiser, _kwargs, rank=None, wrapped=False))
