"""Typed configuration: the dataclasses of :mod:`sfbd.schema`, loaded and validated once at
the edge.

A configuration is built from defaults, then a YAML file, then ``--set key=value`` overrides
(dotted keys, values parsed as YAML scalars). Every field's type is checked, unknown keys are
reported with the closest valid key, and value ranges and consistency are checked by
:func:`sfbd.validate.validate`.

The plug-ins (:mod:`sfbd.plugins`: sfbd's own and those the ``plugins`` key names) are loaded
first, so their names and keys are known. Importing this module imports neither torch nor any
domain package; :func:`load_config` does, through the plug-ins it loads.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from sfbd import plugins
from sfbd.errors import ConfigError
from sfbd.schema import (
    Config,
    DataConfig,
    EvalConfig,
    FastConfig,
    ModelConfig,
    OnlineConfig,
    SampleConfig,
    SfbdConfig,
    TrainConfig,
)
from sfbd.validate import resolve_noise, validate

__all__ = [
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "SampleConfig",
    "FastConfig",
    "SfbdConfig",
    "OnlineConfig",
    "EvalConfig",
    "Config",
    "dump_yaml",
    "load_config",
    "parse_override",
    "to_dict",
]


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
        if len(inner) == 1:
            return _coerce(value, inner[0], key)
        for a in inner:  # e.g. float | str: a number, else a path
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        plain = {float: "number", int: "integer", str: "string", bool: "boolean"}
        names = " or a ".join(plain.get(a, _type_name(a)) for a in inner)
        raise ConfigError(f"{key} must be a {names}, got {value!r}")
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


def _all_keys(node: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key of a configuration (default: a fresh one, with the keys of every
    registered plug-in)."""
    node = Config() if node is None else node
    keys = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            keys += _all_keys(value, f"{prefix}{f.name}.")
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
        hint = ""
        if text.endswith((".yaml", ".yml")):
            hint = (
                "; a configuration file is the positional argument: put it before the options, "
                f"e.g. sfbd run {text} --out DIR --set key=value"
            )
        raise ConfigError(f"--set expects key=value pairs, got {text!r}{hint}")
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
    """Defaults <- ``base`` dict <- YAML file ``path`` <- ``overrides`` ('key=value'), validated.

    The ``plugins`` the layers name (the last layer that sets it wins) are loaded before any
    other key is read; ``data.noise: auto`` (and its aliases) becomes the name of the noise
    model whose keys are set."""
    layers: list[dict] = []
    if base:
        layers.append(base)
    if path is not None:
        layers.append(_read_yaml(Path(path)))
    keys = []  # the --set keys, checked once the plug-ins' keys are known
    for text in overrides or []:
        key, value = parse_override(text)
        keys.append(key)
        layers.append(_nest(key, value) if key != "plugins" else {"plugins": value})
    entries: Any = []
    for layer in layers:
        entries = layer.get("plugins", entries) if isinstance(layer, dict) else entries
    entries = _coerce(entries if entries is not None else [], list[str], "plugins")
    plugins.load(entries)
    cfg = Config()
    for key in keys:
        _check_override(key)
    for layer in layers:
        _merge(cfg, layer)
    cfg.plugins = [plugins.resolve(e) for e in cfg.plugins]
    cfg.data.noise = resolve_noise(cfg.data)
    _check_user_sigma(cfg, layers)
    validate(cfg)
    return cfg


def _given(layers: list[dict], section: str, key: str) -> bool:
    return any(isinstance(layer.get(section), dict) and key in layer[section] for layer in layers)


def _check_user_sigma(cfg: Config, layers: list[dict]) -> None:
    """User mode's noisy files have no default noise level: white noise at benchmark mode's
    default ``data.sigma`` would train silently on a guess. Refuse noisy files unless a layer
    gives ``data.sigma`` (a level, a .npy of levels, or null beside another noise model; a
    resolved config.yaml always gives it)."""
    d = cfg.data
    if d.noisy is None or d.source is not None or _given(layers, "data", "sigma"):
        return
    from sfbd.noise import NOISE_MODELS

    chosen = dict(NOISE_MODELS.items()).get(d.noise)
    if chosen is not None and "sigma" in chosen.shares:  # sigma: the observation's noise
        raise ConfigError(
            f"{' and '.join(chosen.claims(d))} is given but data.sigma is not: set the std of "
            "the white noise on the observations (--set data.sigma=S, 0 for none)"
        )
    raise ConfigError(
        "data.noisy is given but data.sigma is not: set the noise level of the noisy samples "
        "(--set data.sigma=TAU, a number or a .npy of per-sample levels), or null with another "
        f"noise model; {type(d)().sigma} is only benchmark mode's default"
    )


def _check_override(key: str) -> None:
    """A ``--set`` key must be one key of the configuration, not a section."""
    if key in _sections():
        raise ConfigError(
            f"--set {key}=...: {key} is a section, not a key; set one of its keys, "
            f"e.g. --set {key}.{_first_key(key)}=..."
        )
    if key not in _all_keys():
        raise _unknown(key)


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


def to_dict(cfg: Config) -> dict:
    """The configuration as a plain nested dict (what config.yaml holds)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
