"""Sample quality of SFBD against its baselines on data with known truth, with fixed seeds.

Eight sections, every run a `Run` of the library's own pipeline; each is one module of
benchmarks/suite/ and has its own ``--only`` name (its number works too):

1. ``methods``: the methods side by side (oracle, clean-only, noisy-only, SFBD and Online SFBD
   per iteration k = 0..K, at the same training steps) on ring8, checkerboard, swissroll, an
   8-D Gaussian mixture (made here) and 8x8 digits; the mean +- std of swd / mmd /
   denoise_psnr over seeds, the network evaluations each spent on denoising, and the fraction
   of the clean-only -> oracle swd gap that SFBD closes.
2. ``samplers``: backward sampler and its steps on ring8: heun at several `sample.steps` and
   sde; final metrics and wall time.
3. ``fractions`` (or ``clean-fraction``): clean-fraction sweep on ring8: SFBD vs clean-only.
4. ``sigmas`` (or ``noise-level``): noise-level (tau) sweep on ring8: noisy-only (no clean
   data) vs SFBD at 2% clean.
5. ``gaussian``: exact distance to the truth per iteration with the analytic Gaussian model
   (`model.kind=gaussian`) on Gaussian data: mean error, relative covariance error and the
   closed-form 2-Wasserstein distance of the fitted Gaussian to the true one (the problem and
   the distances come from benchmarks/gaussian_steps.py).
6. ``pretrain``: pretraining on a *similar* dataset (`data.pretrain`, no clean samples) instead
   of a clean subset: SFBD with each, pretrain-only and noisy-only, per iteration, on ring8
   (pretrained on 6 of its 8 modes) and digits (pretrained on other images of only the digits
   0-4).
7. ``noise-models`` (or ``noise``; also benchmarks/noise_models.py alone): per-sample levels
   (``per-sample``, 7a), coloured noise, whitening and top-up (``coloured``, 7b), and photon
   noise (``photon``, 7c) against the naive white-noise guess a user would make, on data with
   known truth, and exact fits with the analytic Gaussian model (``noise-gaussian``, 7d).
8. ``validation`` (or ``ambient``): knowing whether it helped without clean held-out data:
   the ambient method and SFBD pretrained on the ambient mixture beside section 1's methods,
   swd / val_noisy / val_clean / copy_rate / nn_ratio per stage, and whether val_noisy ranks
   (method, stage) pairs as swd and val_clean do.
9. ``linear`` (or ``masks``, ``blur``): masked digits (50% kept) and blurred photo patches
   (std 1 px), both with sigma 0.05: SFBD and Online SFBD through MMPS posterior sampling
   against the naive white-noise guess, noisy-only, clean-only and the oracle, with the RMSE
   of E_K against the truth.

Usage:
    python benchmarks/quality.py [--quick] [--out runs/quality] [--results FILE] [--seeds N]
        [--only NAME[,NAME...]]

Prints the tables and writes them as Markdown, with the machine, the date and the command
line; its figures (quality-*.png) go next to it and every run directory under --out. Where:
--results if given; else the full suite at its default seeds writes the committed
benchmarks/RESULTS.md, and --quick, --seeds N or --only writes OUT/quick/RESULTS.md
(OUT/full/... for the full suite), so a smoke or partial run never overwrites the committed
numbers (benchmarks/committed.py). --only runs the named sections (and subsections of 7) alone;
sections 2 and 6 then quote section 1's seed spread only if section 1 ran too.
Rerunning reuses finished runs (a run directory is named by a hash of its settings and of its
data files, and `Run.execute()` returns a finished run's metrics at once), so a section run
alone reuses the runs of a whole suite and the other way round. On 2 CPU cores
(2026-12-01, 0.6.0): the full suite 2,355 s (142 runs trained, 18 reused), of which section 1
took 1,499 s and section 7 418 s; --quick took 102 s before section 7 was added.
Digits use a fixed random 2/3 of scikit-learn's 1,797 images (the other third is where the
similar pretraining set of section 6 comes from, so it shares no image with the problem) and,
to fit three seeds, 200 + 3 x 70 training steps and 32 sampler steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import committed  # benchmarks/committed.py: where results go, the command they record
import torch
from suite import fractions, gaussian, linear, methods, pretrain, samplers, sigmas, validation
from suite.data import make_data
from suite.noise import section as noise
from suite.plots import sweeps_figure
from suite.runner import Runner
from suite.section import Context, Output
from suite.settings import SUITES, Suite


@dataclass(frozen=True)
class Section:
    """One section of the suite: its --only name and aliases, and how it runs."""

    name: str
    aliases: tuple[str, ...]
    seconds: str  # its key in summary.json's section_seconds
    run: Callable[[Context], Output]
    parts: dict[str, tuple[str, ...]] | None = None  # subsection --only names -> aliases


SECTIONS = (
    Section("methods", ("1",), "1 methods", methods.run),
    Section("samplers", ("2",), "2 samplers", samplers.run),
    Section("fractions", ("3", "clean-fraction"), "3 clean fraction", fractions.run),
    Section("sigmas", ("4", "noise-level"), "4 noise level", sigmas.run),
    Section("gaussian", ("5",), "5 gaussian", gaussian.run),
    Section("pretrain", ("6",), "6 pretrain", pretrain.run),
    Section(
        "noise-models",
        ("7", "noise"),
        "7 noise models",
        noise.run,
        {"per-sample": ("7a",), "coloured": ("7b",), "photon": ("7c",), "noise-gaussian": ("7d",)},
    ),
    Section("validation", ("8", "ambient"), "8 validation", validation.run),
    Section("linear", ("9", "masks", "blur"), "9 masked and blurred", linear.run),
)


def only_names() -> dict[str, tuple[str, ...]]:
    """Every --only name and alias -> the names it selects (a section and its subsections, or
    a subsection and its section)."""
    names: dict[str, tuple[str, ...]] = {}
    for s in SECTIONS:
        parts = tuple(s.parts or ())
        for alias in (s.name, *s.aliases):
            names[alias] = (s.name, *parts)
        for part, aliases in (s.parts or {}).items():
            for alias in (part, *aliases):
                names[alias] = (s.name, part)
    return names


def selection(only: Sequence[str] | None) -> frozenset[str]:
    """The section and subsection names that --only selects (all of them without it).

    Raises:
        ValueError: a name that is no section's.
    """
    names = only_names()
    if only is None:
        return frozenset(n for chosen in names.values() for n in chosen)
    chosen: set[str] = set()
    for word in (w.strip() for arg in only for w in arg.split(",")):
        if word not in names:
            raise ValueError(f"unknown section {word!r} (known: {', '.join(names)})")
        chosen.update(names[word])
    if not chosen:
        raise ValueError("--only names no section")
    return frozenset(chosen)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke-test suite (~3 min)")
    ap.add_argument("--out", default="runs/quality", help="root of the run directories")
    ap.add_argument(
        "--results",
        default=None,
        help="Markdown results file (default: benchmarks/RESULTS.md for the full suite, "
        "else OUT/quick|full/RESULTS.md)",
    )
    ap.add_argument("--seeds", type=int, default=None, help="seeds for section 1 (default: 3)")
    ap.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME[,NAME...]",
        help="run only these sections: " + ", ".join(only_names()),
    )
    args = ap.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        ap.error("--seeds must be >= 1")
    try:
        args.selected = selection(args.only)
    except ValueError as exc:
        ap.error(str(exc))
    return args


def results_file(args: argparse.Namespace) -> Path:
    """--results if given; else benchmarks/RESULTS.md for the full suite at its default seeds,
    and OUT/quick/RESULTS.md (--quick) or OUT/full/RESULTS.md (--seeds N, --only) for the
    others."""
    full = not args.quick and args.seeds is None and getattr(args, "only", None) is None
    scratch = Path(args.out) / ("quick" if args.quick else "full") / "RESULTS.md"
    return committed.results_path(args.results, "benchmarks/RESULTS.md", scratch, full)


def figures(results_dir: Path, ctx: Context, done: dict[str, Output]) -> list[tuple[str, str]]:
    """The figures of the sections that ran, in RESULTS.md's order: [(title, file name)]."""
    figs = []
    if "methods" in done:
        figs.append(methods.figures_swd(results_dir, done["methods"]))
    sweeps = [done[s].data[s] if s in done else None for s in ("fractions", "sigmas")]
    if any(d is not None for d in sweeps):
        sweeps_png = results_dir / "quality-sweeps.png"
        sweeps_figure(sweeps_png, *sweeps)
        figs.append(("ring8 sweeps: clean fraction and τ", sweeps_png.name))
    if "methods" in done:
        figs += methods.sample_figures(results_dir, ctx.suite, done["methods"].data["dirs"])
    if "gaussian" in done:
        figs.append(gaussian.figures(results_dir, done["gaussian"]))
    if "pretrain" in done:
        figs += pretrain.figures(results_dir, ctx.files, done["pretrain"])
    if "noise-models" in done:
        figs += noise.figures(results_dir, done["noise-models"])
    return figs


