"""Posterior sampling for known linear corruptions y = A x + eta, eta ~ N(0, s_y^2 I).

Moment-matching posterior sampling (MMPS; Rozet et al., "Learning Diffusion Priors from
Observations by Expectation Maximization", NeurIPS 2024). On the diffusion state
x_t = x + sigma_t z the denoiser D(x_t) = E[x | x_t] and Tweedie's second moment give
Cov[x | x_t] = sigma_t^2 J with J = dD/dx_t (symmetric for an exact denoiser). MMPS takes

    p(x | x_t) ~ N(D, V),  V = sigma_t^2 J,   so   p(y | x_t) ~ N(A D, M),  M = s_y^2 I + A V A^T,

and replaces D by the posterior denoiser

    D_y(x_t) = E[x | x_t, y] ~ D + V A^T u,   M u = y - A D,

with u from a few conjugate-gradient steps. Each product M v = s_y^2 v + sigma_t^2 A J (A^T v)
is one vector-Jacobian product of D (J symmetric: J w = J^T w), so a call of D_y costs one
forward pass and ``cg_steps + 1`` backward passes of the network. Any registered sampler run
from sigma_max with D_y in place of D then samples p(x | y). For Gaussian data D is linear, J
is exact and D_y is exactly E[x | x_t, y] once CG has converged (D steps): the sampler draws
from the Gaussian posterior up to its discretisation (tests/test_posterior.py).

A learned denoiser's J is neither exactly symmetric nor positive semidefinite, so along some
direction p the measured p^T M p can fall below s_y^2 |p|^2, the least a true M has, even to
~0, where one CG step would scale the guidance without bound. CG stops such a row and keeps its
iterate (:func:`conjugate_gradient`'s ``floor``; at the first step: no guidance for that row at
that level). On blurred 8x8 patches, where 10 of 1,200 rows blew up without it, this took
the worst E_k value from 61 to 2.7 and the RMSE from 0.81 to 0.159 (benchmarks/MMPS_FLOOR.md).

Everything is row-wise: CG's inner products are per row, and the noise is keyed per row
(:mod:`sfbd.rng`), so results depend neither on batch size nor on order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from sfbd.diffusion.precond import Denoiser
from sfbd.diffusion.sample import SAMPLERS, keyed_noise, run_sampler
from sfbd.rng import keyed_randn


class LinearOperator(Protocol):
    """A batch of known linear maps A_b, row b of the batch its own (e.g. its own mask).

    ``forward`` maps states (B, *shape) to observations (B, *obs); ``adjoint`` is A^T, from
    observations back to states."""

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def adjoint(self, v: torch.Tensor) -> torch.Tensor: ...


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a_b, b_b> per row, shaped (B, 1, ..., 1) to broadcast against a."""
    return (a * b).reshape(a.shape[0], -1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    steps: int,
    floor: float = 0.0,
) -> torch.Tensor:
    """``steps`` conjugate-gradient iterations for M u = b from u = 0, each row its own system.

    Args:
        matvec: v (B, *) -> M v (B, *), M symmetric positive (semi)definite per row.
        b: (B, *) right-hand sides.
        steps: iterations (>= 1); exact after dim(b_b) steps in exact arithmetic.
        floor: the least curvature c that M can have, p^T M p >= c |p|^2 (for
            M = s^2 I + A V A^T with V positive semidefinite, c = s^2). A row whose search
            direction p finds less (or p^T M p <= 0) stops there and keeps its iterate: its M
            is not what it claims along p (a learned denoiser's Jacobian is neither symmetric
            nor semidefinite), and the step r^T r / p^T M p would be unbounded. A true M never
            trips it.
    Returns:
        (B, *) the approximate solutions. A row whose residual is 0 also stops there.
    References: Hestenes & Stiefel 1952; Nocedal & Wright, Numerical Optimization, Alg. 5.2.
    """
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = _rowdot(r, r)
    live = rr > 0
    for _ in range(steps):
        mp = matvec(p)
        pmp = _rowdot(p, mp)
        live = live & (pmp > 0) & (pmp >= floor * _rowdot(p, p))
        alpha = torch.where(live, rr / torch.where(live, pmp, torch.ones_like(pmp)), 0.0)
        u = u + alpha * p
        r = r - alpha * mp
        rr_next = _rowdot(r, r)
        beta = torch.where(live, rr_next / torch.where(live, rr, torch.ones_like(rr)), 0.0)
        p = r + beta * p
        rr = rr_next
        live = live & (rr > 0)
    return u


