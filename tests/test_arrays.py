"""Sample arrays (sfbd.io.arrays): lazy views read by index give exactly the values of the
whole-array computation they stand for, and stored arrays are written atomically."""

from __future__ import annotations

import numpy as np
import pytest

from sfbd.data.images import to_model_space
from sfbd.io.arrays import (
    Samples,
    Stacked,
    chunk_rows,
    chunks,
    gather,
    nonfinite_rows,
    open_npy,
    value_range,
    write_npy,
)


@pytest.fixture
def images(tmp_path):
    raw = np.random.default_rng(0).integers(0, 256, (300, 3, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "u.npy", raw)
    return raw, open_npy(tmp_path / "u.npy")


def test_uint8_view_reads_the_whole_conversion_bit_for_bit(images):
    raw, mapped = images
    assert isinstance(mapped, np.memmap)
    whole = to_model_space(raw)
    view = Samples(mapped)
    assert view.shape == (300, 3, 4, 4) and view.dtype == np.float32 and len(view) == 300
    idx = np.array([5, 299, 0, 5, 17])
    assert np.array_equal(view[idx], whole[idx])
    assert np.array_equal(view[10:20], whole[10:20])
    assert np.array_equal(view[::7], whole[::7])
    assert np.array_equal(view[-1], whole[-1])
    assert np.array_equal(view[whole[:, 0, 0, 0] > 0], whole[whole[:, 0, 0, 0] > 0])
    assert np.array_equal(np.asarray(view), whole)
    assert view[[]].shape == (0, 3, 4, 4)
    with pytest.raises(IndexError):
        view[np.array([300])]


def test_row_views_compose_and_functions_see_their_positions(images):
    raw, mapped = images
    whole = to_model_space(raw)
    rows = np.array([7, 3, 250, 100])
    seen = []

    def fn(x, pos):
        seen.append(pos.copy())
        return x + pos.reshape(-1, 1, 1, 1)

    view = Samples(Samples(mapped, rows=rows), fn=fn)
    assert view.computed and not Samples(mapped).computed
    got = view[np.array([2, 0])]
    assert np.array_equal(got, whole[[250, 7]] + np.array([2, 0]).reshape(-1, 1, 1, 1))
    assert np.array_equal(seen[-1], [2, 0])
    assert np.array_equal(view[1:3], whole[[3, 250]] + np.array([1, 2]).reshape(-1, 1, 1, 1))


def test_stacked_reads_across_parts_as_the_concatenation():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 3)).astype(np.float32)
    b = Samples(rng.integers(0, 256, (20, 3), dtype=np.uint8))
    c = rng.standard_normal((1, 3)).astype(np.float64)
    st = Stacked([a, b, Samples(c)])
    cat = np.concatenate([a, np.asarray(b), c.astype(np.float32)])
    idx = rng.integers(0, 71, 500)
    assert np.array_equal(st[idx], cat[idx]) and np.array_equal(gather(st, idx), cat[idx])
    assert np.array_equal(st[45:55], cat[45:55]) and len(st) == 71
    with pytest.raises(ValueError, match="different sample shapes"):
        Stacked([a, np.zeros((2, 4), np.float32)])


def test_chunks_cover_every_row_once_and_helpers_read_them():
    x = np.arange(10 * 6, dtype=np.float32).reshape(10, 6)
    x[3, 2] = np.nan
    x[8, 0] = np.inf
    starts = [(s, len(c)) for s, c in chunks(x, rows=4)]
    assert starts == [(0, 4), (4, 4), (8, 2)]
    assert chunk_rows((10, 6), elements=13) == 2 and chunk_rows((10, 600), elements=13) == 1
    assert nonfinite_rows(x) == 2 and nonfinite_rows(Samples(x.astype(np.float64))) == 2
    y = np.arange(12, dtype=np.float32).reshape(4, 3) - 5
    assert value_range(y) == (-5.0, 6.0)


def test_write_npy_keeps_uint8_stores_views_as_float32_and_maps_them(tmp_path, images):
    raw, mapped = images
    write_npy(tmp_path / "copy.npy", mapped, np.uint8)
    back = open_npy(tmp_path / "copy.npy")
    assert back.dtype == np.uint8 and np.array_equal(back, raw)
    view = Samples(mapped, rows=np.arange(299, -1, -3))
    write_npy(tmp_path / "view.npy", view)
    got = open_npy(tmp_path / "view.npy")
    assert got.dtype == np.float32 and np.array_equal(got, np.asarray(view))
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    calls = []

    def fail_late(x, pos):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk on fire")
        return x

    big = Samples(np.zeros((3 * chunk_rows((1, 1000)), 1000), np.float32), fn=fail_late)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_npy(tmp_path / "x.npy", big)
    assert list(tmp_path.iterdir()) == []


def test_lazy_arrays_support_arithmetic_and_common_methods(images):
    raw, mapped = images
    view, whole = Samples(mapped), to_model_space(raw)
    assert np.array_equal(view - whole, np.zeros_like(whole))
    assert view.min() == whole.min() and view.reshape(300, -1).shape == (300, 48)
    assert np.allclose(np.mean(view), whole.mean())
