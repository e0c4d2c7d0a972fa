"""Blurred observations (sfbd.noise.blur): the Gaussian kernel of benchmark mode, the kernel
checks, the forward model against torch's conv2d, images only, specs, the configuration keys
and the API's noise_model(blur_kernel=...). The adjoint and MMPS are tests/test_posterior.py's."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sfbd
from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import ConfigError, DataError
from sfbd.noise import from_spec
from sfbd.noise.blur import BlurredGaussian, check_kernel, gaussian_kernel
from sfbd.noise.linear import white_noise

SHAPE = (2, 6, 5)


def _conv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Each channel cross-correlated with k, zero padding, the input's size (float64)."""
    c, s = x.shape[1], k.shape[0]
    w = torch.as_tensor(k, dtype=torch.float64).expand(c, 1, s, s)
    return F.conv2d(torch.as_tensor(x, dtype=torch.float64), w, padding=s // 2, groups=c).numpy()


def _user(tmp_path, noisy_shape=(6, *SHAPE)) -> list[str]:
    rng = np.random.default_rng(1)
    np.save(tmp_path / "noisy.npy", rng.normal(size=noisy_shape).astype(np.float32))
    np.save(tmp_path / "clean.npy", rng.normal(size=(4, *noisy_shape[1:])).astype(np.float32))
    return [
        f"data.noisy={tmp_path / 'noisy.npy'}",
        f"data.clean={tmp_path / 'clean.npy'}",
        "data.sigma=0.1",
    ]


def _config_error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("sigma, size", [(1.0, 5), (0.4, 3), (1.3, 7), (2.0, 9)])
def test_gaussian_kernel_is_normalised_symmetric_and_sized(sigma, size):
    k = gaussian_kernel(sigma)
    assert k.shape == (size, size) == (2 * math.ceil(2 * sigma) + 1,) * 2
    assert abs(k.sum() - 1) < 1e-12
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1]) and np.allclose(k, k[:, ::-1])
    r = size // 2
    assert k[r, r] == k.max()
    assert np.isclose(k[r, r + 1] / k[r, r], math.exp(-1 / (2 * sigma**2)))
    assert np.isclose(k[r + 1, r + 1] / k[r, r], math.exp(-2 / (2 * sigma**2)))


@pytest.mark.parametrize(
    "kernel, fragment",
    [
        (np.ones((4, 4)), "its size must be odd"),
        (np.ones(3), "must be a 2-D square s x s kernel, got shape (3,)"),
        (np.ones((3, 3, 3)), "must be a 2-D square"),
        (np.ones((3, 5)), "must be a 2-D square s x s kernel, got shape (3, 5)"),
        (np.array([[0, 0, 0], [0, np.nan, 0], [0, 0, 0]]), "not finite"),
        (np.array([[0, 0, 0], [0, np.inf, 0], [0, 0, 0]]), "not finite"),
        (np.zeros((3, 3)), "sums to 0"),
        (np.array([[0, 1, 0], [1, -4, 1], [0, 0, 0]]), "sums to -1"),
    ],
)
def test_check_kernel_refuses_what_is_not_a_point_spread_function(kernel, fragment):
    with pytest.raises(DataError) as err:
        check_kernel(kernel, "data.blur_kernel")
    assert str(err.value).startswith("data.blur_kernel") and fragment in str(err.value)


def test_kernel_files_are_checked_when_the_problem_loads(tmp_path):
    user = _user(tmp_path)
    np.save(tmp_path / "even.npy", np.ones((2, 2)))
    cfg = load_config(overrides=[*user, f"data.blur_kernel={tmp_path / 'even.npy'}"])
    assert cfg.data.noise == "blur"
    with pytest.raises(DataError, match=r"^data\.blur_kernel is 2 x 2; its size must be odd"):
        load_problem(cfg)
    k = np.array([[0, 0.2, 0], [0.2, 0.2, 0.2], [0, 0.2, 0]])
    np.save(tmp_path / "k.npy", k)
    prob = load_problem(load_config(overrides=[*user, f"data.blur_kernel={tmp_path / 'k.npy'}"]))
    noise = prob.corruption
    assert isinstance(noise, BlurredGaussian) and noise.sigma == 0.1
    assert np.array_equal(noise.kernel, k) and noise.source == str(tmp_path / "k.npy")
    # the noisy data is read as stored (blur has no missing entries to zero)
    assert np.array_equal(np.asarray(prob.noisy), np.load(tmp_path / "noisy.npy"))


