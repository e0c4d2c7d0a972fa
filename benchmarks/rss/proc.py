"""RssAnon and VmRSS of a command and of every process it starts, polled from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rss.settings import INTERVAL


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
