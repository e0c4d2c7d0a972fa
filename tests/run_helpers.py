"""Shared by the tests that run small pipelines: a tiny ring8 problem and `sfbd run` in a
subprocess (one thread, no inherited fault injection unless asked for)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

#: A ring8 problem with a small MLP: 855 noisy and 45 clean samples, 100 held out. No noisy
#: samples are held out for val_noisy, so the sizes and keys these tests pin are the whole
#: noisy set's (the held-out noisy set has its own tests: test_holdout.py, test_scores.py).
RING8_TINY = [
    "data.source=ring8",
    "data.num_samples=1000",
    "data.clean_fraction=0.05",
    "model.hidden=32",
    "model.layers=1",
    "eval.noisy_holdout=0",
]

#: RING8_TINY run in 3 short stages with step checkpoints every 7 steps and E_k in 5 shards:
#: the run the crash tests kill at chosen points.
RING8_STAGED = [
    *RING8_TINY,
    "train.pretrain_steps=30",
    "train.update_steps=20",
    "train.batch_size=64",
    "train.checkpoint_every=7",
    "train.log_every=10",
    "sfbd.iterations=2",
    "eval.num_samples=200",
    "sample.sampler=sde",
    "sample.steps=16",
    "sample.batch_size=64",
    "sample.shard_size=200",  # 855 noisy samples: 5 shards
    "device=cpu",
]


def cli_env(fault: str | None = None) -> dict[str, str]:
    """Environment of a subprocess run: the source tree, one thread, ``SFBD_FAULT=fault``."""
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    env.pop("SFBD_FAULT", None)
    if fault is not None:
        env["SFBD_FAULT"] = fault
    return env


def run_cmd(out: Path, sets: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "sfbd", "run", "--out", str(out), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def sfbd_run(
    out: Path, sets: list[str], fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``sfbd run --out out --set ...`` to completion (or to the injected fault)."""
    return subprocess.run(
        run_cmd(out, sets), env=cli_env(fault), capture_output=True, text=True, timeout=600
    )


