"""Noise-level embedding shared by the raw denoiser networks.

The EDM preconditioning passes the noise level to the raw network as ``c_noise = ln(sigma) / 4``,
a scalar of order one per sample (about [-1.6, 1.1] for sigma in [0.002, 80]). Networks need a
rich, smooth feature vector of that scalar, so :class:`NoiseEmbedding` maps it through sinusoidal
(transformer-style positional) features followed by a small MLP.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class NoiseEmbedding(nn.Module):
    """Sinusoidal features of the noise label followed by a 2-layer SiLU MLP.

    With ``t = scale * noise_labels`` and ``K = freq_dim // 2`` frequencies

        omega_k = max_positions ** (-k / K),            k = 0, ..., K - 1
        phi(t)  = [cos(t * omega_0), ..., cos(t * omega_{K-1}),
                   sin(t * omega_0), ..., sin(t * omega_{K-1})]
        emb     = W2 @ SiLU(W1 @ phi(t) + b1) + b2

    The default ``scale = 1000 / 4 = 250`` maps ``c_noise = ln(sigma)/4`` in about [-1.6, 1.1] to
    ``t`` in about [-400, 275], the same order as the DDPM timestep range 0..1000 for which the
    geometric frequency range 1 .. 1/max_positions (max_positions = 10000) was designed: the
    fastest feature resolves small changes of sigma, the slowest varies smoothly over the whole
    range.

    Args:
        dim: output feature size.
        freq_dim: number of sinusoidal features (even); defaults to ``dim``.
        max_positions: ratio between the highest and the lowest frequency.
        scale: multiplier applied to the labels before the sinusoids.

    Shapes:
        forward(noise_labels: (B,)) -> (B, dim)
    """

    def __init__(
        self,
        dim: int = 128,
        *,
        freq_dim: int | None = None,
        max_positions: float = 10000.0,
        scale: float = 250.0,
    ) -> None:
        super().__init__()
        freq_dim = dim if freq_dim is None else freq_dim
        if freq_dim % 2 != 0 or freq_dim < 2:
            raise ValueError(f"freq_dim must be an even number >= 2, got {freq_dim}")
        self.dim = dim
        self.freq_dim = freq_dim
        self.max_positions = float(max_positions)
        self.scale = float(scale)
        self.fc1 = nn.Linear(freq_dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def sinusoids(self, noise_labels: Tensor) -> Tensor:
        """Sinusoidal features phi(scale * labels): (B,) -> (B, freq_dim), in the weights' dtype."""
        half = self.freq_dim // 2
        # Compute the angles in at least float32 (t reaches a few hundred radians).
        work = torch.promote_types(noise_labels.dtype, torch.float32)
        k = torch.arange(half, device=noise_labels.device, dtype=work)
        freqs = torch.exp(-math.log(self.max_positions) * k / half)
        t = noise_labels.reshape(-1).to(work) * self.scale
        angles = t[:, None] * freqs[None, :]
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).to(self.fc1.weight.dtype)

    def forward(self, noise_labels: Tensor) -> Tensor:
        """Embed noise labels: (B,) -> (B, dim)."""
        h = self.sinusoids(noise_labels)
        return self.fc2(nn.functional.silu(self.fc1(h)))
