"""``Runner``: runs (or reuses) the benchmark's seeded `sfbd run`s, one directory each."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from sfbd.config import dump_yaml, load_config
from sfbd.run.runner import Run


class Runner:
    """Runs (or reuses) benchmark-mode runs; one directory per distinct configuration."""

    def __init__(self, out: Path, common: dict[str, str]) -> None:
        self.out = out
        self.common = common
        self.ran: list[tuple[str, float]] = []  # (label, wall seconds) of runs trained now
        self.reused = 0
        self.runs: dict[Path, Run] = {}  # run directory -> its Run (checkpoint paths)

    def __call__(self, label: str, overrides: dict[str, str]) -> tuple[list[dict], Path]:
        """The run's metrics.json stages and its directory.

        The directory is named by a hash of the resolved configuration and of the content of
        the data files it names, so two sections that ask for the same run (e.g. the defaults
        written out explicitly) share it, and a data file the suite now makes differently
        is not mistaken for the old one.
        """
        merged = {**self.common, **overrides}
        cfg = load_config(overrides=[f"{k}={v}" for k, v in merged.items()])
        h = hashlib.sha1(dump_yaml(cfg).encode())
        d = cfg.data
        named = (d.source, d.pretrain, d.noisy, d.clean, d.noise_cov, cfg.eval.reference)
        for path in (*named, d.sigma if isinstance(d.sigma, str) else None):
            if path is not None and Path(path).is_file():
                h.update(hashlib.sha1(Path(path).read_bytes()).digest())
        digest = h.hexdigest()[:10]
        source = Path(str(cfg.data.source)).stem
        out = self.out / "runs" / f"{source}-{cfg.method}-s{cfg.seed}-{digest}"
        run = Run(cfg, out, progress=False)
        self.runs[out] = run
        finished = len(run.metrics()) >= len(run.stages)
        t0 = time.perf_counter()
        stages = run.execute()
        wall = time.perf_counter() - t0
        if finished:
            self.reused += 1
        else:
            self.ran.append((label, wall))
            final = stages[-1]["metrics"]
            print(f"  ran {label}: {wall:.1f}s, final swd {final['swd']:.4f}", flush=True)
        return stages, out


def final(stages: list[dict], key: str = "swd") -> float:
    """A metric of a run's last stage (nan when it has none)."""
    return float(stages[-1]["metrics"].get(key, float("nan")))
