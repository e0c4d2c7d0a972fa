"""Where a run stands: ``sfbd status --run DIR``.

Reads only the small files of a run directory (``config.yaml``, ``metrics.json``,
``log.jsonl``, the step checkpoint's JSON, the index arrays of E_k's shards), never the data or
the weights, so it answers in a moment while the run goes on, also from another machine that
sees the directory. For each planned stage it says whether it is done (with its metrics and
time), being evaluated, trained (steps so far and the last step checkpoint), denoised (samples
written so far) or pending, and it estimates the time left from the current training rate and
the finished stages. ``--verify`` also checks the finished stages' files against the manifest's
SHA-256 checksums.
"""

from __future__ import annotations

import json
import math
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from sfbd.config import load_config
from sfbd.errors import SfbdError
from sfbd.io.manifest import Manifest
from sfbd.nets import describe_config as describe_network
from sfbd.noise import describe_config
from sfbd.run.directory import denoised_dir, stage_stem, step_stem
from sfbd.run.runner import plan
from sfbd.run.scores import best_stage

__all__ = ["format_status", "run_status"]

_RATE_RECORDS = 20  # training-rate estimate: the last this many loss records of the stage


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _log_records(path: Path) -> list[dict]:
    """log.jsonl's records; a line being written (or cut by a crash) is skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _shard_counts(folder: Path) -> tuple[int, int]:
    """(shards, samples) of E_k written so far; unreadable (partial) shards are not counted."""
    shards = samples = 0
    for path in sorted(folder.glob("shard-*.npz")):
        try:
            with np.load(path) as f:
                samples += len(f["index"])
            shards += 1
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            continue
    return shards, samples


def _rate(losses: list[tuple[float, int]], since: float = -math.inf) -> float | None:
    """Steps per second from (time, global step) loss records of one stage: those of the
    latest process (written at or after ``since``, its start), over the last stretch in which
    the step only grew, so that the pause before a resume does not count."""
    tail: list[tuple[float, int]] = []
    for rec in losses:
        if rec[0] < since:
            continue
        if tail and rec[1] <= tail[-1][1]:
            tail = []
        tail.append(rec)
    tail = tail[-_RATE_RECORDS:]
    if len(tail) < 2 or tail[-1][0] <= tail[0][0]:
        return None
    return (tail[-1][1] - tail[0][1]) / (tail[-1][0] - tail[0][0])


def _eta(
    rows: list[dict[str, Any]], current: float, rate: float | None
) -> tuple[float | None, bool]:
    """(seconds left, whether that is only a lower bound).

    The current stage counts with its remaining training at the current rate; each pending stage
    with the mean time of the finished stages of its kind, else with its training alone at the
    current rate (a lower bound: denoising and evaluation are not timed yet). None when a pending
    stage has neither to go by."""
    took: dict[str, list[float]] = {}
    for r in rows:
        if r["state"] == "done" and r.get("seconds") is not None:
            took.setdefault(r["name"], []).append(float(r["seconds"]))
    total, lower = current, not rate  # without a rate the current stage's rest is not counted
    for r in rows:
        if r["state"] != "pending":
            continue
        if r["name"] in took:
            total += sum(took[r["name"]]) / len(took[r["name"]])
        elif rate:
            total, lower = total + r["steps"] / rate, True
        else:
            return None, True
    if not (rate or took):
        return None, True
    return total, lower


def _last_write(out: Path) -> float | None:
    """When the run last wrote its log, metrics, step checkpoint or a shard (None: never)."""
    written = [
        p.stat().st_mtime
        for p in (
            out / "log.jsonl",
            out / "metrics.json",
            step_stem(out).with_suffix(".json"),
            *out.glob("denoised/E_*/shard-*.npz"),
        )
        if p.is_file()
    ]
    return max(written) if written else None


def run_status(run_dir: str | Path, *, verify: bool = False) -> dict[str, Any]:
    """The state of the run in ``run_dir`` as a JSON-ready dict.

    Keys: ``run``, ``method``, ``noise`` and ``network`` (each described by its plug-in),
    ``finished``, ``best_stage`` (the finished stage with the lowest ``val_noisy``, or None),
    ``stages`` (one dict per planned stage with
    ``iteration``, ``name``, ``steps``, ``state`` in done | evaluating | training | denoising |
    next (nothing of it written yet) | pending, and as known ``seconds``, ``metrics``,
    ``trained_steps``, ``checkpoint_step``, ``denoised``/``shards``/``noisy``),
    ``steps_per_second`` (current training rate), ``eta_seconds`` (None when nothing to base it
    on) and ``eta_is_lower_bound``, ``last_write_seconds_ago``, and with ``verify``
    ``problems`` (files of finished stages that fail the manifest check; empty when all match).

    Raises:
        SfbdError: ``run_dir`` is not a run directory (no readable config.yaml).
    """
    out = Path(run_dir)
    if not (out / "config.yaml").is_file():
        raise SfbdError(
            f"{str(out)!r} is not an sfbd run directory (no config.yaml); give the --out of "
            "an `sfbd run`"
        )
    cfg = load_config(out / "config.yaml")
    stages = plan(cfg)
    metrics = _json(out / "metrics.json")
    done = metrics.get("stages", []) if isinstance(metrics, dict) else []
    records = _log_records(out / "log.jsonl")
    starts = [r for r in records if r.get("event") == "start"]
    noisy = starts[-1].get("noisy") if starts else None
    shape = tuple(starts[-1]["shape"]) if starts and "shape" in starts[-1] else None
    started = float(starts[-1].get("time", -math.inf)) if starts else -math.inf
    step_meta = (_json(step_stem(out).with_suffix(".json")) or {}).get("meta", {})
    losses = [
        (float(r["time"]), int(r["step"]))
        for r in records
        if r.get("tag") == "train/loss" and "time" in r and "step" in r
    ]

    rows: list[dict[str, Any]] = []
    start = 0  # global step at which the stage's training starts
    rate = None
    remaining = 0.0
    for stage in stages:
        k = stage.iteration
        row: dict[str, Any] = {"iteration": k, "name": stage.name, "steps": stage.steps}
        if k < len(done):
            entry = done[k]
            row.update(state="done", seconds=entry.get("seconds"), metrics=entry.get("metrics"))
        elif k > len(done):
            row["state"] = "pending"
        else:  # the first unfinished stage: where the run is now
            mine = [(t, s) for t, s in losses if start < s <= start + stage.steps]
            logged = mine[-1][1] - start if mine else 0
            saved = None
            if step_meta.get("iteration") == k:
                saved = int(step_meta.get("progress", {}).get("done", 0))
            trained = max(logged, saved or 0)
            folder = denoised_dir(out, k)
            if stage_stem(out, k).with_suffix(".json").is_file():
                row["state"] = "evaluating"  # trained; sampling and metrics under way
            elif trained > 0:
                row.update(state="training", trained_steps=trained, checkpoint_step=saved)
                rate = _rate(mine, started)
                if rate:
                    remaining += (stage.steps - trained) / rate
            elif stage.denoises and folder.is_dir():
                row["state"] = "denoising"
                shards, samples = _shard_counts(folder)
                row.update(denoised=samples, shards=shards, noisy=noisy)
            else:
                row["state"] = "next"  # nothing of it written yet
        rows.append(row)
        start += stage.steps

    finished = len(done) >= len(stages)
    eta, lower = (None, False) if finished else _eta(rows, remaining, rate)
    written = _last_write(out)
    status: dict[str, Any] = {
        "run": str(out),
        "method": cfg.method,
        "noise": describe_config(cfg),
        "network": describe_network(cfg, shape),
        "finished": finished,
        "best_stage": best_stage(done),
        "stages": rows,
        "steps_per_second": rate,
        "eta_seconds": eta,
        "eta_is_lower_bound": lower,
        "last_write_seconds_ago": time.time() - written if written is not None else None,
    }
    if verify:
        manifest = Manifest(out)
        finished_stages = range(min(len(done), len(stages)))
        status["problems"] = [
            f"stage {k}: {why}" for k in finished_stages for why in manifest.problems(k)
        ]
    return status


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def format_status(status: dict[str, Any]) -> str:
    """The status as a short human-readable table."""
    lines = [f"run {status['run']} (method {status['method']})"]
    if status.get("noise"):
        lines.append(f"noise: {status['noise']}")
    if status.get("network"):
        lines.append(f"network: {status['network']}")
    for r in status["stages"]:
        head = f"  stage {r['iteration']:02d} {r['name']:<10} {r['steps']:>8} steps  "
        state = r["state"]
        if state == "done":
            m = r.get("metrics") or {}
            shown = ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float)))
            secs = r.get("seconds")
            took = f" in {_duration(secs)}" if secs is not None else ""
            best = " (best: lowest val_noisy)" if r["iteration"] == status.get("best_stage") else ""
            lines.append(f"{head}done{took}{best}: {shown}")
        elif state == "training":
            ck = r.get("checkpoint_step")
            saved = f" (step checkpoint at {ck})" if ck else ""
            lines.append(f"{head}training: {r['trained_steps']}/{r['steps']}{saved}")
        elif state == "denoising":
            total = f"/{r['noisy']}" if r.get("noisy") is not None else ""
            lines.append(
                f"{head}denoising: {r['denoised']}{total} noisy samples in {r['shards']} shards"
            )
        elif state == "evaluating":
            lines.append(f"{head}trained; sampling and metrics under way")
        else:
            lines.append(f"{head}{state}")
    if status["finished"]:
        lines.append("finished")
    else:
        rate = status.get("steps_per_second")
        if rate:
            lines.append(f"training at {rate:.3g} steps/s")
        if status.get("eta_seconds") is not None:
            left = _duration(status["eta_seconds"])
            if status.get("eta_is_lower_bound"):
                lines.append(f"at least {left} left (stages not yet timed count their training)")
            else:
                lines.append(f"about {left} left (estimate from the finished stages)")
    ago = status.get("last_write_seconds_ago")
    if ago is not None:
        lines.append(f"last written {_duration(ago)} ago")
    if "problems" in status:
        problems = status["problems"]
        lines.extend(f"  PROBLEM {p}" for p in problems)
        lines.append(
            "files of finished stages match the manifest"
            if not problems
            else "rerun `sfbd run` with the same --out to redo the stages with problems"
        )
    return "\n".join(lines)
