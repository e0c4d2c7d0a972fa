"""Soak test of crash safety: kill `sfbd run` at random moments for N minutes.

Each trial starts a fresh run directory and launches `sfbd run` on a small SFBD problem again
and again, each time killing it after a random delay (SIGKILL; one in five interruptions is a
SIGTERM, which must end with exit code 75, or be counted as arriving before the interpreter ran
sfbd's first line), until one launch finishes. The finished run is then
compared with an uninterrupted reference run: checkpoints, denoised shards and saved samples
byte for byte, metrics value for value, and every denoised set must hold each noisy sample
exactly once. Expected: 0 mismatches, 0 lost or duplicated samples.

    python benchmarks/soak.py                 # the full run: ~10 minutes on 2 CPU cores
    python benchmarks/soak.py --minutes 1     # a partial run: runs/soak/SOAK.md
    python benchmarks/soak.py --minutes 1 --results /tmp/soak.md

It writes a Markdown summary: to --results if given; else the full run (10 minutes, seed 0)
writes the committed benchmarks/SOAK.md and a shorter or differently seeded one writes
runs/soak/SOAK.md (benchmarks/committed.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import committed  # noqa: E402  (benchmarks/committed.py: where results go)

from sfbd.run.denoise import read_denoised  # noqa: E402
from sfbd.runtime.interrupt import EXIT_INTERRUPTED  # noqa: E402

SETS = [
    "data.source=ring8",
    "data.num_samples=2000",
    "data.clean_fraction=0.05",
    "model.hidden=64",
    "model.layers=2",
    "train.pretrain_steps=400",
    "train.update_steps=200",
    "train.batch_size=128",
    "train.checkpoint_every=50",
    "train.log_every=50",
    "sfbd.iterations=2",
    "eval.num_samples=500",
    "sample.sampler=sde",
    "sample.steps=32",
    "sample.batch_size=128",
    "sample.shard_size=256",
    "device=cpu",
]


def launch(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("SFBD_FAULT", None)
    cmd = [sys.executable, "-m", "sfbd", "run", "--out", str(out), "--quiet"]
    for s in SETS:
        cmd += ["--set", s]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def fingerprint(run: Path) -> tuple[dict[str, bytes], list[dict]]:
    files = [*run.glob("checkpoints/stage-*.safetensors"), *run.glob("denoised/*/*.npz")]
    files += run.glob("samples/*.npy")
    stages = json.loads((run / "metrics.json").read_text())["stages"]
    metrics = [{k: v for k, v in s.items() if k != "seconds"} for s in stages]
    return {str(f.relative_to(run)): f.read_bytes() for f in sorted(files)}, metrics


def exactly_once(run: Path, n_noisy: int, iterations: int) -> tuple[int, int]:
    """(lost, duplicated) noisy-sample indices over all denoised sets of a run."""
    lost = dup = 0
    for k in range(1, iterations + 1):
        index, _ = read_denoised(run, k)
        counts = np.bincount(index, minlength=n_noisy)
        lost += int((counts == 0).sum())
        dup += int((counts > 1).sum())
    return lost, dup


# The paragraph under the table (what one trial does), as the committed file has it.
DESCRIPTION = [
    "Each trial: a fresh run directory, `sfbd run` (ring8, 2 SFBD iterations, step checkpoints",
    "every 50 steps, E_k in shards of 256) launched and killed at a random moment (SIGKILL, or",
    "SIGTERM in one case of five, which must exit 75) until a launch finishes; then checkpoints,",
    "denoised shards and saved samples are compared byte for byte, and metrics value for value,",
    "with an uninterrupted reference run, and each denoised set is checked to hold every noisy",
    "sample exactly once. `mismatches`, `lost`, `duplicated` and `bad_exit` must be 0.",
]
FULL = {"minutes": 10.0, "seed": 0}  # the settings of the committed benchmarks/SOAK.md


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=FULL["minutes"])
    ap.add_argument("--seed", type=int, default=FULL["seed"])
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help="markdown summary (default: benchmarks/SOAK.md for the full run, else "
        "runs/soak/SOAK.md)",
    )
    return ap.parse_args(argv)


def results_file(args: argparse.Namespace) -> Path:
    """--results; else the committed file for the full run, runs/soak/SOAK.md for others."""
    full = args.minutes >= FULL["minutes"] and args.seed == FULL["seed"]
    scratch = Path("runs") / "soak" / "SOAK.md"
    return committed.results_path(args.results, "benchmarks/SOAK.md", scratch, full)


def interrupted_run(
    trial_dir: Path, rng: random.Random, fastest: float, stats: dict[str, int]
) -> tuple[int, float]:
    """Launch `sfbd run` into ``trial_dir`` again and again, killing it after a random delay,
    until one launch finishes (or fails); counts into ``stats``. Returns the kills and the
    shortest uninterrupted run seen (``fastest``, or this one if it ran uninterrupted)."""
    kills = 0
    first = True
    while True:
        proc = launch(trial_dir)
        started = time.monotonic()
        stats["launches"] += 1
        delay = rng.uniform(0.2, 0.9 * fastest)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            sig = signal.SIGTERM if rng.random() < 0.2 else signal.SIGKILL
            proc.send_signal(sig)
            proc.wait()
            if proc.returncode == 0:  # it finished just before the signal arrived
                proc.stderr.close()
                break
            kills += 1
            stats["sigterm" if sig == signal.SIGTERM else "sigkill"] += 1
            if sig == signal.SIGTERM and proc.returncode == -signal.SIGTERM:
                # it landed while the interpreter was starting, before sfbd's first line
                # (which installs the handler) ran: nothing can have been written
                stats["sigterm_before_start"] += 1
                proc.stderr.close()
                continue
            first = False
            ok = {signal.SIGKILL: (-signal.SIGKILL,), signal.SIGTERM: (EXIT_INTERRUPTED,)}
            if proc.returncode not in ok[sig]:
                stats["bad_exit"] += 1
                print(f"unexpected exit {proc.returncode} after {sig.name}", flush=True)
                print(proc.stderr.read().decode()[-1500:], flush=True)
            proc.stderr.close()
            continue
        proc.stderr.close()
        if proc.returncode == 0:
            if first:
                fastest = min(fastest, time.monotonic() - started)
            break
        stats["bad_exit"] += 1
        print(f"launch failed with exit {proc.returncode}", flush=True)
        break
    return kills, fastest


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="sfbd-soak-"))
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    ref = work / "reference"
    shutil.rmtree(ref, ignore_errors=True)
    p = launch(ref)
    _, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"reference run failed:\n{err.decode()[-2000:]}")
    ref_secs = time.monotonic() - t0
    ref_files, ref_metrics = fingerprint(ref)
    n_noisy = len(read_denoised(ref, 1)[0])
    print(f"reference run: {ref_secs:.1f}s, {len(ref_files)} files compared per trial", flush=True)

    stats = {"trials": 0, "launches": 0, "sigkill": 0, "sigterm": 0, "mismatches": 0}
    stats.update({"sigterm_before_start": 0, "lost": 0, "duplicated": 0, "bad_exit": 0})
    deadline = t0 + args.minutes * 60
    trial_dir = work / "trial"
    fastest = ref_secs  # shortest uninterrupted run seen: the load on the machine varies
    while time.monotonic() < deadline:
        shutil.rmtree(trial_dir, ignore_errors=True)
        kills, fastest = interrupted_run(trial_dir, rng, fastest, stats)
        stats["trials"] += 1
        files, metrics = fingerprint(trial_dir)
        differ = [k for k in ref_files if files.get(k) != ref_files[k]]
        differ += [k for k in files if k not in ref_files]
        mismatch = bool(differ) or metrics != ref_metrics
        stats["mismatches"] += int(mismatch)
        lost, dup = exactly_once(trial_dir, n_noisy, 2)
        stats["lost"] += lost
        stats["duplicated"] += dup
        print(
            f"trial {stats['trials']}: {kills} kills, "
            f"{'MISMATCH ' + ', '.join(differ[:3]) if mismatch else 'identical'}, "
            f"lost {lost}, duplicated {dup}",
            flush=True,
        )
    stats["minutes"] = round((time.monotonic() - t0) / 60, 2)
    print(json.dumps(stats), flush=True)
    results = results_file(args)
    command = committed.command_line(__file__, sys.argv[1:] if argv is None else argv)
    lines = [
        "# Soak test of crash safety",
        "",
        f"`{command}`, "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores. Reference run "
        f"{ref_secs:.1f}s.",
        "",
        "| " + " | ".join(stats) + " |",
        "|" + "---|" * len(stats),
        "| " + " | ".join(str(v) for v in stats.values()) + " |",
        "",
        *DESCRIPTION,
        "",
    ]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines))
    print(f"wrote {results}", flush=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if stats["mismatches"] or stats["lost"] or stats["duplicated"] else 0)


if __name__ == "__main__":
    main()