def test_corrupt_is_conv2d_plus_white_noise():
    rng = np.random.default_rng(0)
    idx = np.array([7, 3, 12, 40])
    x = rng.uniform(-1, 1, size=(4, *SHAPE)).astype(np.float32)
    k = gaussian_kernel(0.8)
    noise = BlurredGaussian(k, 0.1)
    y = noise.corrupt(x, idx, 5)
    assert y.dtype == np.float32 and y.shape == x.shape
    want = _conv(x, k) + 0.1 * white_noise(idx, SHAPE, 5)
    np.testing.assert_allclose(y, want, atol=1e-6)
    # a kernel that is not symmetric: a cross-correlation (no flip), each channel alone
    shift = np.zeros((3, 3))
    shift[1, 2] = 1.0  # out[i, j] = x[i, j + 1]
    ax = BlurredGaussian(shift, 0.0).observe(x, np.arange(4))
    assert np.array_equal(ax[..., :-1], x[..., 1:]) and np.all(ax[..., -1] == 0)
    # the same blur for every row: a subset corrupts its rows as the whole does
    assert noise.subset(np.array([2, 0])) is noise
    assert np.array_equal(noise.corrupt(x[[2, 0]], idx[[2, 0]], 5), y[[2, 0]])
    # the operator on tensors is the same map
    op = noise.operator(torch.arange(4), torch.as_tensor(x))
    np.testing.assert_allclose(op.forward(torch.as_tensor(x)).numpy(), _conv(x, k), atol=1e-6)


def test_blur_is_for_images_only():
    noise = BlurredGaussian(gaussian_kernel(1.0), 0.1)
    noise.check(np.zeros((3, *SHAPE)), np.zeros((4, *SHAPE)))  # images: accepted
    with pytest.raises(DataError) as err:
        noise.check(None, np.zeros((4, 2), np.float32))
    msg = str(err.value)
    assert "blur is for images (N, C, H, W)" in msg
    assert "data.noisy holds samples of shape (2,)" in msg
    assert "data.mask" in msg  # what vectors can use instead
    with pytest.raises(DataError, match=r"data\.clean holds samples of shape \(8,\)"):
        noise.check(np.zeros((3, 8)), None)


def test_spec_round_trips_through_json():
    noise = BlurredGaussian(gaussian_kernel(0.7), 0.05, "Gaussian 0.7 px", cg_steps=2)
    back = from_spec(json.loads(json.dumps(noise.spec())))
    assert isinstance(back, BlurredGaussian) and noise.matches(back)
    assert np.array_equal(back.kernel, noise.kernel)
    assert (back.sigma, back.source, back.cg_steps) == (0.05, "Gaussian 0.7 px", 2)
    assert not noise.matches(BlurredGaussian(gaussian_kernel(0.7), 0.06, "Gaussian 0.7 px", 2))


# -- configuration --------------------------------------------------------------------------


def test_a_blur_with_its_noise_level_is_one_noise_model():
    sets = ["data.source=digits", "data.blur_sigma=1", "data.sigma=0.05"]
    cfg = load_config(overrides=sets)
    assert cfg.data.noise == "blur" and cfg.data.blur_sigma == 1.0
    prob = load_problem(cfg)
    noise = prob.corruption
    assert isinstance(noise, BlurredGaussian) and noise.sigma == 0.05
    assert np.array_equal(noise.kernel, gaussian_kernel(1.0)) and noise.kernel.shape == (5, 5)
    assert prob.holdout is None  # no Gaussian model space: no val_noisy hold-out
    truth = np.asarray(prob.noisy_truth[:50])
    resid = np.asarray(prob.noisy[:50]) - _conv(truth, gaussian_kernel(1.0))
    assert abs(resid.std() - 0.05) < 0.003


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (
            ["data.source=digits", "data.blur_sigma=1", "data.blur_kernel=k.npy"],
            ["data.blur_kernel", "data.blur_sigma", "not both"],
        ),
        (["data.source=digits", "data.blur_sigma=0"], ["data.blur_sigma must be > 0", "0.0"]),
        (["data.source=digits", "data.blur_sigma=-2"], ["data.blur_sigma must be > 0"]),
        (
            ["data.noisy=n.npy", "data.clean=c.npy", "data.sigma=0.1", "data.blur_sigma=1"],
            ["data.blur_sigma blurs benchmark data", "data.blur_kernel"],
        ),
        (
            ["data.source=digits", "data.blur_sigma=1", "data.sigma=-0.1"],
            ["data.sigma must be one number >= 0 with a blur"],
        ),
        (
            ["data.source=digits", "data.blur_sigma=1", "data.noise_cov=k.npy"],
            ["data.noise_cov", "data.blur_sigma", "two noise models"],
        ),
    ],
)
def test_bad_blur_settings_are_refused(overrides, fragments):
    msg = _config_error(overrides)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_blur_of_vectors_is_refused_when_the_problem_loads():
    cfg = load_config(
        overrides=["data.source=ring8", "data.num_samples=200", "data.blur_sigma=1"]
        + ["data.sigma=0.1"]
    )
    assert cfg.data.noise == "blur"  # the configuration does not know the data's shape
    with pytest.raises(DataError, match=r"^blur is for images .* shape \(2,\)"):
        load_problem(cfg)


