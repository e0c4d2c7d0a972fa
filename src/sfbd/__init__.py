"""sfbd: train diffusion models from noisy data plus a small clean set.

Stochastic Forward-Backward Deconvolution (Lu, Wu, Yu, ICML 2025): pretrain an EDM denoiser on
the clean set, then alternately denoise every noisy sample by running the reverse diffusion from
its noise level tau down to 0 and retrain the denoiser on denoised and clean data.

From Python (docs/python-api.md)::

    import sfbd

    cfg = sfbd.load_config("configs/ring8.yaml", ["sfbd.iterations=2"])
    sfbd.Run(cfg, "runs/ring8-py").execute()  # train (or resume) every stage (minutes)
    model = sfbd.load("runs/ring8-py")        # sfbd.Model: the last finished stage
    x = model.sample(1000)                 # samples in the data's shape and scale
    x0 = model.denoise(y, sigma=0.35)      # posterior samples behind noisy y

The names below are imported on first use (PEP 562), so ``import sfbd`` stays cheap and
imports neither torch nor any submodule:

* :func:`load` (:func:`sfbd.api.load`): a finished stage of a run as a :class:`Model`;
* :class:`Model` (:class:`sfbd.api.Model`): ``sample``, ``denoise``, ``denoiser``, ``config``,
  ``stage``;
* :func:`noise_model` (:func:`sfbd.api.noise_model`): the noise model of new inputs, from
  ``sigma=``, ``noise_cov=`` or a plug-in's own keywords;
* :func:`load_config` (:func:`sfbd.config.load_config`): defaults <- YAML <- ``key=value``
  overrides, validated, as a :class:`~sfbd.schema.Config`;
* :class:`Run` (:class:`sfbd.run.runner.Run`): ``Run(cfg, out).execute()`` runs or resumes
  the whole pipeline in the run directory ``out``.
"""

from __future__ import annotations

from sfbd.version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers: True)

__all__ = ["Model", "Run", "__version__", "load", "load_config", "noise_model"]

# name -> module that defines it, imported by __getattr__ on first access
_LAZY = {
    "Model": "sfbd.api",
    "load": "sfbd.api",
    "noise_model": "sfbd.api",
    "load_config": "sfbd.config",
    "Run": "sfbd.run.runner",
}

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time see __getattr__
    from sfbd.api import Model, load, noise_model
    from sfbd.config import load_config
    from sfbd.run.runner import Run


def __getattr__(name: str) -> object:
    """Import ``sfbd.load``, ``sfbd.Model``, ``sfbd.noise_model``, ``sfbd.load_config`` and
    ``sfbd.Run`` lazily."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sfbd' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