def header(
    args: argparse.Namespace, ctx: Context, command: str, wall: float, per_section: str
) -> list[str]:
    """RESULTS.md's title and its list of the machine, the command and the settings."""
    suite: Suite = ctx.suite
    vec = ", ".join(f"{k}={v}" for k, v in suite.vector.items())
    img = ", ".join(f"{k}={v}" for k, v in suite.image.items())
    ran = [s.name for s in SECTIONS if s.name in ctx.selected]
    ran += [p for s in SECTIONS for p in (s.parts or {}) if p in ctx.selected]
    return [
        f"# SFBD quality benchmark ({'quick' if args.quick else 'full'} suite)",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"torch {torch.__version__}, device cpu",
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{command}`",
        *([f"- sections run (--only): {', '.join(ran)}"] if args.only is not None else []),
        f"- wall time: {wall:.0f} s ({len(ctx.runner.ran)} runs trained, {ctx.runner.reused} "
        f"reused from `{committed.display_path(ctx.out)}`); per section: {per_section}",
        f"- vector settings: {vec}",
        (
            f"- digits settings: {img}. The data are a fixed random 2/3 of scikit-learn's 1,797 "
            "8x8 digits (1,198 images); the other third supplies section 6's pretraining set. "
            "Training steps (200 + 3×70, warm-up 100) and sampler steps (32) are lower than in "
            "the previous full suite (300 + 3×100, warm-up 200, 64 steps, one seed) to fit "
            "three seeds in the time budget."
            if "digits" in suite.datasets
            else "- digits: not run"
        ),
        "- seeds: section 1 uses `seed=s` and `data.noise_seed=s` for s = 0.."
        f"{ctx.seeds - 1}"
        + (f" (digits: 0..{ctx.image_seeds - 1})" if "digits" in suite.datasets else "")
        + "; mean ± std over seeds; sections 2–4 and 6 "
        f"use seed 0; section 5 uses s = 0..{suite.gauss_seeds - 1}.",
        "- Every baseline trains one stage with SFBD's total step budget. Metrics use the EMA "
        "weights and samples generated from pure noise; lower swd/mmd is better.",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    suite = SUITES["quick" if args.quick else "full"]
    seeds = args.seeds if args.seeds is not None else suite.seeds
    image_seeds = args.seeds if args.seeds is not None else suite.image_seeds
    out = Path(args.out) / ("quick" if args.quick else "full")
    results = results_file(args)
    results.parent.mkdir(parents=True, exist_ok=True)
    runner = Runner(out, suite.common)
    t0 = time.perf_counter()
    ctx = Context(runner, suite, seeds, image_seeds, make_data(out), out, args.selected)
    done: dict[str, Output] = {}
    section_s: dict[str, float] = {}
    for section in SECTIONS:
        if section.name in args.selected:
            t = time.perf_counter()
            done[section.name] = section.run(ctx)
            section_s[section.seconds] = time.perf_counter() - t
    figs = figures(results.parent, ctx, done)
    wall = time.perf_counter() - t0

    summary = {"suite": "quick" if args.quick else "full", "seeds": seeds}
    summary["image_seeds"] = image_seeds
    for output in done.values():
        summary.update(output.summary)
    summary.update({"section_seconds": section_s, "wall_seconds": wall})
    summary.update({"runs_trained": len(runner.ran), "runs_reused": runner.reused})
    (out / "summary.json").write_text(json.dumps(summary, indent=1))

    command = committed.command_line(__file__, sys.argv[1:] if argv is None else argv)
    per_section = ", ".join(f"{k} {v:.0f} s" for k, v in section_s.items())
    md = header(args, ctx, command, wall, per_section)
    for output in done.values():
        md += output.markdown
    md += ["## Figures", ""]
    for title, name in figs:
        md += [f"{title}:", "", f"![{title}]({name})", ""]
    results.write_text("\n".join(md))
    print(f"wrote {results} and {len(figs)} figure(s); {wall:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
