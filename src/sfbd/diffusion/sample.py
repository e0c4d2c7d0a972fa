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
from sfbd.diffusion.schedule import truncate_sigmas
from sfbd.registry import Registry
from sfbd.rng import keyed_randn

NoiseFn = Callable[[int], torch.Tensor]
"""``noise(step) -> (B, *)`` standard normal noise for sampler step ``step`` (1-based)."""


def keyed_noise(keys: torch.Tensor, like: torch.Tensor, stream: int) -> NoiseFn:
    """Noise for step i of sample keys[b], a function of (stream, keys[b], i) only."""
    shape = tuple(like.shape[1:])
    return lambda step: keyed_randn(keys, shape, stream=stream, counter=step, dtype=like.dtype)


def _levels(sigmas: torch.Tensor) -> list[float]:
    """The schedule as python floats, read once: one device-to-host copy for a GPU grid, so
    that the step loops below never synchronise (nothing in them reads a tensor's value)."""
    if isinstance(sigmas, torch.Tensor):
        return sigmas.detach().tolist()
    return [float(s) for s in sigmas]


def _level(sigma: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)


@torch.no_grad()
def heun_sampler(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise: NoiseFn | None = None
) -> torch.Tensor:
    """Integrate the probability-flow ODE from sigmas[0] to 0 with Heun's method.

    Args:
        denoiser: D(x, sigma), x (B, *), sigma (B,).
        x: (B, *) state at noise level sigmas[0].
        sigmas: (m + 1,) decreasing levels ending in 0.
        noise: unused (the ODE is deterministic); accepted for the common signature.
    Returns:
        (B, *) state at sigma = 0.
    References: Karras et al. 2022, Algorithm 1 (no churn).
    """
    levels = _levels(sigmas)
    for s, s_next in zip(levels[:-1], levels[1:], strict=True):
        d = (x - denoiser(x, _level(s, x)).to(x.dtype)) / s
        x_euler = x + (s_next - s) * d
        if s_next > 0:
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
        sigmas: (m + 1,) decreasing levels ending in 0.
        noise: ``noise(step)`` standard normal (B, *) for steps 1..m; default torch.randn_like.
    Returns:
        (B, *) state at sigma = 0.
    References: Song et al. 2021 (reverse-time SDE of the VE process); Ho et al. 2020 (the
    ancestral step, here in the variance-exploding parametrisation).
    """
    if noise is None:

        def noise(step: int) -> torch.Tensor:
            return torch.randn_like(x)

    levels = _levels(sigmas)
    for i, (s, s_next) in enumerate(zip(levels[:-1], levels[1:], strict=True)):
        d = denoiser(x, _level(s, x)).to(x.dtype)
        if s_next > 0:
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
    ``levels`` (decreasing, ending in 0), what the pipeline records as the work of denoising.
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
