"""Coloured Gaussian noise (sfbd.noise.coloured): the spectrum convention against a direct
covariance, whitening and top-up made white, closed forms with the analytic Gaussian, SFBD's
convergence (and the bias of the naive white guess), bad input and a kill-and-resume."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from run_helpers import (
    RING8_STAGED,
    assert_kill_resume_identical,
    assert_torchrun_denoises_as_one_process,
    user_mode_round_trip,
)

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import ConfigError, DataError
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.noise import ColouredGaussian
from sfbd.noise.coloured import check_cov, example_spectrum
from sfbd.run.runner import Run

MU = np.array([0.3, -0.2])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])
NOISE = np.array([[0.30, -0.12], [-0.12, 0.10]])  # anisotropic, correlated noise


def _dft_covariance(spec: np.ndarray) -> np.ndarray:
    """Sigma = Re(F^H diag(S) F) per channel, with F the orthonormal 2-D DFT as a matrix."""
    c, h, w = spec.shape
    fh = np.fft.fft(np.eye(h), norm="ortho")
    fw = np.fft.fft(np.eye(w), norm="ortho")
    f = np.kron(fh, fw)  # acts on row-major flattened (h, w) images
    blocks = [(f.conj().T @ np.diag(spec[i].reshape(-1)) @ f).real for i in range(c)]
    out = np.zeros((c * h * w, c * h * w))
    for i, b in enumerate(blocks):
        out[i * h * w : (i + 1) * h * w, i * h * w : (i + 1) * h * w] = b
    return out


def _linear_map(noise: ColouredGaussian, fn, shape) -> np.ndarray:
    """The matrix A of x -> apply(x, fn) on flattened samples (columns: images of a basis)."""
    d = int(np.prod(shape))
    basis = np.eye(d).reshape(d, *shape)
    return noise.apply(basis, fn).reshape(d, d).T.astype(np.float64)


def test_spectrum_convention_matches_a_direct_covariance():
    shape = (2, 4, 5)
    rng = np.random.default_rng(0)
    s = rng.uniform(0.2, 1.0, shape)
    s = 0.5 * (s + np.roll(s[:, ::-1, ::-1], (1, 1), axis=(1, 2)))  # symmetric: real noise
    noise = ColouredGaussian(s)
    a = _linear_map(noise, np.sqrt, shape)
    assert np.allclose(a @ a.T, _dft_covariance(s), atol=2e-6)  # Cov(n) = A A^T
    # the noise corrupt() draws has that covariance, empirically
    x = np.zeros((40000, *shape), np.float32)
    n = noise.corrupt(x, np.arange(len(x)), noise_seed=1).reshape(len(x), -1)
    assert np.allclose(np.cov(n.T), _dft_covariance(s), atol=0.03)
    # per-pixel variance is the spectrum's mean (Parseval), for the example spectrum too
    ex = example_spectrum((1, 8, 8), level=0.3)
    assert np.allclose(np.diag(_dft_covariance(ex)), 0.09)


@pytest.mark.parametrize("cov", [NOISE, example_spectrum((2, 6, 6), corr=0.2)])
def test_whitening_and_top_up_make_the_noise_white(cov):
    shape = (2,) if cov.ndim == 2 else cov.shape
    x = np.zeros((30000, *shape), np.float32)
    for method in ("whiten", "top-up"):
        noise = ColouredGaussian(cov, method, seed=2)
        y = noise.corrupt(x, np.arange(len(x)), noise_seed=0)
        z = noise.encode_noisy(y, np.arange(len(y))).reshape(len(y), -1).astype(np.float64)
        d = z.shape[1]
        assert np.allclose(np.cov(z.T), noise.tau**2 * np.eye(d), atol=0.03 * noise.tau**2)
    lam = np.linalg.eigvalsh(cov) if cov.ndim == 2 else cov.reshape(-1)
    assert ColouredGaussian(cov, "top-up").tau == pytest.approx(np.sqrt(lam.max()))
    assert ColouredGaussian(cov).tau == pytest.approx(np.sqrt(lam.min()))
    # c W has eigenvalues sqrt(lambda_min / lambda) <= 1: it never stretches the data
    x = np.random.default_rng(0).normal(size=(500, *shape)).astype(np.float32)
    z = ColouredGaussian(cov).encode(x)
    assert np.linalg.norm(z) <= np.linalg.norm(x) * (1 + 1e-6)


def test_whitening_white_noise_is_the_identity():
    noise = ColouredGaussian(0.09 * np.eye(3))
    x = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    assert noise.tau == pytest.approx(0.3)
    assert np.allclose(noise.encode(x), x, atol=1e-6) and np.allclose(noise.decode(x), x, atol=1e-6)


def test_whitened_gaussian_closed_form():
    """encode maps N(mu, C) to N(c W mu, c^2 W C W): the moments the analytic model must fit."""
    noise = ColouredGaussian(NOISE)
    x = np.random.default_rng(2).multivariate_normal(MU, COV, 200_000)
    z = noise.encode(x).astype(np.float64)
    lam, v = np.linalg.eigh(NOISE)
    w = noise.scale * (v / np.sqrt(lam)) @ v.T
    assert np.allclose(z.mean(0), w @ MU, atol=0.01)
    assert np.allclose(np.cov(z.T), w @ COV @ w.T, atol=0.02)


def _data_space_errors(out, n_stages: int, noise: ColouredGaussian) -> list[float]:
    """|mean - MU| + |cov - COV| of each stage's analytic fit, mapped back to the data."""
    a = noise.decode(np.eye(2)).astype(np.float64)  # decode(z) = z @ a
    errs = []
    for k in range(n_stages):
        ema = load_checkpoint(out / "checkpoints" / f"stage-{k:02d}")[1]
        mean = ema.mean.numpy() @ a
        cov = a.T @ ema.cov.numpy() @ a
        errs.append(float(np.linalg.norm(mean - MU) + np.linalg.norm(cov - COV)))
    return errs


