"""sfbd.run.execution: one execute() call's stages, built in one place, resumable from a stage.

The Execution is the StageContext its method sees (cfg, prob, device, carry, denoise,
backward, evaluations); everything it holds is built in its constructor, and neither it nor
the Run gains attributes while stages run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from run_helpers import RING8_TINY

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.run.execution import SAVED_SAMPLES, Execution
from sfbd.run.runner import Run, prepare_disk
from sfbd.runtime.interrupt import NEVER, StopFlag

TINY = [
    *RING8_TINY,
    "train.pretrain_steps=12",
    "train.update_steps=8",
    "train.batch_size=32",
    "train.log_every=4",
    "sfbd.iterations=1",
    "eval.num_samples=100",
    "sample.sampler=sde",
    "sample.steps=8",
    "device=cpu",
]


def _start(run: Run, n_done: int, stop: StopFlag = NEVER) -> Execution:
    """What Run.execute does before its stage loop, for one process."""
    prob = prepare_disk(run.cfg, load_problem(run.cfg), run.dir, run.stages[n_done:], True)
    run.dir.open_manifest()
    run.dir.write_config(run.cfg)
    return Execution(run, prob, n_done, stop)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A run directory after its pretraining stage, with the Execution that ran it."""
    run = Run(load_config(overrides=TINY), tmp_path_factory.mktemp("x") / "r", progress=False)
    ex = _start(run, 0)
    before = {"run": set(vars(run)), "ex": set(vars(ex))}
    entry = ex.run_stage(run.stages[0])
    ex.runlog.close()
    return run, ex, before, entry


def test_a_stage_adds_no_attribute_to_the_execution_or_the_run(first):
    run, ex, before, _ = first
    assert set(vars(ex)) == before["ex"]
    assert set(vars(run)) == before["run"]
    held = {"cfg", "device", "prob", "carry", "stop", "runlog", "frechet", "denoiser", "state"}
    assert held <= before["ex"]
    assert ex.frechet is None  # not configured


def test_the_stage_entry_samples_and_checkpoint(first):
    run, ex, _, entry = first
    stage = run.stages[0]
    assert (entry["iteration"], entry["stage"], entry["train_steps"]) == (0, "pretrain", 12)
    assert set(entry["metrics"]) >= {"swd", "train_loss", "skipped_steps"}
    assert entry["metrics"]["skipped_steps"] == 0 and np.isfinite(entry["metrics"]["train_loss"])
    assert ex.state.step == stage.steps == 12
    samples = np.load(run.dir.samples(0))
    assert samples.shape == (min(100, SAVED_SAMPLES), 2) and np.isfinite(samples).all()
    assert run.checkpoint_stem(0).with_suffix(".safetensors").is_file()
    assert not run.dir.step_stem().with_suffix(".json").exists()  # dropped once the stage is


def test_it_is_the_methods_stage_context(first):
    run, ex, _, _ = first
    assert ex.cfg is run.cfg and ex.device == torch.device("cpu")
    n = len(ex.prob.noisy)
    assert n == 855 and isinstance(ex.carry, dict)
    rows = np.array([0, 5, 854])
    per_row = ex.evaluations(rows) // 3  # white noise: the same truncated schedule per row
    assert per_row > 0 and ex.evaluations(rows) == 3 * per_row and ex.evaluations() == n * per_row
    x = ex.backward(rows, visit=0)
    assert x.shape == (3, 2) and x.device == ex.device and torch.isfinite(x).all()
    assert torch.equal(ex.backward(rows, visit=0), x)  # the noise is keyed by (visit, index)
    assert not torch.equal(ex.backward(rows, visit=1), x)


def test_a_later_execution_resumes_from_the_last_finished_stage(first):
    run, ex, _, _ = first
    later = _start(run, 1)
    try:
        assert later.state.step == ex.state.step == 12
        pairs = zip(later.state.ema.parameters(), ex.state.ema.parameters(), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
        pairs = zip(later.state.model.parameters(), ex.state.model.parameters(), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
    finally:
        later.runlog.close()


def test_stop_requested_follows_the_flag(first):
    run, _, _, _ = first
    flag = StopFlag()
    ex = _start(run, 1, flag)
    try:
        assert not ex.stop_requested()
        flag.set()
        assert ex.stop_requested()
    finally:
        ex.runlog.close()
