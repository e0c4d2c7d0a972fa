"""Denoisers: raw networks (wrapped by EDM preconditioning) and the analytic Gaussian.

Networks share one interface, ``net(x, noise_labels, aug_labels=None) -> (B, *)`` with a
``shape`` attribute and ``config()`` returning their constructor keywords, so a checkpoint can
rebuild them and new architectures drop in by adding one entry to :data:`NETWORKS`.
"""

from __future__ import annotations

from torch import nn

from sfbd.diffusion.precond import EDMDenoiser
from sfbd.nets.adm import ADMUNet
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.nets.mlp import MLP
from sfbd.nets.songunet import SongUNet
from sfbd.nets.unet import UNet

NETWORKS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "unet": UNet,
    "songunet": SongUNet,
    "adm": ADMUNet,
}


def build_denoiser(kind: str, config: dict) -> nn.Module:
    """A denoiser D(x, sigma) of the given kind from its constructor keywords.

    ``kind`` is a key of :data:`NETWORKS` (raw networks, wrapped in EDM preconditioning) or
    'gaussian' (the analytic denoiser).
    ``config`` must hold ``shape`` (the per-sample shape) plus the kind's own keywords.
    """
    if kind == "gaussian":
        return GaussianDenoiser(**config)
    if kind not in NETWORKS:
        raise ValueError(f"unknown network {kind!r}; choose one of {[*NETWORKS, 'gaussian']}")
    return EDMDenoiser(NETWORKS[kind](**config))


def denoiser_spec(denoiser: nn.Module) -> dict:
    """{'kind': ..., 'config': {...}}: what :func:`build_denoiser` needs to rebuild it."""
    if isinstance(denoiser, GaussianDenoiser):
        return {"kind": "gaussian", "config": denoiser.config()}
    assert isinstance(denoiser, EDMDenoiser)
    for kind, cls in NETWORKS.items():
        if type(denoiser.net) is cls:
            return {"kind": kind, "config": denoiser.net.config()}
    raise ValueError(f"network {type(denoiser.net).__name__} is not registered in NETWORKS")


__all__ = [
    "MLP",
    "NETWORKS",
    "ADMUNet",
    "GaussianDenoiser",
    "SongUNet",
    "UNet",
    "build_denoiser",
    "denoiser_spec",
]
