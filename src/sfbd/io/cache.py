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
from typing import TYPE_CHECKING

from sfbd.errors import SfbdError

if TYPE_CHECKING:
    from torch import nn

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


def read_state_dict(path: Path, what: str) -> dict:
    """A ``torch.save``d state dict of tensors (``{'state_dict': ...}`` unwrapped), read with
    ``weights_only=True``; a one-line :class:`SfbdError` naming ``what`` (e.g. 'Inception
    weights') for a file that cannot be read or holds anything else."""
    from collections.abc import Mapping

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise SfbdError(f"cannot read {what} from {path} ({one_line(e)})") from e
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise SfbdError(f"{path} does not hold a state dict of tensors")
    return dict(state)


def load_strictly(
    model: nn.Module, state: dict, path: Path, what: str, skip: str | None = None
) -> None:
    """``model.load_state_dict(state)`` with every key and shape checked first: one line
    saying ``path`` is not ``what`` and naming the missing, unexpected and misshapen keys.
    Keys ending in ``skip`` (e.g. BatchNorm's 'num_batches_tracked') are optional."""

    def keep(k: str) -> bool:
        return skip is None or not k.endswith(skip)

    expected = {k: v.shape for k, v in model.state_dict().items() if keep(k)}
    given = {k: v for k, v in state.items() if keep(k)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(
        f"{k} {tuple(given[k].shape)} != {tuple(s)}"
        for k, s in expected.items()
        if k in given and given[k].shape != s
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        problems.append(f"{len(wrong)} with wrong shape (e.g. {wrong[0]})")
    if problems:
        raise SfbdError(f"{path} is not {what}: keys " + "; ".join(problems))
    model.load_state_dict(given, strict=skip is None)


def cached_verified(
    cache_dir: str | Path | None,
    filename: str,
    url: str,
    sha256: str,
    what: str,
    *,
    download: bool,
    hint: str = "",
) -> Path:
    """The cached copy of a published file (``cache_dir``, default :func:`default_cache_dir`):
    refused unless its SHA-256 is ``sha256``; fetched once from ``url`` (and verified) when
    missing and ``download``, else a one-line error saying where to put it. ``what`` names the
    file in messages; ``hint`` is appended to the mismatch message (e.g. where a user's own
    copy goes)."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    file = folder / filename
    if file.is_file():
        digest = file_digest(file, "sha256")
        if digest != sha256:
            raise SfbdError(
                f"{file} has SHA-256 {digest}, expected {sha256}; delete it and download {url} "
                f"again{hint}"
            )
    elif download:
        download_verified(url, file, algorithm="sha256", digest=sha256, what=what)
    else:
        raise SfbdError(
            f"{what} not found at {file} and download=False; download {url} and put it at {file}"
        )
    return file
