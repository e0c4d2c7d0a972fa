"""Samples read by index: memory-mapped arrays, lazy views and lazy concatenations.

A run never needs a dataset whole in memory. Every per-sample array it holds (noisy set, clean
set, clean originals, reference, E_k) is a *sample array*: something with ``len``, ``shape``
(N, *) and float32 rows read by index, ``a[i]``, ``a[start:stop]``, ``a[index_array]``. Three
kinds:

* an ``np.ndarray``: a memory-mapped float32 ``.npy`` (``np.load(path, mmap_mode="r")``:
  its pages belong to the file, not to the process) or a small in-memory array;
* :class:`Samples`: a view of a stored array (any numeric dtype, optionally a subset of its
  rows) converted to float32 per read: uint8 images as ``x / 127.5 - 1`` (the same float32
  operations as converting the whole array, so the values are bit-identical), other dtypes by
  ``astype(float32)``, then an optional per-row function ``fn(x, positions)`` (noise keyed by
  index, a model-space transform);
* :class:`Stacked`: several sample arrays one after another (E_k then the clean set), read by
  index without concatenating them.

``np.asarray(a)`` materialises any of them (float32, whole: for small data and tests only).
Work over a whole array goes chunk by chunk (:func:`chunks`, about :data:`CHUNK_ELEMENTS`
values at a time), so its temporary memory does not grow with N.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sfbd.errors import DataError
from sfbd.runtime import faults

CHUNK_ELEMENTS = 1 << 20  # values per chunk of whole-array work (4 MiB as float32)

RowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
Allocate = Callable[[tuple[int, ...]], np.ndarray]  # shape -> the array to fill in place


def to_float32(raw: np.ndarray) -> np.ndarray:
    """Stored rows as float32 (a new array): uint8 images in [0, 255] -> [-1, 1]; values
    beyond float32's range become inf (callers check finiteness)."""
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 127.5 - 1.0
    with np.errstate(over="ignore"):
        return np.array(raw, dtype=np.float32)


def _positions(key: Any, n: int) -> np.ndarray | slice:
    """A key as a contiguous slice (step 1) or an int64 position array in [0, n)."""
    if isinstance(key, slice):
        start, stop, step = key.indices(n)
        if step == 1:
            return slice(start, max(start, stop))
        return np.arange(start, stop, step, dtype=np.int64)
    pos = np.asarray(key)
    if pos.size == 0:
        return np.zeros(0, dtype=np.int64)
    if pos.dtype == bool:
        if pos.shape != (n,):
            raise IndexError(f"a boolean index must have shape ({n},), got {pos.shape}")
        return np.flatnonzero(pos)
    if not np.issubdtype(pos.dtype, np.integer):
        raise IndexError(f"sample arrays are indexed by integers or slices, not {pos.dtype}")
    pos = pos.astype(np.int64).reshape(-1)
    pos = np.where(pos < 0, pos + n, pos)
    if len(pos) and (pos.min() < 0 or pos.max() >= n):
        raise IndexError(f"index out of range for {n} samples")
    return pos


class _Lazy(np.lib.mixins.NDArrayOperatorsMixin):
    """What :class:`Samples` and :class:`Stacked` share: indexing, shape, materialising.

    For convenience in scripts and tests, arithmetic, NumPy functions and the common ndarray
    methods (``min``, ``mean``, ``reshape``, ...) work on the materialised array; a run never
    uses them on data that grows with N."""

    sample_shape: tuple[int, ...]

    def __len__(self) -> int:
        raise NotImplementedError

    def _read(self, pos: np.ndarray | slice) -> np.ndarray:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array as float32."""
        return len(self) * math.prod(self.sample_shape) * 4

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"index {key} out of range for {len(self)} samples")
            return self._read(slice(i, i + 1))[0]
        return self._read(_positions(key, len(self)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.empty(self.shape, np.float32)
        for start, x in chunks(self):
            out[start : start + len(x)] = x
        return out if dtype is None else out.astype(dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        arrays = [np.asarray(x) if isinstance(x, _Lazy) else x for x in inputs]
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"


def _materialised(name: str) -> Callable[..., Any]:
    def method(self: _Lazy, *args: Any, **kwargs: Any) -> Any:
        return getattr(np.asarray(self), name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``np.asarray(self).{name}(...)``: the whole array, materialised."
    return method


for _name in ("min", "max", "mean", "std", "sum", "ravel", "reshape", "astype", "copy", "tolist"):
    setattr(_Lazy, _name, _materialised(_name))


class Samples(_Lazy):
    """A view of a stored array, converted to float32 per read (see the module docstring).

    Args:
        raw: (M, *) stored samples: an ndarray (usually memory-mapped) or another sample array.
        rows: (N,) rows of ``raw`` this view holds, in its order (None: all M rows).
        fn: ``fn(x, positions)`` applied to the float32 rows read, ``positions`` (B,) their
            positions in this view; it must treat rows independently (keyed by position).
    """

    def __init__(self, raw: Any, rows: np.ndarray | None = None, fn: RowFn | None = None) -> None:
        self.raw = raw
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.fn = fn
        self.sample_shape = tuple(int(s) for s in raw.shape[1:])

    def __len__(self) -> int:
        return int(len(self.rows) if self.rows is not None else len(self.raw))

    @property
    def computed(self) -> bool:
        """Whether reading runs a function on the rows (then storing it once pays off)."""
        return self.fn is not None or (isinstance(self.raw, Samples) and self.raw.computed)

    def _read(self, pos: np.ndarray | slice) -> np.ndarray:
        at = pos if self.rows is None else self.rows[pos]
        x = to_float32(self.raw[at]) if isinstance(self.raw, np.ndarray) else self.raw[at]
        if self.fn is not None:
            p = np.arange(pos.start, pos.stop) if isinstance(pos, slice) else pos
            x = self.fn(x, p)
        return x


class Stacked(_Lazy):
    """Sample arrays one after another, read by index without concatenating them."""

    def __init__(self, parts: Sequence[Any]) -> None:
        if not parts:
            raise ValueError("Stacked needs at least one part")
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"Stacked parts have different sample shapes: {sorted(shapes)}")
        self.parts = list(parts)
        self.sample_shape = tuple(int(s) for s in shapes.pop())
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _read(self, pos: np.ndarray | slice) -> np.ndarray:
        if isinstance(pos, slice):
            pos = np.arange(pos.start, pos.stop, dtype=np.int64)
        out = np.empty((len(pos), *self.sample_shape), np.float32)
        which = np.searchsorted(self.offsets, pos, side="right") - 1
        for j in np.unique(which):
            mask = which == j
            local = pos[mask] - self.offsets[j]
            out[mask] = gather(self.parts[j], local)
        return out


SampleArray = np.ndarray | Samples | Stacked  # what every per-sample array of a run is


def gather(a: SampleArray, index: np.ndarray | slice) -> np.ndarray:
    """Rows ``index`` of a sample array as a new float32 array (B, *)."""
    if isinstance(a, np.ndarray):
        if isinstance(index, np.ndarray) and len(index) > 1 and np.all(np.diff(index) == 1):
            index = slice(int(index[0]), int(index[-1]) + 1)  # one contiguous read
        return to_float32(a[index])
    return a[index]


def chunk_rows(shape: Sequence[int], elements: int = CHUNK_ELEMENTS) -> int:
    """Rows per chunk for samples of ``shape`` (N, *): about ``elements`` values, at least 1."""
    return max(1, elements // max(1, math.prod(shape[1:])))


def chunks(a: SampleArray, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(start, float32 rows) of ``a`` in order, ``rows`` at a time (default :func:`chunk_rows`)."""
    step = rows or chunk_rows(a.shape)
    for start in range(0, len(a), step):
        yield start, gather(a, slice(start, min(start + step, len(a))))