def mmps_denoiser(
    denoiser: Denoiser,
    op: LinearOperator,
    y: torch.Tensor,
    noise_var: float,
    cg_steps: int = 1,
    curvature_floor: bool = True,
) -> Denoiser:
    """The posterior denoiser D_y(x_t, sigma) = D + sigma^2 J A^T u (module docstring).

    Args:
        denoiser: D(x, sigma), differentiable in x.
        op: the batch's operators A (rows in the order of ``y``).
        y: (B, *obs) the observations.
        noise_var: s_y^2 >= 0, the observation noise variance.
        cg_steps: conjugate-gradient iterations for M u = y - A D.
        curvature_floor: stop CG rows whose p^T M p < s_y^2 |p|^2 (module docstring); off
            only to measure what it does (benchmarks/mmps_floor.py).
    Returns:
        A denoiser (B, *shape), (B,) -> (B, *shape) for the batch of ``y`` (no graph kept).
    """

    def posterior_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = denoiser(xg, sigma).to(x.dtype)
            s2 = (sigma.to(x.dtype) ** 2).reshape(-1, *([1] * (x.ndim - 1)))

            def cov(v: torch.Tensor, keep: bool = True) -> torch.Tensor:
                """V v = sigma^2 J^T v: one vector-Jacobian product of D."""
                (g,) = torch.autograd.grad(d, xg, v, retain_graph=keep)
                return s2 * g

            def m_times(v: torch.Tensor) -> torch.Tensor:
                return noise_var * v + op.forward(cov(op.adjoint(v)))

            d0 = d.detach()
            u = conjugate_gradient(
                m_times, y - op.forward(d0), cg_steps, floor=noise_var if curvature_floor else 0.0
            )
            guided = d0 + cov(op.adjoint(u), keep=False)
        return guided.detach()

    return posterior_denoiser


def posterior_sample(
    denoiser: Denoiser,
    op: LinearOperator,
    y: torch.Tensor,
    noise_var: float,
    grid: torch.Tensor,
    *,
    keys: torch.Tensor,
    stream: int,
    shape: tuple[int, ...],
    sampler: str = "heun",
    cg_steps: int = 1,
    curvature_floor: bool = True,
) -> torch.Tensor:
    """Draws of p(x | y) by MMPS: x(sigma_max) = sigma_max z, then ``sampler`` down to 0 with
    :func:`mmps_denoiser`; the start and the injected noise of row b keyed by keys[b].

    Args:
        y: (B, *obs) observations; ``shape``: the per-sample shape of x.
        grid: the full schedule, grid[0] = sigma_max.
        keys: (B,) sample indices keying the noise.
    Returns:
        (B, *shape) posterior samples, in the dtype of ``y``.
    """
    x = float(grid[0]) * keyed_randn(keys, shape, stream=stream, counter=0, dtype=y.dtype)
    d_y = mmps_denoiser(denoiser, op, y, noise_var, cg_steps, curvature_floor)
    return run_sampler(sampler, d_y, x, grid, keyed_noise(keys, x, stream))


def mmps_cost(sampler: str, grid: torch.Tensor, cg_steps: int) -> tuple[int, int]:
    """(forward, backward) network passes per sample of :func:`posterior_sample` on the full
    schedule ``grid``: each denoiser call is one forward and ``cg_steps + 1`` backward."""
    calls = SAMPLERS[sampler].evaluations(grid.detach().tolist())
    return calls, calls * (cg_steps + 1)
