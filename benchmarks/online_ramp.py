"""How Online SFBD's ramp length (`online.ramp`, ours: the paper gives no length) was chosen.

Runs `method=online-sfbd` with ramp 0 (no ramp), 0.25, 0.5 and 1 on the quality benchmark's
settings (benchmarks/quality.py, full suite): ring8, checkerboard and swissroll at 3 seeds,
digits at 2, and the analytic Gaussian model at 3 (exact W2 to the truth). Runs are shared with
the quality benchmark's run directory, so its ramp-0.25 runs are reused.

Usage:
    python benchmarks/online_ramp.py [--out runs/quality] [--results FILE]

Prints one table and writes it as Markdown with the machine, the date and the command, to
--results if given, else to the committed benchmarks/ONLINE_RAMP.md: the script has no quick
or partial mode, every run is the full sweep (benchmarks/committed.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import committed
import gaussian_steps as gs
import torch
from suite.data import dataset_base, make_data
from suite.runner import Runner, final
from suite.settings import SUITES
from suite.tables import fmt, table

RAMPS = ("0", "0.25", "0.5", "1")
SETS = {"ring8": 3, "checkerboard": 3, "swissroll": 3, "digits": 2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/quality")
    ap.add_argument("--results", default=None, help="default: benchmarks/ONLINE_RAMP.md")
    return ap.parse_args(argv)


def results_file(args: argparse.Namespace) -> Path:
    """--results, else the committed file (every run of this script is the full sweep)."""
    scratch = Path(args.out) / "ONLINE_RAMP.md"
    return committed.results_path(args.results, "benchmarks/ONLINE_RAMP.md", scratch, True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    suite = SUITES["full"]
    out = Path(args.out) / "full"
    runner = Runner(out, suite.common)
    files = make_data(out)
    t0 = time.perf_counter()
    rows = []
    for ds, seeds in SETS.items():
        base = dataset_base(suite, ds, files)
        for ramp in RAMPS:
            runs = []
            for seed in range(seeds):
                ov = {**base, "method": "online-sfbd", "online.ramp": ramp}
                ov |= {"seed": str(seed), "data.noise_seed": str(seed)}
                runs.append(runner(f"{ds}-ramp{ramp}-s{seed}", ov)[0])
            k1 = [r[1]["metrics"]["swd"] for r in runs]
            rows.append([ds, ramp, fmt(k1), fmt([final(r) for r in runs]), str(seeds)])
    for ramp in RAMPS:
        w2 = []
        for seed in range(suite.gauss_seeds):
            ov = {**gs.SETTINGS, "data.source": str(files.gauss), "method": "online-sfbd"}
            ov |= {"online.ramp": ramp, "seed": str(seed), "data.noise_seed": str(seed)}
            stages, path = runner(f"gauss-ramp{ramp}-s{seed}", ov)
            stems = [runner.runs[path].checkpoint_stem(s["iteration"]) for s in stages]
            w2.append([gs.errors(*gs.fitted_moments(st))["w2"] for st in stems])
        rows.append(
            [
                "gaussian (W2)",
                ramp,
                fmt([w[1] for w in w2]),
                fmt([w[-1] for w in w2]),
                str(suite.gauss_seeds),
            ]
        )
    header = ["dataset", "online.ramp", "swd after stage 1", "final swd", "seeds"]
    tab = table(header, rows)
    print(tab)
    wall = time.perf_counter() - t0
    command = committed.command_line(__file__, sys.argv[1:] if argv is None else argv)
    md = [
        "# Online SFBD: the ramp length",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"torch {torch.__version__}, device cpu",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{command}`; wall time {wall:.0f} s ({len(runner.ran)} runs trained, "
        f"{runner.reused} reused)",
        "- settings: the quality benchmark's full suite (benchmarks/RESULTS.md); the other "
        "Online SFBD settings at their defaults; mean ± std over seeds (seed = noise seed). "
        "The Gaussian rows give W2 of the fitted Gaussian to the truth instead of swd.",
        "",
        tab,
        "",
    ]
    results = results_file(args)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(md))
    print(f"wrote {results}; {wall:.0f} s")


if __name__ == "__main__":
    main()
