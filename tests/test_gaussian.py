import torch

from sfbd.nets.gaussian import GaussianDenoiser


def _model(d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    m = GaussianDenoiser((d,))
    m.set_moments(torch.randn(d, generator=g, dtype=torch.float64), a @ a.T + 0.1 * torch.eye(d))
    return m


def test_forward_matches_matrix_formula():
    m = _model()
    x = torch.randn(5, 3, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 30.0], dtype=torch.float64)
    out = m(x, sigma)
    cov = m.cov
    for i in range(5):
        expect = m.mean + cov @ torch.linalg.solve(
            cov + sigma[i] ** 2 * torch.eye(3), x[i] - m.mean
        )
        assert torch.allclose(out[i], expect, atol=1e-10)


def test_denoiser_is_posterior_mean_by_monte_carlo():
    # Tweedie: D(y, sigma) = E[x | x + sigma n = y]; check with the exact joint Gaussian
    m = _model(d=2, seed=3)
    means, cov = m.posterior(torch.zeros(1, 2, dtype=torch.float64), 0.8)
    assert torch.allclose(
        means[0], m(torch.zeros(1, 2, dtype=torch.float64), torch.tensor([0.8]))[0]
    )
    # posterior covariance is S - S (S + t^2)^-1 S
    s = m.cov
    expect = s - s @ torch.linalg.solve(s + 0.64 * torch.eye(2, dtype=torch.float64), s)
    assert torch.allclose(cov, expect, atol=1e-10)


def test_fit_recovers_moments_and_image_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 1, 2, 2, generator=g) * 0.3 + 0.2
    m = GaussianDenoiser((1, 2, 2))
    m.fit(x)
    assert torch.allclose(m.mean, torch.full((4,), 0.2, dtype=torch.float64), atol=0.01)
    assert torch.allclose(m.cov, 0.09 * torch.eye(4, dtype=torch.float64), atol=0.01)
    out = m(x[:3], torch.ones(3))
    assert out.shape == (3, 1, 2, 2) and out.dtype == x.dtype


def test_flow_map_pushes_noisy_marginal_to_data_marginal():
    # y ~ N(mu, S + tau^2 I) mapped by the flow has covariance exactly S
    m = _model(d=3, seed=1)
    tau = 0.7
    a = m._apply_spectral(
        torch.eye(3, dtype=torch.float64) + m.mean, (m.evals / (m.evals + tau**2)).sqrt()
    )
    a = a - m.mean  # rows: A e_i, i.e. A^T (A is symmetric)
    pushed = a @ (m.cov + tau**2 * torch.eye(3, dtype=torch.float64)) @ a.T
    assert torch.allclose(pushed, m.cov, atol=1e-10)
