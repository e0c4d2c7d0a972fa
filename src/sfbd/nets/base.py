"""The network registry: each ``model.kind`` is one :class:`Network`, registered in its file.

A :class:`Network` says how to build a denoiser D(x, sigma) (B, *) -> (B, *) from its
constructor keywords (a raw network F inside EDM's preconditioning, or the analytic Gaussian
denoiser), how those keywords follow from the configuration and the sample shape, which sample
rank it needs, whether it takes augmentation labels, the ``model.*`` keys it owns (``Keys``)
and its own checks. A checkpoint records ``{'kind': name, 'config': keywords}``
(:func:`denoiser_spec`), which :func:`build_denoiser` inverts.

``model.kind=auto`` is the network whose ``auto_for_rank`` is the samples' rank (the MLP for
vectors, the small U-Net for images). Checkpoint kinds of 0.7 and earlier map through
:data:`ALIASES`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sfbd.diffusion.precond import EDMDenoiser
from sfbd.errors import ConfigError
from sfbd.registry import Registry
from sfbd.train.augment import augment_dim

if TYPE_CHECKING:
    from sfbd.schema import Config

Kwargs = Callable[["Config", tuple[int, ...]], dict[str, Any]]

_RANK_NAMES = {1: "vectors (N, D)", 3: "images (N, C, H, W)"}


@dataclass(frozen=True)
class Network:
    """One ``model.kind``: its builder, its constructor keywords and what it accepts."""

    cls: type[nn.Module]  # the network (or denoiser), built from the constructor keywords
    kwargs: Kwargs  # (config, sample shape) -> constructor keywords (JSON values)
    rank: int | None  # 1: vectors, 3: images, None: any sample shape
    augmented: bool = False  # takes augmentation labels (train.augment > 0 allowed)
    auto_for_rank: int | None = None  # model.kind=auto picks it for samples of this rank
    Keys: type | None = None  # dataclass of the model.* keys it owns (added to the schema)
    check: Callable[[Config], None] | None = None  # its own checks, raising ConfigError
    wrapped: bool = True  # a raw network F, preconditioned by EDMDenoiser; False: a denoiser

    def build(self, **kwargs: Any) -> nn.Module:
        """The denoiser D(x, sigma) of these constructor keywords."""
        net = self.cls(**kwargs)
        return EDMDenoiser(net) if self.wrapped else net


NETWORKS: Registry[Network] = Registry("network", section="model")

#: kinds recorded by checkpoints of 0.7 and earlier -> their network now ('songunet' held
#: DDPM++ and NCSN++ alike; its recorded keywords carry the preset, so either rebuilds it)
ALIASES = {"songunet": "ddpmpp"}


def edm_kwargs(cfg: Config, shape: tuple[int, ...]) -> dict[str, Any]:
    """Keywords shared by EDM's image networks (SongUNet presets and ADM)."""
    m = cfg.model
    return {
        "shape": list(shape),
        "model_channels": m.channels,
        "channel_mult": list(m.channel_mult),
        "num_blocks": m.blocks_per_level,
        "attn_resolutions": list(m.attn_resolutions),
        "dropout": m.dropout,
        "augment_dim": augment_dim if cfg.train.augment > 0 else 0,
    }


def build_denoiser(kind: str, config: dict) -> nn.Module:
    """A denoiser D(x, sigma) of network ``kind`` from its constructor keywords ``config``
    (which hold ``shape``, the per-sample shape); it remembers ``kind`` for its spec."""
    kind = ALIASES.get(kind, kind)
    if kind not in NETWORKS:
        raise ValueError(f"unknown network {kind!r}; choose one of {', '.join(NETWORKS)}")
    module = NETWORKS[kind].build(**config)
    module.network_kind = kind
    return module


def denoiser_spec(denoiser: nn.Module) -> dict:
    """{'kind': ..., 'config': {...}}: what :func:`build_denoiser` needs to rebuild it. The kind
    is the one it was built as, else the first registered for its class (networks that share
    a class record every constructor keyword, so any of them rebuilds it)."""
    wrapped = isinstance(denoiser, EDMDenoiser)
    inner = denoiser.net if wrapped else denoiser
    kind = getattr(denoiser, "network_kind", None)
    if kind is None:
        kinds = [k for k, n in NETWORKS.items() if n.cls is type(inner) and n.wrapped == wrapped]
        if not kinds:
            raise ValueError(f"network {type(inner).__name__} is not registered in NETWORKS")
        kind = kinds[0]
    return {"kind": kind, "config": inner.config()}


def resolve_kind(cfg: Config, shape: tuple[int, ...]) -> str:
    """``model.kind`` with ``auto`` resolved by the samples' rank (``auto_for_rank``)."""
    if cfg.model.kind != "auto":
        return cfg.model.kind
    for name, net in NETWORKS.items():
        if net.auto_for_rank == len(shape):
            return name
    raise ConfigError(f"model.kind=auto has no network for samples of shape {shape}; set one")


def model_config(cfg: Config, shape: tuple[int, ...]) -> tuple[str, dict]:
    """(network name, constructor keywords) for samples of ``shape``."""
    kind = resolve_kind(cfg, shape)
    net = NETWORKS[kind]
    if net.rank is not None and len(shape) != net.rank:
        raise ConfigError(
            f"model.kind={kind} needs {_RANK_NAMES[net.rank]}; samples have shape {shape}"
        )
    return kind, net.kwargs(cfg, shape)


def build_model(
    cfg: Config, shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> nn.Module:
    """A freshly initialised denoiser; initial weights depend only on ``cfg.seed``."""
    kind, kwargs = model_config(cfg, shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        try:
            model = build_denoiser(kind, kwargs)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return model.to(device)


def parameter_count(cfg: Config, shape: tuple[int, ...]) -> int:
    """Number of parameters of the configured network, counted without allocating it."""
    kind, kwargs = model_config(cfg, shape)
    try:
        with torch.device("meta"):
            model = build_denoiser(kind, kwargs)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return sum(p.numel() for p in model.parameters())


def describe_config(cfg: Config, shape: tuple[int, ...] | None = None) -> str:
    """The configured network in a few words, for ``sfbd status``: its name, its own keys'
    values and, when the sample shape is known, its parameter count (counted on the meta
    device, nothing allocated)."""
    if shape is None:
        return cfg.model.kind if cfg.model.kind != "auto" else "auto (by the samples' shape)"
    kind = resolve_kind(cfg, shape)
    keys = NETWORKS[kind].Keys
    fields = dataclasses.fields(keys) if keys is not None else ()
    own = ", ".join(f"{f.name} {getattr(cfg.model, f.name)}" for f in fields)
    own_text = f" ({own})" if own else ""
    return f"{kind}{own_text}, {parameter_count(cfg, shape):,} parameters"


def validate_config(cfg: Config) -> None:
    """``model.kind`` names a registered network (or auto), ``train.augment`` needs one that
    takes augmentation labels, and the network's own checks pass."""
    kind = cfg.model.kind
    if kind != "auto" and kind not in NETWORKS:
        raise ConfigError(f"model.kind must be one of {', '.join(('auto', *NETWORKS))}")
    augmented = [k for k, net in NETWORKS.items() if net.augmented]
    if cfg.train.augment != 0 and kind not in augmented:
        raise ConfigError(
            f"train.augment needs a network that takes augmentation labels "
            f"(model.kind {' / '.join(augmented)}); got model.kind={kind}"
        )
    nets = (
        [NETWORKS[kind]] if kind != "auto" else [n for _, n in NETWORKS.items() if n.auto_for_rank]
    )
    for net in nets:
        if net.check is not None:
            net.check(cfg)
