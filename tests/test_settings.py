"""sfbd.train.settings: a stage's training settings from the config, warm-up and reduction."""

from __future__ import annotations

import dataclasses

import pytest

from sfbd.runtime.fast import FastPath
from sfbd.schema import TrainConfig
from sfbd.train.settings import TrainSettings


def test_from_config_takes_the_train_section_the_stage_and_the_fast_path():
    train = TrainConfig(
        batch_size=64,
        lr=2e-4,
        lr_warmup=10,
        log_every=5,
        checkpoint_every=7,
        max_skipped=3,
        micro_batch=16,
        loss_reduction="sum",
    )
    fp = FastPath(bf16=True, channels_last=True)
    s = TrainSettings.from_config(train, steps=40, seed=11, fp=fp, desc="stage 1", progress=False)
    assert s == TrainSettings(
        steps=40,
        batch_size=64,
        lr=2e-4,
        seed=11,
        lr_warmup=10,
        log_every=5,
        checkpoint_every=7,
        max_skipped=3,
        micro_batch=16,
        bf16=True,
        channels_last=True,
        stop_sync_every=25,
        loss_reduction="sum",
        desc="stage 1",
        progress=False,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lr = 1.0  # type: ignore[misc]


def test_warm_up_is_linear_in_the_global_step():
    s = TrainSettings(steps=10, batch_size=1, lr=1e-3, seed=0, lr_warmup=4)
    assert [s.lr_at(step) for step in range(6)] == [
        1e-3 * 0.25,
        1e-3 * 0.5,
        1e-3 * 0.75,
        1e-3,
        1e-3,
        1e-3,
    ]
    assert TrainSettings(steps=10, batch_size=1, lr=1e-3, seed=0).lr_at(0) == 1e-3


def test_tail_and_loss_scale():
    assert TrainSettings(steps=60, batch_size=1, lr=1.0, seed=0).tail == 6
    assert TrainSettings(steps=5, batch_size=1, lr=1.0, seed=0).tail == 1
    mean = TrainSettings(steps=1, batch_size=1, lr=1.0, seed=0)
    total = dataclasses.replace(mean, loss_reduction="sum")
    assert mean.loss_scale(64) == 1.0 and total.loss_scale(64) == 64.0
