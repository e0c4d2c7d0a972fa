"""MMPS posterior sampling (sfbd.diffusion.posterior) against closed forms on Gaussian data.

For x ~ N(mu, S) and y = A x + s eta the posterior is Gaussian,
N(mu + S A^T G^-1 (y - A mu), S - S A^T G^-1 A S) with G = A S A^T + s^2 I; the analytic
Gaussian denoiser is exact, so MMPS with converged CG draws exactly from it (up to the
sampler's discretisation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfbd.diffusion.batched import denoise_all
from sfbd.diffusion.posterior import conjugate_gradient, mmps_cost, posterior_sample
from sfbd.diffusion.sample import backward_sample, evaluations
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.noise.blur import BlurOperator, gaussian_kernel
from sfbd.noise.mask import MaskedGaussian, MaskOperator

GRID = edm_sigmas(256, dtype=torch.float64)
N = 4000


def _prior(d: int, shape: tuple[int, ...], seed: int = 0) -> tuple[GaussianDenoiser, np.ndarray]:
    g = np.random.default_rng(seed)
    a = g.normal(size=(d, d)) * 0.3
    cov = a @ a.T + 0.05 * np.eye(d)
    mu = g.normal(size=d) * 0.3
    den = GaussianDenoiser(shape)
    den.set_moments(torch.as_tensor(mu), torch.as_tensor(cov))
    return den, cov


def _closed_form(den, a: np.ndarray, y: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    mu, cov = den.mean.numpy(), den.cov.numpy()
    gain = cov @ a.T @ np.linalg.inv(a @ cov @ a.T + s**2 * np.eye(len(a)))
    return mu + gain @ (y - a @ mu), cov - gain @ a @ cov


def _dense(op, shape: tuple[int, ...]) -> np.ndarray:
    """The matrix of a one-row operator, column j = A e_j."""
    d = int(np.prod(shape))
    eye = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    return op.forward(eye).reshape(d, d).T.numpy()


def _check_samples(x: torch.Tensor, mean: np.ndarray, cov: np.ndarray) -> None:
    flat = x.reshape(len(x), -1).numpy()
    se = np.sqrt(np.diag(cov) / len(flat))
    assert np.all(np.abs(flat.mean(0) - mean) < 5 * se + 1e-3), (flat.mean(0), mean)
    assert np.allclose(np.cov(flat.T), cov, atol=0.08 * np.abs(cov).max()), (np.cov(flat.T), cov)


def _posterior(den, op, y_row: torch.Tensor, s: float, cg: int, sampler="sde", grid=GRID):
    y = y_row.expand(N, *y_row.shape).contiguous()
    return posterior_sample(
        den, op, y, s**2, grid, keys=torch.arange(N), stream=3, shape=tuple(y_row.shape),
        sampler=sampler, cg_steps=cg,
    )  # fmt: skip


@pytest.mark.parametrize("s", [0.1, 0.0])
def test_mask_posterior_matches_the_closed_form(s):
    d = 5
    den, _ = _prior(d, (d,))
    m = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    x_true = torch.tensor([0.3, -0.5, 0.8, 0.1, 0.4], dtype=torch.float64)
    y = m * (x_true + s * torch.tensor([0.5, 0.0, -1.0, 0.3, 0.0], dtype=torch.float64))
    op = MaskOperator(m.expand(N, d))
    x = _posterior(den, op, y, s, cg=d)
    keep = m.bool().numpy()
    a = np.eye(d)[keep]  # the observed entries (s = 0: G is singular off the mask)
    mean, cov = _closed_form(den, a, y.numpy()[keep], s)
    _check_samples(x, mean, cov)
    if s == 0:  # noiseless: the observed entries are reproduced exactly
        assert np.allclose(x.numpy()[:, keep], y.numpy()[keep], atol=1e-2)


@pytest.mark.parametrize("sampler", ["sde", "heun"])
def test_blur_posterior_matches_the_closed_form(sampler):
    shape = (1, 3, 3)
    den, _ = _prior(9, shape, seed=1)
    op = BlurOperator(torch.as_tensor(gaussian_kernel(0.8)), 1)
    a = _dense(op, shape)
    x_true = torch.linspace(-0.6, 0.7, 9, dtype=torch.float64).reshape(shape)
    y = op.forward(x_true[None])[0] + 0.05 * torch.linspace(1, -1, 9).reshape(shape)
    grid = GRID if sampler == "sde" else edm_sigmas(48, dtype=torch.float64)  # 2nd order
    x = _posterior(den, op, y, 0.05, cg=9, sampler=sampler, grid=grid)
    mean, cov = _closed_form(den, a, y.reshape(-1).numpy(), 0.05)
    if sampler == "sde":
        _check_samples(x, mean, cov)
    else:  # the ODE moves noise to the posterior: its mean, and its spread in distribution
        flat = x.reshape(N, -1).numpy()
        assert np.allclose(flat.mean(0), mean, atol=5 * np.sqrt(np.diag(cov).max() / N) + 1e-3)
        assert np.allclose(np.cov(flat.T), cov, atol=0.08 * np.abs(cov).max())


def test_blur_adjoint_is_the_transpose_of_the_dense_matrix():
    shape = (2, 4, 5)  # two channels, non-square, an asymmetric kernel
    k = torch.as_tensor(np.arange(9.0).reshape(3, 3) / 36 + 0.01)
    op = BlurOperator(k, 2)
    a = _dense(op, shape)
    v = torch.randn(1, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert np.allclose(op.adjoint(v).reshape(-1).numpy(), a.T @ v.reshape(-1).numpy())
    # and A is the documented conv2d: zero padding, cross-correlation, channel by channel
    x = torch.randn(1, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.nn.functional.conv2d(x, k.expand(2, 1, 3, 3), padding=1, groups=2)
    assert torch.allclose(op.forward(x), ref)
    assert ref[0, 0, 0, 0] == pytest.approx(float((x[0, 0, :2, :2] * k[1:, 1:]).sum()))


def test_identity_operator_reproduces_the_truncated_start():
    """A = I, s = tau: MMPS from sigma_max and the truncated start at y from tau sample the
    same posterior N(mu + S (S + tau^2)^-1 (y - mu), S - S (S + tau^2)^-1 S). (The SDE
    steps hold D fixed over a step, which lowers the variance to first order in the step: 8%
    here at 256 steps, within sampling error at 1024.)"""
    d, tau = 3, 0.4
    den, _ = _prior(d, (d,), seed=2)
    y = torch.tensor([0.5, -0.2, 0.9], dtype=torch.float64)
    fine = edm_sigmas(1024, dtype=torch.float64)
    eye = MaskOperator(torch.ones(N, d, dtype=torch.float64))
    mmps = _posterior(den, eye, y, tau, cg=d, grid=fine)
    ys = y.expand(N, d).contiguous()
    trunc = backward_sample(den, ys, tau, fine, keys=torch.arange(N), stream=3, sampler="sde")
    mean, cov = den.posterior(y[None], tau)
    for x in (mmps, trunc):
        _check_samples(x, mean[0].numpy(), cov.numpy())
    diff = (mmps.mean(0) - trunc.mean(0)).numpy()
    assert np.all(np.abs(diff) < 6 * np.sqrt(np.diag(cov.numpy()) / N))


def test_results_do_not_depend_on_batch_size_or_order():
    d, n = 4, 60
    den, _ = _prior(d, (d,), seed=3)
    noise = MaskedGaussian(0.05, keep=0.5, index=np.arange(1000, 1000 + n), cg_steps=2)
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    y = torch.as_tensor(noise.encode_noisy(noise.corrupt(x, np.arange(n), 1), np.arange(n)))
    grid = edm_sigmas(16)

    def run(rows, batch):
        return denoise_all(
            den, y[rows], noise, grid, stream=5, sampler="sde", batch_size=batch,
            keys=torch.as_tensor(rows), progress=False,
        )  # fmt: skip

    whole = run(np.arange(n), 64)
    assert torch.allclose(run(np.arange(n), 7), whole, atol=1e-6)
    perm = np.random.default_rng(1).permutation(n)
    assert torch.allclose(run(perm, 11), whole[perm], atol=1e-6)


def test_conjugate_gradient_solves_each_row_in_d_steps():
    g = torch.Generator().manual_seed(0)
    d, b = 6, 3
    a = torch.randn(b, d, d, generator=g, dtype=torch.float64)
    m = a @ a.transpose(1, 2) + 0.1 * torch.eye(d, dtype=torch.float64)  # one SPD per row
    rhs = torch.randn(b, d, generator=g, dtype=torch.float64)
    rhs[2] = 0  # a row with nothing to solve stays 0

    def matvec(v):
        return (m @ v[:, :, None])[:, :, 0]

    u = conjugate_gradient(matvec, rhs, d)
    assert torch.allclose(u, torch.linalg.solve(m, rhs), atol=1e-8)
    one = conjugate_gradient(matvec, rhs, 1)  # one step: the exact line search along rhs
    r = rhs[0]
    assert torch.allclose(one[0], (r @ r) / (r @ m[0] @ r) * r)
    assert torch.equal(one[2], torch.zeros(d, dtype=torch.float64))


def test_conjugate_gradient_stops_a_row_below_the_curvature_floor():
    """M = s^2 I + A V A^T has p^T M p >= s^2 |p|^2 when V is PSD: a true M is solved as
    without the floor, and a row whose direction finds less stops (here at u = 0) instead of
    taking the step r^T r / p^T M p, which grows without bound as p^T M p -> 0."""
    g = torch.Generator().manual_seed(1)
    d, s2 = 5, 0.01
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    good = s2 * torch.eye(d, dtype=torch.float64) + a @ a.T
    bad = s2 * torch.eye(d, dtype=torch.float64)
    bad[0, 0] = 1e-6  # V = -(s^2 - 1e-6) e_0 e_0^T: not PSD; p = e_0 finds 1e-6 < s^2
    m = torch.stack([good, bad, bad])
    rhs = torch.zeros(3, d, dtype=torch.float64)
    rhs[0] = torch.randn(d, generator=g, dtype=torch.float64)
    rhs[1, 0] = 1.0  # along the bad direction
    rhs[2, 1] = 1.0  # along a good one (an eigenvector of the bad M, eigenvalue s^2)

    def matvec(v):
        return (m @ v[:, :, None])[:, :, 0]

    free, floored = conjugate_gradient(matvec, rhs, d), conjugate_gradient(matvec, rhs, d, s2)
    assert torch.allclose(floored[0], torch.linalg.solve(good, rhs[0]), atol=1e-8)
    assert torch.allclose(floored[0], free[0], atol=1e-10)
    assert float(free[1, 0]) == pytest.approx(1e6)  # the unbounded step the floor refuses
    assert torch.equal(floored[1], torch.zeros(d, dtype=torch.float64))
    assert torch.allclose(floored[2], rhs[2] / s2)  # at the floor exactly: solved


def test_cost_counts_forward_and_backward_passes():
    grid = edm_sigmas(10)
    fwd, bwd = mmps_cost("heun", grid, cg_steps=2)
    assert fwd == evaluations("heun", grid) == 19 and bwd == 3 * fwd
    assert mmps_cost("sde", grid, 1) == (10, 20)
