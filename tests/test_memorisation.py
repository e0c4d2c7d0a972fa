"""Tests for sfbd.metrics.memorisation against brute force and cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sfbd.io.arrays import Samples
from sfbd.metrics.memorisation import (
    copy_rate,
    copy_ratios,
    leave_one_out,
    memorisation_metrics,
    nearest_pairs,
    nearest_two,
    nn_ratio,
)


def _brute(x: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d1, d2, idx) from the full (N, M) matrix of distances, differences in float64."""
    a = np.asarray(x, np.float64).reshape(len(x), -1)
    c = np.asarray(clean, np.float64).reshape(len(clean), -1)
    d = np.sqrt(((a[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")
    rows = np.arange(len(a))
    return d[rows, order[:, 0]], d[rows, order[:, 1]], order[:, 0]


def _gauss(seed: int, n: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((m, d))


# ----------------------------------------------------------------------------- nearest_two


@pytest.mark.parametrize("shape", [(7,), (1, 8, 8), (3, 4, 5)])
def test_nearest_two_matches_brute_force(shape):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (23, *shape)).astype(np.float32)
    clean = rng.uniform(-1, 1, (17, *shape)).astype(np.float32)
    d1, d2, idx = nearest_two(x, clean, device="cpu")
    b1, b2, bi = _brute(x, clean)
    assert d1.dtype == np.float64 and idx.dtype == np.int64 and d1.shape == (23,)
    np.testing.assert_array_equal(idx, bi)
    np.testing.assert_allclose(d1, b1, rtol=1e-12)
    np.testing.assert_allclose(d2, b2, rtol=1e-12)
    assert np.all(d1 <= d2)


def test_nearest_two_one_dimensional_samples():
    # an (N,) array is N samples in R^1
    d1, d2, idx = nearest_two(np.array([0.1, 2.6, -5.0]), np.array([0.0, 1.0, 3.0]))
    np.testing.assert_allclose(d1, [0.1, 0.4, 5.0])
    np.testing.assert_allclose(d2, [0.9, 1.6, 6.0])
    np.testing.assert_array_equal(idx, [0, 2, 0])


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 16, 50, 1000])
def test_nearest_two_chunk_invariance(chunk):
    # N = 41 and M = 29 are prime: no chunk size above 1 divides them
    x, clean = _gauss(2, 41, 29, 6)
    ref = nearest_two(x, clean)
    got = nearest_two(x, clean, chunk=chunk)
    np.testing.assert_array_equal(got[2], ref[2])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-12)
    loo = leave_one_out(clean, chunk=chunk)
    np.testing.assert_allclose(loo, leave_one_out(clean), rtol=1e-12)


def test_nearest_two_large_clean_set_read_per_block(monkeypatch):
    # a clean set above the device cache is read again for every block of x: same answer
    import sfbd.metrics.memorisation as mem

    x, clean = _gauss(3, 30, 20, 5)
    ref = nearest_two(x, clean, chunk=4)
    monkeypatch.setattr(mem, "_CACHE_ELEMENTS", 10)
    got = nearest_two(x, clean, chunk=4)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_exact_copies_give_zero_distance():
    # values of size ~30 (norms ~1e4): the expansion alone would leave ~1e-6 of round-off
    rng = np.random.default_rng(4)
    clean = rng.uniform(0, 60, (50, 3, 8, 8)).astype(np.float32)
    pick = rng.integers(0, 50, 80)
    d1, d2, idx = nearest_two(clean[pick], clean, chunk=16)
    assert np.all(d1 == 0.0)
    np.testing.assert_array_equal(idx, pick)
    assert np.all(d2 > 1.0)


def test_nearest_two_reads_sample_arrays_and_memmaps(tmp_path):
    # a memory-mapped uint8 store read through a Samples view (float32 rows in [-1, 1])
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "clean.npy", raw)
    view = Samples(np.load(tmp_path / "clean.npy", mmap_mode="r"))
    as_float = raw.astype(np.float32) / 127.5 - 1.0
    x = as_float[[3, 9, 9, 20]] + 0.01
    got = nearest_two(x, view, chunk=7)
    ref = _brute(x, as_float)
    np.testing.assert_array_equal(got[2], [3, 9, 9, 20])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-10)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-10)
    # a read-only float64 memmap is read without a warning
    np.save(tmp_path / "x.npy", x.astype(np.float64))
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_allclose(nearest_two(mm, as_float)[0], ref[0], rtol=1e-10)


def test_nearest_two_errors():
    x, clean = _gauss(6, 5, 4, 3)
    with pytest.raises(ValueError, match="at least 2"):
        nearest_two(x, clean[:1])
    with pytest.raises(ValueError, match="3 features but clean has 4"):
        nearest_two(x, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="x is empty"):
        nearest_two(x[:0], clean)
    with pytest.raises(ValueError, match="clean is empty"):
        nearest_two(x, clean[:0])
    with pytest.raises(ValueError, match="scalar"):
        nearest_two(np.float64(1.0), clean)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x contains non-finite"):
        nearest_two(bad, clean)
    with pytest.raises(ValueError, match="clean contains non-finite"):
        nearest_two(clean, bad)
    with pytest.raises(ValueError, match="chunk"):
        nearest_two(x, clean, chunk=0)
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out(clean[:1])
    with pytest.raises(ValueError, match="ratio"):
        copy_rate(x, clean, ratio=0.0)
    with pytest.raises(ValueError, match="n must be"):
        nearest_pairs(x, clean, 0)


