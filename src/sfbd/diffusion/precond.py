"""EDM preconditioning: turn a raw network F into a denoiser D(x, sigma).

Karras et al. 2022, Table 1 / eq. (7), with sigma_data the data's standard deviation:
    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma * sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),  c_noise = ln(sigma) / 4,
    D(x, sigma) = c_skip * x + c_out * F(c_in * x, c_noise).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

SIGMA_DATA = 0.5


class Denoiser(Protocol):
    """Anything with ``D(x, sigma) -> x_hat``: x (B, *), sigma (B,) -> (B, *)."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


def precond_coefficients(
    sigma: torch.Tensor, sigma_data: float = SIGMA_DATA
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) for noise levels ``sigma`` of any shape (eq. 7)."""
    s2, d2 = sigma**2, sigma_data**2
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1.0 / (s2 + d2).sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


class EDMDenoiser(nn.Module):
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise) around a raw network ``net``.

    ``net(x, noise_labels)`` maps (B, *) and (B,) to (B, *). The network runs in the dtype of
    its parameters; the skip connection is computed in the input's dtype.
    """

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, aug_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """D(x, sigma); ``aug_labels`` (B, augment_dim) tell the network which augmentation
        the training input went through (non-leaky augmentation; None at sampling time)."""
        sigma = sigma.to(x.dtype).reshape(-1)
        c_skip, c_out, c_in, c_noise = precond_coefficients(sigma, self.sigma_data)
        view = (-1,) + (1,) * (x.ndim - 1)
        pdtype = next(self.net.parameters()).dtype
        if aug_labels is not None:
            aug_labels = aug_labels.to(pdtype)
        f = self.net((c_in.view(view) * x).to(pdtype), c_noise.to(pdtype), aug_labels)
        return c_skip.view(view) * x + c_out.view(view) * f.to(x.dtype)