def test_sfbd_converges_under_coloured_noise_and_the_white_guess_does_not(tmp_path):
    path = tmp_path / "gauss.npy"
    np.save(path, np.random.default_rng(0).multivariate_normal(MU, COV, 100_000).astype("f4"))
    np.save(tmp_path / "cov.npy", NOISE)
    common = ["model.kind=gaussian", "sfbd.iterations=4", "train.update_steps=200"]
    common += ["sample.steps=64", "eval.num_samples=500", "data.holdout=0.02"]
    bench = [f"data.source={path}", "data.clean_fraction=0.0008", "data.sigma=null"]
    errs, cfgs = {}, {}
    for method in ("whiten", "top-up"):
        sets = [*bench, f"data.noise_cov={tmp_path / 'cov.npy'}", f"data.noise_method={method}"]
        cfgs[method] = cfg = load_config(overrides=[*common, *sets])
        Run(cfg, tmp_path / method, progress=False).execute()
        errs[method] = _data_space_errors(tmp_path / method, 5, ColouredGaussian(NOISE, method))
    # the naive guess: the same noisy data, white at the same overall std
    prob = load_problem(cfgs["whiten"])
    np.save(tmp_path / "noisy.npy", prob.decode(prob.noisy))  # whitening undone: the data
    np.save(tmp_path / "clean.npy", prob.decode(prob.clean))
    rms = float(np.sqrt(np.trace(NOISE) / 2))
    user = [f"data.noisy={tmp_path / 'noisy.npy'}", f"data.clean={tmp_path / 'clean.npy'}"]
    cfg = load_config(overrides=[*common, *user, f"data.sigma={rms}"])
    Run(cfg, tmp_path / "naive", progress=False).execute()
    naive = _data_space_errors(tmp_path / "naive", 5, ColouredGaussian(np.eye(2), "top-up"))
    for method, e in errs.items():
        assert e[-1] < 0.2 * e[0], (method, e)  # converges towards the truth
        assert naive[-1] > 3 * e[-1], (method, naive, e)


def test_bad_covariances_get_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="not symmetric"):
        check_cov(np.array([[1.0, 0.5], [0.1, 1.0]]))
    with pytest.raises(DataError, match="not positive definite.*smallest eigenvalue"):
        check_cov(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(DataError, match="square D x D"):
        check_cov(np.ones((2, 3)))
    with pytest.raises(DataError, match="D x D covariance matrix .* or a \\(C, H, W\\) power"):
        check_cov(np.ones(4))
    bad = np.ones((1, 4, 4))
    bad[0, 0, 1] = 2.0  # S[k] != S[-k]
    with pytest.raises(DataError, match="not the power spectrum of real noise"):
        check_cov(bad)
    with pytest.raises(DataError, match="samples have shape \\(3,\\)"):
        ColouredGaussian(NOISE).check(np.zeros((2, 3), np.float32), None)
    with pytest.raises(DataError, match="too ill-conditioned to whiten; set data.noise_method"):
        ColouredGaussian(np.diag([1.0, 1e-9]))
    with pytest.warns(UserWarning, match="condition number 1e\\+03.*data.noise_method: top-up"):
        ColouredGaussian(np.diag([1.0, 1e-3]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ColouredGaussian(np.diag([1.0, 1e-3]), "top-up")  # top-up does not care
    np.save(tmp_path / "cov.npy", NOISE)
    with pytest.raises(
        ConfigError, match="data.sigma and data.noise_cov describe two noise models"
    ):
        load_config(overrides=["data.source=ring8", f"data.noise_cov={tmp_path / 'cov.npy'}"])
    with pytest.raises(ConfigError, match="data.noise_method must be one of whiten, top-up"):
        load_config(overrides=["data.source=ring8", "data.noise_method=pca"])


def test_killed_and_resumed_bit_identical(tmp_path):
    np.save(tmp_path / "cov.npy", NOISE * 0.5)
    sets = [*RING8_STAGED, "data.sigma=null", f"data.noise_cov={tmp_path / 'cov.npy'}"]
    assert_kill_resume_identical(tmp_path, sets, ["denoise.shard:2", "train.step:25"])


def test_torchrun_shards_denoise_as_one_process(tmp_path):
    np.save(tmp_path / "cov.npy", NOISE * 0.5)
    sets = ["data.sigma=null", f"data.noise_cov={tmp_path / 'cov.npy'}"]
    assert_torchrun_denoises_as_one_process(tmp_path, sets)


def test_user_mode_run_sample_and_denoise(tmp_path):
    np.save(tmp_path / "cov.npy", NOISE * 0.5)
    sets = ["data.sigma=null", f"data.noise_cov={tmp_path / 'cov.npy'}"]
    user_mode_round_trip(tmp_path, sets, sets, [])  # denoise: the run's own covariance
