"""sfbd.runtime.heap: the glibc calls that keep a long pass's private memory flat."""

from __future__ import annotations

import subprocess
import sys

import pytest
from run_helpers import cli_env

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


@glibc
def test_freed_large_buffers_go_back_to_the_system():
    # 40 buffers of 24 MiB allocated and freed one after another, with a small live object
    # made between them: with glibc's dynamic threshold they end up on the heap and stay in
    # RssAnon; with the threshold fixed (configure) they are unmapped when freed
    script = """
import numpy as np, sys
from sfbd.runtime import heap
if sys.argv[1] == "fixed":
    assert heap.configure()
def anon():
    return int([l for l in open('/proc/self/status') if l.startswith('RssAnon')][0].split()[1])
keep, base = [], anon()
for i in range(40):
    a = np.ones(3 << 20)  # 24 MiB, touched
    b = np.ones(3 << 20)
    keep.append(np.ones(1000))
    del a
    del b
assert heap.release()
print((anon() - base) // 1024)
"""
    grown = {}
    for mode in ("dynamic", "fixed"):
        env = {k: v for k, v in cli_env().items() if not k.startswith("MALLOC_")}
        out = subprocess.run(
            [sys.executable, "-c", script, mode], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        grown[mode] = int(out.stdout.split()[-1])
    assert grown["fixed"] < 20, grown  # MiB still private after everything was freed


def test_configure_leaves_a_users_own_setting_alone(monkeypatch):
    from sfbd.runtime import heap

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert heap.configure() is False
