"""Typed configuration: dataclasses are the schema, validated once at the edge.

A configuration is built from defaults, then a YAML file, then ``--set key=value`` overrides
(dotted keys, values parsed as YAML scalars). Every field's type is checked, unknown keys are
reported with the closest valid key, and value ranges are checked by :func:`validate`.
The allowed names of methods, samplers and model kinds are read from their registries
(:data:`sfbd.methods.METHODS`, :data:`sfbd.diffusion.sample.SAMPLERS`,
:data:`sfbd.models.MODEL_KINDS`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sfbd.data.sources import BUILTIN_2D, BUILTINS
from sfbd.diffusion.sample import SAMPLERS
from sfbd.errors import ConfigError
from sfbd.methods import METHODS
from sfbd.models import MODEL_KINDS

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
)


@dataclass
class DataConfig:
    source: str | None = (
        None  # builtin (ring8 checkerboard swissroll digits cifar10 celeba) or path
    )
    sigma: float = 0.35  # noise level tau: std of the additive Gaussian noise, in the data's scale
    clean_fraction: float = 0.02  # benchmark mode: fraction of the training part kept clean
    noise_seed: int = 0  # benchmark mode: seed of the split and of the fixed per-sample noise
    num_samples: int = 20000  # builtin 2-D sets: size; celeba: first N images (before hold-out)
    holdout: float = 0.1  # benchmark mode: fraction held out as reference (unless eval.reference)
    noisy: str | None = None  # user mode: .npy/.npz of noisy samples at level sigma
    clean: str | None = None  # user mode: clean samples (.npy/.npz, image folder or .zip)
    # clean samples of a similar distribution (builtin name or path like data.clean): stage 0
    # and clean-only train on pretrain + clean, SFBD updates on E_k + clean
    pretrain: str | None = None
    root: str | None = None  # cifar10: tarball or folder (default: cache, download); celeba: folder
    image_size: int = 64  # celeba: side of the center-cropped, resized images


@dataclass
class ModelConfig:
    kind: str = "auto"  # auto (mlp for vectors, unet for images) | mlp | unet | ddpmpp | ncsnpp
    #                     | adm | gaussian
    hidden: int = 256  # mlp: width
    layers: int = 3  # mlp: residual blocks
    channels: int = 32  # image nets: base channels (EDM's model_channels)
    channel_mult: list[int] = field(default_factory=lambda: [1, 2])  # image nets: per level
    blocks_per_level: int = 2  # image nets: residual blocks per level (EDM's num_blocks)
    dropout: float = 0.0  # image nets: dropout probability
    attention: bool = False  # unet: self-attention at the lowest resolution
    attn_resolutions: list[int] = field(default_factory=lambda: [16])  # ddpmpp/ncsnpp/adm
    channel_mult_noise: int | None = None  # ddpmpp/ncsnpp: noise embedding mult (None: preset)
    resample_filter: list[int] | None = None  # ddpmpp/ncsnpp: FIR filter (None: preset)


@dataclass
class TrainConfig:
    pretrain_steps: int = 4000  # optimizer steps of pretraining (SFBD iteration 0)
    update_steps: int = 2000  # optimizer steps of each denoiser update (warm start)
    batch_size: int = 512
    lr: float = 1e-3  # Adam learning rate
    lr_warmup: int = 200  # linear learning-rate warm-up at the start of pretraining, in steps
    ema_halflife: float = 0.1  # EMA half-life as a fraction of each stage's steps
    augment: float = 0.0  # non-leaky augmentation probability p (ddpmpp/ncsnpp/adm; EDM: 0.12)
    log_every: int = 100  # steps between training-loss records in log.jsonl
    checkpoint_every: int = 1000  # steps between step checkpoints (resume mid-stage; 0: never)
    max_skipped: int = 50  # consecutive non-finite steps (skipped) before the run stops
    micro_batch: int | None = None  # most samples per forward pass per process (gradient
    #                                 accumulation above it); None: the whole share at once


@dataclass
class SampleConfig:
    sampler: str = "heun"  # backward sampling: heun (probability-flow ODE) | sde (posterior)
    steps: int = 64  # steps of the full EDM schedule; the part below tau is what runs
    batch_size: int = 4096  # samples per sampler batch
    shard_size: int = 16384  # denoised samples per shard file (the unit of resume and of DDP)


@dataclass
class FastConfig:
    bf16: str = "auto"  # bf16 autocast of the network: training and sampling (auto: CUDA)
    channels_last: str = "auto"  # NHWC memory format for image networks (auto: on for CUDA)
    compile: str = "auto"  # torch.compile the network for training and sampling (auto: CUDA)
    fused_adam: str = "auto"  # fused Adam kernel (auto: where this torch has one)


@dataclass
class SfbdConfig:
    iterations: int = 3  # K: rounds of backward sampling + denoiser update


@dataclass
class OnlineConfig:
    refresh_every: int = 20  # online-sfbd: steps between bank refreshes (the paper's 20)
    refresh_size: int | None = None  # online-sfbd: samples per refresh (None: renew the whole
    #                                  bank once per train.update_steps, SFBD's budget)
    ramp: float = 0.25  # online-sfbd: fraction of the phase over which the bank's weight
    #                     ramps from 0 to 1 (0: no ramp)


@dataclass
class EvalConfig:
    reference: str | None = (
        None  # .npy/.npz of held-out clean samples (benchmark default: hold-out)
    )
    num_samples: int = 5000  # generated samples per stage for the metrics
    swd_projections: int = 256  # random directions of the sliced Wasserstein distance
    fid: bool = False  # images: FID per stage (Inception-v3 weights: cache or download)
    fid_samples: int = 50000  # generated images per FID
    fid_stats: str | None = None  # .npz (mu, sigma) of the FID reference; default: computed
    inception: str | None = None  # path of the FID Inception weights (default: cache/download)


@dataclass
class Config:
    method: str = "sfbd"  # sfbd | online-sfbd | clean-only | noisy-only | oracle
    seed: int = 0  # global seed: same seed, same machine -> same result
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    sfbd: SfbdConfig = field(default_factory=SfbdConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    fast: FastConfig = field(default_factory=FastConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list of {_type_name(item)}, got {value!r}")
        return [_coerce(v, item, key) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads '1e-4' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) and key.startswith("fast."):
            return "on" if value else "off"  # YAML 1.1 reads on/off (and yes/no) as booleans
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def _all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += _all_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _sections() -> list[str]:
    """Names of the configuration's sections (data, model, ...)."""
    hints = typing.get_type_hints(Config)
    return [f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(hints[f.name])]