def computed(a: Any) -> bool:
    """Whether ``a`` is a view that runs a function on what it reads (:meth:`Samples.computed`)."""
    return isinstance(a, Samples) and a.computed


def nonfinite_rows(a: SampleArray) -> int:
    """The number of samples of ``a`` holding NaN or infinite values (0: all finite)."""
    if isinstance(a, Samples) and isinstance(a.raw, np.ndarray) and a.raw.dtype == np.uint8:
        return 0  # 8-bit images are finite
    bad = 0
    for _, x in chunks(a):
        bad += int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
    return bad


def value_range(a: SampleArray) -> tuple[float, float]:
    """(min, max) over every value of ``a``."""
    lo, hi = math.inf, -math.inf
    for _, x in chunks(a):
        if x.size:
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return lo, hi


class NpyWriter:
    """A .npy written in place through a memory map, made visible atomically.

    :meth:`open` creates a temporary ``.NAME.PID.tmp`` beside ``path`` and returns it mapped
    writable, (N, *) of ``dtype``; the caller fills it (its pages are the file's, not the
    process's); :meth:`commit` flushes, syncs and renames it to ``path``; :meth:`abort`
    removes it. A process killed in between leaves only the temporary.
    """

    def __init__(self, path: str | os.PathLike[str], dtype: Any) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.array: np.memmap | None = None

    def open(self, shape: tuple[int, ...]) -> np.memmap:
        """The writable map of the temporary file, of ``shape``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype, shape=shape)
        return self.array

    def commit(self) -> None:
        """Make the written file ``path`` (flushed and synced first)."""
        if self.array is None:
            raise RuntimeError(f"{self.path}: commit() before open()")
        self.array.flush()
        self.array = None
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file."""
        self.array = None
        self.tmp.unlink(missing_ok=True)


def write_npy(path: str | os.PathLike[str], a: SampleArray, dtype: Any = np.float32) -> None:
    """Write ``a`` to ``path`` as a .npy of ``dtype``, chunk by chunk, atomically: the rows go
    to a temporary file beside ``path`` that is renamed to it only when complete."""
    writer = NpyWriter(path, dtype)
    try:
        out = writer.open(tuple(a.shape))
        as_stored = isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype)
        step = chunk_rows(a.shape)
        for start in range(0, len(a), step):  # stored values copied as they are, else float32
            part = slice(start, min(start + step, len(a)))
            out[part] = a[part] if as_stored else gather(a, part)
            faults.point("data.write")
        del out
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def open_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """A .npy file memory-mapped read-only (an empty array is read, as it cannot be mapped)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:
        arr = np.load(path, allow_pickle=False)
        if arr.size:
            raise
        return arr


def read_npy(path: str, key: str) -> np.ndarray:
    """A small .npy array (levels, a covariance) read whole as float64, or a one-line
    :class:`~sfbd.errors.DataError` naming ``key`` (the configuration key or flag)."""
    p = Path(path).expanduser()
    if p.suffix != ".npy":
        raise DataError(f"{key} must name a .npy file, got {path!r}")
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{key}: file {path!r} not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{key}: cannot read {path!r} as a .npy array ({exc})") from None
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{key}: {path!r} holds {arr.dtype} values, not real numbers")
    return np.asarray(arr, dtype=np.float64)
