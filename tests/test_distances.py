"""Tests for sfbd.metrics.distances against closed forms and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sfbd.metrics import bandwidth_median, data_range_of, mmd_rbf, psnr, sliced_wasserstein


def _gauss_mmd2(m: float, s: float, h: float) -> float:
    """Population MMD^2 between N(0, s^2) and N(m, s^2), kernel exp(-d^2 / (2 h^2))."""
    v = h * h + 2 * s * s
    return 2 * h / math.sqrt(v) * (1 - math.exp(-m * m / (2 * v)))


# ----------------------------------------------------------------------------- sliced W2


def test_swd_self_is_zero():
    x = np.random.default_rng(0).standard_normal((300, 4))
    assert sliced_wasserstein(x, x) == 0.0
    # Row order does not matter: it is a distance between empirical distributions.
    assert sliced_wasserstein(x, x[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_swd_shift_closed_form():
    # y = x + c shifts every projection by theta.c exactly, so SW2^2 = mean_theta (theta.c)^2,
    # whose expectation for theta uniform on S^{D-1} is ||c||^2 / D.
    rng = np.random.default_rng(1)
    d = 5
    x = rng.standard_normal((200, d))
    c = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    got = sliced_wasserstein(x, x + c, projections=20000, seed=3)
    assert got == pytest.approx(np.linalg.norm(c) / math.sqrt(d), rel=0.03)


def test_swd_1d_gaussians_exact_w2_unequal_sizes():
    # W2(N(0,1), N(m, s^2)) = sqrt(m^2 + (1 - s)^2); in 1-D every direction is +-1.
    rng = np.random.default_rng(2)
    m, s = 1.0, 0.5
    x = rng.standard_normal(20000)
    y = m + s * rng.standard_normal(15000)
    got = sliced_wasserstein(x, y, projections=8)
    assert got == pytest.approx(math.sqrt(m**2 + (1 - s) ** 2), rel=0.02)


def test_swd_unequal_sizes_exact_quantile_integral():
    # Qx = 0 on [0,1/2), 1 on [1/2,1); Qy = 0,1,2 on thirds.
    # Integral of (Qx - Qy)^2 = 1/6 (on [1/3,1/2)) + 1/3 (on [2/3,1)) = 1/2.
    x = np.array([[0.0], [1.0]])
    y = np.array([[2.0], [0.0], [1.0]])
    assert sliced_wasserstein(x, y, projections=4) == pytest.approx(math.sqrt(0.5), abs=1e-12)
    # Repeating every sample does not change the empirical distribution.
    z = np.random.default_rng(3).standard_normal((50, 3))
    w = np.random.default_rng(4).standard_normal((70, 3)) + 1.0
    base = sliced_wasserstein(z, w)
    assert sliced_wasserstein(np.repeat(z, 2, axis=0), w) == pytest.approx(base, rel=1e-10)
    assert sliced_wasserstein(np.repeat(z, 7, axis=0), np.repeat(w, 5, axis=0)) == pytest.approx(
        base, rel=1e-10
    )


def test_swd_symmetric_and_deterministic():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((120, 3))
    y = rng.standard_normal((90, 3)) * 2 + 1
    a = sliced_wasserstein(x, y, seed=7)
    assert sliced_wasserstein(y, x, seed=7) == pytest.approx(a, rel=1e-12)
    assert sliced_wasserstein(x, y, seed=7) == a
    assert sliced_wasserstein(x, y, seed=8) != a
    assert isinstance(a, float)


def test_swd_flattens_trailing_dims():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 2, 3))
    y = rng.standard_normal((40, 2, 3))
    assert sliced_wasserstein(x, y) == sliced_wasserstein(x.reshape(40, 6), y.reshape(40, 6))


# ----------------------------------------------------------------------------- MMD


def test_mmd_same_distribution_near_zero():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1500, 2))
    y = rng.standard_normal((1500, 2))
    # Under H0 the U-statistic has mean 0 and std O(1/n); 0.005 is ~10 std here.
    assert abs(mmd_rbf(x, y)) < 0.005


def test_mmd_grows_with_shift():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((800, 2))
    y = rng.standard_normal((800, 2))
    vals = [mmd_rbf(x, y + np.array([s, 0.0]), bandwidth=1.0) for s in (0.0, 0.5, 1.0, 2.0)]
    # Population values (D=2, h=1): 2/3 * (1 - exp(-s^2/6)) = 0, 0.027, 0.102, 0.325.
    assert abs(vals[0]) < 0.005
    assert vals[1] > 0.015
    assert vals[0] < vals[1] < vals[2] < vals[3]


def test_mmd_gaussian_closed_form():
    rng = np.random.default_rng(12)
    m, s, h = 2.0, 1.0, 2.0
    x = s * rng.standard_normal(2000)
    y = m + s * rng.standard_normal(2000)
    assert mmd_rbf(x, y, bandwidth=h) == pytest.approx(_gauss_mmd2(m, s, h), rel=0.1)


def test_mmd_unbiased_hand_example():
    # x = {0, 1}, y = {0, 2}, h = 1: mean_{i!=j} k(x) = e^-0.5, mean_{i!=j} k(y) = e^-2,
    # mean k(x, y) = (1 + e^-2 + 2 e^-0.5) / 4, so MMD^2_u = (e^-2 - 1) / 2 < 0 (the V-statistic,
    # which keeps the diagonal, would be positive).
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.0], [2.0]])
    assert mmd_rbf(x, y, bandwidth=1.0) == pytest.approx((math.exp(-2) - 1) / 2, rel=1e-12)


def test_mmd_subsampling_and_bandwidth_rule():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((300, 3))
    y = rng.standard_normal((200, 3)) + 1
    # Median rule equals the explicit bandwidth it reports.
    h = bandwidth_median(x, y)
    assert mmd_rbf(x, y) == pytest.approx(mmd_rbf(x, y, bandwidth=h), rel=1e-12)
    z = np.concatenate([x, y])
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)[np.triu_indices(len(z), 1)]
    assert h == pytest.approx(float(np.median(d)), rel=1e-12)
    # Subsampling is deterministic given the seed and differs across seeds.
    a = mmd_rbf(x, y, max_samples=100, seed=1)
    assert mmd_rbf(x, y, max_samples=100, seed=1) == a
    assert mmd_rbf(x, y, max_samples=100, seed=2) != a


def test_mmd_symmetric():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((100, 2))
    y = rng.standard_normal((80, 2)) + 0.3
    assert mmd_rbf(x, y, bandwidth=1.5) == pytest.approx(mmd_rbf(y, x, bandwidth=1.5), rel=1e-10)


# ----------------------------------------------------------------------------- PSNR


def test_psnr_hand_example():
    ref = np.zeros((2, 3, 4, 4))
    assert psnr(ref + 0.1, ref, data_range=2.0) == pytest.approx(10 * math.log10(4 / 0.01))
    assert psnr(ref + 0.1, ref, data_range=2.0) == pytest.approx(26.0206, abs=1e-4)
    assert psnr(ref, ref, data_range=2.0) == math.inf


def test_data_range_of():
    assert data_range_of(np.array([[-3.0, 1.0], [2.0, 0.5]])) == 5.0


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("fn", [sliced_wasserstein, mmd_rbf])
def test_validation(fn):
    good = np.zeros((4, 3))
    with pytest.raises(ValueError, match="x has 3 features but y has 2"):
        fn(good, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="empty"):
        fn(np.zeros((0, 3)), good)
    bad = good.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fn(good, bad)


def test_psnr_validation():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros(3), np.zeros(4), data_range=1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(np.zeros(3), np.ones(3), data_range=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        psnr(np.array([np.inf]), np.zeros(1), data_range=1.0)
