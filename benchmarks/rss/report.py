"""What the memory benchmark prints and writes: the machine, the table, the plot, MEMORY.md."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from rss.settings import COMMON, KINDS, LIMIT, MIB, MODELS, D
from rss.verdict import data_bytes


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
