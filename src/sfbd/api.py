"""Use a trained run from Python: ``sfbd.load(run_dir) -> Model``, then sample and denoise.

    model = sfbd.load("runs/ring8")          # the last finished stage, EMA weights
    x = model.sample(1000)                   # (1000, *shape), in the data's own scale
    x0 = model.denoise(y, sigma=0.35)        # posterior samples x0 ~ p(x0 | y), row by row

A stage K of a run is its EDM denoiser D(x, sigma) (Karras et al. 2022, eq. 7), trained on
the clean set (K = 0) or on the clean set plus the K-th denoised set (SFBD, Lu, Wu, Yu 2025,
Alg. 1). :meth:`Model.sample` integrates the probability-flow ODE from pure noise at
sigma_max to 0 with Heun steps; :meth:`Model.denoise` starts the reverse diffusion at
x(tau) = y and runs it down to 0 (the reverse SDE draws from p(x0 | x_tau = y), Sec. 3).

``sfbd sample`` and ``sfbd denoise`` are thin wrappers over :class:`Model`: the same
arguments give bit-identical arrays. Errors a user can fix are :class:`~sfbd.errors.SfbdError`
with the command's messages, which name its flags (``--n``, ``--steps``, ``--sigma``, ...).
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from sfbd.config import load_config
from sfbd.data import to_data_scale
from sfbd.data.images import to_model_space
from sfbd.diffusion.batched import denoise_all, generate
from sfbd.diffusion.sample import SAMPLERS
from sfbd.diffusion.schedule import edm_sigmas
from sfbd.errors import ConfigError, DataError, SfbdError
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.noise import Corruption, from_arguments, from_spec
from sfbd.rng import stream_id
from sfbd.run.directory import stage_stem
from sfbd.run.runner import resolve_device
from sfbd.run.scores import best_stage
from sfbd.schema import Config
from sfbd.version import __version__

__all__ = ["Model", "check_n", "check_steps", "load", "noise_model"]

SDE_STEPS = 256  # default schedule of denoise with the reverse SDE (it needs finer steps)


def _integer(value: Any, flag: str) -> int:
    """``value`` as an int (ints and numpy integers, not bools or floats), or a SfbdError."""
    if isinstance(value, bool):
        raise SfbdError(f"{flag} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise SfbdError(f"{flag} must be an integer, got {value!r}") from None


def check_n(n: Any) -> int:
    """The number of samples ``n`` (>= 1), or the error of ``sfbd sample --n``."""
    n = _integer(n, "--n")
    if n < 1:
        raise SfbdError(f"--n must be >= 1, got {n}")
    return n


def check_steps(steps: Any) -> int | None:
    """Steps of the EDM schedule (>= 2, None: the default), or the error of ``--steps``."""
    if steps is None:
        return None
    steps = _integer(steps, "--steps")
    if steps < 2:
        raise SfbdError(f"--steps must be >= 2, got {steps}")
    return steps


def noise_model(
    sigma: Any = None,
    noise_cov: Any = None,
    *,
    n: int | None = None,
    run: Corruption | None = None,
    seed: int = 0,
    **arguments: Any,
) -> Corruption:
    """The noise model of the inputs of :meth:`Model.denoise` (and of ``sfbd denoise``).

    The one registered noise model that the given arguments describe
    (:func:`sfbd.noise.base.from_arguments`, each model's ``from_arguments``):

    * ``sigma`` a number: white noise y = x + tau * eps (:class:`~sfbd.noise.WhiteGaussian`);
    * ``sigma`` a sequence/array, or the path of a ``.npy``, of ``n`` levels: a level per input
      (:class:`~sfbd.noise.PerSampleGaussian`);
    * ``noise_cov`` a covariance (D x D, or a (C, H, W) power spectrum; array or ``.npy``
      path): coloured noise (:class:`~sfbd.noise.ColouredGaussian`), through the run's own
      whitening when the run whitened this covariance, else by top-up;
    * a plug-in's own keyword (``**arguments``), for a noise model that declares it;
    * none: the run's own noise model ``run`` (white, coloured or photon noise).

    A run trained in a transformed space (whitened or Anscombe-transformed data) denoises only
    its own noise model. Raises :class:`~sfbd.errors.SfbdError` with ``sfbd denoise``'s
    messages (they name its flags).
    """
    args = {"sigma": sigma, "noise_cov": noise_cov, **arguments}
    return from_arguments(args, n=n, run=run, seed=seed)


def run_noise(meta: dict[str, Any]) -> Corruption | None:
    """The noise model a stage's checkpoint records (None for a run with no noisy data);
    checkpoints of 0.5 and earlier recorded white noise's sigma (and 'noise') inline."""
    if "noise_model" in meta:
        return from_spec(meta["noise_model"])
    if "sigma" in meta:  # from_spec reads a spec without 'noise' as white noise
        return from_spec({k: meta[k] for k in ("noise", "sigma") if k in meta})
    return None


def _read_run(rundir: Path) -> tuple[dict, list[dict]]:
    """(config.yaml as a dict, the finished stages' metrics.json entries)."""
    cfg_path, metrics_path = rundir / "config.yaml", rundir / "metrics.json"
    if not cfg_path.is_file() or not metrics_path.is_file():
        raise SfbdError(f"{rundir} is not a run directory with a finished stage (sfbd run --out)")
    try:
        cfg = yaml.safe_load(cfg_path.read_text())
        done = list(json.loads(metrics_path.read_text())["stages"])
        if not all(isinstance(s, dict) and isinstance(s.get("iteration"), int) for s in done):
            raise ValueError("a metrics.json entry names no iteration")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("sample"), dict):
            raise ValueError("config.yaml is not a resolved sfbd configuration")
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise SfbdError(
            f"cannot read the run in {rundir} (config.yaml or metrics.json: {msg}); "
            "it is damaged: rerun sfbd run on it with --force, or use another run"
        ) from None
    return cfg, done


