"""Validation of a configuration: value ranges and consistency, checked once at the edge.

Each check raises :class:`~sfbd.errors.ConfigError` naming the key and the fix. The allowed
names of methods, samplers, networks and noise models are read from their registries, and
each noise model and network checks its own keys (:func:`sfbd.noise.base.validate_config`,
:func:`sfbd.nets.base.validate_config`), so a new plug-in is valid the moment it is
registered. The registries are imported when a configuration is checked, not when this module
is: loading :mod:`sfbd.config` imports no torch.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfbd.errors import ConfigError

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig

SWITCHES = ("auto", "on", "off")  # fast.* settings
# keys that name files or folders (checked to be non-empty when set)
PATH_KEYS = (
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


def resolve_noise(data: DataConfig) -> str:
    """``data.noise`` as a registered name (``auto`` and old aliases resolved by the keys
    that are set: :func:`sfbd.noise.base.resolve_name`)."""
    from sfbd.noise import resolve_name

    return resolve_name(data)


def validate(cfg: Config) -> None:
    """Range and consistency checks; raises ConfigError naming the key and the fix."""
    from sfbd import nets, noise
    from sfbd.diffusion.sample import SAMPLERS
    from sfbd.methods import METHODS

    _check(cfg.method in METHODS, f"method must be one of {', '.join(METHODS)}; got {cfg.method!r}")
    noise.validate_config(cfg)
    for key in PATH_KEYS:
        value = _get(cfg, key)
        _check(
            value is None or value.strip() != "",
            f"{key} is an empty string; give a path, or null to leave it unset",
        )
    _check_mode(cfg, METHODS[cfg.method])
    nets.validate_config(cfg)
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
    _check(s.cg_steps >= 1, f"sample.cg_steps must be >= 1, got {s.cg_steps}")
    _check(cfg.sfbd.iterations >= 0, "sfbd.iterations must be >= 0")
    _check_online(cfg)
    _check(cfg.eval.num_samples >= 2, "eval.num_samples must be >= 2")
    _check(
        0 <= cfg.eval.noisy_holdout < 1,
        f"eval.noisy_holdout must be in [0, 1) (a fraction of the noisy set), got "
        f"{cfg.eval.noisy_holdout}",
    )
    _check(cfg.eval.noisy_holdout_max >= 0, "eval.noisy_holdout_max must be >= 0")
    _check(cfg.eval.swd_projections >= 1, "eval.swd_projections must be >= 1")
    _check(
        re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None,
        f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}",
    )
    if cfg.data.pretrain is not None:
        _check_pretrain(cfg)
    for _, method in METHODS.items():  # every method's own keys (sfbd.pretrain), then the
        method.check_keys(cfg)  #         chosen method's needs
    METHODS[cfg.method].validate_config(cfg)


def _check_mode(cfg: Config, method: Any) -> None:
    """Benchmark mode (data.source) or user mode (data.noisy / data.clean), with the inputs
    ``method`` (a :class:`~sfbd.methods.base.Method` class) needs."""
    d = cfg.data
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
    from sfbd.data.sources import BUILTIN_2D, BUILTINS

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
