"""Giving freed heap memory back to the operating system.

glibc's malloc raises its mmap threshold each time a large block is freed, so later blocks of
that size come from the heap, and freed heap pages are kept for reuse. A pass that
allocates and frees large buffers batch after batch (backward sampling: network activations,
keyed noise, the shard written) then leaves its private memory (RssAnon) growing with the
number of batches, although nothing is live. Two calls keep it flat:

* :func:`configure` fixes the mmap threshold at :data:`MMAP_THRESHOLD` (``mallopt``), so every
  block from 1 MiB up is its own mapping, returned to the system when freed (``sfbd run``
  calls it once at the start; set ``MALLOC_MMAP_THRESHOLD_`` yourself to choose another value);
* :func:`release` calls ``malloc_trim(0)``, which returns the free pages of the heap; sfbd calls
  it after each denoised shard and each stage.

Both are no-ops where the C library is not glibc (macOS, musl, Windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache
from typing import Any

MMAP_THRESHOLD = 1 << 20  # bytes: blocks this large or larger are mapped on their own
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


@cache
def _glibc() -> Any | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both must exist (glibc)
        return libc
    except (OSError, AttributeError):
        return None


def configure() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` unless ``MALLOC_MMAP_THRESHOLD_``
    is set; whether it was set."""
    libc = _glibc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release() -> bool:
    """Return free heap pages to the system (glibc ``malloc_trim``); whether it could."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
