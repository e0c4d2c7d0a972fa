"""Validation of a configuration: value ranges and consistency, checked once at the edge.

Each check raises :class:`~sfbd.errors.ConfigError` naming the key and the fix. The allowed
names of methods, samplers and model kinds are read from their registries
(:data:`sfbd.methods.METHODS`, :data:`sfbd.diffusion.sample.SAMPLERS`,
:data:`sfbd.models.MODEL_KINDS`), so a new plug-in is valid the moment it is registered.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfbd.data.sources import BUILTIN_2D, BUILTINS
from sfbd.diffusion.sample import SAMPLERS
from sfbd.errors import ConfigError
from sfbd.methods import METHODS
from sfbd.models import MODEL_KINDS
from sfbd.noise.coloured import METHODS as COLOURED_METHODS

if TYPE_CHECKING:
    from sfbd.schema import Config

SWITCHES = ("auto", "on", "off")  # fast.* settings
# keys that name files or folders (checked to be non-empty when set)
NOISES = ("gaussian", "poisson-gaussian")
PATH_KEYS = (
    "data.noise_cov",
    "data.source",
    "data.noisy",
    "data.clean",
    "data.pretrain",
    "data.root",
    "eval.reference",
    "eval.fid_stats",
    "eval.inception",
    "eval.fd_dinov2_stats",
    "eval.dinov2",
)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _validate_noise(cfg: Config) -> None:
    """The data.* noise keys: one noise model, fully given."""
    d = cfg.data
    _check(
        d.noise in NOISES,
        f"data.noise must be one of {', '.join(NOISES)}; got {d.noise!r}",
    )
    _check(
        d.noise_method in COLOURED_METHODS,
        f"data.noise_method must be one of {', '.join(COLOURED_METHODS)}; got {d.noise_method!r}",
    )
    alternatives = [k for k in ("sigma_range", "noise_cov") if getattr(d, k) is not None]
    if d.noise == "poisson-gaussian":
        alternatives = ["noise: poisson-gaussian", *alternatives]
    if len(alternatives) > 1:
        raise ConfigError(
            f"data.{alternatives[0]} and data.{alternatives[1]} are two noise models; set one"
        )
    if alternatives and d.sigma is not None:
        raise ConfigError(
            f"data.sigma is given together with data.{alternatives[0]}, which describes the "
            "noise instead; set data.sigma: null"
        )
    if not alternatives:
        _check(
            d.sigma is not None,
            "data.sigma is null but no other noise model is set: give data.sigma (a level or a "
            ".npy of per-sample levels), data.sigma_range, data.noise_cov or data.noise",
        )
    if isinstance(d.sigma, float):
        _check(
            math.isfinite(d.sigma) and d.sigma > 0,
            f"data.sigma must be a positive number (the noise std), got {d.sigma}",
        )
    if isinstance(d.sigma, str):
        _check(d.sigma.strip() != "", "data.sigma is an empty string; give a level or a path")
        _check(
            d.source is None,
            "data.sigma as a file of per-sample levels is for user mode (data.noisy); in "
            "benchmark mode draw them with data.sigma_range: [lo, hi] and data.sigma: null",
        )
    if d.sigma_range is not None:
        r = d.sigma_range
        _check(
            len(r) == 2 and all(math.isfinite(v) for v in r) and 0 < r[0] <= r[1],
            f"data.sigma_range must be [lo, hi] with 0 < lo <= hi, got {r}",
        )
        _check(
            d.source is not None,
            "data.sigma_range draws levels in benchmark mode (data.source); in user mode give "
            "data.sigma as the path of a .npy of the N per-sample levels",
        )
    if d.noise == "poisson-gaussian":
        _check(
            d.gain is not None and math.isfinite(d.gain) and d.gain > 0,
            f"data.gain must be a number > 0 for poisson-gaussian noise (the intensity of one "
            f"photon, e.g. 0.01 for 100 photons at full scale), got {d.gain}",
        )
        _check(
            math.isfinite(d.read_noise) and d.read_noise >= 0,
            f"data.read_noise must be a number >= 0, got {d.read_noise}",
        )


def validate(cfg: Config) -> None:
    """Range and consistency checks; raises ConfigError naming the key and the fix."""
    d = cfg.data
    _check(cfg.method in METHODS, f"method must be one of {', '.join(METHODS)}; got {cfg.method!r}")
    method = METHODS[cfg.method]
    _validate_noise(cfg)
    for key in PATH_KEYS:
        value = _get(cfg, key)
        _check(
            value is None or value.strip() != "",
            f"{key} is an empty string; give a path, or null to leave it unset",
        )
    user = d.noisy is not None or d.clean is not None
    if user and d.source is not None:
        raise ConfigError(
            "set either data.source (benchmark mode) or data.noisy and data.clean (user mode), "
            "not both; use --set data.source=null"
        )
    if not user and d.source is None:
        raise ConfigError(
            "no data: set data.source (e.g. ring8, digits, or a .npy file) or data.noisy and "
            "data.clean"
        )
    needs_clean = method.pretrains  # they pretrain on clean samples
    if user:
        _check(
            d.noisy is not None or not method.needs_noisy,
            f"method {cfg.method} needs data.noisy (the noisy samples) in user mode",
        )
        _check(
            d.clean is not None or d.pretrain is not None or not needs_clean,
            f"method {cfg.method} needs data.clean (clean samples of the same distribution) "
            "or data.pretrain (clean samples of a similar one) to pretrain on; set one of them",
        )
        _check(
            not method.needs_truth,
            f"method {cfg.method} needs benchmark mode: set data.source and unset "
            "data.noisy/data.clean",
        )
    else:
        _check(
            0 <= d.clean_fraction < 1,
            f"data.clean_fraction must be in [0, 1) (the fraction of the training part kept "
            f"clean), got {d.clean_fraction}",
        )
        _check(
            d.clean_fraction > 0 or d.pretrain is not None or not needs_clean,
            f"data.clean_fraction 0 leaves no clean samples for "
            f"{'pretraining' if method.needs_noisy else f'method {cfg.method}'}; set "
            "data.clean_fraction > 0 or data.pretrain (clean samples of a similar dataset)",
        )
        _check(0 <= d.holdout < 1, f"data.holdout must be in [0, 1), got {d.holdout}")
        _check(d.num_samples >= 10, f"data.num_samples must be >= 10, got {d.num_samples}")
    kinds = ("auto", *MODEL_KINDS)
    _check(cfg.model.kind in kinds, f"model.kind must be one of {', '.join(kinds)}")
    _check(
        cfg.model.hidden > 0 and cfg.model.layers > 0, "model.hidden and model.layers must be > 0"
    )
    _check(cfg.model.channels > 0, "model.channels must be > 0")
    _check(
        len(cfg.model.channel_mult) > 0 and all(m > 0 for m in cfg.model.channel_mult),
        "model.channel_mult must be a non-empty list of positive integers",
    )
    _check(0 <= cfg.model.dropout < 1, "model.dropout must be in [0, 1)")
    _check(
        0 <= cfg.train.augment < 1,
        f"train.augment must be a probability in [0, 1), got {cfg.train.augment}",
    )
    augmented = [k for k, spec in MODEL_KINDS.items() if spec.augmented]
    _check(
        cfg.train.augment == 0 or cfg.model.kind in augmented,
        f"train.augment needs a network that takes augmentation labels "
        f"(model.kind {' / '.join(augmented)}); got model.kind={cfg.model.kind}",
    )
    _check(cfg.train.log_every >= 1, "train.log_every must be >= 1")
    _check(cfg.train.checkpoint_every >= 0, "train.checkpoint_every must be >= 0 (0: never)")
    _check(cfg.train.max_skipped >= 1, "train.max_skipped must be >= 1")
    _check(
        cfg.train.loss_reduction in ("mean", "sum"),
        f"train.loss_reduction must be mean or sum, not {cfg.train.loss_reduction!r}",
    )
    for key in ("bf16", "channels_last", "compile", "fused_adam"):
        value = getattr(cfg.fast, key)
        _check(value in SWITCHES, f"fast.{key} must be one of {', '.join(SWITCHES)}, not {value!r}")
    mb = cfg.train.micro_batch
    _check(mb is None or mb >= 1, "train.micro_batch must be >= 1 or null")
    _check(cfg.sample.shard_size >= 1, "sample.shard_size must be >= 1")
    _check(
        cfg.sample.denoised_dtype in ("float32", "float16"),
        f"sample.denoised_dtype must be float32 or float16, got {cfg.sample.denoised_dtype!r}",
    )
    _check(cfg.data.image_size >= 1, "data.image_size must be >= 1")
    _check(cfg.eval.fid_samples >= 2, "eval.fid_samples must be >= 2")
    t = cfg.train
    _check(t.pretrain_steps >= 1, "train.pretrain_steps must be >= 1")
    _check(t.update_steps >= 1, "train.update_steps must be >= 1")
    _check(t.batch_size >= 1, "train.batch_size must be >= 1")
    _check(math.isfinite(t.lr) and t.lr > 0, f"train.lr must be > 0, got {t.lr}")
    _check(t.lr_warmup >= 0, "train.lr_warmup must be >= 0")
    _check(0 < t.ema_halflife <= 10, "train.ema_halflife must be in (0, 10] (fraction of a stage)")
    s = cfg.sample
    _check(s.sampler in SAMPLERS, f"sample.sampler must be one of {', '.join(SAMPLERS)}")
    _check(s.steps >= 2, f"sample.steps must be >= 2, got {s.steps}")
    _check(s.batch_size >= 1, "sample.batch_size must be >= 1")
    _check(cfg.sfbd.iterations >= 0, "sfbd.iterations must be >= 0")
    _check_online(cfg)
    _check(cfg.eval.num_samples >= 2, "eval.num_samples must be >= 2")
    _check(cfg.eval.swd_projections >= 1, "eval.swd_projections must be >= 1")
    _check(
        re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None,
        f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}",
    )
    if d.pretrain is not None:
        _check_pretrain(cfg)


def _check_online(cfg: Config) -> None:
    """online.* (read by method online-sfbd only, checked always)."""
    o = cfg.online
    _check(o.refresh_every >= 1, f"online.refresh_every must be >= 1, got {o.refresh_every}")
    _check(
        o.refresh_size is None or o.refresh_size >= 1,
        f"online.refresh_size must be >= 1 or null, got {o.refresh_size}",
    )
    _check(
        0 <= o.ramp <= 1, f"online.ramp must be in [0, 1] (a fraction of the phase), got {o.ramp}"
    )


def _same_path(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _check_pretrain(cfg: Config) -> None:
    """data.pretrain must not be (a copy of) data the run trains or evaluates on."""
    d = cfg.data
    assert d.pretrain is not None
    others = {"data.source": d.source, "data.noisy": d.noisy, "data.clean": d.clean}
    others["eval.reference"] = cfg.eval.reference
    for key, other in others.items():
        if other is None:
            continue
        if d.pretrain in BUILTINS or other in BUILTINS:
            same = d.pretrain == other and not (key == "data.source" and other in BUILTIN_2D)
        else:
            same = _same_path(d.pretrain, other)
        _check(
            not same,
            f"data.pretrain is the same data as {key} ({other!r}); pretrain on a different, "
            "similar dataset, or leave data.pretrain unset",
        )


def _get(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node
