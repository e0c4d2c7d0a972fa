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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import committed  # noqa: E402  (benchmarks/committed.py: where results go)

SHAPE = (3, 32, 32)  # CIFAR-sized samples
D = 3 * 32 * 32
SIGMA = 0.2
LIMIT = 0.15  # the target: RssAnon grows by less than 15% of the extra data bytes
KINDS = ("vectors", "images")
SIZES = (4000, 10000, 40000, 100000)
QUICK_SIZES = (1000, 4000)
PROCS = (1, 2)
INTERVAL = 0.02  # seconds between polls of /proc
CHUNK = 2048  # samples generated and written at a time
MIB = 2**20

#: Every run: SFBD with one tiny iteration, on the CPU.
COMMON = [
    "method=sfbd",
    "seed=0",
    "device=cpu",
    "sfbd.iterations=1",
    "train.pretrain_steps=20",
    "train.update_steps=20",
    "train.batch_size=16",
    "train.lr_warmup=0",
    "train.log_every=10",
    "train.checkpoint_every=0",
    "sample.sampler=sde",
    "sample.steps=4",  # below tau = 0.2: levels 0.2, 0.002, 0: 2 evaluations per sample
    "sample.batch_size=256",
    "sample.shard_size=2048",
    "eval.num_samples=256",
]
#: The network of each kind: an MLP on vectors, a one-level U-Net on images.
MODELS = {
    "vectors": ["model.kind=mlp", "model.hidden=64", "model.layers=1"],
    "images": [
        "model.kind=unet",
        "model.channels=4",
        "model.channel_mult=[1]",
        "model.blocks_per_level=1",
    ],
}


# --------------------------------------------------------------------------- /proc


def require_linux() -> None:
    """Refuse to run where /proc/PID/status has no RssAnon (anything but Linux)."""
    status = Path("/proc/self/status")
    if not sys.platform.startswith("linux") or not status.exists():
        raise SystemExit("memory.py: error: Linux only (it reads RssAnon from /proc/PID/status)")
    if "RssAnon:" not in status.read_text():
        raise SystemExit("memory.py: error: this kernel's /proc/PID/status has no RssAnon")