def torchrun(
    out: Path, sets: list[str], nproc: int = 2, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node=nproc -m sfbd run --out out --set ...`` on the CPU (gloo)."""
    from ddp_helpers import free_port

    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    launcher += [f"--master_port={free_port()}", "-m", "sfbd"]
    cmd = [*launcher, "run", "--out", str(out), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    env = {**cli_env(), "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def run_outputs(run: Path) -> dict[str, bytes]:
    """The bytes of a run's weights, E_k shards and saved samples, by relative path."""
    files = [*run.glob("checkpoints/stage-*.safetensors"), *run.glob("denoised/*/*.npz")]
    files += run.glob("samples/*.npy")
    return {str(f.relative_to(run)): f.read_bytes() for f in sorted(files)}


def assert_kill_resume_identical(tmp: Path, sets: list[str], kills: list[str]) -> None:
    """A run SIGKILLed at each fault point in turn, then rerun to the end, ends bit-identical
    (metrics, weights, E_k, samples) to an uninterrupted run."""
    import json

    ref = tmp / "ref"
    done = sfbd_run(ref, sets)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp / "run"
    for fault in kills:
        died = sfbd_run(run, sets, fault)
        assert died.returncode == -9, (fault, died.returncode, died.stderr[-2000:])
    done = sfbd_run(run, sets)
    assert done.returncode == 0, done.stderr[-2000:]

    def stages(out: Path) -> list[dict]:
        entries = json.loads((out / "metrics.json").read_text())["stages"]
        return [{k: v for k, v in s.items() if k != "seconds"} for s in entries]

    assert stages(run) == stages(ref)
    got, want = run_outputs(run), run_outputs(ref)
    assert got.keys() == want.keys() and [k for k in want if got[k] != want[k]] == []


def assert_torchrun_denoises_as_one_process(tmp: Path, sets: list[str]) -> None:
    """A tiny ring8 run with the noise keys ``sets`` (no step checkpoints, as in
    tests/test_online.py's torchrun test). E_1 written by 2 torchrun processes, each
    backward-sampling its own shards, is what one process computes from the same run's
    stage-0 weights: every noisy sample exactly once, at its own row of the noise model."""
    import numpy as np
    import torch

    from sfbd.config import load_config
    from sfbd.data import load_problem
    from sfbd.diffusion.batched import denoise_all
    from sfbd.diffusion.schedule import edm_sigmas
    from sfbd.nets.checkpoint import load_checkpoint
    from sfbd.rng import stream_id
    from sfbd.run.denoise import read_denoised
    from sfbd.run.directory import stage_stem

    sets = [*RING8_TINY, "train.pretrain_steps=40", "train.update_steps=30", *sets]
    sets += ["train.batch_size=64", "sfbd.iterations=1", "eval.num_samples=200", "device=cpu"]
    sets += ["sample.steps=16", "sample.sampler=sde", "sample.shard_size=100"]
    done = torchrun(tmp / "ddp", sets)
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = load_config(overrides=sets)
    prob = load_problem(cfg)
    ema = load_checkpoint(stage_stem(tmp / "ddp", 0))[1].eval()
    want = denoise_all(
        ema,
        torch.as_tensor(np.asarray(prob.noisy)),
        prob.corruption,
        edm_sigmas(cfg.sample.steps),
        stream=stream_id("denoise", cfg.seed, 1),
        sampler=cfg.sample.sampler,
        batch_size=cfg.sample.batch_size,
        progress=False,
    ).numpy()
    index, got = read_denoised(tmp / "ddp", 1)
    assert np.array_equal(index, np.arange(len(prob.noisy)))  # each sample once, in order
    assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()


def user_mode_round_trip(
    tmp: Path, bench_sets: list[str], user_sets: list[str], denoise_flags: list[str]
) -> None:
    """A benchmark problem made with the noise keys ``bench_sets``, its noisy and clean data
    saved as a user holds them and run in user mode with ``user_sets`` (the analytic model:
    seconds); then ``sfbd sample`` and ``sfbd denoise`` (with ``denoise_flags``) read the run.
    Checks: the run records its noise keys, outputs have the data's shape and are finite, and
    the probability-flow denoising brings the noisy inputs closer to their clean originals."""
    import numpy as np
    import yaml

    from sfbd.cli.main import main
    from sfbd.config import load_config
    from sfbd.data import load_problem

    bench = load_config(overrides=["data.source=ring8", "data.num_samples=800", *bench_sets])
    prob = load_problem(bench)
    assert prob.noisy_truth is not None
    noisy = prob.decode(prob.noisy)  # the noisy data in the data's scale, as stored
    np.save(tmp / "noisy.npy", noisy)
    np.save(tmp / "clean.npy", prob.decode(prob.clean))
    user = [f"data.noisy={tmp / 'noisy.npy'}", f"data.clean={tmp / 'clean.npy'}", *user_sets]
    user += ["model.kind=gaussian", "sfbd.iterations=1", "sample.steps=16", "device=cpu"]
    run = tmp / "run"
    assert main(["run", "--out", str(run), "--quiet", "--set", *user]) == 0
    recorded = yaml.safe_load((run / "config.yaml").read_text())["data"]
    for key, value in (s.split("=", 1) for s in user_sets):
        assert recorded[key.split(".", 1)[1]] == yaml.safe_load(value), key
    assert (
        main(["sample", "--run", str(run), "--n", "50", "--out", str(tmp / "s.npy"), "--quiet"])
        == 0
    )
    x = np.load(tmp / "s.npy")
    assert x.shape == (50, 2) and np.isfinite(x).all()
    base = ["denoise", "--run", str(run), "--input", str(tmp / "noisy.npy"), "--quiet"]
    assert main([*base, "--out", str(tmp / "d.npy"), *denoise_flags]) == 0
    d = np.load(tmp / "d.npy")
    assert d.shape == noisy.shape and np.isfinite(d).all()
    flow = [*base, "--out", str(tmp / "h.npy"), "--sampler", "heun", *denoise_flags]
    assert main(flow) == 0
    err_in = np.mean((noisy - prob.noisy_truth) ** 2)
    assert np.mean((np.load(tmp / "h.npy") - prob.noisy_truth) ** 2) < 0.8 * err_in