def load(
    run_dir: str | Path, stage: int | str | None = None, device: str | torch.device = "auto"
) -> Model:
    """Load stage ``stage`` (default: the last finished one; ``"best"``: the finished stage
    with the lowest ``val_noisy``, :func:`sfbd.run.scores.best_stage`) of the run in
    ``run_dir``.

    ``run_dir`` is the ``--out`` of ``sfbd run`` (or the ``out`` of
    ``sfbd.Run(cfg, out).execute()``); only finished stages (those in its metrics.json) load.
    The model holds the stage's EMA weights on ``device`` (auto: CUDA if available, else the
    CPU; not the run's device, so a GPU-trained run also loads on a CPU).

    Raises :class:`~sfbd.errors.SfbdError`: not a run directory, no finished stage, stage not
    finished (the message lists the finished ones), a damaged run, CUDA requested but absent.
    """
    rundir = Path(run_dir)
    raw, stages = _read_run(rundir)
    done = [int(s["iteration"]) for s in stages]
    if not done:
        raise SfbdError(f"{rundir} has no finished stage yet")
    if stage == "best":
        best = best_stage(stages)
        if best is None:
            raise SfbdError(
                f"no finished stage of {rundir} has val_noisy (no held-out noisy set: "
                "eval.noisy_holdout 0, too few noisy samples, or a noise model without a "
                "Gaussian model space); give --stage K"
            )
        k = best
    else:
        k = done[-1] if stage is None else _integer(stage, "--stage")
    if k not in done:
        raise SfbdError(f"stage {k} is not finished in {rundir}; finished stages: {done}")
    try:
        config = load_config(base=raw)
    except ConfigError as exc:
        raise SfbdError(
            f"config.yaml of the run in {rundir} is not a valid sfbd {__version__} "
            f"configuration ({exc}); rerun sfbd run on it with --force, or use another run"
        ) from None
    dev = resolve_device(str(device))
    _, ema, _, meta = load_checkpoint(stage_stem(rundir, k), dev)
    return Model(config, ema, meta, stage=k, run_dir=rundir, device=dev)


