"""Atomic file writes: a file appears complete under its name, or not at all.

Every writer creates the parent folders, writes to a unique temporary file beside the target,
flushes and fsyncs it, gives it ordinary permissions (0644) and renames it over the target; on
any failure the temporary file is removed and the old target, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a binary temp file next to ``path``, then rename it to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``np.save`` to exactly ``path``, atomically."""
    atomic_write(path, lambda fh: np.save(fh, array))


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """``np.savez`` to exactly ``path`` (no suffix added), atomically."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays))
