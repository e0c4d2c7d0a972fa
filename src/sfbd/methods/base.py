"""The method interface: what a method means, in one file per method.

A :class:`Method` says which stages a run has (:meth:`Method.plan`), what each stage trains
on (:meth:`Method.training_set`), which inputs it needs, and which configuration keys may grow
a finished run. It never sees ranks, shards or files: the :class:`StageContext` the runner
hands it denoises (:meth:`StageContext.denoise`, resumable and dealt across DDP ranks) and
backward-samples chosen noisy samples (:meth:`StageContext.backward`).

Methods register in :data:`METHODS`; validation, ``sfbd status`` and the contract tests read
the registry. Validation also asks every registered method to check its own keys
(:meth:`Method.check_keys`) and the chosen one whether it can run the configuration
(:meth:`Method.validate_config`).

The ambient mixture (:func:`ambient_set`, Daras et al., ICLR 2025) is here, not in the
``ambient`` method's file, because SFBD's and Online SFBD's stage 0 train on it too with
``sfbd.pretrain: ambient``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import torch

from sfbd.errors import ConfigError
from sfbd.io.arrays import SampleArray, Stacked
from sfbd.registry import Registry
from sfbd.train.data import IndexedTrainingSet, TrainingSet

if TYPE_CHECKING:
    from sfbd.data.problem import Problem
    from sfbd.schema import Config


@dataclass(frozen=True)
class Stage:
    """One resumable unit of a run: train ``steps`` optimizer steps, then evaluate."""

    iteration: int  # k: the stage's index (metrics.json 'iteration', checkpoints/stage-KK)
    name: str  # 'pretrain', 'update', 'online' or a baseline's method name
    steps: int
    denoises: bool = False  # starts with a full backward-sampling pass, written as E_k


class StageContext(Protocol):
    """What a method may use of the run while it builds a stage's training set."""

    cfg: Config
    prob: Problem
    device: torch.device
    carry: dict[str, torch.Tensor]  # the previous stage's training-set state (may be empty)

    def denoise(self, k: int) -> SampleArray:
        """E_k: every noisy sample backward-sampled from its noise with the current EMA, in
        index order (resumable shards in denoised/E_KK, each sample exactly once), read from
        the memory-mapped shards."""
        ...

    def backward(self, index: np.ndarray, visit: int) -> torch.Tensor:
        """Noisy samples ``index`` backward-sampled with the current EMA, on the device; the
        injected noise is keyed by (visit, index), dealt across ranks, gathered on all."""
        ...

    def evaluations(self, index: np.ndarray | None = None) -> int:
        """Denoiser calls of one backward pass over the noisy rows ``index`` (default: all)."""
        ...


class Method(ABC):
    """A training recipe over stages (see the module docstring)."""

    name: ClassVar[str]
    needs_noisy: ClassVar[bool] = True  # user mode: data.noisy is required
    pretrains: ClassVar[bool] = False  # trains on clean (and data.pretrain) samples
    needs_truth: ClassVar[bool] = False  # needs the clean originals (benchmark mode only)

    def uses_pretrain(self, cfg: Config) -> bool:
        """Whether a run reads ``data.pretrain``: methods that pretrain on clean data do; the
        runner passes this down to :func:`sfbd.data.load_problem`."""
        return cfg.data.pretrain is not None and self.pretrains

    growable: ClassVar[tuple[str, ...]] = ()  # keys that may change on a finished run

    @classmethod
    def check_keys(cls, cfg: Config) -> None:
        """Refuse a value of this method's own keys that no run could use, whichever method
        the run chose (a typo is refused, not ignored); default: none."""
        return None

    @classmethod
    def validate_config(cls, cfg: Config) -> None:
        """Raise :class:`~sfbd.errors.ConfigError` (naming the key and the fix) when this
        method cannot run ``cfg``; reads no file (default: it can)."""
        return None

    @abstractmethod
    def plan(self, cfg: Config) -> list[Stage]:
        """The stages of a run, in order."""

    @abstractmethod
    def training_set(self, stage: Stage, ctx: StageContext) -> TrainingSet:
        """What stage ``stage`` trains on."""

    def denoise_evaluations(self, stage: Stage, ctx: StageContext) -> int:
        """Denoiser calls the stage spends on backward sampling (recorded as denoise_nfe)."""
        return ctx.evaluations() if stage.denoises else 0


