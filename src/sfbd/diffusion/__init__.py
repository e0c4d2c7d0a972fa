"""EDM diffusion engine: noise schedule, preconditioning, loss and samplers.

The one contract: a denoiser is a callable ``D(x, sigma) -> x_hat`` on tensors of shape (B, *)
and (B,). Samplers are plain functions over (denoiser, x, sigmas); "start at tau" is a slice of
the schedule (:func:`truncate_sigmas`).
"""

from sfbd.diffusion.loss import AmbientLoss, EDMLoss
from sfbd.diffusion.precond import Denoiser, EDMDenoiser
from sfbd.diffusion.sample import backward_sample, heun_sampler, sample_from_noise, sde_sampler
from sfbd.diffusion.schedule import edm_sigmas, truncate_sigmas

__all__ = [
    "AmbientLoss",
    "Denoiser",
    "EDMDenoiser",
    "EDMLoss",
    "backward_sample",
    "edm_sigmas",
    "heun_sampler",
    "sample_from_noise",
    "sde_sampler",
    "truncate_sigmas",
]
