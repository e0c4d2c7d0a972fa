"""Shared by the tests that train a stage directly: :func:`sfbd.train.loop.train_stage` with
its settings as keywords."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sfbd.runtime.interrupt import NEVER, StopFlag
from sfbd.train.data import TrainingSet
from sfbd.train.ema import EMA
from sfbd.train.loop import StageProgress, TrainState, train_stage
from sfbd.train.settings import TrainSettings


def train_kw(
    state: TrainState,
    data: TrainingSet | torch.Tensor,
    *,
    ema_halflife: float,
    augment: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
    log: Callable[[int, float, int], None] | None = None,
    resume: StageProgress | None = None,
    checkpoint: Callable[[StageProgress], None] | None = None,
    stop: StopFlag = NEVER,
    **settings: Any,
) -> float:
    """``train_stage`` with ``TrainSettings(**settings)`` and the EMA whose half-life is
    ``ema_halflife`` of the stage's steps (as the runner builds them from ``cfg.train``)."""
    s = TrainSettings(**settings)
    ema = EMA.for_stage(ema_halflife, s.steps)
    return train_stage(
        state,
        data,
        s,
        ema,
        augment=augment,
        log=log,
        resume=resume,
        checkpoint=checkpoint,
        stop=stop,
    )