# -- the API ----------------------------------------------------------------------------------


def test_noise_model_takes_a_kernel_with_its_level(tmp_path):
    k = gaussian_kernel(0.6)
    np.save(tmp_path / "k.npy", k)
    noise = sfbd.noise_model(blur_kernel=str(tmp_path / "k.npy"), sigma=0.1, n=3)
    assert isinstance(noise, BlurredGaussian) and noise.sigma == 0.1
    assert np.array_equal(noise.kernel, k)
    assert sfbd.noise_model(blur_kernel=k).sigma == 0.0  # an array; no level: noiseless
    np.save(tmp_path / "even.npy", np.ones((4, 4)))
    with pytest.raises(DataError, match=r"^--blur-kernel is 4 x 4; its size must be odd"):
        sfbd.noise_model(blur_kernel=str(tmp_path / "even.npy"), sigma=0.1)
    with pytest.raises(DataError, match="--sigma with --blur-kernel must be one number >= 0"):
        sfbd.noise_model(blur_kernel=k, sigma=-1)


def test_user_blurred_digits_run_denoise_status_and_sample(tmp_path, capsys):
    """User mode end to end: 8x8 digits blurred by a user's kernel file plus sigma = 0.05, the
    analytic Gaussian prior (exact VJPs). ``sfbd run`` trains on them, ``sfbd status`` names
    the blur, ``sfbd denoise --blur-kernel`` restores new observations closer to the truth
    than the observations are, the API draws the same, and ``sfbd sample`` draws the prior."""
    from sklearn.datasets import load_digits

    from sfbd.cli.main import main

    x = (load_digits().images / 8.0 - 1.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    k = gaussian_kernel(1.0)
    y = _conv(x, k) + 0.05 * np.random.default_rng(0).normal(size=x.shape)
    files = {"clean": x[:200], "noisy": y[200:1400], "kernel": k, "new": y[1400:1440]}
    for name, a in files.items():
        np.save(tmp_path / f"{name}.npy", np.asarray(a, np.float32))
    sets = [f"data.{key}={tmp_path / key}.npy" for key in ("clean", "noisy")]
    sets += [f"data.blur_kernel={tmp_path / 'kernel.npy'}", "data.sigma=0.05"]
    sets += ["model.kind=gaussian", "sample.steps=16", "sfbd.iterations=1", "device=cpu"]
    sets += ["eval.num_samples=20", "train.pretrain_steps=1", "train.update_steps=1"]
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", "--set", *sets]) == 0
    capsys.readouterr()
    assert main(["status", "--run", str(out)]) == 0
    assert "noise: blurred (" in capsys.readouterr().out

    flags = ["--input", str(tmp_path / "new.npy"), "--blur-kernel", str(tmp_path / "kernel.npy")]
    flags += ["--sigma", "0.05", "--steps", "16", "--quiet", "--out", str(tmp_path / "d.npy")]
    assert main(["denoise", "--run", str(out), *flags]) == 0
    d, truth, obs = np.load(tmp_path / "d.npy"), x[1400:1440], files["new"]
    assert d.shape == obs.shape and np.isfinite(d).all()
    restored, observed = np.sqrt(np.mean((d - truth) ** 2)), np.sqrt(np.mean((obs - truth) ** 2))
    assert restored < 0.8 * observed, (restored, observed)  # seen: 0.37 against 0.52
    api = sfbd.load(out).denoise(obs, sigma=0.05, blur_kernel=k, steps=16)
    assert np.array_equal(api, d)

    drawn = tmp_path / "samples.npy"
    assert main(["sample", "--run", str(out), "--n", "6", "--out", str(drawn), "--quiet"]) == 0
    assert np.load(drawn).shape == (6, 1, 8, 8) and np.isfinite(np.load(drawn)).all()
