"""sfbd.run.scores: reference-free per-stage scores and the best stage, in user mode too."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from run_helpers import cli_env

from sfbd.run.scores import best_stage


def test_best_stage_is_the_lowest_finite_val_noisy() -> None:
    stages = [
        {"iteration": 0, "metrics": {"val_noisy": 2.0}},
        {"iteration": 1, "metrics": {"val_noisy": 1.5}},
        {"iteration": 2, "metrics": {"val_noisy": float("nan")}},
        {"iteration": 3, "metrics": {"val_noisy": 1.5}},  # a tie: the earlier stage
        {"iteration": 4, "metrics": {}},
    ]
    assert best_stage(stages) == 1
    assert best_stage(stages[2:]) == 3
    assert best_stage([{"iteration": 0, "metrics": {"swd": 1.0}}]) is None
    assert best_stage(stages, key="swd") is None


def _sfbd(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sfbd", *args]
    return subprocess.run(cmd, env=cli_env(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory):
    """A user-mode run with no clean reference: noisy and clean files, white noise."""
    tmp = tmp_path_factory.mktemp("user")
    g = np.random.default_rng(0)
    angle = g.uniform(0, 2 * np.pi, 1100)
    x = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    np.save(tmp / "clean.npy", x[:100])
    np.save(tmp / "noisy.npy", (x[100:] + 0.3 * g.standard_normal((1000, 2))).astype("f4"))
    out = tmp / "run"
    sets = [f"data.noisy={tmp / 'noisy.npy'}", f"data.clean={tmp / 'clean.npy'}"]
    sets += ["data.sigma=0.3", "model.hidden=32", "model.layers=1", "train.pretrain_steps=60"]
    sets += ["train.update_steps=30", "train.batch_size=64", "sfbd.iterations=2", "device=cpu"]
    sets += ["eval.num_samples=300", "sample.steps=12"]
    done = _sfbd("run", "--out", str(out), "--quiet", *[a for s in sets for a in ("--set", s)])
    assert done.returncode == 0, done.stderr
    return out


def test_user_mode_reports_reference_free_scores_per_stage(user_run) -> None:
    stages = json.loads((user_run / "metrics.json").read_text())["stages"]
    assert len(stages) == 3
    for s in stages:
        m = s["metrics"]
        assert {"val_noisy", "copy_rate", "nn_ratio"} <= set(m) and "swd" not in m
        assert "val_clean" not in m  # no clean originals in user mode
        assert np.isfinite(m["val_noisy"]) and 0 <= m["copy_rate"] <= 1 and m["nn_ratio"] > 0
    assert all((user_run / "samples" / f"nearest-{k:02d}.png").is_file() for k in range(3))
    best = best_stage(stages)
    status = json.loads(_sfbd("status", "--run", str(user_run), "--json").stdout)
    assert status["best_stage"] == best
    text = _sfbd("status", "--run", str(user_run)).stdout
    assert f"stage {best:02d}" in text and "(best: lowest val_noisy)" in text


def test_stage_best_in_the_cli_and_the_api(user_run, tmp_path) -> None:
    best = best_stage(json.loads((user_run / "metrics.json").read_text())["stages"])
    for k in (str(best), "best"):
        out = tmp_path / f"s-{k}.npy"
        done = _sfbd("sample", "--run", str(user_run), "--n", "20", "--out", str(out),
                     "--stage", k, "--quiet")  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tmp_path / f"s-{best}.npy"), np.load(tmp_path / "s-best.npy"))
    code = f"import sfbd; print(sfbd.load({str(user_run)!r}, stage='best').stage)"
    api = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True
    )
    assert api.stdout.strip() == str(best), api.stderr
    bad = _sfbd("sample", "--run", str(user_run), "--n", "2", "--out", str(tmp_path / "x.npy"),
                "--stage", "good")  # fmt: skip
    assert bad.returncode == 2 and "expected an integer K or best, got 'good'" in bad.stderr


def test_stage_best_without_val_noisy_is_a_one_line_error(tmp_path) -> None:
    out = tmp_path / "run"
    sets = ["data.source=ring8", "data.num_samples=300", "eval.noisy_holdout=0", "device=cpu"]
    sets += ["train.pretrain_steps=5", "sfbd.iterations=0", "eval.num_samples=50"]
    done = _sfbd("run", "--out", str(out), "--quiet", *[a for s in sets for a in ("--set", s)])
    assert done.returncode == 0, done.stderr
    bad = _sfbd("sample", "--run", str(out), "--n", "2", "--out", str(tmp_path / "x.npy"),
                "--stage", "best")  # fmt: skip
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "has val_noisy" in lines[0]
