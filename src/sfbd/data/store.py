"""The arrays a run stores in ``DIR/data``: its computed training arrays, once.

The benchmark's noisy set (keyed noise and all) and model-space transforms are views that
compute their rows when read; a run writes them once, chunk by chunk and atomically, as
float32 .npy files and memory-maps them, each with a JSON record of what it was made from
(:func:`sources_key`), so a changed input is never trusted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfbd.data import cache
from sfbd.data.problem import Problem
from sfbd.data.sources import BUILTINS
from sfbd.io.arrays import computed, open_npy

if TYPE_CHECKING:
    from sfbd.schema import Config


STORED = ("noisy", "clean", "pretrain")  # the training arrays stored in DIR/data
FIX = "use an --out on a larger disk"


def sources_key(cfg: Config) -> dict[str, Any]:
    """What the stored arrays are made from: the data configuration and each input file's
    identity (path, size, modification time), so a changed input is never trusted."""
    d = dataclasses.asdict(cfg.data)
    files = {}
    for name in ("source", "root", "noisy", "clean", "pretrain", "sigma", "noise_cov"):
        value = d.get(name)
        if isinstance(value, str) and value not in BUILTINS and Path(value).expanduser().exists():
            files[name] = cache.file_key(value)
    d.pop("cache_dir", None)  # where caches live does not change what they hold
    held = [cfg.eval.noisy_holdout, cfg.eval.noisy_holdout_max]  # which rows are stored
    return {"data": d, "files": files, "method": cfg.method, "noisy_holdout": held}


def _stored_paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.npy", folder / f"{name}.json"


def to_store(prob: Problem) -> list[str]:
    """The fields of ``prob`` that are computed views (worth storing once)."""
    return [n for n in STORED if getattr(prob, n) is not None and computed(getattr(prob, n))]


def store_bytes(prob: Problem, key: dict[str, Any], folder: Path) -> int:
    """Bytes :func:`store_problem` still has to write to ``folder`` (``key``:
    :func:`sources_key`)."""
    total = 0
    for name in to_store(prob):
        npy, meta = _stored_paths(folder, name)
        if not cache.valid(npy, meta, {**key, "array": name}):
            total += getattr(prob, name).nbytes
    return total


def store_problem(
    prob: Problem, cfg: Config, folder: Path, *, write: bool, key: dict[str, Any] | None = None
) -> Problem:
    """``prob`` with its computed training arrays (the benchmark's noisy set, model-space
    transforms) stored in ``folder`` as float32 .npy and memory-mapped.

    With ``write`` (rank 0) a missing, truncated or stale file is written first, chunk by
    chunk and atomically, after a disk-space check; without it (the other ranks, after a
    barrier) the files are only opened. Each file's JSON record holds the key it was made
    from: the data configuration and the identity of every input file (``key``, default
    :func:`sources_key` of ``cfg``, computed only when writing)."""
    changes = {}
    for name in to_store(prob):
        npy, meta = _stored_paths(folder, name)
        if write:
            key = sources_key(cfg) if key is None else key
            k = {**key, "array": name}
            if not cache.valid(npy, meta, k):
                cache.store(npy, meta, k, getattr(prob, name), f"the run's {name} set", FIX)
        changes[name] = open_npy(npy)
    return dataclasses.replace(prob, **changes)
