"""Smoke test of benchmarks/throughput.py: the --quick run finishes and prints a sane JSON line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_prints_positive_numbers(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    out_file = tmp_path / "throughput.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "throughput.py"),
            "--quick",
            "--max-micro",
            "3",  # batch 4 -> micro-batches of 2 and 2: exercises gradient accumulation
            "--json-out",
            str(out_file),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(out_file.read_text()) == record
    keys = [
        "train_img_s",
        "train_img_s_fp32",
        "ratio",
        "sample_img_s_tau0.2",
        "sample_img_s_tau0.59",
        "sample_img_s_fp32_tau0.2",
        "sample_img_s_fp32_tau0.59",
        "matmul_tflops",
        "matmul_tflops_fp32",
        "gflop_per_image_forward",
        "fraction_of_ceiling",
    ]
    for key in keys:
        assert math.isfinite(record[key]) and record[key] > 0, key
    assert record["device"] == "cpu"
    assert record["train_micro"] == 3
    # training counts forward + backward: about three forwards (the backward ~ 2 forwards)
    assert 2.5 < record["gflop_per_image_train"] / record["gflop_per_image_forward"] < 3.5
    # the 18-step grid truncated at 0.2 runs 6 Heun steps (11 evaluations), at 0.5853 7 (13)
    assert record["nfe"] == {"tau0.2": 11, "tau0.59": 13}
    assert "training img/s" in proc.stdout