def read_status(pid: int) -> tuple[int, int] | None:
    """(RssAnon, VmRSS) of a process in kB; None once it is gone (or a zombie, which has none)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "VmRSS"):
            fields[key] = int(value.split()[0])
    if len(fields) < 2:
        return None
    return fields["RssAnon"], fields["VmRSS"]


def _has_children_files() -> bool:
    """Whether this kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)."""
    return Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def _parents() -> dict[int, int]:
    """{pid: parent pid} of every process, from /proc/*/stat (when there are no children files)."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # after (comm): state ppid
    return out


def descendants(pid: int, children_files: bool | None = None) -> dict[int, int]:
    """{pid: parent pid} of every descendant of ``pid`` alive now."""
    if children_files is None:
        children_files = _has_children_files()
    if children_files:

        def children(p: int) -> list[int]:
            kids = []
            for f in Path(f"/proc/{p}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    kids += [int(k) for k in f.read_text().split()]
            return kids

    else:
        parents = _parents()

        def children(p: int) -> list[int]:
            return [c for c, pp in parents.items() if pp == p]

    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            if c not in found and c != pid:
                found[c] = p
                todo.append(c)
    return found


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def measure(
    cmd: Sequence[str],
    env: dict[str, str],
    *,
    interval: float = INTERVAL,
    timeout: float | None = None,
) -> dict:
    """Run ``cmd`` to its end, polling every ``interval`` s the RssAnon and VmRSS of it and of
    every descendant. Returns its exit code, wall seconds, the tail of its stderr, and per
    process {"pid", "parent", "rss_anon_kb", "vm_rss_kb"} (peaks; parent 0 for the root)."""
    children_files = _has_children_files()
    peaks: dict[int, dict] = {}
    timed_out = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            while True:
                done = proc.poll() is not None
                pids = {proc.pid: 0, **descendants(proc.pid, children_files)}
                for pid, parent in pids.items():
                    status = read_status(pid)
                    if status is None:
                        continue
                    peak = peaks.setdefault(
                        pid, {"pid": pid, "parent": parent, "rss_anon_kb": 0, "vm_rss_kb": 0}
                    )
                    peak["rss_anon_kb"] = max(peak["rss_anon_kb"], status[0])
                    peak["vm_rss_kb"] = max(peak["vm_rss_kb"], status[1])
                if done:
                    break
                if timeout is not None and time.perf_counter() - start > timeout:
                    timed_out = True
                    _kill_group(proc)
                    break
                time.sleep(interval)
        except BaseException:
            _kill_group(proc)
            raise
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return {
        "returncode": proc.returncode,
        "seconds": seconds,
        "timed_out": timed_out,
        "stderr_tail": stderr[-3000:],
        "processes": sorted(peaks.values(), key=lambda p: p["pid"]),
    }


# --------------------------------------------------------------------------- data


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def _vectors(n: int, seed: int, stream: int) -> np.ndarray:
    """Smooth clean vectors in (-1, 1): tanh of a random rank-16 map of Gaussian codes."""
    basis = _rng(seed, 0).standard_normal((16, D)).astype(np.float32) / 4
    codes = _rng(seed, stream).standard_normal((n, 16)).astype(np.float32)
    return np.tanh(codes @ basis)


def _blobs(n: int, rng: np.random.Generator) -> np.ndarray:
    """n uint8 images (n, 3, 32, 32): a background colour and 4 Gaussian blobs of colour each."""
    k = 4
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    centre = rng.uniform(0, 32, (n, k, 2, 1, 1)).astype(np.float32)
    width = rng.uniform(2, 8, (n, k, 1, 1)).astype(np.float32)
    colour = rng.uniform(-1, 1, (n, k, 3)).astype(np.float32)
    base = rng.uniform(-0.5, 0.5, (n, 3, 1, 1)).astype(np.float32)
    d2 = (yy - centre[:, :, 0]) ** 2 + (xx - centre[:, :, 1]) ** 2  # (n, k, 32, 32)
    weight = np.exp(-d2 / (2 * width**2))
    x = base + np.einsum("nkc,nkhw->nchw", colour, weight)
    return np.clip(np.rint((np.tanh(x) + 1) * 127.5), 0, 255).astype(np.uint8)


def _write(path: Path, shape: tuple[int, ...], dtype: str, fill) -> None:
    """Write a .npy of ``shape`` in chunks of CHUNK samples: ``fill(start, count)`` -> rows."""
    tmp = path.with_suffix(".part.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    for start in range(0, shape[0], CHUNK):
        count = min(CHUNK, shape[0] - start)
        arr[start : start + count] = fill(start, count)
    arr.flush()
    del arr
    tmp.replace(path)


def make_dataset(kind: str, n: int, folder: Path, seed: int = 0) -> list[str]:
    """Write the synthetic dataset of ``kind`` with N samples into ``folder`` (reused if there);
    returns its ``--set`` pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "vectors":
        noisy, clean = folder / "noisy.npy", folder / "clean.npy"
        if not noisy.exists():

            def noisy_rows(start: int, count: int) -> np.ndarray:
                x = _vectors(count, seed, 1 + start // CHUNK)
                noise = _rng(seed, 10**6 + start // CHUNK).standard_normal(x.shape, np.float32)
                return x + SIGMA * noise

            _write(noisy, (n, D), "float32", noisy_rows)
        if not clean.exists():
            m = max(2, n // 25)
            _write(clean, (m, D), "float32", lambda s, c: _vectors(c, seed, 2 * 10**6 + s // CHUNK))
        return [f"data.noisy={noisy}", f"data.clean={clean}", f"data.sigma={SIGMA}"]
    if kind == "images":
        source = folder / "source.npy"
        if not source.exists():
            _write(
                source,
                (n, *SHAPE),
                "uint8",
                lambda s, c: _blobs(c, _rng(seed, 3 * 10**6 + s // CHUNK)),
            )
        return [
            f"data.source={source}",
            f"data.sigma={SIGMA}",
            "data.clean_fraction=0.02",
            "data.holdout=0.1",
            "data.noise_seed=0",
        ]
    raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")


# --------------------------------------------------------------------------- runs


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


def data_bytes(n: int) -> int:
    """Bytes of the noisy set of N samples as float32."""
    return n * D * 4


def growth(points: Sequence[tuple[int, float]], dim: int = D) -> float:
    """(RssAnon(N_max) - RssAnon(N_min)) / (data_bytes(N_max) - data_bytes(N_min)).

    Args:
        points: (N, peak RssAnon in bytes) of runs at two or more sizes.
        dim: numbers per sample (data bytes = N x dim x 4).
    """
    (n0, r0), (n1, r1) = min(points), max(points)
    if n1 == n0:
        raise ValueError("growth needs runs at two different sizes")
    return (r1 - r0) / ((n1 - n0) * dim * 4)


def verdicts(rows: list[dict], limit: float = LIMIT) -> list[dict]:
    """Per (kind, processes) with two or more sizes: growth from the smallest to the largest N
    (RssAnon from the rows' MiB) and whether it is below ``limit``."""
    out = []
    for kind, procs in dict.fromkeys((r["kind"], r["procs"]) for r in rows):
        pts = [
            (r["n"], r["rss_anon_mib"] * MIB)
            for r in rows
            if (r["kind"], r["procs"]) == (kind, procs)
        ]
        if len({n for n, _ in pts}) < 2:
            continue
        g = growth(pts)
        out.append(
            {
                "kind": kind,
                "procs": procs,
                "n_min": min(pts)[0],
                "n_max": max(pts)[0],
                "growth": g,
                "limit": limit,
                "pass": g < limit,
            }
        )
    return out


# --------------------------------------------------------------------------- output


def machine() -> dict:
    """CPU model, cores, RAM, OS, and the versions of python, torch and numpy."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024**2
    except OSError:
        pass

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "numpy": np.__version__,
    }


def table(rows: list[dict]) -> list[str]:
    """The results table, as Markdown lines."""
    lines = [
        "| kind | processes | N | data MiB | peak RssAnon MiB | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['procs']} | {r['n']:,} | {r['data_mib']:,.1f} "
            f"| {r['rss_anon_mib']:,.1f} | {r['seconds']:.1f} |"
        )
    return lines


def growth_lines(checks: list[dict]) -> list[str]:
    return [
        f"{c['kind']}, {c['procs']} process{'es' if c['procs'] > 1 else ''}: RssAnon grows "
        f"{100 * c['growth']:.1f}% of the extra data bytes from N={c['n_min']:,} to "
        f"N={c['n_max']:,} (limit {100 * c['limit']:.0f}%): {'PASS' if c['pass'] else 'FAIL'}"
        for c in checks
    ]


def plot(rows: list[dict], path: Path) -> None:
    """Peak RssAnon MiB vs N (log x), one line per kind x processes, and the data bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for kind, procs in dict.fromkeys((r["kind"], r["procs"]) for r in rows):
        pts = sorted(
            (r["n"], r["rss_anon_mib"]) for r in rows if (r["kind"], r["procs"]) == (kind, procs)
        )
        style = "-o" if procs == 1 else "--s"  # processes: line style; kinds: colours
        colour = f"C{KINDS.index(kind)}"
        label = f"{kind}, {procs} process{'es' if procs > 1 else ''}"
        ax.plot(*zip(*pts, strict=True), style, color=colour, label=label)
    ns = sorted({r["n"] for r in rows})
    ax.plot(
        ns, [data_bytes(n) / MIB for n in ns], ":", color="k", label="data bytes (N x 3072 x 4)"
    )
    ax.set_xscale("log")
    ax.set_xticks(ns, [f"{n:,}" for n in ns])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("N (samples)")
    ax.set_ylabel("peak RssAnon per process (MiB)")
    ax.set_title("sfbd run: peak private memory vs dataset size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(record: dict, plot_name: str) -> str:
    m = record["machine"]
    lines = [
        "# Peak host memory of `sfbd run` against the dataset size",
        "",
        "Written by `benchmarks/memory.py` (see its docstring for what it runs). Peak RssAnon "
        "(private, anonymous memory; not file-backed or memory-mapped pages) per process, "
        "polled every 20 ms from /proc/PID/status; for torchrun the largest over the workers. "
        f"Data bytes = N x {D} x 4 (the noisy set as float32). Target: RssAnon grows by less "
        f"than {100 * LIMIT:.0f}% of the extra data bytes from the smallest to the largest N.",
        "",
        f"- date: {record['date']}",
        f"- command: `{record['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']:.1f} GiB RAM, {m['os']}",
        f"- python {m['python']}, torch {m['torch']}, numpy {m['numpy']}",
        f"- cache: {record['cache_note']}",
        "",
        *table(record["rows"]),
        "",
        *[f"- {line}" for line in growth_lines(record["growth"])],
        "",
        f"![peak RssAnon vs N]({plot_name})",
        "",
        "Settings of every run (`--set`), besides each kind's data files:",
        "",
        *[f"- {kind}: `{' '.join(MODELS[kind] + COMMON)}`" for kind in record["kinds"]],
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


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
