"""Samplers of the reverse diffusion, starting anywhere on the schedule.

Every sampler has one signature, ``sampler(denoiser, x, sigmas, noise=None) -> x_0``: it
integrates from sigmas[0] down to sigmas[-1] = 0 and accepts any starting level, so SFBD's
backward sampling is ``sampler(D, y, truncate_sigmas(grid, tau), noise)`` with x(tau) = y.
Samplers are registered in :data:`SAMPLERS` with their cost in network evaluations.

* :func:`heun_sampler`: the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma with
  Heun's 2nd-order method and a final Euler step to sigma = 0 (Karras et al. 2022, Alg. 1).
  Deterministic: a map that transports p_tau to p_0.
* :func:`sde_sampler`: the reverse-time SDE dx = -2 sigma * score * dsigma + sqrt(2 sigma) dW
  (the exact time reversal of x_sigma = x_0 + sigma * eps), stepped with D held fixed over each
  step, which for Gaussian transitions is exact given x_0 = D:
  x' = D + (s'^2/s^2)(x - D) + s' sqrt(1 - s'^2/s^2) z. Started at x(tau) = y it draws samples
  of the posterior p(x_0 | x_tau = y) as the steps shrink.

Randomness is keyed per sample (:mod:`sfbd.rng`), so results do not depend on batch size.

Both are friendly to torch.compile and CUDA graphs: the schedule is read to python floats once
up front, nothing inside the step loops reads a tensor's value on the host (no synchronisation),
and the state stays in the dtype of the input x whatever the denoiser returns (e.g. under bf16
autocast).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from sfbd.diffusion.precond import Denoiser
from sfbd.diffusion.schedule import truncate_rows, truncate_sigmas
from sfbd.registry import Registry
from sfbd.rng import keyed_randn

NoiseFn = Callable[[int], torch.Tensor]
"""``noise(step) -> (B, *)`` standard normal noise for sampler step ``step`` (1-based)."""


def keyed_noise(keys: torch.Tensor, like: torch.Tensor, stream: int) -> NoiseFn:
    """Noise for step i of sample keys[b], a function of (stream, keys[b], i) only."""
    shape = tuple(like.shape[1:])
    return lambda step: keyed_randn(keys, shape, stream=stream, counter=step, dtype=like.dtype)


Levels = list[float] | list[torch.Tensor]


def _levels(sigmas: torch.Tensor | Sequence[float], x: torch.Tensor | None = None) -> Levels:
    """The schedule, read once, as the step loops use it.

    A shared schedule (m + 1,) becomes python floats: one device-to-host copy for a GPU grid,
    so that the step loops below never synchronise (nothing in them reads a tensor's value).
    A per-row schedule (B, m + 1) (each row its own levels, e.g. per-sample noise levels)
    becomes m + 1 columns shaped (B, 1, ..., 1) to broadcast against ``x``.
    """
    if isinstance(sigmas, torch.Tensor) and sigmas.ndim == 2:
        assert x is not None, "a per-row schedule needs the state it broadcasts against"
        cols = sigmas.to(dtype=x.dtype, device=x.device).T
        return [c.reshape(-1, *([1] * (x.ndim - 1))) for c in cols]
    if isinstance(sigmas, torch.Tensor):
        return sigmas.detach().tolist()
    return [float(s) for s in sigmas]


def _level(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if isinstance(sigma, torch.Tensor):
        return sigma.reshape(-1)
    return torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)


def _positive(levels: Levels) -> list[bool]:
    """Which levels are > 0 (per-row schedules share the pattern: only the last is 0)."""
    if levels and isinstance(levels[0], torch.Tensor):
        return [j < len(levels) - 1 for j in range(len(levels))]
    return [s > 0 for s in levels]


@torch.no_grad()
def heun_sampler(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn | None = None
) -> torch.Tensor:
    """Integrate the probability-flow ODE from sigmas[0] to 0 with Heun's method.

    Args:
        denoiser: D(x, sigma), x (B, *), sigma (B,).
        x: (B, *) state at noise level sigmas[0].
        sigmas: (m + 1,) decreasing levels ending in 0, or (B, m + 1), one schedule per row.
        noise: unused (the ODE is deterministic); accepted for the common signature.
    Returns:
        (B, *) state at sigma = 0.
    References: Karras et al. 2022, Algorithm 1 (no churn).
    """
    levels = _levels(sigmas, x)
    positive = _positive(levels)
    for j, (s, s_next) in enumerate(zip(levels[:-1], levels[1:], strict=True)):
        d = (x - denoiser(x, _level(s, x)).to(x.dtype)) / s
        x_euler = x + (s_next - s) * d
        if positive[j + 1]:
            d_next = (x_euler - denoiser(x_euler, _level(s_next, x)).to(x.dtype)) / s_next
            x = x + (s_next - s) * 0.5 * (d + d_next)
        else:
            x = x_euler
    return x


@torch.no_grad()
def sde_sampler(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn | None = None
) -> torch.Tensor:
    """Integrate the reverse-time SDE from sigmas[0] to 0 (posterior sampling from x).

    Args:
        denoiser: D(x, sigma), x (B, *), sigma (B,).
        x: (B, *) state at noise level sigmas[0].
        sigmas: (m + 1,) decreasing levels ending in 0, or (B, m + 1), one schedule per row.
        noise: ``noise(step)`` standard normal (B, *) for steps 1..m; default torch.randn_like.
    Returns:
        (B, *) state at sigma = 0.
    References: Song et al. 2021 (reverse-time SDE of the VE process); Ho et al. 2020 (the
    ancestral step, here in the variance-exploding parametrisation).
    """
    if noise is None:

        def noise(step: int) -> torch.Tensor:
            return torch.randn_like(x)

    levels = _levels(sigmas, x)
    positive = _positive(levels)
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:], strict=True)):
        d = denoiser(x, _level(s, x)).to(x.dtype)
        if positive[i + 1]:
            r = (s_next / s) ** 2
            x = d + r * (x - d) + s_next * (1.0 - r) ** 0.5 * noise(i + 1).to(x.dtype)
        else:
            x = d
    return x


SamplerFn = Callable[[Denoiser, torch.Tensor, torch.Tensor, NoiseFn | None], torch.Tensor]


@dataclass(frozen=True)
class Sampler:
    """A registered sampler: the function and its cost.

    ``evaluations(levels)`` is the number of denoiser calls per sample on the schedule
    ``levels`` (decreasing, ending in 0), what the runner records as the work of denoising.
    """

    run: SamplerFn
    evaluations: Callable[[Sequence[float]], int]
    stochastic: bool


def _heun_evaluations(levels: Sequence[float]) -> int:
    """Two calls per step, one for the final Euler step to sigma = 0."""
    return sum(2 if s_next > 0 else 1 for s_next in list(levels)[1:])


SAMPLERS: Registry[Sampler] = Registry("sampler")
SAMPLERS.add("heun", Sampler(heun_sampler, _heun_evaluations, stochastic=False))
SAMPLERS.add("sde", Sampler(sde_sampler, lambda levels: len(levels) - 1, stochastic=True))


def run_sampler(
    name: str, denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn
) -> torch.Tensor:
    """Run the registered sampler ``name``; deterministic ones ignore ``noise``."""
    try:
        sampler = SAMPLERS[name]
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return sampler.run(denoiser, x, sigmas, noise)


def evaluations(name: str, sigmas: torch.Tensor | Sequence[float]) -> int:
    """Denoiser calls per sample of sampler ``name`` on the schedule ``sigmas``."""
    return SAMPLERS[name].evaluations(_levels(sigmas))


def backward_sample(
    denoiser: Denoiser,
    y: torch.Tensor,
    tau: float,
    grid: torch.Tensor,
    *,
    keys: torch.Tensor,
    stream: int,
    sampler: str = "heun",
) -> torch.Tensor:
    """SFBD's backward sampling: run the reverse diffusion from x(tau) = y down to 0.

    Args:
        y: (B, *) noisy samples at noise level tau.
        grid: the full schedule (as from :func:`edm_sigmas`); the part below tau runs.
        keys: (B,) sample indices keying the injected noise.
    Returns:
        (B, *) denoised samples.
    """
    sigmas = truncate_sigmas(grid, tau)
    return run_sampler(sampler, denoiser, y, sigmas, keyed_noise(keys, y, stream))


def backward_sample_rows(
    denoiser: Denoiser,
    y: torch.Tensor,
    taus: torch.Tensor,
    grid: torch.Tensor,
    *,
    keys: torch.Tensor,
    stream: int,
    sampler: str = "heun",
) -> torch.Tensor:
    """:func:`backward_sample` with a level per row: row b runs from x(taus[b]) = y[b] to 0.

    Each row's steps, levels and noise (keyed by keys[b] and its own step number) are what it
    gets alone, so results do not depend on the batch's size, order or other levels.

    Args:
        y: (B, *) noisy samples, row b at noise level taus[b].
        taus: (B,) levels > 0.
        grid: the full schedule; each row runs the part below its level.
        keys: (B,) sample indices keying the injected noise.
    Returns:
        (B, *) denoised samples.
    """
    out = torch.empty_like(y)
    for rows, sigmas in truncate_rows(grid, taus):
        kb = keys[rows.to(keys.device)]
        yb = y[rows.to(y.device)]
        out[rows.to(y.device)] = run_sampler(
            sampler, denoiser, yb, sigmas, keyed_noise(kb, yb, stream)
        )
    return out


def sample_from_noise(
    denoiser: Denoiser,
    keys: torch.Tensor,
    shape: tuple[int, ...],
    grid: torch.Tensor,
    *,
    stream: int,
    sampler: str = "heun",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Generate samples: x(sigma_max) = sigma_max * z, then the sampler down to 0.

    Args:
        keys: (B,) sample keys (sample j of a request is keyed j, whatever the batching).
        shape: per-sample shape.
        grid: full schedule, grid[0] = sigma_max.
    Returns:
        (B, *shape) samples on keys.device.
    """
    x = float(grid[0]) * keyed_randn(keys, shape, stream=stream, counter=0, dtype=dtype)
    return run_sampler(sampler, denoiser, x, grid, keyed_noise(keys, x, stream))
