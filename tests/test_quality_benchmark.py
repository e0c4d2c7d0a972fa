"""End-to-end check of `benchmarks/quality.py --quick` (about 2 minutes on 2 CPU cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quality_quick(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "quality.py"),
        "--quick",
        "--out",
        str(tmp_path / "runs"),
        "--results",
        str(results),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    assert results.is_file()
    text = results.read_text()
    for header in (
        "| dataset | method | swd | mmd | denoise_psnr (dB) |",
        "| dataset | swd clean-only | swd sfbd (final) | swd oracle | gap closed |",
        "| sampler | sample.steps | final swd |",
        "| clean fraction | clean-only swd | sfbd final swd |",
        "| τ (data.sigma) | noisy-only swd (0% clean) | sfbd final swd (2% clean) |",
    ):
        assert header in text, header
    for word in ("oracle", "clean-only", "noisy-only", "sfbd", "ring8", "gmm8", "command"):
        assert word in text, word
    for name in ("quality-swd.png", "quality-sweeps.png", "quality-ring8-samples.png"):
        png = tmp_path / name
        assert png.is_file() and png.stat().st_size > 1000, name
        assert f"({name})" in text, name

    summary = json.loads((tmp_path / "runs" / "quick" / "summary.json").read_text())
    ring8 = summary["methods"]["ring8"]
    # training on the clean originals must beat training on the noisy samples as if clean
    assert ring8["oracle"][0] < ring8["noisy-only"][0], ring8
    assert len(summary["sfbd_swd_per_iteration"]["ring8"][0]) == 3  # k = 0, 1, 2
