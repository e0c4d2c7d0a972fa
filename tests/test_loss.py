import torch

from sfbd.diffusion.loss import EDMLoss
from sfbd.diffusion.precond import EDMDenoiser


class Zero(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, noise_labels, aug_labels=None):
        return x * self.w


def test_weight_formula():
    loss = EDMLoss()
    s = torch.tensor([0.5, 1.0, 2.0])
    assert torch.allclose(loss.weight(s), (s**2 + 0.25) / (0.5 * s) ** 2)


def test_perfect_denoiser_has_zero_loss():
    x = torch.randn(8, 5)
    loss = EDMLoss()
    assert torch.allclose(loss(lambda xn, s: x, x), torch.zeros(8))


def test_zero_network_loss_is_unit_variance_target():
    # With F = 0, D = c_skip (x + n); lambda * E||D - x||^2 / dim equals the raw target's
    # variance, which preconditioning makes exactly 1 when Var[x] = sigma_data^2.
    torch.manual_seed(0)
    x = 0.5 * torch.randn(20000, 4)
    loss = EDMLoss()
    sigma = torch.full((20000,), 0.7)
    val = loss(EDMDenoiser(Zero()), x, sigma=sigma, noise=torch.randn_like(x))
    assert abs(val.mean().item() - 1.0) < 0.03


def test_sigma_distribution_is_lognormal():
    g = torch.Generator().manual_seed(1)
    seen = []
    loss = EDMLoss()

    def spy(xn, s):
        seen.append(s.clone())
        return xn

    loss(spy, torch.zeros(50000, 1), g)
    logs = seen[0].log()
    assert abs(logs.mean().item() + 1.2) < 0.03
    assert abs(logs.std().item() - 1.2) < 0.03
