"""Crash safety: runs killed with SIGKILL at chosen points (``SFBD_FAULT``) and rerun until they
finish end bit-identical to an uninterrupted run; corrupted files are detected and redone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from run_helpers import RING8_STAGED
from run_helpers import sfbd_run as run_in_subprocess

from sfbd.config import load_config
from sfbd.run.denoise import read_denoised
from sfbd.run.runner import Run
from sfbd.runtime import faults

SETS = RING8_STAGED


def sfbd_run(out: Path, fault: str | None = None, sets: list[str] = SETS):
    return run_in_subprocess(out, sets, fault)


def outputs(run: Path) -> dict[str, bytes]:
    """Every file that must be bit-identical: checkpoints, denoised shards, saved samples."""
    files = [*run.glob("checkpoints/stage-*.safetensors"), *run.glob("denoised/*/*.npz")]
    files += run.glob("samples/*.npy")
    return {str(f.relative_to(run)): f.read_bytes() for f in sorted(files)}


def metrics(run: Path) -> list[dict]:
    import json

    stages = json.loads((run / "metrics.json").read_text())["stages"]
    return [{k: v for k, v in s.items() if k != "seconds"} for s in stages]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    done = sfbd_run(out)
    assert done.returncode == 0, done.stderr
    return out


def assert_same_as(run: Path, ref: Path) -> None:
    assert metrics(run) == metrics(ref)
    got, want = outputs(run), outputs(ref)
    assert got.keys() == want.keys()
    assert [k for k in want if got[k] != want[k]] == []
    assert not (run / "checkpoints" / "step.json").exists()  # removed when its stage ended


def test_fault_spec_parsing():
    assert faults._parse("train.step:3, denoise.shard") == {"train.step": 3, "denoise.shard": 1}
    assert faults._parse("") == {}


def test_killed_at_many_points_then_rerun_is_bit_identical(reference, tmp_path):
    run = tmp_path / "run"
    # each rerun resumes and is killed again somewhere later; counts are per process
    kills = [
        "train.step:12",  # mid-pretraining (step checkpoint at 7)
        "checkpoint.write:4",  # pretraining: step checkpoints 14, 21, 28, then stage-00 mid-write
        "stage.end:1",  # stage 0 trained and evaluated, metrics not yet written
        "denoise.shard:2",  # mid-denoising of E_1 (2 of 5 shards written)
        "train.step:9",  # E_1 complete; mid-update 1
        "denoise.shard:4",  # update 1 done; E_2 partly written
        "checkpoint.write:2",  # update 2: a step checkpoint mid-write
    ]
    for fault in kills:
        died = sfbd_run(run, fault)
        assert died.returncode == -9, (fault, died.returncode, died.stderr[-2000:])
    done = sfbd_run(run)
    assert done.returncode == 0, done.stderr
    assert_same_as(run, reference)
    index, x = read_denoised(run, 2)
    assert np.array_equal(index, np.arange(855)) and np.isfinite(x).all()  # each exactly once


def test_corrupted_checkpoint_is_detected_and_redone(reference, tmp_path):
    run = tmp_path / "run"
    assert sfbd_run(run).returncode == 0
    ckpt = run / "checkpoints" / "stage-01.safetensors"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, different checksum
    ckpt.write_bytes(bytes(data))
    again = sfbd_run(run)
    assert again.returncode == 0, again.stderr
    assert "stage 1 outputs cannot be trusted" in again.stderr
    assert "checksum" in again.stderr
    assert_same_as(run, reference)


def test_truncated_denoised_shard_is_redone(reference, tmp_path):
    run = tmp_path / "run"
    assert sfbd_run(run, "train.step:35").returncode == -9  # E_1 written, update 1 under way
    shard = run / "denoised" / "E_01" / "shard-000000400.npz"
    shard.write_bytes(shard.read_bytes()[:100])
    done = sfbd_run(run)
    assert done.returncode == 0, done.stderr
    assert "shard-000000400.npz unreadable" in done.stderr
    assert_same_as(run, reference)


def test_corrupted_step_checkpoint_restarts_the_stage(reference, tmp_path):
    run = tmp_path / "run"
    assert sfbd_run(run, "train.step:20").returncode == -9
    step = run / "checkpoints" / "step.safetensors"
    step.write_bytes(step.read_bytes()[:-10])
    done = sfbd_run(run)
    assert done.returncode == 0, done.stderr
    assert "step checkpoint unusable" in done.stderr
    assert_same_as(run, reference)


def test_in_process_resume_matches_subprocess_reference(reference, tmp_path):
    # the library path (no CLI) resumes the same way after a stop between stages
    cfg = load_config(overrides=SETS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses (OMP_NUM_THREADS=1): same float sums
    try:
        Run(cfg, tmp_path / "r", progress=False).execute(max_stages=2)
        Run(cfg, tmp_path / "r", progress=False).execute()
    finally:
        torch.set_num_threads(threads)
    assert metrics(tmp_path / "r") == metrics(reference)
    assert outputs(tmp_path / "r") == outputs(reference)


def test_torchrun_on_a_memory_mapped_dataset_resumes_bit_identically_after_sigkill(tmp_path):
    # a .npy source (memory-mapped), its noisy set stored once in DIR/data by rank 0: killed
    # while writing that set, in a denoised shard and mid-training, then rerun to the end,
    # the 2-process run ends as an uninterrupted 2-process run
    import json

    from run_helpers import run_outputs, torchrun

    from sfbd.data import builtin

    x, _ = builtin("ring8", 1000)
    np.save(tmp_path / "ring8.npy", x)
    sets = [s for s in SETS if not s.startswith(("data.source", "train.checkpoint_every"))]
    sets += [f"data.source={tmp_path / 'ring8.npy'}", "sfbd.iterations=1"]
    ref = torchrun(tmp_path / "ref", sets)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert isinstance(np.load(tmp_path / "ref/data/noisy.npy", mmap_mode="r"), np.memmap)
    run = tmp_path / "run"
    for fault in ("data.write:1", "denoise.shard:2", "train.step:12"):
        died = _torchrun_with_fault(run, sets, fault)
        assert died.returncode != 0, (fault, died.stderr[-2000:])
        if fault == "data.write:1":  # killed mid-write: no noisy set, only a temporary file
            assert not (run / "data/noisy.npy").exists()
    done = torchrun(run, sets)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list((run / "data").glob(".*.tmp"))

    def stages(out: Path) -> list[dict]:
        entries = json.loads((out / "metrics.json").read_text())["stages"]
        return [{k: v for k, v in s.items() if k != "seconds"} for s in entries]

    assert stages(run) == stages(tmp_path / "ref")
    got, want = run_outputs(run), run_outputs(tmp_path / "ref")
    assert got.keys() == want.keys() and [k for k in want if got[k] != want[k]] == []
    assert (run / "data/noisy.npy").read_bytes() == (tmp_path / "ref/data/noisy.npy").read_bytes()


def _torchrun_with_fault(out: Path, sets: list[str], fault: str):
    """run_helpers.torchrun with SFBD_FAULT passed to the workers."""
    import subprocess
    import sys

    from ddp_helpers import free_port
    from run_helpers import SRC, cli_env

    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd = [*launcher, f"--master_port={free_port()}", "-m", "sfbd", "run", "--out", str(out)]
    cmd.append("--quiet")
    for s in sets:
        cmd += ["--set", s]
    full = {**cli_env(fault), "PYTHONPATH": SRC}
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=600)
