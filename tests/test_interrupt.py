"""SIGTERM/SIGINT: the flag, the handlers, and a real preempted run that resumes identically."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from run_helpers import RING8_TINY, cli_env, run_cmd

from sfbd.runtime.interrupt import EXIT_INTERRUPTED, Interrupted, StopFlag, stop_on_signals

SETS = [
    *RING8_TINY,
    "train.pretrain_steps=4000",
    "train.update_steps=50",
    "train.batch_size=32",
    "train.checkpoint_every=100000",  # only the stop writes a step checkpoint
    "sfbd.iterations=1",
    "eval.num_samples=100",
    "sample.steps=8",
    "device=cpu",
]


def test_flag_and_handlers():
    flag = StopFlag()
    flag.check("anywhere")  # not set: nothing happens
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(flag):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert flag.is_set() and flag.signal == signal.SIGTERM
        with pytest.raises(Interrupted, match="stopped by SIGTERM during training"):
            flag.check("during training")
    assert signal.getsignal(signal.SIGTERM) is before


def _cmd(out: Path) -> list[str]:
    return run_cmd(out, SETS)


def _env() -> dict[str, str]:
    return cli_env()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_preempted_run_saves_a_step_checkpoint_exits_75_and_resumes_identically(tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(out), env=_env(), stderr=subprocess.PIPE, text=True)
    log = out / "log.jsonl"
    deadline = time.monotonic() + 120
    while not log.is_file() and time.monotonic() < deadline:  # the run directory is set up
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the 4000 pretraining steps
    proc.send_signal(sig)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert time.monotonic() - sent < 30  # bounded: one step and one checkpoint
    assert f"interrupted (stopped by {signal.Signals(sig).name} during stage 0" in err
    assert "rerun the same command to resume" in err
    meta = (out / "checkpoints" / "step.json").read_text()
    assert '"iteration": 0' in meta and not (out / "metrics.json").exists()
    resumed = subprocess.run(_cmd(out), env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(
        _cmd(tmp_path / "ref"), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert straight.returncode == 0
    for name in ("stage-00.safetensors", "stage-01.safetensors"):
        a = (out / "checkpoints" / name).read_bytes()
        assert a == (tmp_path / "ref" / "checkpoints" / name).read_bytes(), name


def test_a_signal_during_start_up_still_exits_75_and_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(out), env=_env(), stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)  # typically still importing torch
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "rerun the same command to resume" in err
    assert not (out / "checkpoints").exists()  # stopped before any training
