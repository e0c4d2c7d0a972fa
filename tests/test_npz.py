"""Memory-mapped .npz members (sfbd.io.npz): the mapped array is the saved one."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from sfbd.io.npz import open_member


def test_uncompressed_members_are_mapped_and_equal_the_saved_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 5, 5)).astype(np.float16)
    f = np.asfortranarray(rng.standard_normal((6, 7)))
    np.savez(tmp_path / "a.npz", index=np.arange(40), x=x, f=f, empty=np.zeros((0, 3)))
    got = open_member(tmp_path / "a.npz", "x")
    assert isinstance(got, np.memmap) and got.dtype == np.float16
    assert np.array_equal(got, x) and np.array_equal(open_member(tmp_path / "a.npz", "f"), f)
    assert np.array_equal(open_member(tmp_path / "a.npz", "index"), np.arange(40))
    assert open_member(tmp_path / "a.npz", "empty").shape == (0, 3)
    with pytest.raises(KeyError):
        open_member(tmp_path / "a.npz", "nope")


def test_compressed_members_are_read_and_damaged_files_refused(tmp_path):
    x = np.arange(1000, dtype=np.float32).reshape(100, 10)
    np.savez_compressed(tmp_path / "c.npz", x=x)
    got = open_member(tmp_path / "c.npz", "x")
    assert not isinstance(got, np.memmap) and np.array_equal(got, x)
    np.savez(tmp_path / "t.npz", x=x)
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises((zipfile.BadZipFile, EOFError, ValueError, OSError)):
        open_member(tmp_path / "cut.npz", "x")
