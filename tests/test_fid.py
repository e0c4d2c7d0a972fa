"""Tests for sfbd.metrics.fid: Fréchet distance against closed forms, stats files, and the
whole image -> features -> FID path with a seeded random-weights Inception (offline)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from torch import nn

from sfbd.errors import DataError
from sfbd.metrics import (
    FIDInceptionV3,
    extract_features,
    feature_stats,
    fid_from_images,
    frechet_distance,
    load_inception,
    load_stats,
    save_stats,
)
from sfbd.metrics.fid import feature_sums, quantize_8bit, stats_from_sums

# ----------------------------------------------------------------------------- formula


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_identical_gaussians_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(16), _spd(rng, 16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("m1", "s1", "m2", "s2"), [(0.0, 1.0, 3.0, 2.0), (-1.5, 0.3, 0.2, 0.3)])
def test_one_dimensional(m1: float, s1: float, m2: float, s2: float):
    want = (m1 - m2) ** 2 + s1**2 + s2**2 - 2 * s1 * s2
    got = frechet_distance(np.array([m1]), np.array([[s1**2]]), np.array([m2]), np.array([[s2**2]]))
    assert got == pytest.approx(want, rel=1e-10, abs=1e-12)
    # Scalars are read as D = 1.
    assert frechet_distance(m1, s1**2, m2, s2**2) == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_diagonal_covariances():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    a, b = rng.uniform(0.1, 3.0, 8), rng.uniform(0.1, 3.0, 8)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(want, rel=1e-9)


def test_commuting_covariances():
    # Same eigenvectors U: sqrt(S1 S2) = U diag(sqrt(a b)) U^T, so the trace term is
    # sum (sqrt(a) - sqrt(b))^2, as in the diagonal case.
    rng = np.random.default_rng(2)
    u = ortho_group.rvs(6, random_state=3)
    a, b = rng.uniform(0.2, 4.0, 6), rng.uniform(0.2, 4.0, 6)
    s1, s2 = u @ np.diag(a) @ u.T, u @ np.diag(b) @ u.T
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)


def test_symmetric_and_positive():
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    s1, s2 = _spd(rng, 10), _spd(rng, 10)
    d12 = frechet_distance(mu1, s1, mu2, s2)
    d21 = frechet_distance(mu2, s2, mu1, s1)
    assert d12 == pytest.approx(d21, rel=1e-9)
    assert d12 > 0
    # Only the mean moves: the covariance terms cancel exactly.
    assert frechet_distance(mu1, s1, mu2, s1) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-8)


def test_near_singular_stays_finite_and_real():
    # Fewer samples than dimensions: rank-deficient covariances, as with small FID sets.
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 32)), rng.standard_normal((5, 32)) + 0.5
    (m1, s1), (m2, s2) = feature_stats(x), feature_stats(y)
    assert np.linalg.matrix_rank(s1) < 32
    d = frechet_distance(m1, s1, m2, s2)
    assert isinstance(d, float) and math.isfinite(d) and d > 0
    # A defective (nilpotent) product has no square root: the eps retry still gives a number.
    s_a = np.array([[1.0, 0.0], [0.0, 0.0]])
    s_b = np.array([[0.0, 0.0], [0.0, 1.0]])
    d0 = frechet_distance(np.zeros(2), s_a, np.zeros(2), s_b)
    assert math.isfinite(d0) and d0 == pytest.approx(2.0, abs=1e-2)
    # Rank-deficient identical inputs: ~0 up to the round-off of sqrt of ~0 eigenvalues.
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-5)


def test_formula_input_checks():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="mu1 has shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(np.array([np.nan]), np.eye(1), np.zeros(1), np.eye(1))


def test_large_imaginary_part_is_an_error():
    # Not a covariance: sigma1 @ sigma2 = -I has the purely imaginary root i I.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))


def test_feature_stats_unbiased():
    rng = np.random.default_rng(6)
    f = rng.standard_normal((50, 3)).astype(np.float32)
    mu, sigma = feature_stats(f)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0))
    centred = f.astype(np.float64) - mu
    np.testing.assert_allclose(sigma, centred.T @ centred / 49)
    assert feature_stats(f[:, :1])[1].shape == (1, 1)
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(f[:1])


# ----------------------------------------------------------------------------- stats files


def test_stats_round_trip(tmp_path: Path):
    rng = np.random.default_rng(7)
    mu, sigma = rng.standard_normal(5), _spd(rng, 5)
    path = tmp_path / "sub" / "ref_stats"  # no suffix: written exactly here
    save_stats(path, mu, sigma)
    assert path.is_file()
    with np.load(path) as data:  # the pytorch-fid / EDM layout
        assert sorted(data.files) == ["mu", "sigma"]
    mu2, sigma2 = load_stats(path)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)


def test_load_stats_errors(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_stats(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", m=np.zeros(2))
    with pytest.raises(DataError, match="'mu' and 'sigma'"):
        load_stats(tmp_path / "bad.npz")
    np.savez(tmp_path / "shape.npz", mu=np.zeros(2), sigma=np.eye(3))
    with pytest.raises(DataError, match="shape"):
        load_stats(tmp_path / "shape.npz")


# ----------------------------------------------------------------------------- features


class _MeanModel(nn.Module):
    """Cheap stand-in: per-channel means, returned as (B, 3, 1, 1) like pytorch-fid's blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.seen.append(tuple(x.shape))
        return [x.mean(dim=(2, 3), keepdim=True)]


