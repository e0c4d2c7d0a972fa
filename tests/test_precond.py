import torch

from sfbd.diffusion.precond import EDMDenoiser, precond_coefficients


class Zero(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, noise_labels, aug_labels=None):
        return x * self.w


def test_coefficient_identities():
    sigma = torch.logspace(-3, 2, 50, dtype=torch.float64)
    sd = 0.5
    c_skip, c_out, c_in, c_noise = precond_coefficients(sigma, sd)
    # EDM's unit-variance conditions: Var[c_in (x + n)] = 1 and the target variance is 1,
    # i.e. c_skip^2 sd^2 + ... : c_out^2 + c_skip^2 sigma^2 = ... ; check the closed identities
    assert torch.allclose(c_in**2 * (sigma**2 + sd**2), torch.ones_like(sigma))
    # effective training target (x - c_skip (x + n)) / c_out has unit variance
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2
    assert torch.allclose(target_var, torch.ones_like(sigma))
    assert torch.allclose(c_noise, sigma.log() / 4)
    # c_skip -> 1 as sigma -> 0 (denoiser returns its input), -> 0 as sigma -> inf
    assert c_skip[0] > 0.9999 and c_skip[-1] < 1e-4


def test_zero_network_gives_skip_only():
    d = EDMDenoiser(Zero())
    x = torch.randn(4, 3)
    sigma = torch.tensor([0.1, 0.5, 1.0, 10.0])
    out = d(x, sigma)
    c_skip = 0.25 / (sigma**2 + 0.25)
    assert torch.allclose(out, c_skip[:, None] * x)
