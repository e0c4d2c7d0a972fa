"""Photon noise (sfbd.noise.photon): exact keyed Poisson draws, the generalised Anscombe
transform and its inverse, variance stabilisation and where it degrades, the model space, bad
input, a benchmark run through the CLI and a kill-and-resume."""

from __future__ import annotations

import numpy as np
import pytest
from run_helpers import RING8_STAGED, assert_kill_resume_identical, user_mode_round_trip

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import ConfigError, DataError
from sfbd.noise import PoissonGaussian


def test_corrupt_draws_exact_poisson_counts_plus_read_noise():
    noise = PoissonGaussian(gain=0.05, read_noise=0.02)
    u = np.array([0.0, 0.1, 0.5, 1.0])
    x = np.tile(2 * u - 1, (40000, 1)).astype(np.float32)
    y = noise.corrupt(x, np.arange(len(x)), noise_seed=1)
    y_u = (y.astype(np.float64) + 1) / 2
    assert np.allclose(y_u.mean(0), u, atol=0.003)  # E[alpha P + eta] = u
    var = 0.05 * u + 0.02**2  # alpha^2 * (u / alpha) + sigma_r^2
    assert np.allclose(y_u.var(0), var, rtol=0.04, atol=1e-5)
    counts = (y_u[:, 2] - 0.02 * 0) / 0.05  # not integers (read noise), but near them on average
    assert abs(counts.mean() - 10.0) < 0.05
    no_read = PoissonGaussian(gain=0.05).corrupt(x[:100], np.arange(100), noise_seed=1)
    photons = (no_read.astype(np.float64) + 1) / 2 / 0.05
    assert np.allclose(photons, np.round(photons), atol=1e-4)  # whole photons without read noise


def test_anscombe_inverse_and_model_space():
    noise = PoissonGaussian(gain=0.01, read_noise=0.005)
    v = np.linspace(0, 1.2, 50)
    assert np.allclose(noise.inverse_anscombe(noise.anscombe(v)), v, atol=1e-10)
    a, s = 0.01, 0.005
    assert np.allclose(noise.anscombe(v), (2 / a) * np.sqrt(a * v + 3 * a * a / 8 + s * s))
    x = np.array([[-1.0, 0.0, 1.0]], np.float32)
    z = noise.encode(x)
    assert np.allclose(z, [[-1.0, z[0, 1], 1.0]], atol=1e-6)  # [0, 1] intensities -> [-1, 1]
    assert np.allclose(noise.decode(z), x, atol=1e-5)
    f0, f1 = noise.anscombe(np.array([0.0, 1.0]))
    assert noise.tau == pytest.approx(2 / (f1 - f0))
    assert noise.photons == pytest.approx(100.0)


@pytest.mark.parametrize("photons", [5, 20, 100, 1000])
def test_the_transform_stabilises_the_variance_where_counts_are_high(photons):
    """Var(f(y_u)) -> 1 as photon counts grow; the deviation shrinks with the count."""
    noise = PoissonGaussian(gain=1.0 / photons, read_noise=0.01)
    u = np.array([0.2, 0.5, 1.0])
    x = np.tile(2 * u - 1, (60000, 1)).astype(np.float32)
    y = noise.corrupt(x, np.arange(len(x)), noise_seed=2)
    f = noise.anscombe((y.astype(np.float64) + 1) / 2)
    dev = np.abs(f.var(0) - 1.0).max()
    # seen: 0.28 (5 photons at full scale: Var 0.72 at u = 0.2, one photon), then < 0.04
    limit = {5: 0.35, 20: 0.04, 100: 0.02, 1000: 0.02}[photons]
    assert dev < limit, (photons, f.var(0))
    if photons == 5:
        assert dev > 0.15  # at about one photon it is not stable any more


def test_keyed_per_sample():
    noise = PoissonGaussian(gain=0.02)
    x = np.zeros((50, 3), np.float32)
    y = noise.corrupt(x, np.arange(50), noise_seed=0)
    rows = np.array([9, 3, 40])
    assert np.array_equal(noise.corrupt(x[rows], rows, noise_seed=0), y[rows])
    assert not np.array_equal(noise.corrupt(x, np.arange(50), noise_seed=1), y)


