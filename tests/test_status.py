"""`sfbd status`: the state of finished, interrupted and corrupted run directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_helpers import RING8_STAGED, sfbd_run

from sfbd.cli.main import main
from sfbd.cli.status import _rate, format_status, run_status
from sfbd.config import load_config
from sfbd.errors import SfbdError
from sfbd.run.runner import Run

SETS = [*RING8_STAGED, "train.log_every=5"]  # a later --set wins


def _killed(out: Path, fault: str) -> Path:
    proc = sfbd_run(out, SETS, fault)
    assert proc.returncode == -9, proc.stderr  # SIGKILL at the injected point
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("status") / "run"
    proc = sfbd_run(out, SETS)
    assert proc.returncode == 0, proc.stderr
    return out


def test_finished_run_reports_every_stage_with_its_metrics(finished, capsys):
    st = run_status(finished)
    recorded = json.loads((finished / "metrics.json").read_text())["stages"]
    assert st["finished"] and st["eta_seconds"] is None and st["method"] == "sfbd"
    assert not st["eta_is_lower_bound"]
    assert [(r["iteration"], r["name"], r["steps"], r["state"]) for r in st["stages"]] == [
        (0, "pretrain", 30, "done"),
        (1, "update", 20, "done"),
        (2, "update", 20, "done"),
    ]
    assert [r["metrics"] for r in st["stages"]] == [e["metrics"] for e in recorded]
    assert [r["seconds"] for r in st["stages"]] == [e["seconds"] for e in recorded]
    assert 0 <= st["last_write_seconds_ago"] < 3600
    text = format_status(st)
    assert "stage 02 update" in text and "finished" in text
    assert st["noise"] == "white Gaussian, sigma 0.35" and "noise: white Gaussian" in text
    assert f"swd {recorded[2]['metrics']['swd']:.4g}" in text

    assert main(["status", "--run", str(finished), "--json", "--verify"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["problems"] == [] and printed["stages"] == json.loads(json.dumps(st["stages"]))


def test_verify_names_a_changed_file_and_exits_1(finished, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished, run)
    shard = sorted((run / "denoised" / "E_02").glob("shard-*.npz"))[1]
    data = bytearray(shard.read_bytes())
    data[-40] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert main(["status", "--run", str(run), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"PROBLEM stage 2: denoised/E_02/{shard.name} does not match its SHA-256" in out
    assert run_status(run)["finished"]  # without --verify nothing is hashed


def test_killed_while_training_an_update(tmp_path):
    # 30 pretraining steps, then killed after update step 15 (the step checkpoint is at 14)
    st = run_status(_killed(tmp_path / "run", "train.step:45"))
    assert [r["state"] for r in st["stages"]] == ["done", "training", "pending"]
    now = st["stages"][1]
    assert now["trained_steps"] == 14 and now["checkpoint_step"] == 14
    assert st["steps_per_second"] > 0
    # stage 2 has no finished update to go by: its 20 steps at the current rate, plus 6 left here
    assert st["eta_seconds"] == pytest.approx(26 / st["steps_per_second"])
    assert st["eta_is_lower_bound"]
    assert "training: 14/20 (step checkpoint at 14)" in format_status(st)


def test_killed_while_denoising(tmp_path):
    st = run_status(_killed(tmp_path / "run", "denoise.shard:2"))
    assert [r["state"] for r in st["stages"]] == ["done", "denoising", "pending"]
    now = st["stages"][1]
    assert (now["denoised"], now["shards"], now["noisy"]) == (400, 2, 855)
    assert "denoising: 400/855 noisy samples in 2 shards" in format_status(st)


def test_killed_after_training_before_the_metrics(tmp_path):
    st = run_status(_killed(tmp_path / "run", "stage.end:1"))
    assert [r["state"] for r in st["stages"]] == ["evaluating", "pending", "pending"]
    assert st["eta_seconds"] is None  # nothing finished, no training rate: no estimate


def test_stopped_between_stages_and_not_a_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    Run(load_config(overrides=SETS), out, progress=False).execute(max_stages=1)
    st = run_status(out)
    assert [r["state"] for r in st["stages"]] == ["done", "next", "pending"]
    assert st["eta_seconds"] is None  # the finished stage is a pretraining, the rest updates
    with pytest.raises(SfbdError, match="not an sfbd run directory"):
        run_status(tmp_path)
    assert main(["status", "--run", str(tmp_path)]) == 2
    assert "not an sfbd run directory" in capsys.readouterr().err


def test_training_rate_counts_only_the_latest_process():
    first = [(0.0, 5), (1.0, 10), (2.0, 15)]  # 5 steps/s, then killed
    after = [(3600.0, 20), (3602.0, 30), (3604.0, 40)]  # resumed an hour later: 5 steps/s
    assert _rate(first) == 5.0
    assert _rate(first + after, since=3599.0) == 5.0
    assert _rate(first + after) < 0.01  # the hour's pause counted: why the start time is used
    assert _rate(first + after[:1], since=3599.0) is None  # one record: no rate yet
    rewound = [(0.0, 5), (1.0, 10), (2.0, 15), (3.0, 10), (4.0, 20)]  # resumed from step 7
    assert _rate(rewound) == 10.0


@pytest.mark.parametrize(
    ("sets", "noise"),
    [
        (["data.sigma=null", "data.sigma_range=[0.1, 0.5]"], "a level per sample, log-uniform"),
        (["data.sigma=null", "data.noise=poisson-gaussian", "data.gain=0.02"], "poisson-gaussian"),
        (["data.sigma=null", "data.noise_cov=c.npy", "data.noise_method=top-up"], "top-up"),
    ],
)
def test_status_names_the_noise_model(tmp_path, sets, noise):
    from sfbd.config import dump_yaml, load_config

    (tmp_path / "c.npy").write_bytes(b"")  # the status reads the config, not the file
    cfg = load_config(overrides=["data.source=ring8", *sets])
    (tmp_path / "config.yaml").write_text(dump_yaml(cfg))
    st = run_status(tmp_path)
    assert noise in st["noise"] and st["noise"] in format_status(st)
