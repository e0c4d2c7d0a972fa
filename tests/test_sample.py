import pytest
import torch

from sfbd.diffusion.sample import backward_sample, heun_sampler, sample_from_noise, sde_sampler
from sfbd.diffusion.schedule import edm_sigmas, truncate_sigmas
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.rng import keyed_randn


def _gauss(d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.5
    m = GaussianDenoiser((d,))
    cov = a @ a.T + 0.05 * torch.eye(d, dtype=torch.float64)
    m.set_moments(torch.randn(d, generator=g, dtype=torch.float64), cov)
    return m


def test_heun_from_tau_matches_closed_form_flow_and_converges():
    m = _gauss()
    tau = 1.0
    y = m.mean + torch.randn(256, 3, dtype=torch.float64) * 1.5
    exact = m.flow_map(y, tau)
    errors = []
    for steps in (18, 36, 72, 144):
        out = heun_sampler(m, y, truncate_sigmas(edm_sigmas(steps), tau))
        errors.append((out - exact).abs().max().item())
    assert errors[0] < 0.1
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
    # second-order method: doubling the steps cuts the error by roughly 4x
    assert errors[-1] < errors[-2] / 2.5


def test_heun_from_pure_noise_has_data_covariance():
    m = _gauss(d=2, seed=4)
    x = sample_from_noise(
        m, torch.arange(40000), (2,), edm_sigmas(64), stream=1, dtype=torch.float64
    )
    assert torch.allclose(x.mean(0), m.mean, atol=0.03)
    assert torch.allclose(torch.cov(x.T), m.cov, atol=0.03)


def test_sde_from_tau_samples_exact_posterior():
    m = _gauss(d=2, seed=2)
    tau = 0.8
    n = 20000
    y = (m.mean + torch.tensor([0.7, -0.4], dtype=torch.float64)).expand(n, 2).clone()
    # the ancestral discretisation is first order: fine steps make its bias negligible
    g = torch.Generator().manual_seed(0)
    out = sde_sampler(
        m,
        y,
        truncate_sigmas(edm_sigmas(2048), tau),
        lambda step: torch.randn(y.shape, generator=g, dtype=y.dtype),
    )
    post_mean, post_cov = m.posterior(y[:1], tau)
    se = (post_cov.diagonal() / n).sqrt()
    assert ((out.mean(0) - post_mean[0]).abs() < 4 * se).all()
    emp = torch.cov(out.T)
    # sampling error of a covariance entry ~ sqrt(2/n) * scale; 4 standard errors
    tol = 4 * (2 / n) ** 0.5 * post_cov.diagonal().max()
    assert (emp - post_cov).abs().max() < tol
    # the deterministic flow does not sample the posterior: all outputs are identical
    flow = heun_sampler(m, y[:4], truncate_sigmas(edm_sigmas(256), tau))
    assert torch.allclose(flow[0], flow[3])


def test_sde_spread_error_shrinks_with_steps():
    # guards the test above against being vacuous: coarse steps measurably shrink the spread,
    # and the deficit falls at least in proportion to the step size
    m = _gauss(d=2, seed=2)
    tau = 0.8
    n = 20000
    y = m.mean.expand(n, 2).clone()
    _, post_cov = m.posterior(y[:1], tau)
    deficits = []
    for steps in (12, 48, 192):
        g = torch.Generator().manual_seed(0)
        out = sde_sampler(
            m,
            y,
            truncate_sigmas(edm_sigmas(steps), tau),
            lambda step, g=g: torch.randn(y.shape, generator=g, dtype=y.dtype),
        )
        deficits.append(1 - (torch.cov(out.T).trace() / post_cov.trace()).item())
    assert deficits[0] > 0.1
    assert deficits[0] > 2 * deficits[1] > 4 * deficits[2] > 0


def test_per_sample_seeds_make_results_batch_independent():
    m = _gauss(d=3, seed=1)
    y = torch.randn(10, 3, dtype=torch.float64)
    keys = torch.arange(100, 110)
    full = backward_sample(m, y, 0.5, edm_sigmas(18), keys=keys, stream=3, sampler="sde")
    parts = torch.cat(
        [
            backward_sample(
                m, y[i : i + 3], 0.5, edm_sigmas(18), keys=keys[i : i + 3], stream=3, sampler="sde"
            )
            for i in range(0, 10, 3)
        ]
    )
    assert torch.equal(full, parts)
    again = backward_sample(m, y, 0.5, edm_sigmas(18), keys=keys, stream=3, sampler="sde")
    assert torch.equal(full, again)
    other = backward_sample(m, y, 0.5, edm_sigmas(18), keys=keys, stream=4, sampler="sde")
    assert not torch.allclose(full, other)


def test_sde_default_noise_and_unknown_sampler():
    m = _gauss(d=2)
    out = sde_sampler(
        m, torch.randn(5, 2, dtype=torch.float64), truncate_sigmas(edm_sigmas(10), 0.3)
    )
    assert out.shape == (5, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="unknown sampler"):
        backward_sample(
            m, torch.zeros(1, 2), 0.3, edm_sigmas(10), keys=torch.zeros(1), stream=0, sampler="x"
        )


def test_keyed_noise_used_for_start():
    m = _gauss(d=2)
    grid = edm_sigmas(10)
    x = sample_from_noise(m, torch.arange(3), (2,), grid, stream=9, dtype=torch.float64)
    # with a 1-step-equivalent check: the start is sigma_max * keyed noise, counter 0
    z = keyed_randn(torch.arange(3), (2,), stream=9, counter=0, dtype=torch.float64)
    x2 = heun_sampler(m, grid[0].item() * z, grid)
    assert torch.allclose(x, x2)


def _meta_denoiser():
    """A real network (EDM-preconditioned MLP) living on the meta device: any op that reads a
    tensor's value on the host (.item(), float(t), bool(t), .tolist()) raises there."""
    from sfbd.nets import build_denoiser

    torch.manual_seed(0)
    return build_denoiser("mlp", {"shape": [3], "hidden": 8, "layers": 1}).to("meta")


@pytest.mark.parametrize("sampler", ["heun", "sde"])
def test_step_loops_never_read_tensor_values(sampler):
    # Meta tensors have shapes but no values, so reading one on the host fails: the loop runs
    # here only if no step synchronises (the CUDA-graph / compile friendliness we rely on).
    den = _meta_denoiser()
    y = torch.empty(4, 3, device="meta")
    keys = torch.arange(4, device="meta")
    out = backward_sample(den, y, 0.59, edm_sigmas(18), keys=keys, stream=1, sampler=sampler)
    assert out.shape == (4, 3) and out.device.type == "meta" and out.dtype == torch.float32
    out = sample_from_noise(den, keys, (3,), edm_sigmas(6), stream=1, sampler=sampler)
    assert out.shape == (4, 3) and out.device.type == "meta"
    # the guard is live: a host read of a meta tensor does raise
    with pytest.raises((RuntimeError, NotImplementedError)):
        float(y[0, 0])


def _sde_float64_noise(den, x, sigmas):
    # noise deliberately float64 and deterministic (a fixed ramp per step)
    return sde_sampler(
        den, x, sigmas, lambda step: torch.full(x.shape, 0.1 * step, dtype=torch.float64)
    )


@pytest.mark.parametrize("sampler", [heun_sampler, _sde_float64_noise])
def test_state_keeps_input_dtype_whatever_the_denoiser_returns(sampler):
    m = _gauss(d=2)

    def promoting(x, sigma):  # a denoiser answering in float64 whatever it is given
        return m(x.double(), sigma.double())

    y = torch.randn(6, 2)
    sig = truncate_sigmas(edm_sigmas(18), 0.5)
    out = sampler(promoting, y, sig)
    assert out.dtype == torch.float32
    ref = sampler(promoting, y.double(), sig)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    # a float32 grid or a plain list gives the same levels
    assert torch.equal(
        sampler(promoting, y, sig.float().tolist()), sampler(promoting, y, sig.float())
    )
