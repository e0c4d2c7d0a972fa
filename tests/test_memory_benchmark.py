"""Checks of `benchmarks/memory.py` and its parts (benchmarks/rss/): the growth verdict on
hand-made numbers, the /proc polling on small known allocations, and one tiny `sfbd run`
measured end to end (about 20 s)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
MIB = 2**20

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="memory.py reads /proc (Linux only)"
)


@pytest.fixture()
def memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """benchmarks/rss/'s modules (memory.py's parts) by short name."""
    monkeypatch.syspath_prepend(str(BENCH))
    names = ("proc", "datasets", "verdict", "report")
    yield SimpleNamespace(**{n: importlib.import_module(f"rss.{n}") for n in names})
    for name in [m for m in sys.modules if m.split(".")[0] == "rss"]:
        sys.modules.pop(name)


def _row(kind: str, procs: int, n: int, rss_mib: float) -> dict:
    return {"kind": kind, "procs": procs, "n": n, "rss_anon_mib": rss_mib}


def test_growth_and_verdicts_from_hand_made_numbers(memory: SimpleNamespace) -> None:
    data = 3072 * 4  # bytes per sample
    # 9,000 more samples; RssAnon up by 10% of their bytes
    small, large = (1000, 300 * MIB), (10000, 300 * MIB + 0.10 * 9000 * data)
    assert memory.verdict.growth([small, large]) == pytest.approx(0.10)
    assert memory.verdict.growth([large, small]) == pytest.approx(0.10)  # order does not matter
    middle = (4000, 10**12)  # only the smallest and the largest N count
    assert memory.verdict.growth([small, middle, large]) == pytest.approx(0.10)
    assert memory.verdict.growth([(0, 0.0), (10, 2.0 * 10 * 8)], dim=2) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        memory.verdict.growth([small, small])

    flat = [_row("vectors", 1, 4000, 400.0), _row("vectors", 1, 100000, 420.0)]
    # a whole float32 copy of the data held: growth 1.0, and 0.2 of it: both FAIL
    copy = 100000 * data / MIB - 4000 * data / MIB
    held = [_row("images", 2, 4000, 500.0), _row("images", 2, 100000, 500.0 + copy)]
    fifth = [_row("images", 1, 4000, 500.0), _row("images", 1, 100000, 500.0 + 0.2 * copy)]
    single = [_row("vectors", 2, 4000, 400.0)]  # one size: no verdict
    checks = memory.verdict.verdicts(flat + held + fifth + single)
    assert [(c["kind"], c["procs"]) for c in checks] == [
        ("vectors", 1),
        ("images", 2),
        ("images", 1),
    ]
    assert checks[0]["growth"] == pytest.approx(20 * MIB / (96000 * data))
    assert checks[0]["pass"] is True
    assert checks[1]["growth"] == pytest.approx(1.0) and checks[1]["pass"] is False
    assert checks[2]["growth"] == pytest.approx(0.2) and checks[2]["pass"] is False
    assert (checks[0]["n_min"], checks[0]["n_max"], checks[0]["limit"]) == (4000, 100000, 0.15)
    lines = memory.report.growth_lines(checks)
    assert "FAIL" in lines[1] and "PASS" in lines[0]


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_measure_counts_anonymous_memory_not_mapped_files(
    memory: SimpleNamespace, tmp_path: Path
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    anon = memory.proc.measure(
        _python("import time; b = bytearray(96 * 2**20); time.sleep(0.5)"), env, interval=0.01
    )
    assert anon["returncode"] == 0 and not anon["timed_out"]
    (root,) = anon["processes"]
    assert root["parent"] == 0
    assert 96 * 1024 <= root["rss_anon_kb"] <= root["vm_rss_kb"]

    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\1" * (96 * MIB))
    mapped = memory.proc.measure(
        _python(
            f"""
            import mmap, time
            with open({str(blob)!r}, "rb") as f:
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                total = sum(m[i] for i in range(0, len(m), 4096))  # touch every page
                time.sleep(0.5)
            """
        ),
        env,
        interval=0.01,
    )
    (root,) = mapped["processes"]
    assert root["vm_rss_kb"] >= 96 * 1024  # the mapped file is resident...
    assert 0 < root["rss_anon_kb"] < 48 * 1024  # ...but not private memory


def test_measure_follows_child_processes(memory: SimpleNamespace) -> None:
    child = "import time; b = bytearray(64 * 2**20); time.sleep(0.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    before = memory.proc.descendants(os.getpid())  # e.g. a multiprocessing resource tracker
    got = memory.proc.measure(_python(parent), {**os.environ}, interval=0.01)
    assert got["returncode"] == 0
    root = next(p for p in got["processes"] if p["parent"] == 0)
    kids = [p for p in got["processes"] if p["parent"] == root["pid"]]
    assert len(kids) == 1
    assert kids[0]["rss_anon_kb"] >= 64 * 1024 > root["rss_anon_kb"]
    assert memory.proc.descendants(os.getpid()) == before  # the run's processes are gone


def test_datasets_have_the_promised_shapes(memory: SimpleNamespace, tmp_path: Path) -> None:
    sets = memory.datasets.make_dataset("vectors", 3000, tmp_path / "v")
    noisy, clean = np.load(tmp_path / "v" / "noisy.npy"), np.load(tmp_path / "v" / "clean.npy")
    assert noisy.shape == (3000, 3072) and noisy.dtype == np.float32
    assert clean.shape == (120, 3072) and clean.dtype == np.float32
    assert np.isfinite(noisy).all() and 0.15 < float(np.std(noisy - noisy.mean(0))) < 1.5
    assert "data.sigma=0.2" in sets and f"data.noisy={tmp_path / 'v' / 'noisy.npy'}" in sets
    memory.datasets.make_dataset("images", 100, tmp_path / "i")
    images = np.load(tmp_path / "i" / "source.npy")
    assert images.shape == (100, 3, 32, 32) and images.dtype == np.uint8
    assert len(np.unique(images)) > 50  # not constant
    again = tmp_path / "i2"
    memory.datasets.make_dataset("images", 100, again)
    assert np.array_equal(np.load(again / "source.npy"), images)  # seeded
    assert memory.datasets.make_dataset("vectors", 10, tmp_path / "small")  # clean set: at least 2
    assert np.load(tmp_path / "small" / "clean.npy").shape == (2, 3072)


def test_tiny_sfbd_runs_end_to_end(tmp_path: Path) -> None:
    """Two vectors runs (N = 500 and 600, one process) through the script's command line."""
    results = tmp_path / "out" / "MEMORY.md"
    json_out = tmp_path / "memory.json"
    cmd = [sys.executable, str(BENCH / "memory.py"), "--sizes", "500,600", "--kinds", "vectors"]
    cmd += ["--procs", "1", "--cache", "cold", "--work", str(tmp_path / "work"), "--no-check"]
    cmd += ["--write", "--results", str(results), "--json-out", str(json_out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(json_out.read_text()) == record
    assert [(r["kind"], r["procs"], r["n"]) for r in record["rows"]] == [
        ("vectors", 1, 500),
        ("vectors", 1, 600),
    ]
    for row in record["rows"]:
        assert row["returncode"] == 0 and row["workers_seen"] == 1
        assert 0 < row["rss_anon_mib"] < row["vm_rss_mib"]
        assert row["data_bytes"] == row["n"] * 3072 * 4
    (check,) = record["growth"]
    a, b = record["rows"]
    want = (b["rss_anon_mib"] - a["rss_anon_mib"]) * MIB / (b["data_bytes"] - a["data_bytes"])
    assert check["growth"] == pytest.approx(want)
    assert record["cache"] == "cold" and record["machine"]["cores"] >= 1
    assert "| vectors | 1 | 500 |" in results.read_text()
    assert (results.parent / "memory.png").stat().st_size > 0
    assert not (tmp_path / "work" / "runs" / "vectors-500-p1").exists()  # run dirs removed
