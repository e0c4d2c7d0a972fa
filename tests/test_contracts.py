"""One contract test per plug-in kind, run over everything registered: every method, sampler,
noise model and model kind is tested the moment it is registered.

* methods: a plan within SFBD's budget, and a tiny benchmark-mode run that finishes;
* samplers: started at tau on the analytic Gaussian, they turn N(mu, S + tau^2 I) into
  N(mu, S) (the ODE exactly, the SDE in distribution), cost what they report, and are batch
  independent;
* noise models: keyed corruption, a JSON spec that rebuilds them, and a backward pass that
  maps the corrupted Gaussian back to the prior (a posterior sampler preserves the prior);
* model kinds: D(x, sigma) keeps the shape, tends to x as sigma -> 0, and counts its
  parameters without allocating them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from run_helpers import RING8_TINY

from sfbd.config import load_config
from sfbd.diffusion.sample import SAMPLERS, run_sampler
from sfbd.diffusion.schedule import edm_sigmas, truncate_sigmas
from sfbd.methods import METHODS
from sfbd.methods.base import total_steps
from sfbd.nets import NETWORKS, build_model, parameter_count
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.noise import NOISE_MODELS, from_spec
from sfbd.run.runner import Run

TINY = [*RING8_TINY, "train.pretrain_steps=20", "train.update_steps=10", "train.batch_size=32"]
TINY += ["sfbd.iterations=2", "eval.num_samples=100", "sample.steps=8", "device=cpu"]

MU = torch.tensor([0.4, -0.3, 0.1], dtype=torch.float64)
L = torch.tensor([[0.5, 0.0, 0.0], [0.2, 0.3, 0.0], [-0.1, 0.1, 0.25]], dtype=torch.float64)
S = L @ L.T


def _gaussian() -> GaussianDenoiser:
    m = GaussianDenoiser((3,))
    m.set_moments(MU, S)
    return m


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.to(torch.float64)
    return x.mean(0), torch.cov(x.T)


class _Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls, self.rows = inner, 0, 0

    def forward(self, x, sigma):
        self.calls += 1
        self.rows += x.shape[0]  # sample evaluations
        return self.inner(x, sigma)


# -- methods ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS.names())
def test_method_plan_and_a_tiny_run(name, tmp_path):
    cfg = load_config(overrides=[*TINY, f"method={name}"])
    stages = METHODS[name]().plan(cfg)
    assert [s.iteration for s in stages] == list(range(len(stages)))
    assert all(s.steps >= 1 for s in stages)
    assert sum(s.steps for s in stages) == total_steps(cfg)  # every method: SFBD's budget
    done = Run(cfg, tmp_path / name, progress=False).execute()
    assert [(d["iteration"], d["stage"]) for d in done] == [(s.iteration, s.name) for s in stages]
    for d, s in zip(done, stages, strict=True):
        assert np.isfinite(d["metrics"]["swd"]) and d["train_steps"] == s.steps
        assert ("denoise_psnr" in d["metrics"]) == (s.denoises or s.name == "online")
        assert ("denoise_nfe" in d["metrics"]) == (s.denoises or s.name == "online")


# -- samplers -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLERS.names())
def test_sampler_maps_the_noisy_gaussian_to_the_prior(name):
    tau, n = 0.6, 40000
    g = torch.Generator().manual_seed(0)
    x0 = MU + torch.randn(n, 3, generator=g, dtype=torch.float64) @ L.T
    y = x0 + tau * torch.randn(n, 3, generator=g, dtype=torch.float64)
    steps = 256 if SAMPLERS[name].stochastic else 64
    sigmas = truncate_sigmas(edm_sigmas(steps, dtype=torch.float64), tau)
    den = _Counting(_gaussian())
    z = torch.Generator().manual_seed(1)
    out = run_sampler(name, den, y, sigmas, lambda i: torch.randn(y.shape, generator=z).double())
    assert den.calls == SAMPLERS[name].evaluations(sigmas.tolist())  # the cost it reports
    mean, cov = _moments(out)
    assert torch.allclose(mean, MU, atol=0.02), mean
    assert torch.allclose(cov, S, atol=0.02), cov
    if not SAMPLERS[name].stochastic:  # the probability-flow map is exact
        assert torch.allclose(out[:100], _gaussian().flow_map(y[:100], tau), atol=5e-3)


# -- noise models -------------------------------------------------------------------------
#: the noise models' prior: small enough to stay within intensities >= 0 (data >= -1)
MU_N = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
S_N = (0.4 * L) @ (0.4 * L).T


@pytest.mark.parametrize("name", NOISE_MODELS.names())
def test_noise_model_contract(name):
    n = 20000
    cls = NOISE_MODELS[name]
    shape = (3,) if cls.data_ndim is None else (1, 1, 3)  # images: 1 x 3 pixels
    noise = cls.example(shape, n)
    spec = json.loads(json.dumps(noise.spec()))
    assert spec["noise"] == name and from_spec(spec).spec() == noise.spec()
    g = torch.Generator().manual_seed(0)
    x = (MU_N + torch.randn(n, 3, generator=g, dtype=torch.float64) @ (0.4 * L).T).float().numpy()
    x = x.reshape(n, *shape)
    index = np.arange(100, 100 + n)
    y = noise.corrupt(x, index, noise_seed=3)
    assert y.dtype == np.float32 and y.shape == x.shape and not np.allclose(y, x)
    rows = np.array([8, 7, 6, 5])  # keyed by the source index, not by the position
    part = noise.subset(rows).corrupt(x[rows], index[rows], noise_seed=3)
    assert np.array_equal(part, y[rows])
    assert not np.array_equal(noise.corrupt(x, index, noise_seed=4), y)
    z = noise.encode(x)  # the model space, and back
    assert np.allclose(noise.decode(z), x, atol=1e-4)
    levels = noise.white_levels(np.arange(n))  # the model-space noise: white at these levels
    if levels is not None:
        resid = (noise.encode_noisy(y, np.arange(n)).astype(np.float64) - z).reshape(n, 3)
        ratio = (resid**2).mean() / (levels**2).mean()  # per element, over every row
        assert levels.shape == (n,) and abs(ratio - 1) < (0.03 if noise.white_is_exact else 0.2)
        assert abs(np.corrcoef(resid[:, 0], resid[:, 1])[0, 1]) < 0.05  # white: uncorrelated
    # the exact denoiser of the model-space prior (Gaussian: exactly so for linear encodings)
    prior = GaussianDenoiser(shape)
    prior.set_moments(*_moments(torch.as_tensor(z).reshape(n, 3)))
    grid = edm_sigmas(256, dtype=torch.float64)
    den = _Counting(prior)
    zy = torch.as_tensor(noise.encode_noisy(y, np.arange(n)), dtype=torch.float64)
    keys = torch.arange(n)  # the pipeline keys rows by their position in the noisy set
    out = noise.backward(den, zy, keys, grid, sampler="sde", stream=9)
    assert den.rows == noise.evaluations("sde", grid, np.arange(n))  # summed over the samples
    # posterior samples of the corrupted prior: the prior again, in the data's scale
    mean, cov = _moments(torch.as_tensor(noise.decode(out.numpy())).reshape(n, 3))
    assert torch.allclose(mean, MU_N, atol=0.01), mean
    assert torch.allclose(cov, S_N, atol=0.1 * float(S_N.abs().max())), (cov, S_N)


# -- model kinds --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", NETWORKS.names())
def test_model_kind_contract(kind):
    spec = NETWORKS[kind]
    shape = (2,) if spec.rank in (None, 1) else (3, 8, 8)
    sets = [f"model.kind={kind}", "model.channels=8", "model.channel_mult=[1, 2]"]
    sets += ["model.blocks_per_level=1", "model.attn_resolutions=[4]", "model.hidden=16"]
    if spec.augmented:
        sets.append("train.augment=0.1")
    cfg = load_config(overrides=["data.source=ring8", *sets])
    model = build_model(cfg, shape).eval()
    assert parameter_count(cfg, shape) == sum(p.numel() for p in model.parameters())
    x = torch.randn(4, *shape)
    with torch.no_grad():
        out = model(x, torch.full((4,), 0.7))
        near = model(x, torch.full((4,), 1e-4))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.allclose(near, x, atol=1e-3)  # D(x, sigma) -> x as sigma -> 0
