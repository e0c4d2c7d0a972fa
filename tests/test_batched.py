import torch

from sfbd.diffusion.batched import denoise_all, generate
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.noise import WhiteGaussian


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
    c = denoise_all(
        m, y, WhiteGaussian(0.4), grid, stream=2, sampler="sde", batch_size=2, progress=False
    )
    d = denoise_all(
        m, y, WhiteGaussian(0.4), grid, stream=2, sampler="sde", batch_size=7, progress=False
    )
    assert torch.equal(c, d)
    # keys, not positions, pick the noise: a subset keyed by its original indices agrees
    keys = torch.tensor([2, 5])
    e = denoise_all(
        m, y[keys], WhiteGaussian(0.4), grid, stream=2, sampler="sde", keys=keys, progress=False
    )
    assert torch.equal(e, c[keys])


def test_heun_denoising_with_exact_model_moves_towards_the_mean():
    m, grid = _model(), edm_sigmas(64)
    y = m.mean.float() + torch.tensor([[2.0, 2.0]])
    x = denoise_all(m, y, WhiteGaussian(0.5), grid, stream=0, sampler="heun", progress=False)
    assert torch.allclose(x.double(), m.flow_map(y.double(), 0.5), atol=5e-3)


def test_batches_dealt_to_processes_cover_every_key_once_and_match_one_process():
    from sfbd.diffusion.batched import batch_starts, generate_batches

    den = GaussianDenoiser((2,))
    grid = edm_sigmas(8)
    whole = torch.cat(
        list(generate_batches(den, 23, (2,), grid, stream=5, batch_size=4, progress=False))
    )
    for world in (2, 3):
        got = {}
        for rank in range(world):
            starts = batch_starts(23, 4, rank, world)
            xs = generate_batches(
                den, 23, (2,), grid, stream=5, batch_size=4, progress=False, rank=rank, world=world
            )
            got.update(dict(zip(starts, xs, strict=True)))
        assert sorted(got) == list(range(0, 23, 4))
        assert torch.equal(torch.cat([got[s] for s in sorted(got)]), whole)
