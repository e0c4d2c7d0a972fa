"""Noise models on data with known truth: each model against the naive white-noise guess.

Section 7 of benchmarks/quality.py, also runnable alone; its code is in benchmarks/suite/noise/
(one module per subsection). For each noise model a benchmark problem is corrupted with it;
SFBD then runs

* with the right noise model (the new ``data.*`` keys), and
* as a user who pretends the noise is white would run it, in user mode on the very same noisy
  file: one level equal to the mean level (per-sample levels), or the same overall standard
  deviation (coloured and photon noise);

next to clean-only (the clean subset alone) and the oracle (every clean original), which do
not depend on the noise. "Gap closed" = (swd clean-only - swd) / (swd clean-only - swd oracle)
from the seed means: 1 = as good as the oracle, 0 = no better than clean-only.

a. ``per-sample``: per-sample levels on ring8, log-uniform on ``SIGMA_RANGE``.
b. ``coloured``: coloured noise on ring8 with the covariance ``NOISE_COV`` (anisotropic,
   correlated): whitening and top-up.
c. ``photon``: photon noise on ring8 scaled into [-1, 1] (intensities (x + 1)/2 in
   [0.05, 0.95]), at several photon counts at full scale (1 / data.gain), read noise
   ``READ_NOISE``: the Anscombe route's swd and the naive guess's, and the transform's own
   error on the noisy data (bias and std of f(y) - f(u) against the unit it should be).
d. ``noise-gaussian``: exact fits with the analytic Gaussian model (``model.kind=gaussian``) on
   Gaussian data: the 2-Wasserstein distance of the final fit to the truth, per model, and of
   the naive guess.

Usage:
    python benchmarks/noise_models.py [--quick] [--out runs/noise_models] [--results FILE]
        [--only NAME[,NAME...]]

--only runs the named subsections (the names above, or 7a-7d) alone. Alone it writes
benchmarks/NOISE_MODELS.md for the full suite (else OUT/quick/NOISE_MODELS.md, or
OUT/full/NOISE_MODELS.md with --only; see benchmarks/committed.py). Finished runs are reused,
as in quality.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import committed
import torch
from suite.noise.common import SUMMARY
from suite.noise.photon import photon_figure
from suite.noise.section import PARTS, run_section
from suite.runner import Runner
from suite.settings import SUITES

ALIASES = {"7a": "per-sample", "7b": "coloured", "7c": "photon", "7d": "noise-gaussian"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke-test suite")
    ap.add_argument("--out", default="runs/noise_models", help="root of the run directories")
    ap.add_argument("--results", default=None, help="Markdown results file")
    ap.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME[,NAME...]",
        help="run only these subsections: " + ", ".join([*PARTS, *ALIASES]),
    )
    args = ap.parse_args(argv)
    args.parts = tuple(PARTS)
    if args.only is not None:
        words = {w.strip() for arg in args.only for w in arg.split(",")}
        unknown = sorted(w for w in words if w not in PARTS and w not in ALIASES)
        if unknown or not words:
            ap.error(f"unknown subsection(s) {unknown} (known: {', '.join([*PARTS, *ALIASES])})")
        args.parts = tuple(p for p in PARTS if p in {ALIASES.get(w, w) for w in words})
    return args


def results_file(args: argparse.Namespace) -> Path:
    """--results; else benchmarks/NOISE_MODELS.md for the full suite, OUT/quick|full/... not."""
    out = Path(args.out) / ("quick" if args.quick else "full")
    full = not args.quick and args.only is None
    return committed.results_path(
        args.results, "benchmarks/NOISE_MODELS.md", out / "NOISE_MODELS.md", full
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    suite = SUITES["quick" if args.quick else "full"]
    out = Path(args.out) / ("quick" if args.quick else "full")
    results = results_file(args)
    runner = Runner(out, suite.common)
    t0 = time.perf_counter()
    md, data = run_section(
        runner,
        suite.vector,
        suite.noise_seeds,
        suite.photons,
        out,
        suite.noise_gauss_samples,
        args.parts,
    )
    wall = time.perf_counter() - t0
    (out / "noise_models.json").write_text(json.dumps(data, indent=1, default=float))
    head = [
        "# Noise models on data with known truth (benchmarks/noise_models.py)",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"torch {torch.__version__}, device cpu",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{committed.command_line(__file__, sys.argv[1:] if argv is None else argv)}`",
        f"- wall time: {wall:.0f} s ({len(runner.ran)} runs trained, {runner.reused} reused)",
        "- vector settings: " + ", ".join(f"{k}={v}" for k, v in suite.vector.items()),
        "",
        SUMMARY,
        "",
    ]
    results.parent.mkdir(parents=True, exist_ok=True)
    if "photon" in data:
        figure = results.parent / "noise-models-photon.png"
        photon_figure(figure, data["photon"])
        md += f"\n![photon noise: swd vs photons at full scale]({figure.name})\n"
    results.write_text("\n".join(head) + "\n" + md)
    print(md)
    print(f"wrote {results}; {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
