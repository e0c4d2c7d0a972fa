"""Noise models (:class:`Corruption`), one file each, registered in :data:`NOISE_MODELS`.

* ``white``: one known level for every sample (:mod:`sfbd.noise.white`);
* ``per-sample``: a known level per sample (:mod:`sfbd.noise.per_sample`);
* ``coloured``: Gaussian noise of known covariance or spectrum (:mod:`sfbd.noise.coloured`);
* ``poisson-gaussian``: photon noise, via the Anscombe transform (:mod:`sfbd.noise.photon`).

Every module of this package is imported here, so a new noise model is one new file in it
(docs/extending.md); the configuration, ``sfbd status`` and :func:`sfbd.noise_model` reach
every model through the generic functions of :mod:`sfbd.noise.base`.
"""

from __future__ import annotations

import importlib
import pkgutil

from sfbd.noise.base import (
    ALIASES,
    NOISE_MODELS,
    Corruption,
    describe_config,
    flag,
    from_arguments,
    from_config,
    from_spec,
    noise_arguments,
    resolve_name,
    validate_config,
)

for _info in pkgutil.iter_modules(__path__):  # each module registers its model
    importlib.import_module(f"{__name__}.{_info.name}")

from sfbd.noise.coloured import ColouredGaussian  # noqa: E402
from sfbd.noise.per_sample import PerSampleGaussian  # noqa: E402
from sfbd.noise.photon import PoissonGaussian  # noqa: E402
from sfbd.noise.white import WhiteGaussian  # noqa: E402

__all__ = [
    "ALIASES",
    "NOISE_MODELS",
    "ColouredGaussian",
    "Corruption",
    "PerSampleGaussian",
    "PoissonGaussian",
    "WhiteGaussian",
    "describe_config",
    "flag",
    "from_arguments",
    "from_config",
    "from_spec",
    "noise_arguments",
    "resolve_name",
    "validate_config",
]