def test_bad_input_gets_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="needs intensities >= 0"):
        PoissonGaussian(0.1).corrupt(np.full((2, 2), -1.5, np.float32), np.arange(2), 0)
    with pytest.raises(DataError, match="data.clean has negative intensities"):
        PoissonGaussian(0.1).check(np.full((2, 2), -1.5, np.float32), None)
    base = ["data.source=digits", "data.sigma=null", "data.noise=poisson-gaussian"]
    with pytest.raises(ConfigError, match="data.gain must be a number > 0"):
        load_config(overrides=base)
    with pytest.raises(ConfigError, match="data.gain must be a number > 0"):
        load_config(overrides=[*base, "data.gain=0"])
    with pytest.raises(ConfigError, match="data.read_noise must be a number >= 0"):
        load_config(overrides=[*base, "data.gain=0.1", "data.read_noise=-1"])
    with pytest.raises(
        ConfigError,
        match=r"data.noise is poisson-gaussian, but data.sigma is set.*--set data.sigma=null",
    ):
        load_config(overrides=["data.source=digits", "data.noise=poisson-gaussian", "data.gain=1"])
    with pytest.raises(
        ConfigError,
        match="data.noise must be auto or one of blur, coloured, mask, per-sample, "
        "poisson-gaussian, white",
    ):
        load_config(overrides=["data.source=digits", "data.noise=laplace"])
    np.save(tmp_path / "noisy.npy", np.zeros((4, 2), np.float32))
    np.save(tmp_path / "clean.npy", np.full((3, 2), -2.0, np.float32))
    user = [f"data.noisy={tmp_path / 'noisy.npy'}", f"data.clean={tmp_path / 'clean.npy'}"]
    cfg = load_config(
        overrides=[*user, "data.sigma=null", "data.noise=poisson-gaussian", "data.gain=0.1"]
    )
    with pytest.raises(DataError, match="data.clean has negative intensities"):
        load_problem(cfg)


def test_benchmark_problem_lives_in_the_anscombe_domain():
    cfg = load_config(
        overrides=[
            "data.source=digits",
            "data.sigma=null",
            "data.noise=poisson-gaussian",
            "data.gain=0.02",
            "data.read_noise=0.01",
        ]
    )
    prob = load_problem(cfg)
    noise = prob.corruption
    assert isinstance(noise, PoissonGaussian)
    # clean and noisy are in model space, where the noise is white at tau (approximately)
    truth = noise.encode(prob.noisy_truth)
    bright = prob.noisy_truth >= 0.0  # u >= 0.5: at least 25 photons
    resid = (prob.noisy - truth).astype(np.float64)[bright]
    assert abs(resid.std() / noise.tau - 1.0) < 0.05
    assert abs(resid.mean()) < 0.1 * noise.tau  # the transform's bias is small there
    dark = (prob.noisy - truth).astype(np.float64)[prob.noisy_truth <= -0.99]  # no photons
    assert abs(dark.std() / noise.tau - 1.0) > 0.2  # not stabilised there (seen: 0.71 tau)
    assert prob.clean.min() >= -1.0 - 1e-5 and prob.clean.max() <= 1.0 + 1e-5


def test_killed_and_resumed_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal([0.2, -0.3], 0.25, (1000, 2)), -1, 1).astype(np.float32)
    np.save(tmp_path / "src.npy", x)
    sets = [s for s in RING8_STAGED if not s.startswith("data.source")]
    sets += [f"data.source={tmp_path / 'src.npy'}", "data.sigma=null"]
    sets += ["data.noise=poisson-gaussian", "data.gain=0.02", "data.read_noise=0.01"]
    assert_kill_resume_identical(tmp_path, sets, ["denoise.shard:4", "train.step:33"])


def test_user_mode_run_sample_and_denoise(tmp_path):
    src = tmp_path / "unit.npy"  # ring8 inside [-1, 1]: intensities >= 0
    x = np.random.default_rng(1).normal([0.2, -0.3], 0.25, (800, 2))
    np.save(src, np.clip(x, -1, 1).astype(np.float32))
    sets = ["data.sigma=null", "data.noise=poisson-gaussian", "data.gain=0.02"]
    user_mode_round_trip(tmp_path, [f"data.source={src}", *sets], sets, [])
