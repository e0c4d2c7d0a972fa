"""Tests for the sinusoidal noise-level embedding shared by the denoiser networks."""

import math

import pytest
import torch

from sfbd.nets.embedding import NoiseEmbedding


def test_shape_and_dtype() -> None:
    emb = NoiseEmbedding(64)
    out = emb(torch.linspace(-1.6, 1.1, 5))
    assert out.shape == (5, 64)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    emb64 = NoiseEmbedding(16, freq_dim=8).double()
    assert emb64(torch.zeros(3)).dtype == torch.float64
    # float64 labels into a float32 module are cast, not rejected.
    assert emb(torch.zeros(2, dtype=torch.float64)).dtype == torch.float32


def test_sinusoids_match_formula() -> None:
    emb = NoiseEmbedding(8, freq_dim=4, max_positions=100.0, scale=2.0)
    labels = torch.tensor([0.3, -1.0])
    phi = emb.sinusoids(labels)
    freqs = torch.tensor([1.0, 100.0 ** (-1 / 2)])
    t = labels[:, None] * 2.0 * freqs
    expected = torch.cat([torch.cos(t), torch.sin(t)], dim=1)
    torch.testing.assert_close(phi, expected)
    # Each cos/sin pair lies on the unit circle.
    torch.testing.assert_close(phi[:, :2] ** 2 + phi[:, 2:] ** 2, torch.ones(2, 2))


def test_distinguishes_nearby_noise_levels() -> None:
    torch.manual_seed(0)
    emb = NoiseEmbedding(128)
    # sigma = 1.0 vs 1.1: c_noise differs by ln(1.1)/4 ~ 0.024.
    labels = torch.tensor([0.0, math.log(1.1) / 4])
    phi = emb.sinusoids(labels)
    assert (phi[0] - phi[1]).abs().max() > 0.5
    out = emb(labels)
    assert not torch.allclose(out[0], out[1])


def test_odd_freq_dim_rejected() -> None:
    with pytest.raises(ValueError, match="even"):
        NoiseEmbedding(16, freq_dim=7)
