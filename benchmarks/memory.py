"""Peak private host memory (RssAnon) of `sfbd run` against the dataset size N.

The claim it checks: host memory stays flat as the dataset grows. For each dataset kind, size N
and number of processes it runs the real command line on a synthetic, seeded set of CIFAR-sized
samples (D = 3 x 32 x 32 = 3072) made in a work folder, and polls, every 20 ms while the run is
alive, the RssAnon of each of its processes from /proc/PID/status: anonymous (private) pages
only, not the file-backed or memory-mapped pages a run may read its data through. Kinds:

* ``vectors`` (user mode): ``data.noisy`` a float32 .npy of shape (N, 3072) (smooth clean
  vectors + 0.2 x Gaussian noise), ``data.clean`` a float32 .npy of max(2, N // 25) clean
  vectors, ``data.sigma=0.2``; a small MLP;
* ``images`` (benchmark mode): ``data.source`` a uint8 .npy of shape (N, 3, 32, 32) (smooth
  random colour blobs), ``data.sigma=0.2``, 2% clean, 10% held out; a small U-Net.

Each run is tiny (SFBD, one iteration, 20 + 20 training steps, the sde sampler on a 4-step
schedule: 2 network evaluations per denoised sample, 256 evaluation samples, device cpu), so
what grows with N is what a run holds of its data. One process runs ``python -m sfbd run ...``,
whose own RssAnon is measured; two or more run it under ``torchrun --standalone
--nproc_per_node=P``, and the peak of each worker process (each child of the launcher) is
measured. A run's row reports the largest peak over its workers. Every run has
``OMP_NUM_THREADS=1`` and ``SFBD_CACHE=WORK/cache``; by default (``--cache warm``) one untimed,
unmeasured warm-up run per dataset fills that cache first, so the measured runs read the caches
and do not build them (``--cache cold``: each measured run starts from an empty cache).

The verdict, per (kind, processes), is the growth from the smallest to the largest N,
``(RssAnon(N_max) - RssAnon(N_min)) / (data_bytes(N_max) - data_bytes(N_min))`` with
data_bytes = N x 3072 x 4 (the noisy set as float32): PASS below 15%. The exit status is 1 if
any verdict is FAIL (unless --no-check), 2 if a run fails. Linux only (it reads /proc).

Usage:
    python benchmarks/memory.py                        # N 4,000 to 100,000; 1 and 2 processes
    python benchmarks/memory.py --quick                # N 1,000 and 4,000
    ... [--sizes 4000,16000] [--kinds vectors,images] [--procs 1,2] [--work DIR] [--keep]
        [--cache warm|cold] [--timeout S] [--no-check] [--json-out FILE]
        [--write [--results FILE]]

Prints a table, the growth lines and, last, one JSON line with everything. ``--write`` writes a
Markdown results file and its plot (peak RssAnon vs N, log x, with the data bytes for scale)
beside it: the full run (default sizes, kinds, processes and cache) writes the committed
benchmarks/MEMORY.md and benchmarks/memory.png; any other run writes runs/memory/MEMORY.md and
runs/memory/memory.png, unless --results names the file (benchmarks/committed.py).

The parts are in benchmarks/rss/: the /proc polling, the datasets, the runs, the verdict and
the report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import committed  # noqa: E402  (benchmarks/committed.py: where results go)
from rss.datasets import make_dataset  # noqa: E402  (benchmarks/rss/: the parts)
from rss.proc import require_linux  # noqa: E402
from rss.report import growth_lines, machine, markdown, plot, table  # noqa: E402
from rss.runs import RunFailed, measure_run, run_sets  # noqa: E402
from rss.settings import COMMON, KINDS, LIMIT, MODELS, PROCS, QUICK_SIZES, SIZES  # noqa: E402
from rss.verdict import verdicts  # noqa: E402


def _ints(text: str) -> list[int]:
    return [int(float(t)) for t in text.split(",") if t]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=_ints, help=f"N values (default {','.join(map(str, SIZES))})")
    ap.add_argument("--kinds", default=",".join(KINDS), help="vectors,images (default both)")
    ap.add_argument("--procs", type=_ints, default=list(PROCS), help="processes (default 1,2)")
    ap.add_argument("--work", help="work folder, kept (default: a temporary one, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep each run's directory under WORK")
    ap.add_argument(
        "--cache",
        choices=("warm", "cold"),
        default="warm",
        help="warm: one untimed warm-up run per dataset builds the caches before the measured "
        "runs (default); cold: each measured run starts from an empty cache",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    ap.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} (a smoke run)")
    ap.add_argument("--no-check", action="store_true", help="exit 0 even if a growth is FAIL")
    ap.add_argument("--json-out", help="also write the JSON line to this file")
    ap.add_argument("--write", action="store_true", help="write the Markdown results and plot")
    ap.add_argument("--results", help="Markdown results file (with --write; plot beside it)")
    args = ap.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(QUICK_SIZES if args.quick else SIZES)
    args.kinds = [k for k in args.kinds.split(",") if k]
    for kind in args.kinds:
        if kind not in KINDS:
            ap.error(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    if not args.sizes or min(args.sizes) < 100 or not args.procs or min(args.procs) < 1:
        ap.error("--sizes must be >= 100 and --procs >= 1")
    return args


def is_full(args: argparse.Namespace) -> bool:
    """Whether this is the run the committed benchmarks/MEMORY.md records."""
    default = (list(SIZES), list(KINDS), list(PROCS), "warm")
    return not args.quick and (args.sizes, args.kinds, args.procs, args.cache) == default


def run_all(args: argparse.Namespace, work: Path) -> list[dict]:
    """Every measured run, with one warm-up per dataset first under --cache warm."""
    rows = []
    for kind in args.kinds:
        for n in sorted(args.sizes):
            sets = run_sets(kind, make_dataset(kind, n, work / "data" / f"{kind}-{n}"))
            cache = work / "cache"
            if args.cache == "warm":
                print(f"{kind} N={n}: warm-up run (not measured)", flush=True)
                measure_run(
                    kind, n, 1, sets, work / "runs" / "warm-up", cache, timeout=args.timeout
                )
            for procs in args.procs:
                if args.cache == "cold":
                    cache = work / "cache" / f"{kind}-{n}-p{procs}"
                    shutil.rmtree(cache, ignore_errors=True)
                out = work / "runs" / f"{kind}-{n}-p{procs}"
                row = measure_run(
                    kind, n, procs, sets, out, cache, timeout=args.timeout, keep=args.keep
                )
                rows.append(row)
                print(
                    f"{kind} N={n} procs={procs}: peak RssAnon {row['rss_anon_mib']:,.1f} MiB, "
                    f"{row['seconds']:.1f} s",
                    flush=True,
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0, 1 for a FAIL, 2 for a failed run)."""
    require_linux()
    args = parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sfbd-memory-"))
    try:
        rows = run_all(args, work)
    except RunFailed as exc:
        print(f"memory.py: error: sfbd run failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    checks = verdicts(rows)
    cache_note = (
        "warm: one untimed warm-up run per dataset built the caches; the measured runs read them"
        if args.cache == "warm"
        else "cold: each measured run started from an empty cache (it builds the caches)"
    )
    record = {
        "benchmark": "memory",
        "date": datetime.date.today().isoformat(),
        "command": committed.command_line(__file__, sys.argv[1:] if argv is None else argv),
        "cache": args.cache,
        "cache_note": cache_note,
        "kinds": args.kinds,
        "sizes": sorted(args.sizes),
        "procs": args.procs,
        "limit": LIMIT,
        "rows": rows,
        "growth": checks,
        "pass": all(c["pass"] for c in checks),
        "machine": machine(),
        "settings": {kind: MODELS[kind] + COMMON for kind in args.kinds},
    }
    print(f"\ncache: {cache_note}")
    print("\n".join(table(rows)))
    for line in growth_lines(checks):
        print(line)
    if args.write:
        scratch = ROOT / "runs" / "memory" / "MEMORY.md"
        path = committed.results_path(args.results, "benchmarks/MEMORY.md", scratch, is_full(args))
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_path = path.with_name("memory.png")
        plot(rows, plot_path)
        path.write_text(markdown(record, plot_path.name))
        print(f"wrote {path} and {plot_path}")
    line = json.dumps(record)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    print(line)
    return 1 if checks and not record["pass"] and not args.no_check else 0


if __name__ == "__main__":
    sys.exit(main())
