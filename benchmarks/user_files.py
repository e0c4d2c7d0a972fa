"""SFBD vs clean-only on the user's own files (user mode), for vectors and 1x8x8 images.

Makes the files a user would have (noisy samples at a known tau, a small clean set, a held-out
reference), then runs the real command line on them:

    sfbd run --out DIR --set data.noisy=noisy.npy --set data.clean=clean.npy \
        --set data.sigma=TAU --set eval.reference=reference.npy --set method=...

Usage: python benchmarks/user_files.py [--out runs/user-files] [--only vectors|images]
Prints a table of the final swd/mmd per method. CPU: ~10 min (vectors) + ~20 min (images).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sfbd.cli.main import main as sfbd
from sfbd.data.sources import builtin

CASES = {
    # name: (source, tau, clean fraction, reference size, extra --set options)
    "vectors": (
        "checkerboard",
        0.3,
        0.02,
        2000,
        [
            "model.hidden=128",
            "train.pretrain_steps=3000",
            "train.update_steps=1500",
            "eval.num_samples=5000",
        ],
    ),
    "images": (
        "digits",
        0.6,
        0.1,
        360,
        [
            "model.channels=16",
            "train.pretrain_steps=1500",
            "train.update_steps=700",
            "train.batch_size=128",
            "eval.num_samples=1000",
            "sample.batch_size=1000",
        ],
    ),
}


def make_files(case: str, root: Path) -> tuple[list[str], float]:
    """Write noisy.npy, clean.npy, reference.npy as a user would hold them."""
    source, tau, frac, n_ref, _ = CASES[case]
    x, _ = builtin(source, 22000)
    rng = np.random.default_rng(123)
    x = x[rng.permutation(len(x))]
    ref, train = x[:n_ref], x[n_ref:]
    n_clean = int(round(frac * len(train)))
    clean, hidden = train[:n_clean], train[n_clean:]
    noisy = hidden + tau * rng.standard_normal(hidden.shape).astype(np.float32)
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in (("noisy", noisy), ("clean", clean), ("reference", ref)):
        np.save(root / f"{name}.npy", arr.astype(np.float32))
    sets = [
        f"data.noisy={root / 'noisy.npy'}",
        f"data.clean={root / 'clean.npy'}",
        f"data.sigma={tau}",
        f"eval.reference={root / 'reference.npy'}",
        "sfbd.iterations=3",
    ]
    print(f"{case}: {len(noisy)} noisy at tau {tau}, {len(clean)} clean, {len(ref)} reference")
    return sets, tau


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/user-files")
    ap.add_argument("--only", choices=sorted(CASES))
    args = ap.parse_args()
    rows = []
    for case in [args.only] if args.only else list(CASES):
        root = Path(args.out) / case
        sets, _ = make_files(case, root / "files")
        for method in ("sfbd", "clean-only"):
            argv = ["run", "--out", str(root / method), "--quiet", "--set", f"method={method}"]
            for s in sets + CASES[case][4]:
                argv += ["--set", s]
            if sfbd(argv) != 0:
                raise SystemExit(f"sfbd run failed for {case}/{method}")
            stages = json.loads((root / method / "metrics.json").read_text())["stages"]
            swd = [round(s["metrics"]["swd"], 4) for s in stages]
            rows.append((case, method, stages[-1]["metrics"], swd))
            print(f"  {method}: swd per stage {swd}", flush=True)
    print(f"\n{'case':<9}{'method':<12}{'swd':>9}{'mmd':>11}")
    for case, method, m, _ in rows:
        print(f"{case:<9}{method:<12}{m['swd']:>9.4f}{m['mmd']:>11.2e}")


if __name__ == "__main__":
    main()
