"""Disk-space checks made before writing large files, so a run fails at once, not hours in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sfbd.errors import SfbdError

MARGIN = 64 * 2**20  # bytes kept free beyond what is needed (file systems need some room)


def free_bytes(folder: str | os.PathLike[str]) -> int:
    """Free bytes on the disk that holds ``folder`` (or its nearest existing parent)."""
    probe = Path(folder).expanduser().absolute()
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def require_free(folder: str | os.PathLike[str], needed: int, what: str, fix: str) -> None:
    """Raise a one-line :class:`SfbdError` unless the disk of ``folder`` has room for
    ``needed`` bytes of ``what`` (plus 5% and :data:`MARGIN`); ``fix`` says what to do."""
    if needed <= 0:
        return
    free = free_bytes(folder)
    if free < needed * 1.05 + MARGIN:
        raise SfbdError(
            f"not enough disk space for {what} in {folder}: {needed:,} bytes "
            f"({_gib(needed)}) needed, {free:,} bytes ({_gib(free)}) free; free some space or "
            f"{fix}"
        )
