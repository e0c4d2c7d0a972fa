"""Converted-input caches: inputs that cannot be memory-mapped as they are (image folders and
zips, CIFAR-10, CelebA, compressed .npz files) are converted once into a .npy and
memory-mapped ever after.

* Where: ``data.cache_dir``, by default ``data/`` in the download cache (``$SFBD_CACHE/data``,
  else ``~/.cache/sfbd/data`` on Linux). Clear it with ``sfbd cache --clear`` or by deleting
  the folder; nothing else refers to it.
* What: ``NAME-HASH.npy`` (uint8 for 8-bit images, else float32) beside ``NAME-HASH.json``,
  which records the key (the source's path, the sizes and modification times of its files, and
  the settings such as CelebA's image size) and the array's shape, dtype and file size. HASH
  is a digest of the key, so a changed source gets a new cache. A cache is used only when its
  JSON matches the key and the .npy has the recorded size, shape and dtype; a truncated, stale
  or foreign one is rebuilt. Both files are written atomically (temporary file, then rename):
  a process killed while writing leaves no cache behind, only a temporary file that the next
  build of that cache removes. Warnings the conversion gave (say, a CIFAR-10 copy that is not
  the official release) are kept in the JSON and repeated each time the cache is opened.
* Under torchrun, rank 0 builds a missing cache while the other ranks wait; a rank that then
  still sees none (its node keeps the cache folder on a local disk) has its node's local rank 0
  build it. On a shared filesystem every cache is built once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sfbd.errors import DataError
from sfbd.io.arrays import Allocate, NpyWriter, SampleArray, open_npy, write_npy
from sfbd.io.atomic import atomic_write_text
from sfbd.io.disk import require_free
from sfbd.runtime import distributed

FORMAT = 1  # bump when the cache layout or a conversion changes


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of converted-input caches: ``cache_dir``, else the download cache + 'data'."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from sfbd.io.cache import default_cache_dir

    return default_cache_dir() / "data"


def file_key(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a source file or folder without reading it: its resolved path and the
    size and modification time of every file in it (a folder's, recursively, by name)."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        h = hashlib.sha256()
        count = 0
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(p).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
        return {"path": str(p), "files": count, "listing": h.hexdigest()}
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _paths(root: Path, name: str, key: dict[str, Any]) -> tuple[Path, Path]:
    text = json.dumps({"format": FORMAT, **key}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    stem = root / f"{name}-{digest}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def valid(npy: Path, meta: Path, key: dict[str, Any]) -> bool:
    """Whether the stored array at ``npy`` is complete and was made from ``key``: its JSON
    record ``meta`` holds ``key``, and the file has the recorded size, shape and dtype."""
    try:
        info = json.loads(meta.read_text())
        if info.get("key") != json.loads(json.dumps(key)) or info.get("format") != FORMAT:
            return False
        if npy.stat().st_size != info["bytes"]:
            return False
        arr = open_npy(npy)
        return list(arr.shape) == info["shape"] and str(arr.dtype) == info["dtype"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _clear_for(npy: Path, meta: Path) -> None:
    """Make way for a new ``npy``: its folder exists, a killed writer's temporaries are gone,
    and its record is removed (an array is valid only with its record, written last)."""
    npy.parent.mkdir(parents=True, exist_ok=True)
    for stale in npy.parent.glob(f".{npy.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _record(npy: Path, meta: Path, key: dict[str, Any], notes: list[str]) -> None:
    """Write ``npy``'s record: the key, the array's shape, dtype and file size, the notes."""
    arr = open_npy(npy)
    info = {
        "format": FORMAT,
        "key": key,
        "shape": list(arr.shape),
        "dtype": arr.dtype.name,
        "bytes": npy.stat().st_size,
        "warnings": notes,
    }
    atomic_write_text(meta, json.dumps(info, indent=1) + "\n")


def store(
    npy: Path,
    meta: Path,
    key: dict[str, Any],
    arr: SampleArray,
    what: str,
    fix: str,
    notes: list[str] | None = None,
) -> None:
    """Write ``arr`` (uint8 stays uint8, anything else becomes float32) to ``npy`` chunk by
    chunk with its record ``meta``, both atomically, after checking the disk has room.
    ``notes``: warnings the conversion gave, repeated whenever the cache is opened."""
    dtype = np.uint8 if arr.dtype == np.uint8 else np.float32
    _clear_for(npy, meta)
    require_free(npy.parent, math.prod(arr.shape) * np.dtype(dtype).itemsize, what, fix)
    write_npy(npy, arr, dtype)
    _record(npy, meta, key, list(notes or []))


def store_streamed(
    npy: Path,
    meta: Path,
    key: dict[str, Any],
    build: Callable[[Allocate], np.ndarray],
    what: str,
    fix: str,
) -> None:
    """Let ``build(allocate)`` write uint8 samples straight into ``npy``: it calls
    ``allocate(shape)`` once, when it knows the shape, fills the memory-mapped array it gets
    (after the disk check) and returns it. Nothing is held whole in memory; the file and its
    record appear atomically, and the warnings ``build`` gave are kept in the record."""
    _clear_for(npy, meta)
    writer = NpyWriter(npy, np.uint8)

    def allocate(shape: tuple[int, ...]) -> np.ndarray:
        require_free(npy.parent, math.prod(shape), what, fix)
        return writer.open(tuple(shape))

    try:
        with _kept_warnings() as notes:
            arr = build(allocate)
        if arr is not writer.array:
            raise TypeError(f"{what}: a streamed build must return the array it allocated")
        del arr
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    _record(npy, meta, key, notes)


@contextlib.contextmanager
def _kept_warnings() -> Iterator[list[str]]:
    """Collect the UserWarnings of the block (about the data, e.g. a CIFAR-10 copy that is not
    the official release) into the yielded list; other warnings go on as usual."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield notes
    for w in caught:
        if issubclass(w.category, UserWarning):
            notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def cached(
    name: str,
    key: dict[str, Any],
    build: Callable[..., np.ndarray],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    streamed: bool = False,
) -> np.ndarray:
    """The cached conversion of a source, memory-mapped: built unless a valid cache of ``key``
    exists (see the module docstring). ``build()`` returns the array (uint8 images or numbers);
    with ``streamed``, ``build(allocate)`` writes uint8 images into the file instead (see
    :func:`store_streamed`), so the conversion holds no copy of the data.

    Under torchrun every rank must call it (rank 0 builds while the others wait)."""
    root = cache_root(cache_dir)
    npy, meta = _paths(root, name, key)
    fix = "set data.cache_dir (or SFBD_CACHE) to a larger disk"
    what = f"the data cache {npy.name}"

    def build_and_store() -> None:
        if streamed:
            store_streamed(npy, meta, key, build, what, fix)
            return
        with _kept_warnings() as notes:
            arr = np.asarray(build())
        store(npy, meta, key, arr, what, fix, notes)

    me = distributed.info()
    try:
        if me.is_main and not valid(npy, meta, key):
            build_and_store()
        distributed.barrier()
        missing = not valid(npy, meta, key)
        if any(distributed.all_gather_object(missing)):
            if missing and me.local_rank == 0:  # this node does not see rank 0's cache
                build_and_store()
            distributed.barrier()
    except PermissionError as exc:
        raise DataError(
            f"cannot write the data cache in {str(root)!r} ({exc.strerror}); set "
            "data.cache_dir (or SFBD_CACHE) to a writable folder"
        ) from None
    for note in json.loads(meta.read_text()).get("warnings", []):
        warnings.warn(note, UserWarning, stacklevel=3)
    return open_npy(npy)


def entries(cache_dir: str | os.PathLike[str] | None = None) -> list[tuple[Path, int]]:
    """The caches in the folder and their sizes in bytes (for ``sfbd cache``)."""
    root = cache_root(cache_dir)
    if not root.is_dir():
        return []
    found = []
    for npy in sorted(root.glob("*.npy")):
        meta = npy.with_suffix(".json")
        size = npy.stat().st_size + (meta.stat().st_size if meta.is_file() else 0)
        found.append((npy, size))
    return found


def clear(cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Delete every cache (and leftover temporary file) in the folder; the bytes freed."""
    root = cache_root(cache_dir)
    freed = 0
    if root.is_dir():
        for f in list(root.glob("*.npy")) + list(root.glob("*.json")) + list(root.glob(".*.tmp")):
            freed += f.stat().st_size
            f.unlink(missing_ok=True)
    return freed