class Model:
    """One finished stage of a run: its EDM denoiser and what sampling with it needs.

    Attributes:
        denoiser: the torch module D(x, sigma): x (B, *shape) and sigma (B,) -> (B, *shape),
            the stage's EMA weights in eval mode (what ``sfbd sample``/``denoise`` use); it
            works in the model space (uint8 data mapped to [-1, 1]).
        config: the run's resolved :class:`~sfbd.schema.Config` (its config.yaml).
        stage: the stage/iteration K loaded (0: pretraining on the clean set).
        shape: the per-sample data shape, e.g. (2,) or (C, H, W).
        scale: the data's scale, 'float' or 'uint8' (what :meth:`sample` returns).
        run_dir, device: where the run lies and where the denoiser runs.
    """

    def __init__(
        self,
        config: Config,
        denoiser: nn.Module,
        meta: dict[str, Any],
        *,
        stage: int,
        run_dir: Path,
        device: torch.device,
    ) -> None:
        self.config = config
        self.denoiser = denoiser.eval()
        self.meta = meta
        self.stage = stage
        self.shape: tuple[int, ...] = tuple(meta["shape"])
        self.scale: str = meta["scale"]
        self.noise: Corruption | None = run_noise(meta)
        self.run_dir = run_dir
        self.device = device

    def __repr__(self) -> str:
        return (
            f"sfbd.Model(run_dir={str(self.run_dir)!r}, stage={self.stage}, "
            f"shape={self.shape}, scale={self.scale!r}, device={str(self.device)!r})"
        )

    def sample(
        self,
        n: int,
        seed: int | None = None,
        steps: int | None = None,
        *,
        progress: bool = False,
    ) -> np.ndarray:
        """``n`` samples (n, *shape) from pure noise, in the data's shape and scale.

        Heun's method on the probability-flow ODE over the EDM schedule of ``steps`` levels
        (Karras et al. 2022, Alg. 1, rho = 7; default: the run's ``sample.steps``). Sample j's
        noise is a function of (seed, j) only (default seed: the run's), so the first m of
        ``sample(n)`` are ``sample(m)``. uint8 data gives uint8 images in [0, 255], otherwise
        float32 — what ``sfbd sample`` writes.
        """
        n = check_n(n)
        steps = check_steps(steps)
        seed = self.config.seed if seed is None else seed
        grid = edm_sigmas(self.config.sample.steps if steps is None else steps, device=self.device)
        x = generate(
            self.denoiser,
            n,
            self.shape,
            grid,
            stream=stream_id("sample", seed),
            batch_size=self.config.sample.batch_size,
            device=self.device,
            progress=progress,
        ).numpy()
        if self.noise is not None:
            x = self.noise.decode(x)  # the model's space -> the data's (whitening, Anscombe)
        return to_data_scale(x, self.scale)

    def denoise(
        self,
        y: np.ndarray,
        sigma: float | np.ndarray | str | None = None,
        seed: int | None = None,
        sampler: str = "sde",
        steps: int | None = None,
        *,
        noise_cov: np.ndarray | str | None = None,
        progress: bool = False,
        **noise_arguments: Any,
    ) -> np.ndarray:
        """Denoise noisy samples ``y`` (N, *shape), y = x + sigma * eps: one x0 per row, in
        input order, in the scale of ``y`` (uint8 in, uint8 out; otherwise float32).

        The reverse diffusion from x(tau) = y at tau = ``sigma`` down to 0, over the part
        below tau of the EDM schedule of ``steps`` levels. ``sampler`` 'sde' (default) draws
        a posterior sample x0 ~ p(x0 | x_tau = y) (Lu, Wu, Yu 2025, Sec. 3; default 256
        steps); 'heun' is the deterministic probability-flow map (default: the run's
        ``sample.steps``). Row i's noise depends on (seed, i) only (default seed: the run's).

        The inputs' noise (see :func:`noise_model`): ``sigma`` a number (white), an array or
        ``.npy`` path of one level per row (each row starts at its own level), or
        ``noise_cov`` a covariance (coloured noise); neither: the run's own noise model (e.g.
        photon noise with the run's gain, inputs as stored: y = 2 y_u - 1); a plug-in noise
        model's own keywords go in ``noise_arguments``.
        """
        if sampler not in SAMPLERS:
            raise SfbdError(
                f"--sampler must be one of {', '.join(SAMPLERS.names())}, got {sampler!r}"
            )
        steps = check_steps(steps)
        x_in, scale = self._model_space(y)
        seed = self.config.seed if seed is None else seed
        noise = noise_model(
            sigma, noise_cov, n=len(x_in), run=self.noise, seed=seed, **noise_arguments
        )
        noise.check(None, x_in, ("data.clean", "--input"))
        z = noise.encode_noisy(x_in, np.arange(len(x_in)))  # white noise in model space
        if steps is None:
            steps = SDE_STEPS if sampler == "sde" else self.config.sample.steps
        x = denoise_all(
            self.denoiser,
            torch.as_tensor(z),
            noise,
            edm_sigmas(steps, device=self.device),
            stream=stream_id("denoise-cli", seed),  # the stream sfbd denoise has always used
            sampler=sampler,
            batch_size=self.config.sample.batch_size,
            progress=progress,
        ).numpy()
        return to_data_scale(noise.decode(x), scale)

    def _model_space(self, y: np.ndarray) -> tuple[np.ndarray, str]:
        """``y`` as contiguous float32 in the model space, and its scale ('uint8', 'float')."""
        arr = np.asarray(y)
        if arr.dtype == np.uint8:
            x, scale = to_model_space(arr), "uint8"
        elif np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer):
            with np.errstate(over="ignore"):  # beyond float32's range: inf, reported below
                x, scale = arr.astype(np.float32), "float"
        else:
            raise DataError(f"--input has dtype {arr.dtype}; expected numbers")
        if x.ndim == 0 or tuple(x.shape[1:]) != self.shape:
            raise SfbdError(
                f"--input samples have shape {tuple(x.shape[1:])} but the model was trained on "
                f"{self.shape}"
            )
        finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
        if not finite.all():
            raise DataError(
                f"--input has NaN or infinite values in {int((~finite).sum())} of {len(x)} "
                "samples; remove or repair those samples"
            )
        return np.ascontiguousarray(x), scale