def _first_key(section: str) -> str:
    """The first key of a section, without the section prefix (for examples in messages)."""
    return next(k for k in _all_keys() if k.startswith(section + ".")).split(".", 1)[1]


def _describe_value(value: Any) -> str:
    """A short description of a YAML value for messages: its type and a clipped repr."""
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML parser error on one line: 'line L, column C: problem'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _all_keys(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; see the configuration reference"
    return ConfigError(f"unknown configuration key {key!r}{hint}")


def _merge(obj: Any, values: dict, prefix: str = "") -> None:
    """Set the fields of dataclass ``obj`` from the nested dict ``values`` with type checks."""
    if not isinstance(values, dict):
        section = prefix.rstrip(".")
        if not section:
            raise ConfigError(f"the configuration must be a mapping, got {_describe_value(values)}")
        raise ConfigError(
            f"{section} must be a mapping of its keys (e.g. {section}.{_first_key(section)}), "
            f"got {_describe_value(values)}; see the configuration reference"
        )
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in names:
            raise _unknown(key)
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            _merge(getattr(obj, name), value, key + ".")
        else:
            setattr(obj, name, _coerce(value, tp, key))


def parse_override(text: str) -> tuple[str, Any]:
    """'a.b=value' -> ('a.b', parsed YAML scalar)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {key}: cannot parse value {raw!r} as YAML ({_yaml_problem(exc)}); "
            "quote it, e.g. --set 'key=\"text\"'"
        ) from None
    return key.strip(), value


def _nest(key: str, value: Any) -> dict:
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict | None = None,
) -> Config:
    """Defaults <- ``base`` dict <- YAML file ``path`` <- ``overrides`` ('key=value'), validated."""
    cfg = Config()
    if base:
        _merge(cfg, base)
    if path is not None:
        _merge(cfg, _read_yaml(Path(path)))
    for text in overrides or []:
        key, value = parse_override(text)
        if key in _sections():
            raise ConfigError(
                f"--set {key}=...: {key} is a section, not a key; set one of its keys, "
                f"e.g. --set {key}.{_first_key(key)}=..."
            )
        if key not in _all_keys():
            raise _unknown(key)
        _merge(cfg, _nest(key, value))
    validate(cfg)
    return cfg


def _read_yaml(p: Path) -> dict:
    """The mapping in a YAML configuration file (empty file: {}), or a one-line ConfigError."""
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a directory; give the path of a YAML file")
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {str(p)!r}: {exc.strerror or exc}; check its permissions"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"config file {str(p)!r} is not UTF-8 text; give a YAML file like configs/ring8.yaml"
        ) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {str(p)!r} is not valid YAML ({_yaml_problem(exc)}); "
            "compare it with configs/ring8.yaml"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"config file {str(p)!r} must hold a mapping of keys (like configs/ring8.yaml), "
            f"got {_describe_value(values)}"
        )
    return values


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def validate(cfg: Config) -> None:
    """Range and consistency checks; raises ConfigError naming the key and the fix."""
    d = cfg.data
    _check(cfg.method in METHODS, f"method must be one of {', '.join(METHODS)}; got {cfg.method!r}")
    method = METHODS[cfg.method]
    _check(
        math.isfinite(d.sigma) and d.sigma > 0,
        f"data.sigma must be a positive number (the noise std), got {d.sigma}",
    )
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
    for key in ("bf16", "channels_last", "compile", "fused_adam"):
        value = getattr(cfg.fast, key)
        _check(value in SWITCHES, f"fast.{key} must be one of {', '.join(SWITCHES)}, not {value!r}")
    mb = cfg.train.micro_batch
    _check(mb is None or mb >= 1, "train.micro_batch must be >= 1 or null")
    _check(cfg.sample.shard_size >= 1, "sample.shard_size must be >= 1")
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
    o = cfg.online
    _check(o.refresh_every >= 1, f"online.refresh_every must be >= 1, got {o.refresh_every}")
    _check(
        o.refresh_size is None or o.refresh_size >= 1,
        f"online.refresh_size must be >= 1 or null, got {o.refresh_size}",
    )
    _check(
        0 <= o.ramp <= 1, f"online.ramp must be in [0, 1] (a fraction of the phase), got {o.ramp}"
    )
    _check(cfg.eval.num_samples >= 2, "eval.num_samples must be >= 2")
    _check(cfg.eval.swd_projections >= 1, "eval.swd_projections must be >= 1")
    _check(
        re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None,
        f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}",
    )
    if d.pretrain is not None:
        _check_pretrain(cfg)


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


def to_dict(cfg: Config) -> dict:
    """The configuration as a plain nested dict (what config.yaml holds)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