def test_extract_features_batches_and_grayscale():
    rng = np.random.default_rng(8)
    gray = rng.uniform(-1, 1, (5, 1, 4, 4)).astype(np.float32)
    m = _MeanModel()
    f = extract_features(m, gray, batch_size=2, quantize=False)
    assert m.seen == [(2, 3, 4, 4), (2, 3, 4, 4), (1, 3, 4, 4)]
    assert f.shape == (5, 3) and f.dtype == np.float32
    want = gray.mean(axis=(2, 3))
    np.testing.assert_allclose(f, np.repeat(want, 3, axis=1), rtol=1e-6)
    np.testing.assert_allclose(extract_features(m, torch.from_numpy(gray), quantize=False), f)


def test_quantize_8bit_keeps_the_uint8_levels_and_rounds_to_the_nearest():
    levels = torch.arange(256, dtype=torch.float32) / 127.5 - 1.0  # as uint8 files are read
    assert torch.equal(quantize_8bit(levels), levels)
    x = torch.linspace(-1.2, 1.2, 10001)
    steps = (x + 1) * 127.5
    x = x[(steps - steps.floor() - 0.5).abs() > 1e-3]  # halfway points (x = 0 is one) aside
    q = quantize_8bit(x)
    nearest = levels[(x.clamp(-1, 1)[:, None] - levels[None]).abs().argmin(dim=1)]
    assert torch.equal(q, nearest)
    assert quantize_8bit(torch.tensor([0.0])).item() == levels[128]  # halves round up
    assert (q - x.clamp(-1, 1)).abs().max() <= 1 / 255 + 1e-6


class _ConvModel(nn.Module):
    """A convolution and a linear layer: what autocast would run in bfloat16."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 3)
        self.fc = nn.Linear(16, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_features_are_float32_even_when_the_caller_enabled_bf16_autocast():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    m = _ConvModel()
    want = extract_features(m, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert m(x).dtype == torch.bfloat16  # the caller's autocast is live...
        got = extract_features(m, x)  # ...but not inside the feature extraction
    np.testing.assert_array_equal(got, want)


def test_features_are_taken_of_the_8bit_images_by_default():
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.uniform(-1, 1, (6, 3, 4, 4)).astype(np.float32))
    m = _MeanModel()
    got = extract_features(m, x)
    np.testing.assert_array_equal(got, extract_features(m, quantize_8bit(x), quantize=False))
    assert np.abs(got - extract_features(m, x, quantize=False)).max() > 1e-5


def test_extract_features_input_checks():
    m = _MeanModel()
    with pytest.raises(DataError, match="shape"):
        extract_features(m, np.zeros((2, 2, 4, 4)))
    with pytest.raises(DataError, match="NaN"):
        extract_features(m, np.full((2, 3, 4, 4), np.nan))
    with pytest.warns(UserWarning, match=r"\[-1, 1\]"):
        extract_features(m, np.full((2, 3, 4, 4), 255.0))


# ----------------------------------------------------------------------------- whole path


@pytest.fixture(scope="module")
def inception_from_file(tmp_path_factory: pytest.TempPathFactory) -> FIDInceptionV3:
    """Seeded random weights saved in the weight-file format, then loaded by load_inception."""
    torch.manual_seed(0)
    net = FIDInceptionV3()
    for mod in net.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("fid") / "random_inception.pth"
    torch.save(net.state_dict(), path)
    return load_inception(path)


def test_fid_whole_path(inception_from_file: FIDInceptionV3, tmp_path: Path):
    # Each 2048-d Frechet distance is a scipy sqrtm of a 2048 x 2048 matrix (~20 s on one CPU
    # thread), so this test computes only two.
    g = torch.Generator().manual_seed(9)
    images = torch.rand(3, 3, 32, 32, generator=g) * 1.6 - 0.8
    shifted = (images + 0.4).clamp(-1, 1)

    feats = extract_features(inception_from_file, images, batch_size=2)
    assert feats.shape == (3, 2048)
    mu, sigma = feature_stats(feats)
    ref = tmp_path / "ref.npz"
    save_stats(ref, mu, sigma)

    # Same set against its own stats: ~0 (features recomputed, so up to float32 round-off).
    same = fid_from_images(inception_from_file, images, ref, batch_size=3)
    assert abs(same) < 1e-3

    # A brightness shift moves the features: clearly positive (reference given as a tuple).
    moved = fid_from_images(inception_from_file, shifted, (mu, sigma), batch_size=3)
    assert moved > 100 * max(abs(same), 1e-6)


def test_feature_sums_added_over_shards_give_the_same_statistics():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6)) + 0.4
    parts = [feature_sums(f[i : i + 128]) for i in range(0, 500, 128)]
    s1 = sum(p[0] for p in parts)
    s2 = sum(p[1] for p in parts)
    n = sum(p[2] for p in parts)
    mu, sigma = stats_from_sums(s1, s2, n)
    mu0, sigma0 = feature_stats(f)
    assert np.allclose(mu, mu0, rtol=1e-12, atol=1e-12)
    assert np.allclose(sigma, sigma0, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        stats_from_sums(s1, s2, 1)
