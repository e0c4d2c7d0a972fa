"""Memory-mapping one array of an uncompressed .npz file.

``np.savez`` stores each array as a ``NAME.npy`` member without compression (ZIP_STORED), so
its bytes lie as they are inside the zip: after the member's local file header (30 bytes, then
the file name and an extra field, whose lengths are at offsets 26 and 28) comes an ordinary
.npy file, header and data. :func:`open_member` maps that data read-only with ``np.memmap``
instead of reading it (``np.load(..., mmap_mode=...)`` ignores the mode for .npz files).
Compressed members (``np.savez_compressed``) and empty arrays are read into memory instead.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

_LOCAL_HEADER = 30  # fixed part of a zip local file header


def open_member(path: str | Path, name: str) -> np.ndarray:
    """Array ``name`` of the .npz at ``path``: memory-mapped when stored uncompressed.

    Raises ``KeyError`` if the file has no such array, and ``zipfile.BadZipFile``,
    ``ValueError``, ``OSError`` or ``EOFError`` for a file that is not a complete .npz.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size == 0:
            with zf.open(info) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
        header_offset = info.header_offset
    with open(path, "rb") as fh:
        fh.seek(header_offset)
        local = fh.read(_LOCAL_HEADER)
        if len(local) < _LOCAL_HEADER or local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {name}.npy in {path}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(header_offset + _LOCAL_HEADER + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:  # format 3.0 (utf-8 field names): read it whole
            with zipfile.ZipFile(path) as zf, zf.open(f"{name}.npy") as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError(f"{name}.npy in {path} holds Python objects")
    count = int(np.prod(shape))
    if count == 0:
        return np.zeros(shape, dtype)
    end = offset + count * dtype.itemsize
    if end > path.stat().st_size:
        raise EOFError(f"{name}.npy in {path} is truncated")
    order = "F" if fortran else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
