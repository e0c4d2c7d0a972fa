"""The download cache: where fetched files live, and a checksum-verified download.

Files that sfbd fetches at run time (the CIFAR-10 tarball, the FID Inception weights) go to
``$SFBD_CACHE`` if set, else the platform's user cache folder + ``sfbd`` (``~/.cache/sfbd`` on
Linux). A download lands in a temporary file beside its destination and is renamed into place
only when complete and matching its published checksum; on any failure nothing is left behind.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from sfbd.errors import SfbdError

_CHUNK = 1 << 20
_NAMES = {"md5": "MD5", "sha256": "SHA-256"}
_TIMEOUT_S = 60


def default_cache_dir() -> Path:
    """``$SFBD_CACHE`` if set, else the platform's user cache folder + ``sfbd``."""
    env = os.environ.get("SFBD_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "sfbd" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "sfbd"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sfbd"


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest ('md5', 'sha256', ...) of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def download_verified(
    url: str,
    dest: Path,
    *,
    algorithm: str,
    digest: str,
    what: str,
    error: type[SfbdError] = SfbdError,
) -> None:
    """Fetch ``url`` to ``dest``, keeping it only if its ``algorithm`` digest is ``digest``.

    ``what`` names the file in error messages ("CIFAR-10", "FID Inception weights"); errors
    are ``error`` with one line that gives the URL and the path to put the file at by hand.
    """
    by_hand = f"download {url} yourself and put it at {str(dest)!r}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise error(
            f"cannot write to the cache folder {str(dest.parent)!r} ({one_line(e)}); set "
            f"SFBD_CACHE to a writable folder, or {by_hand}"
        ) from None
    tmp = Path(tmp_name)
    try:
        h = hashlib.new(algorithm)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as r:
                for chunk in iter(lambda: r.read(_CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise error(
                f"{what} is not in the cache and downloading it from {url} failed "
                f"({one_line(e)}); {by_hand}"
            ) from None
        if h.hexdigest() != digest:
            raise error(
                f"{what} downloaded from {url} has {_NAMES.get(algorithm, algorithm)} "
                f"{h.hexdigest()}, not the "
                f"published {digest}; it was discarded. Try again, or {by_hand}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