# ----------------------------------------------------------------------------- leave one out


def test_leave_one_out_matches_brute_force_and_duplicates():
    rng = np.random.default_rng(7)
    clean = rng.standard_normal((31, 2, 3))
    clean[10] = clean[4]  # a duplicated pair: each one's nearest other is at 0
    d = np.sqrt(((clean.reshape(31, 1, -1) - clean.reshape(1, 31, -1)) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    for chunk in (None, 1, 4, 31):
        loo = leave_one_out(clean, chunk=chunk)
        np.testing.assert_allclose(loo, d.min(1), rtol=1e-12)
        assert loo[4] == 0.0 and loo[10] == 0.0
        assert np.all(np.delete(loo, [4, 10]) > 0)
    # M = 2: each one's nearest other is the other one
    np.testing.assert_allclose(leave_one_out(np.array([[0.0, 0.0], [3.0, 4.0]])), [5.0, 5.0])


# ----------------------------------------------------------------------------- the metrics


def test_copies_give_copy_rate_one_and_nn_ratio_zero():
    x, clean = _gauss(8, 10, 120, 10)
    pick = np.random.default_rng(9).integers(0, 120, 300)
    m = memorisation_metrics(clean[pick] + 0.0, clean)
    assert m == {"copy_rate": 1.0, "nn_ratio": 0.0}
    assert copy_rate(clean[pick], clean) == 1.0
    assert nn_ratio(clean[pick], clean) == 0.0


def test_independent_samples_give_copy_rate_zero_and_nn_ratio_one():
    # x and clean iid N(0, I_10): a fresh point's nearest-clean distance has the law of a
    # left-out clean point's, so nn_ratio ~ 1. Over 200 seeds (numpy brute force) nn_ratio had
    # mean 1.0025, sd 0.024, range [0.927, 1.072]; copy_rate mean 2e-5, max 0.002.
    x, clean = _gauss(10, 500, 200, 10)
    m = memorisation_metrics(x, clean, chunk=64)
    assert m["copy_rate"] < 0.01
    assert 0.9 < m["nn_ratio"] < 1.1
    b1, b2, _ = _brute(x, clean)
    d = np.sqrt(((clean[:, None] - clean[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    assert m["nn_ratio"] == pytest.approx(np.median(b1) / np.median(d.min(1)), rel=1e-12)
    assert m["copy_rate"] == np.mean(b1 / b2 < 1 / 3)


def test_half_copies_give_copy_rate_one_half():
    rng = np.random.default_rng(11)
    clean = rng.standard_normal((200, 10))
    copies = clean[rng.integers(0, 200, 250)] + 1e-3 * rng.standard_normal((250, 10))
    fresh = rng.standard_normal((250, 10))
    x = np.concatenate([copies, fresh])[rng.permutation(500)]
    assert copy_rate(x, clean) == pytest.approx(0.5, abs=0.01)
    # the median of d1 falls between the copies (~0.003) and the fresh samples (~1.5)
    assert 0.0 < nn_ratio(x, clean) < 1.0
    assert copy_rate(copies, clean) == 1.0


def test_nn_ratio_clean_median_given_and_degenerate():
    x, clean = _gauss(12, 40, 30, 4)
    med = float(np.median(leave_one_out(clean)))
    assert nn_ratio(x, clean, clean_median=med) == nn_ratio(x, clean)
    assert memorisation_metrics(x, clean, clean_median=med) == memorisation_metrics(x, clean)
    # more than half the clean set duplicated: the denominator is 0
    dup = np.repeat(clean[:10], 3, axis=0)
    assert nn_ratio(x, dup) == math.inf
    assert math.isnan(nn_ratio(dup[:5], dup))
    # an exact copy of a duplicated clean sample (d1 = d2 = 0) still counts as a copy
    assert copy_rate(dup[:5], dup) == 1.0


def test_copy_ratios_and_threshold():
    np.testing.assert_array_equal(
        copy_ratios([0.0, 1.0, 2.0, 0.0], [0.0, 4.0, 2.0, 1.0]), [0, 0.25, 1, 0]
    )
    # x at 1 from clean 0 and at 2 from clean 1 -> d1 / d2 = 1/2: a copy for r > 1/2 only
    x, clean = np.array([[1.0]]), np.array([[0.0], [3.0]])
    assert copy_rate(x, clean) == 0.0
    assert copy_rate(x, clean, ratio=0.5) == 0.0  # strict
    assert copy_rate(x, clean, ratio=0.51) == 1.0


def test_nearest_pairs():
    rng = np.random.default_rng(13)
    clean = rng.uniform(-1, 1, (20, 1, 8, 8))
    x = np.concatenate([clean[[5, 2]] + 1e-3, rng.uniform(-1, 1, (6, 1, 8, 8))])
    samples, nearest, ratios = nearest_pairs(x, clean, 4)
    b1, b2, bi = _brute(x[:4], clean)
    np.testing.assert_array_equal(samples, x[:4])
    np.testing.assert_array_equal(nearest, clean[bi])
    assert nearest.shape == (4, 1, 8, 8) and bi[0] == 5 and bi[1] == 2
    np.testing.assert_allclose(ratios, b1 / b2, rtol=1e-12)
    assert np.all(ratios[:2] < 0.01) and np.all(ratios[2:] > 1 / 3)
    # more pairs than samples: all of them
    assert nearest_pairs(x, clean, 100)[0].shape == (8, 1, 8, 8)
