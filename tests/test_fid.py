"""Tests for sfbd.metrics.fid: Fréchet distance against closed forms and against the
scipy.linalg.sqrtm formula it replaced, stats files, and the whole image -> features -> FID path
with a seeded random-weights Inception (offline)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
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
from sfbd.metrics.fid import COV_TOL, feature_sums, quantize_8bit, stats_from_sums

ROOT = Path(__file__).resolve().parents[1]

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
    # Orthogonal supports: S_a S_b = 0, so the trace term is 0 and FD = tr S_a + tr S_b = 2.
    s_a = np.array([[1.0, 0.0], [0.0, 0.0]])
    s_b = np.array([[0.0, 0.0], [0.0, 1.0]])
    d0 = frechet_distance(np.zeros(2), s_a, np.zeros(2), s_b)
    assert math.isfinite(d0) and d0 == pytest.approx(2.0, abs=1e-12)
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


# ------------------------------------------------- against the scipy.linalg.sqrtm formula


def _sqrtm_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The formula frechet_distance replaced (pytorch-fid's): the trace of the real part of
    scipy.linalg.sqrtm(S_1 S_2), with eps = 1e-6 added to both covariances if it is not
    finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(s1 @ s2)
        if not np.all(np.isfinite(root)):
            offset = 1e-6 * np.eye(len(s1))
            root = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    assert np.all(np.isfinite(root))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root).real)


def _relu_features(seed: int, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """``n`` feature vectors like a network's pooled features: ``relu(G W + shift) * c`` with
    Gaussian ``G`` ``(n, d // 8)``, ``W`` one fixed ``W0`` plus a seed's perturbation, fixed
    per-feature scales ``c`` log-uniform over two decades, and a sixteenth of the features dead
    (always 0). The covariance is singular through the dead features and, when ``n <= d``,
    of rank ``n - 1``; otherwise its condition number on the live features is ~1e6."""
    r = d // 8
    rng0 = np.random.default_rng(0)
    w, c = rng0.standard_normal((r, d)) / np.sqrt(r), 10.0 ** (-2.0 * rng0.uniform(size=d))
    rng = np.random.default_rng(seed)
    w = w + 0.3 * rng.standard_normal((r, d)) / np.sqrt(r)
    f = np.maximum(rng.standard_normal((n, r)) @ w + shift, 0.0) * c
    f[:, : d // 16] = 0.0
    return f.astype(np.float32)  # as features come out of the network


@pytest.mark.parametrize(("d", "n"), [(256, 128), (256, 384), (512, 300), (512, 1000)])
def test_equals_the_sqrtm_formula_on_realistic_statistics(d: int, n: int):
    (m1, s1), (m2, s2) = (
        feature_stats(_relu_features(1, n, d)),
        feature_stats(_relu_features(2, n, d, shift=0.1)),
    )
    want = _sqrtm_frechet(m1, s1, m2, s2)
    got = frechet_distance(m1, s1, m2, s2)
    assert want > 0.01 * np.trace(s1)  # two clearly different distributions
    assert abs(got - want) <= 1e-6 * abs(want)
    # Symmetric in its arguments (to round-off, not only to the 1e-6 above).
    assert abs(frechet_distance(m2, s2, m1, s1) - got) <= 1e-8 * abs(got)
    # Identical distributions: 0 to round-off of the trace.
    assert abs(frechet_distance(m1, s1, m1, s1)) <= 1e-8 * np.trace(s1)


def test_equals_the_sqrtm_formula_on_covariances_summed_in_float32():
    # Fewer samples than dimensions, covariances summed in float32: the null space holds
    # round-off of ~1e-6 of the scale, of both signs. These take the eigh route; the pivoted
    # Cholesky alone, dropping some of that round-off and keeping the rest, is 1.2e-6 off here.
    d, n = 512, 200
    stats = []
    for f in (_relu_features(5, n, d), _relu_features(6, n, d, shift=0.1)):
        c = f - f.mean(axis=0)
        s = (c.T @ c / np.float32(n - 1)).astype(np.float64)
        stats.append((f.mean(axis=0).astype(np.float64), (s + s.T) / 2))
    (m1, s1), (m2, s2) = stats
    assert np.linalg.eigvalsh(s1)[0] < -1e-9 * np.abs(s1).max()  # indefinite by round-off
    want = _sqrtm_frechet(m1, s1, m2, s2)
    assert abs(frechet_distance(m1, s1, m2, s2) - want) <= 1e-6 * want
    assert abs(frechet_distance(m2, s2, m1, s1) - want) <= 1e-6 * want


def test_rank_deficient_covariance_against_the_exact_value():
    # Sigma_1 = X^T X with centred X (n, d), n < d: tr (Sigma_1^1/2 Sigma_2 Sigma_1^1/2)^1/2 is
    # also the sum of the square roots of the eigenvalues of the small X Sigma_2 X^T (n, n)
    # (same nonzero eigenvalues), a route with no d - n zero eigenvalues to round off.
    d, n = 384, 150
    f1, f2 = _relu_features(3, n, d), _relu_features(4, 4 * d, d, shift=0.2)
    (m1, s1), (m2, s2) = feature_stats(f1), feature_stats(f2)
    assert np.linalg.matrix_rank(s1) == n - 1
    x = (f1 - f1.mean(axis=0)) / np.sqrt(n - 1)
    small = np.linalg.eigvalsh(x @ s2 @ x.T)
    diff = m1 - m2
    exact = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(small, 0, None)).sum()
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(exact, rel=1e-7)
    assert frechet_distance(m2, s2, m1, s1) == pytest.approx(exact, rel=1e-7)


def test_singular_diagonal_covariances_give_the_closed_form():
    # Zero variances (dead features) on either side and on both: sum (sqrt(a) - sqrt(b))^2.
    rng = np.random.default_rng(10)
    a, b = rng.uniform(0.1, 3.0, 12), rng.uniform(0.1, 3.0, 12)
    a[:3], b[2:5] = 0.0, 0.0
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-12)
    assert frechet_distance(mu2, np.diag(b), mu1, np.diag(a)) == pytest.approx(want, rel=1e-12)
    # All-zero covariances: the distance of the means.
    z = np.zeros((12, 12))
    assert frechet_distance(mu1, z, mu2, z) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-12)


def test_covariances_must_be_symmetric_and_psd():
    rng = np.random.default_rng(11)
    s = _spd(rng, 6)
    z = np.zeros(6)
    # A negative eigenvalue, in either argument.
    bad = s - 2 * np.linalg.eigvalsh(s)[-1] * np.outer(np.eye(6)[0], np.eye(6)[0])
    for args in ((z, bad, z, s), (z, s, z, bad)):
        with pytest.raises(ValueError, match="not positive semi-definite"):
            frechet_distance(*args)
    # Indefinite with a positive diagonal (eigenvalues 3 and -1), negative definite, and a
    # negative diagonal entry.
    for bad in ([[1.0, 2.0], [2.0, 1.0]], -np.eye(2), np.diag([1.0, -0.1])):
        with pytest.raises(ValueError, match="sigma1 is not positive semi-definite"):
            frechet_distance(np.zeros(2), np.array(bad), np.zeros(2), np.eye(2))
    # Where the product would hide it: sigma2's negative direction is sigma1's null space.
    null1 = np.diag([1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="sigma2 is not positive semi-definite"):
        frechet_distance(np.zeros(3), null1, np.zeros(3), np.diag([1.0, 1.0, -1.0]))
    # Round-off-sized negative eigenvalues (here 1e-3 of the tolerance) count as 0.
    tiny = np.diag([1.0, 0.5, -1e-3 * COV_TOL])
    # (The traces are those of the matrices as given, the tiny eigenvalue included.)
    want = frechet_distance(np.zeros(3), np.diag([1.0, 0.5, 0.0]), np.zeros(3), null1)
    want -= 1e-3 * COV_TOL
    assert frechet_distance(np.zeros(3), tiny, np.zeros(3), null1) == pytest.approx(want, 1e-12)
    assert frechet_distance(np.zeros(3), null1, np.zeros(3), tiny) == pytest.approx(want, 1e-12)
    # Not symmetric beyond round-off; round-off asymmetry is accepted (and symmetrised).
    skew = s.copy()
    skew[0, 1] += 0.1
    with pytest.raises(ValueError, match="sigma1 is not symmetric"):
        frechet_distance(z, skew, z, s)
    near = s.copy()
    near[0, 1] += 1e-12
    assert frechet_distance(z, near, z, s) == pytest.approx(0.0, abs=1e-9)
    # Non-finite entries.
    for v in (np.nan, np.inf):
        inf = s.copy()
        inf[2, 3] = inf[3, 2] = v
        with pytest.raises(ValueError, match="non-finite"):
            frechet_distance(z, s, z, inf)


def test_eps_offset_when_an_eigendecomposition_fails(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(12)
    mu1, mu2, s1, s2 = rng.standard_normal(5), rng.standard_normal(5), _spd(rng, 5), _spd(rng, 5)
    eps = 1e-3
    off = eps * np.eye(5)
    want = _sqrtm_frechet(mu1, s1 + off, mu2, s2 + off) - 2 * 5 * eps  # traces of S, not S + eps
    real_eigvalsh = np.linalg.eigvalsh
    calls: list[int] = []

    def flaky(a: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 1:
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        return real_eigvalsh(a)

    monkeypatch.setattr(np.linalg, "eigvalsh", flaky)
    assert frechet_distance(mu1, s1, mu2, s2, eps=eps) == pytest.approx(want, rel=1e-10)
    assert len(calls) == 2

    def broken(a: np.ndarray) -> np.ndarray:
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(np.linalg, "eigvalsh", broken)
    with pytest.raises(ValueError, match="did not converge even after adding eps"):
        frechet_distance(mu1, s1, mu2, s2)


def test_frechet_benchmark_verdict_at_small_dimension():
    # benchmarks/frechet.py at D = 64: the agreement check and its verdict line. Its speed
    # claim (>= 5x at D = 2048) is checked by the benchmark itself, not by a test.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "frechet.py"),
            "--dim",
            "64",
            "--samples",
            "500",
            "--repeats",
            "1",
            "--min-speedup",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("PASS: "), last
    assert "D = 64" in proc.stdout


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
    # Features of 3 images: covariances of rank 2, so the two 2048-d Frechet distances are
    # quick (full-rank ones take ~2 s each on one CPU thread); the Inception passes dominate.
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
