"""Denoisers: raw networks (wrapped by EDM preconditioning) and the analytic Gaussian.

Raw networks share one interface, ``net(x, noise_labels, aug_labels=None) -> (B, *)`` with a
``shape`` attribute and ``config()`` returning their constructor keywords, so a checkpoint can
rebuild them. Each registers itself as one or more ``model.kind`` values in
:data:`NETWORKS` (:mod:`sfbd.nets.base`) in its own file; every module of this package is
imported here, so a new architecture is one new file (docs/extending.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from sfbd.nets.base import (
    ALIASES,
    NETWORKS,
    Network,
    build_denoiser,
    build_model,
    denoiser_spec,
    describe_config,
    model_config,
    parameter_count,
    resolve_kind,
    validate_config,
)

for _info in pkgutil.iter_modules(__path__):  # each module registers its networks
    importlib.import_module(f"{__name__}.{_info.name}")

from sfbd.nets.adm import ADMUNet  # noqa: E402
from sfbd.nets.gaussian import GaussianDenoiser  # noqa: E402
from sfbd.nets.mlp import MLP  # noqa: E402
from sfbd.nets.songunet import SongUNet  # noqa: E402
from sfbd.nets.unet import UNet  # noqa: E402

__all__ = [
    "ALIASES",
    "MLP",
    "NETWORKS",
    "ADMUNet",
    "GaussianDenoiser",
    "Network",
    "SongUNet",
    "UNet",
    "build_denoiser",
    "build_model",
    "denoiser_spec",
    "describe_config",
    "model_config",
    "parameter_count",
    "resolve_kind",
    "validate_config",
]
