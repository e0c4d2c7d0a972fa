"""The noise-model interface: how the noisy data was made, and how to undo it by sampling.

A :class:`Corruption` is everything sfbd knows about the noise of ``data.noisy``:

* ``corrupt(x, index, noise_seed)``: benchmark mode's forward model, with the noise of sample i
  a function of (noise_seed, i) only, so the noisy set is a fixed finite dataset;
* ``encode(x)``, ``encode_noisy(y, index)`` and ``decode(z)``: the *model space*. Some noise
  models reduce exactly (or approximately) to white noise after a fixed invertible map T of the
  data: whitening z = c W x for coloured noise, the Anscombe transform for photon noise. The
  denoiser then learns the distribution of z = T(x); its noisy copies are
  ``encode_noisy(y)`` = z + tau * eps, and its samples map back through ``decode`` = T^-1.
  For white noise and per-sample levels all three are the identity;
* ``backward(denoiser, z_noisy, keys, grid, sampler=..., stream=...)``: SFBD's backward
  sampling of encoded noisy samples (B, *), i.e. draws of p(z_0 | y) under the current model;
* ``evaluations(sampler, grid, index)``: denoiser calls of one backward pass over the rows
  ``index`` (the work the runner records);
* ``check(clean, noisy)``: refuse data the model cannot describe (e.g. negative intensities);
* ``spec()`` / :func:`from_spec`: the plain-JSON record kept in checkpoints and the run log.

A model also says how a configuration and the API choose it, on the class:

* ``Keys``: a dataclass of the ``data.*`` keys it owns (registering adds them to the schema);
* ``claims(data)``: the keys set in ``data`` that describe this model (``data.noise: auto``
  picks the one model that claims any); ``validate_config``, ``from_config`` and
  ``describe_config``: its checks, its instance and its words for ``sfbd status``;
* ``arguments`` and ``from_arguments``: the keyword arguments of :func:`sfbd.noise_model`
  (``sfbd denoise``'s flags) that describe new inputs with this model.

Implementations register themselves in :data:`NOISE_MODELS` (one file each, see
:mod:`sfbd.noise.white`, and docs/extending.md). References: Lu, Wu, Yu 2025 (SFBD), Sec. 3;
the noise-model notes of docs/noise-models.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from sfbd.diffusion.precond import Denoiser
from sfbd.diffusion.sample import backward_sample, evaluations
from sfbd.diffusion.schedule import truncate_sigmas
from sfbd.errors import ConfigError, SfbdError
from sfbd.io.arrays import SampleArray, Samples
from sfbd.registry import Registry

if TYPE_CHECKING:
    from sfbd.schema import Config, DataConfig

#: old values of ``data.noise`` -> what they mean now (0.7 and earlier: 'gaussian', the
#: Gaussian model picked by its keys). The one alias table; docs/noise-models.md lists it.
ALIASES = {"gaussian": "auto"}


class Corruption(ABC):
    """A known noise model of the noisy samples (see the module docstring)."""

    name: ClassVar[str]  # the key of NOISE_MODELS and of spec()['noise']
    Keys: ClassVar[type | None] = None  # dataclass of the data.* keys this model owns
    # noise_model() keywords that can describe it -> help text of their sfbd denoise flag
    arguments: ClassVar[dict[str, str]] = {}
    for_inputs: ClassVar[bool] = True  # a run's instance describes new inputs as well
    # names of other models' keys this one also reads (data.<name>, and the noise_model()
    # keyword <name>): a mask's data.sigma. Given beside this model's own keys, they choose it.
    shares: ClassVar[tuple[str, ...]] = ()
    data_ndim: ClassVar[int | None] = None  # the per-sample ndim it needs (3: images); None: any

    # -- choosing the model: from a configuration, from the API's arguments ---------------
    @classmethod
    def claims(cls, data: DataConfig) -> list[str]:
        """The keys set in ``data`` that describe this model ('data.noise_cov'); none: it is
        chosen only by name (``data.noise``)."""
        return []

    @classmethod
    def check_keys(cls, data: DataConfig) -> None:
        """Refuse a value of this model's own keys that no run could use, whichever model the
        run chose (a typo in a key is refused, not ignored); default: none."""
        return None

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        """Raise :class:`~sfbd.errors.ConfigError` (naming the key and the fix) for values of
        this model's keys it cannot use; reads no file (default: every value is usable)."""
        return None

    @classmethod
    @abstractmethod
    def from_config(
        cls, cfg: Config, index: np.ndarray | None = None, n: int | None = None
    ) -> Corruption:
        """The instance the ``data.*`` keys describe (validated). ``index``: benchmark mode's
        source indices of the noisy samples; ``n``: user mode's number of noisy samples."""

    @classmethod
    @abstractmethod
    def describe_config(cls, data: DataConfig) -> str:
        """The model the keys describe, in a few words, for ``sfbd status`` (reads no file)."""

    @classmethod
    def from_arguments(cls, args: dict[str, Any], *, n: int | None, seed: int) -> Corruption | None:
        """The model of new inputs that :func:`sfbd.noise_model`'s ``args`` (its keywords
        that are not None) describe, or None when they describe another model; ``n``: the
        number of inputs, ``seed``: keys any noise the model adds. Errors name the flags of
        ``sfbd denoise`` (``--`` and the keyword with '-' for '_')."""
        return None

    def matches(self, other: Corruption) -> bool:
        """Whether ``other`` is the same noise model with the same parameters."""
        return type(other) is type(self) and other.spec() == self.spec()

    # -- the data ---------------------------------------------------------------------------

    @abstractmethod
    def corrupt(self, x: np.ndarray, index: np.ndarray, noise_seed: int) -> np.ndarray:
        """Noisy copies (N, *) float32 of clean samples x (N, *); noise keyed by ``index``."""

    @property
    def transforms(self) -> bool:
        """Whether the model space differs from the data's (encode/decode not the identity)."""
        return False

    def encoded(self, x: SampleArray) -> SampleArray:
        """Clean samples in the model space: ``x`` itself when the model space is the data's,
        else a view encoding rows as they are read (:meth:`encode`)."""
        if not self.transforms or not len(x):
            return x
        return Samples(x, fn=lambda z, pos: self.encode(z))

    def encoded_noisy(self, y: SampleArray) -> SampleArray:
        """Noisy samples as :meth:`backward` takes them: ``y`` itself when :meth:`encode_noisy`
        is the identity, else a view applying it keyed by row."""
        identity = type(self).encode_noisy is Corruption.encode_noisy and not self.transforms
        if identity or not len(y):
            return y
        return Samples(y, fn=self.encode_noisy)

    def to_model_space(
        self, clean: SampleArray, noisy: SampleArray, what: tuple[str, str]
    ) -> tuple[SampleArray, SampleArray]:
        """Clean and noisy samples checked (:meth:`check`; ``what`` names them for its
        messages), then in the model space (:meth:`encoded`, :meth:`encoded_noisy`)."""
        self.check(clean, noisy, what)
        return self.encoded(clean), self.encoded_noisy(noisy)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Clean samples (N, *) in the data's scale -> model space (default: the identity)."""
        return x

    def encode_noisy(self, y: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Noisy samples (N, *) as stored (rows keyed by ``index``) -> what :meth:`backward`
        takes: model-space samples at white noise (default: :meth:`encode`)."""
        return self.encode(y)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Model-space samples (N, *) -> the data's scale (default: the identity)."""
        return z

    def check(  # noqa: B027
        self,
        clean: np.ndarray | None,
        noisy: np.ndarray | None,
        keys: tuple[str, str] = ("data.clean", "data.noisy"),
    ) -> None:
        """Raise :class:`~sfbd.errors.DataError` for data this model cannot describe; ``keys``
        name the clean and noisy samples in its message (config keys or flags)."""

    @abstractmethod
    def backward(
        self,
        denoiser: Denoiser,
        y: torch.Tensor,
        keys: torch.Tensor,
        grid: torch.Tensor,
        *,
        sampler: str,
        stream: int,
    ) -> torch.Tensor:
        """Backward-sample noisy y (B, *) to x_0 (B, *); injected noise keyed by keys (B,)."""

    @abstractmethod
    def evaluations(self, sampler: str, grid: torch.Tensor, index: np.ndarray) -> int:
        """Denoiser calls of one :meth:`backward` pass over the rows ``index`` (keys) on the
        schedule ``grid``, summed over the rows."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Plain-JSON description, ``{'noise': name, ...}``, that :func:`from_spec` inverts."""

    @abstractmethod
    def describe(self) -> str:
        """A few words for messages and figure titles, e.g. 'sigma 0.35'."""

    def white_levels(self, index: np.ndarray) -> np.ndarray | None:
        """The level of the white Gaussian noise of each noisy row ``index`` in the model
        space, float64 (len(index),): encoded noisy sample i is z_i + tau_i * eps_i there. None
        for a model with no Gaussian model space (what the ambient loss and ``val_noisy``
        need; default: None)."""
        return None

    #: whether :meth:`white_levels` is exact (False: an approximation, photon noise's)
    white_is_exact: ClassVar[bool] = True

    @property
    def backward_passes(self) -> int:
        """Backward network passes (vector-Jacobian products) per denoiser call of
        :meth:`backward`: 0 for the truncated start, cg_steps + 1 for posterior sampling."""
        return 0

    def subset(self, rows: np.ndarray) -> Corruption:
        """The noise model of the noisy samples ``rows`` alone, renumbered 0..len(rows)-1
        (default: the same model; per-sample levels are taken along)."""
        return self

    @classmethod
    @abstractmethod
    def example(cls, shape: tuple[int, ...], n: int) -> Corruption:
        """A typical instance for n noisy samples of ``shape``: what the contract tests run."""


class WhiteInModelSpace(Corruption):
    """A noise model whose model-space noise is white at one level :attr:`tau`: backward
    sampling is the reverse diffusion from x(tau) = y, the schedule truncated at tau (white
    noise itself, whitened or topped-up coloured noise, Anscombe-transformed photon noise)."""

    @property
    @abstractmethod
    def tau(self) -> float:
        """The white noise level in model space."""

    def white_levels(self, index: np.ndarray) -> np.ndarray:
        return np.full(len(index), float(self.tau))

    def backward(
        self,
        denoiser: Denoiser,
        y: torch.Tensor,
        keys: torch.Tensor,
        grid: torch.Tensor,
        *,
        sampler: str,
        stream: int,
    ) -> torch.Tensor:
        return backward_sample(
            denoiser, y, self.tau, grid, keys=keys, stream=stream, sampler=sampler
        )

    def evaluations(self, sampler: str, grid: torch.Tensor, index: np.ndarray) -> int:
        return len(index) * evaluations(sampler, truncate_sigmas(grid, self.tau))


NOISE_MODELS: Registry[type[Corruption]] = Registry("noise model", section="data")


def noise_arguments() -> dict[str, str]:
    """Every registered model's :func:`sfbd.noise_model` keywords -> help text (the first
    model's, where several take one): the noise flags of ``sfbd denoise``."""
    out: dict[str, str] = {}
    for _, cls in NOISE_MODELS.items():
        for name, text in cls.arguments.items():
            out.setdefault(name, text)
    return out


def flag(argument: str) -> str:
    """The ``sfbd denoise`` flag of a :func:`sfbd.noise_model` keyword: --noise-cov."""
    return "--" + argument.replace("_", "-")


def resolve_name(data: DataConfig) -> str:
    """``data.noise`` as a registered name: an alias mapped (:data:`ALIASES`), ``auto`` made
    the one model whose keys are set; a name that claims nothing keeps its value (checked
    later). Raises ConfigError when the keys of two models are set."""
    name = ALIASES.get(data.noise, data.noise)
    claims = {n: cls.claims(data) for n, cls in NOISE_MODELS.items()}
    claims = {n: keys for n, keys in claims.items() if keys}
    if name != "auto":
        shared = {f"data.{k}" for k in NOISE_MODELS[name].shares} if name in NOISE_MODELS else set()
        others = {n: k for n, k in claims.items() if n != name and not set(k) <= shared}
        if name in NOISE_MODELS and others:
            other, keys = next(iter(others.items()))
            raise ConfigError(
                f"data.noise is {name}, but {keys[0]} is set, which describes noise model "
                f"{other}; unset it (--set {keys[0]}=null) or set data.noise: {other}"
            )
        return name
    claims = _without_shared(claims)
    if len(claims) > 1:
        # name first a key left at its default (data.sigma's 0.35): the likelier one to drop
        (a, ka), (b, kb) = sorted(claims.items(), key=lambda c: not _at_default(data, c[1]))[:2]
        raise ConfigError(
            f"{ka[0]} and {kb[0]} describe two noise models ({a}, {b}); keep one, e.g. "
            f"--set {ka[0]}=null, or name the model with data.noise"
        )
    if not claims:
        raise ConfigError(
            "data.sigma is null but no other noise model is set: give data.sigma (a level, or "
            "a .npy of per-sample levels), or set data.noise to one of "
            f"{', '.join(NOISE_MODELS)} with its keys (docs/noise-models.md)"
        )
    return next(iter(claims))


def _without_shared(claims: dict[str, list[str]]) -> dict[str, list[str]]:
    """``claims`` less the models whose keys are all ones another claiming model shares
    (data.sigma beside data.mask describes the mask's noise, not white noise)."""

    def shared_by_others(name: str) -> set[str]:
        return {f"data.{k}" for n in claims if n != name for k in NOISE_MODELS[n].shares}

    return {n: keys for n, keys in claims.items() if not set(keys) <= shared_by_others(n)}


def _at_default(data: DataConfig, keys: list[str]) -> bool:
    fresh = type(data)()
    return all(getattr(data, k[5:]) == getattr(fresh, k[5:]) for k in keys)


def validate_config(cfg: Config) -> None:
    """``data.noise`` names a registered model (after :func:`resolve_name`), whose own checks
    pass; every model's keys hold values it could use (:meth:`Corruption.check_keys`)."""
    name = cfg.data.noise
    if name not in NOISE_MODELS:
        raise ConfigError(
            f"data.noise must be auto or one of {', '.join(sorted(NOISE_MODELS))}; got {name!r}"
        )
    for _, cls in NOISE_MODELS.items():
        cls.check_keys(cfg.data)
    NOISE_MODELS[name].validate_config(cfg)


def from_config(cfg: Config, index: np.ndarray | None = None, n: int | None = None) -> Corruption:
    """The noise model of a run's noisy data, from the ``data.*`` keys (validated); ``index``:
    benchmark mode's source indices of the noisy samples, ``n``: user mode's count."""
    return NOISE_MODELS[cfg.data.noise].from_config(cfg, index=index, n=n)


def describe_config(cfg: Config) -> str:
    """The noise model the ``data.*`` keys describe, in a few words (reads no file)."""
    return NOISE_MODELS[cfg.data.noise].describe_config(cfg.data)


def from_arguments(
    args: dict[str, Any], *, n: int | None = None, run: Corruption | None = None, seed: int = 0
) -> Corruption:
    """The noise model of new inputs (:func:`sfbd.noise_model`): the one registered model
    that ``args`` (keywords, None = not given) describe, else the run's own ``run``.

    A run trained in a transformed space (whitened or Anscombe-transformed data) denoises
    only its own model. Raises :class:`~sfbd.errors.SfbdError` naming ``sfbd denoise``'s
    flags."""
    given = {k: v for k, v in args.items() if v is not None}
    known = {a for _, cls in NOISE_MODELS.items() for a in cls.arguments}
    unknown = sorted(set(given) - known)
    if unknown:
        raise SfbdError(f"unknown noise argument {unknown[0]!r}; known: {', '.join(sorted(known))}")
    takers = [
        cls
        for _, cls in NOISE_MODELS.items()
        if set(given) & set(cls.arguments) and set(given) <= set(cls.arguments) | set(cls.shares)
    ]
    if len(given) > 1 and not takers:
        a, b = (flag(k) for k in sorted(given)[:2])
        raise SfbdError(f"give {a} or {b}, not both: each describes a noise model alone")
    if not given:
        if run is not None and not run.for_inputs and type(run).shares:
            own = " and ".join(flag(a) for a in (*type(run).arguments, *type(run).shares))
            raise SfbdError(
                f"this run's noise model ({run.describe()}) belongs to its own noisy set: give "
                f"{own} for the inputs"
            )
        if run is None or not run.for_inputs:
            raise SfbdError(
                "give --sigma: the noise level of the inputs (a number, or a .npy of one level "
                "per input)"
            )
        return run
    for cls in takers:
        noise = cls.from_arguments(given, n=n, seed=seed)
        if noise is None:
            continue
        if run is not None and run.transforms:
            if run.matches(noise):
                return run
            raise SfbdError(
                "this run learned its data through its noise model's transform "
                f"({run.describe()}), so it denoises only that noise: leave out "
                f"{flag(next(iter(given)))}"
            )
        return noise
    raise SfbdError(f"{flag(next(iter(given)))}: no noise model takes {given}")  # pragma: no cover


def from_spec(spec: dict[str, Any]) -> Corruption:
    """Rebuild a corruption from :meth:`Corruption.spec`; a spec without 'noise' (a 0.4
    checkpoint, which recorded only 'sigma') is white noise."""
    spec = dict(spec)
    name = spec.pop("noise", "white")
    return NOISE_MODELS[name](**spec)
