import torch

from sfbd.diffusion.batched import denoise_all, generate
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.nets.gaussian import GaussianDenoiser


def _model():
    m = GaussianDenoiser((2,))
    m.set_moments(torch.tensor([0.5, -0.5]), torch.tensor([[0.3, 0.1], [0.1, 0.2]]))
    return m


def test_results_do_not_depend_on_batch_size():
    m, grid = _model(), edm_sigmas(18)
    a = generate(m, 10, (2,), grid, stream=1, sampler="sde", batch_size=3, progress=False)
    b = generate(m, 10, (2,), grid, stream=1, sampler="sde", batch_size=10, progress=False)
    assert a.shape == (10, 2) and torch.equal(a, b)
    y = torch.randn(7, 2)
    c = denoise_all(m, y, 0.4, grid, stream=2, sampler="sde", batch_size=2, progress=False)
    d = denoise_all(m, y, 0.4, grid, stream=2, sampler="sde", batch_size=7, progress=False)
    assert torch.equal(c, d)
    # keys, not positions, pick the noise: a subset keyed by its original indices agrees
    keys = torch.tensor([2, 5])
    e = denoise_all(m, y[keys], 0.4, grid, stream=2, sampler="sde", keys=keys, progress=False)
    assert torch.equal(e, c[keys])


def test_heun_denoising_with_exact_model_moves_towards_the_mean():
    m, grid = _model(), edm_sigmas(64)
    y = m.mean.float() + torch.tensor([[2.0, 2.0]])
    x = denoise_all(m, y, 0.5, grid, stream=0, sampler="heun", progress=False)
    assert torch.allclose(x.double(), m.flow_map(y.double(), 0.5), atol=5e-3)
