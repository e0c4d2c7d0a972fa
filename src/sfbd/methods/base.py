"""The method interface: what a method means, in one file per method.

A :class:`Method` says which stages a run has (:meth:`Method.plan`), what each stage trains
on (:meth:`Method.training_set`), which inputs it needs, and which configuration keys may grow
a finished run. It never sees ranks, shards or files: the :class:`StageContext` the runner
hands it denoises (:meth:`StageContext.denoise`, resumable and dealt across DDP ranks) and
backward-samples chosen noisy samples (:meth:`StageContext.backward`).

Methods register in :data:`METHODS`; validation, ``sfbd status`` and the contract tests read
the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import torch

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
