"""Seeded runs' fingerprints: proof that a refactor kept the numbers.

Runs a fixed list of small seeded ``sfbd run`` configurations (every method, every noise
model, several networks, both modes) and records, per configuration, ``metrics.json`` without
its timings and the SHA-256 of every checkpoint's weights, every E_k shard and every saved
sample array. Run it on the tree before a change and after it, then compare::

    python benchmarks/fingerprint.py --out /tmp/fp-before.json          # old tree
    python benchmarks/fingerprint.py --out /tmp/fp-after.json           # new tree
    python benchmarks/fingerprint.py --compare /tmp/fp-before.json /tmp/fp-after.json

``--compare`` prints each configuration as ``same`` or the files and metrics that differ,
and exits 1 when any differ; AFTER may hold a subset (``--only``). About 2 minutes on 2 CPU
cores (one thread per run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "train.pretrain_steps=40",
    "train.update_steps=30",
    "train.batch_size=64",
    "train.log_every=10",
    "sfbd.iterations=2",
    "eval.num_samples=300",
    "sample.steps=16",
    "sample.batch_size=128",
    "sample.shard_size=300",
    "device=cpu",
]
RING8 = ["data.source=ring8", "data.num_samples=1200", "data.clean_fraction=0.05"]
MLP = ["model.hidden=32", "model.layers=1"]
DIGITS = ["data.source=digits", "model.channels=8", "model.channel_mult=[1]"]


def configs(files: Path) -> dict[str, list[str]]:
    """Name -> ``--set`` list; ``files`` holds the arrays the user-mode and coloured runs read."""
    cov = files / "cov.npy"
    ring = [*RING8, *MLP, *TINY]
    return {
        "ring8-sfbd": ring,
        "ring8-sde": [*ring, "sample.sampler=sde"],
        "ring8-oracle": [*ring, "method=oracle"],
        "ring8-online": [*ring, "method=online-sfbd", "online.refresh_every=5"],
        "ring8-noisy-only": [*ring, "method=noisy-only"],
        "ring8-clean-only-pretrain": [*ring, "method=clean-only", "data.pretrain=checkerboard"],
        "ring8-coloured": [*ring, "data.sigma=null", f"data.noise_cov={cov}"],
        "ring8-coloured-oracle": [
            *ring,
            "data.sigma=null",
            f"data.noise_cov={cov}",
            "method=oracle",
        ],
        "ring8-coloured-topup": [
            *ring,
            "data.sigma=null",
            f"data.noise_cov={cov}",
            "data.noise_method=top-up",
        ],
        "ring8-per-sample": [*ring, "data.sigma=null", "data.sigma_range=[0.2,0.6]"],
        "gaussian": [*RING8, *TINY, "model.kind=gaussian", "data.source=checkerboard"],
        "digits": [*DIGITS, *TINY, "data.sigma=0.6"],
        "digits-photon": [
            *DIGITS,
            *TINY,
            "data.sigma=null",
            "data.noise=poisson-gaussian",
            "data.gain=0.05",
        ],
        "digits-ddpmpp": [*DIGITS, *TINY, "model.kind=ddpmpp", "train.augment=0.1"],
        "user-mode": [
            f"data.noisy={files / 'noisy.npy'}",
            f"data.clean={files / 'clean.npy'}",
            f"eval.reference={files / 'ref.npy'}",
            "data.sigma=0.3",
            *MLP,
            *TINY,
        ],
        "user-per-sample": [
            f"data.noisy={files / 'noisy.npy'}",
            f"data.clean={files / 'clean.npy'}",
            f"data.sigma={files / 'levels.npy'}",
            *MLP,
            *TINY,
        ],
    }


def write_files(folder: Path) -> None:
    """The user-mode arrays and the coloured covariance: fixed by a seed."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 1400)
    x = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    np.save(folder / "clean.npy", x[:100])
    np.save(
        folder / "noisy.npy",
        (x[100:1100] + 0.3 * rng.standard_normal((1000, 2))).astype(np.float32),
    )
    np.save(folder / "ref.npy", x[1100:])
    np.save(folder / "levels.npy", np.geomspace(0.1, 0.5, 1000))
    np.save(folder / "cov.npy", np.array([[0.09, 0.03], [0.03, 0.04]]))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fingerprint(rundir: Path) -> dict:
    metrics = json.loads((rundir / "metrics.json").read_text())
    for stage in metrics["stages"]:
        stage.pop("seconds", None)
    files = {}
    for pattern in ("checkpoints/*.safetensors", "denoised/*/*.npz", "data/*.npy", "samples/*.npy"):
        for p in sorted(rundir.glob(pattern)):
            files[str(p.relative_to(rundir))] = sha(p)
    return {"metrics": metrics["stages"], "files": files}


def run_all(only: list[str] | None) -> dict:
    out = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        write_files(tmpdir)
        for name, sets in configs(tmpdir).items():
            if only and name not in only:
                continue
            rundir = tmpdir / name
            cmd = [sys.executable, "-m", "sfbd", "run", "--out", str(rundir), "--quiet"]
            for s in sets:
                cmd += ["--set", s]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                out[name] = {"error": proc.stderr[-2000:]}
                print(f"{name}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            out[name] = fingerprint(rundir)
            print(f"{name}: {len(out[name]['files'])} files", file=sys.stderr)
    return out


def compare(a: dict, b: dict) -> bool:
    same = True
    for name in sorted(b):  # AFTER may run a subset (--only)
        fa, fb = a.get(name), b.get(name)
        if fa == fb:
            print(f"{name}: same")
            continue
        same = False
        if fa is None or fb is None or "error" in fa or "error" in fb:
            print(f"{name}: missing or failed on one side")
            continue
        diff = [
            k
            for k in sorted(set(fa["files"]) | set(fb["files"]))
            if fa["files"].get(k) != fb["files"].get(k)
        ]
        metrics = "same" if fa["metrics"] == fb["metrics"] else "differ"
        print(f"{name}: DIFFERS; metrics {metrics}; files {diff}")
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the fingerprints here (JSON)")
    ap.add_argument("--only", nargs="*", help="run only these configurations")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        a, b = (json.loads(Path(p).read_text()) for p in args.compare)
        sys.exit(0 if compare(a, b) else 1)
    result = run_all(args.only)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