METHODS: Registry[type[Method]] = Registry("method")


def as_set(ctx: StageContext, x: SampleArray, denoised: SampleArray | None = None) -> TrainingSet:
    """A fixed sample array, drawn uniformly by index onto the training device."""
    return IndexedTrainingSet(x, ctx.device, denoised)


def stacked(*parts: SampleArray) -> SampleArray:
    """The parts one after another, read by index (empty parts dropped; one part as is)."""
    kept = [p for p in parts if len(p)] or [parts[0]]
    return kept[0] if len(kept) == 1 else Stacked(kept)


def pretraining_data(prob: Problem) -> SampleArray:
    """What SFBD pretrains on: the clean set, with data.pretrain's samples before it."""
    if prob.pretrain is None:
        return prob.clean
    return stacked(prob.pretrain, prob.clean)


def total_steps(cfg: Config) -> int:
    """SFBD's update budget: pretraining plus K updates (the baselines get the same)."""
    return cfg.train.pretrain_steps + cfg.sfbd.iterations * cfg.train.update_steps


#: the values of ``sfbd.pretrain``: what SFBD's and Online SFBD's stage 0 trains on
CLEAN, AMBIENT = "clean", "ambient"
PRETRAIN_CHOICES = (CLEAN, AMBIENT)


def pretrain_set(ctx: StageContext) -> TrainingSet:
    """SFBD's stage 0: the clean set (with data.pretrain's samples), or with ``sfbd.pretrain:
    ambient`` the ambient mixture of clean and noisy rows (:func:`ambient_set`)."""
    if ctx.cfg.sfbd.pretrain == AMBIENT:
        return ambient_set(ctx)
    return as_set(ctx, pretraining_data(ctx.prob))


def ambient_set(ctx: StageContext) -> TrainingSet:
    """The ambient mixture: the clean rows (data.pretrain's, then the clean set's) at level 0,
    then the noisy rows (model space) at their white levels ``corruption.white_levels``, in
    the order of ``prob.noisy``; drawn uniformly, so clean and noisy rows come in proportion
    to their numbers. The loop trains on it with the ambient loss
    (:class:`~sfbd.diffusion.loss.AmbientLoss`)."""
    prob = ctx.prob
    levels = prob.corruption.white_levels(np.arange(len(prob.noisy)))
    if levels is None:
        raise ConfigError(
            f"the ambient loss needs white Gaussian noise in the model space; the noise model "
            f"({prob.corruption.describe()}) has none: use method clean-only or sfbd"
        )
    clean = pretraining_data(prob)
    rows = np.concatenate([np.zeros(len(clean)), np.asarray(levels, dtype=np.float64)])
    return IndexedTrainingSet(stacked(clean, prob.noisy), ctx.device, levels=rows)


def check_ambient(cfg: Config, what: str, fix: str) -> None:
    """What training on the ambient mixture needs (``what``: the key that asks for it, e.g.
    'sfbd.pretrain=ambient'; ``fix``: how to do without it): no augmentation (EDM's scaling and
    translation would colour the noisy rows' noise), a network trained by gradient steps, a
    noise model with white levels in its model space."""
    from sfbd.nets import NETWORKS
    from sfbd.noise import NOISE_MODELS
    from sfbd.noise.base import Corruption

    if cfg.train.augment > 0:
        raise ConfigError(
            f"{what} takes no train.augment: augmenting noisy rows would colour their noise; "
            f"set train.augment=0 or {fix}"
        )
    kind = cfg.model.kind
    if kind in NETWORKS and callable(getattr(NETWORKS[kind].cls, "fit", None)):
        raise ConfigError(
            f"{what} trains a network by gradient steps, but model.kind={kind} is fitted in "
            f"closed form to clean samples; choose a trained network or {fix}"
        )
    if NOISE_MODELS[cfg.data.noise].white_levels is Corruption.white_levels:  # returns None
        raise ConfigError(
            f"{what} needs noise that is white Gaussian in the model space; data.noise="
            f"{cfg.data.noise} has no such levels: {fix}"
        )
