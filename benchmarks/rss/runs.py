"""One measured `sfbd run`: its command line, its environment, and its row of results."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rss.proc import measure
from rss.settings import COMMON, MIB, MODELS
from rss.verdict import data_bytes

ROOT = Path(__file__).resolve().parents[2]  # the repository: its src/ is the sfbd measured


def run_sets(kind: str, data_sets: list[str]) -> list[str]:
    """Every ``--set`` pair of one run of ``kind``."""
    return [*data_sets, *MODELS[kind], *COMMON]


def sfbd_command(procs: int, out: Path, sets: list[str]) -> list[str]:
    """``python -m sfbd run ...``, under ``torchrun --standalone`` for more than one process."""
    if procs == 1:
        launcher = [sys.executable, "-m", "sfbd"]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        launcher += [f"--nproc_per_node={procs}", "-m", "sfbd"]
    return [*launcher, "run", "--out", str(out), "--quiet", "--set", *sets]


def run_env(cache: Path) -> dict[str, str]:
    """The environment of a run: this checkout's sfbd, one thread, the work folder's cache."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SFBD_CACHE": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.pop("SFBD_FAULT", None)
    return env


class RunFailed(RuntimeError):
    """A run exited with a non-zero status (or ran past --timeout)."""


def measure_run(
    kind: str,
    n: int,
    procs: int,
    sets: list[str],
    out: Path,
    cache: Path,
    *,
    timeout: float | None = None,
    keep: bool = False,
) -> dict:
    """One measured run: its row (peaks in MiB over the workers, seconds, exit code, each
    process's peaks). Raises RunFailed with the stderr tail if it fails."""
    shutil.rmtree(out, ignore_errors=True)
    result = measure(sfbd_command(procs, out, sets), run_env(cache), timeout=timeout)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    what = f"{kind}, N={n}, {procs} process{'es' if procs > 1 else ''}"
    if result["timed_out"]:
        raise RunFailed(f"{what}: killed after --timeout {timeout:g} s\n{result['stderr_tail']}")
    if result["returncode"] != 0:
        raise RunFailed(f"{what}: exit {result['returncode']}\n{result['stderr_tail']}")
    procs_seen = result["processes"]
    root = next((p for p in procs_seen if p["parent"] == 0), None)
    if procs == 1:
        workers = [root] if root else []
    else:
        workers = [p for p in procs_seen if root and p["parent"] == root["pid"]]
    if not workers:
        raise RunFailed(f"{what}: no worker process was seen alive (it ended within a poll?)")
    best = max(workers, key=lambda p: p["rss_anon_kb"])
    return {
        "kind": kind,
        "procs": procs,
        "n": n,
        "data_bytes": data_bytes(n),
        "data_mib": data_bytes(n) / MIB,
        "rss_anon_mib": best["rss_anon_kb"] / 1024,
        "vm_rss_mib": best["vm_rss_kb"] / 1024,
        "seconds": result["seconds"],
        "returncode": result["returncode"],
        "workers_seen": len(workers),
        "workers": [
            {
                "pid": p["pid"],
                "rss_anon_mib": p["rss_anon_kb"] / 1024,
                "vm_rss_mib": p["vm_rss_kb"] / 1024,
            }
            for p in workers
        ],
        "launcher_rss_anon_mib": root["rss_anon_kb"] / 1024 if root and procs > 1 else None,
    }
