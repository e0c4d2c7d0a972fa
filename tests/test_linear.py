"""Known linear corruptions (sfbd.noise.linear): the naive white-noise guess (data.naive) keeps
the masked data but samples as white noise, and masked digits run end to end: `sfbd run`
records the posterior sampler's forward and backward passes, `sfbd status` names the mask, and
`sfbd denoise --mask` keeps the observed entries and fills in the missing ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sfbd
from sfbd.cli.main import main
from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.diffusion.posterior import mmps_cost
from sfbd.diffusion.sample import backward_sample, evaluations
from sfbd.diffusion.schedule import edm_sigmas, truncate_sigmas
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.noise import WhiteGaussian
from sfbd.noise.linear import NaiveWhite
from sfbd.noise.mask import MaskedGaussian

DIGIT = (1, 8, 8)
MASKED = ["data.source=digits", "data.mask_keep=0.5", "data.sigma=0.05"]
#: a tiny masked-digits run: 719 noisy samples, the denoiser barely trained
TINY = [
    *MASKED,
    "data.holdout=0.5",
    "data.clean_fraction=0.2",
    "train.pretrain_steps=10",
    "train.update_steps=5",
    "train.batch_size=16",
    "sfbd.iterations=1",
    "eval.num_samples=20",
    "device=cpu",
]


def _digit_prior(prob) -> GaussianDenoiser:
    den = GaussianDenoiser(DIGIT)
    den.fit(torch.as_tensor(np.asarray(prob.clean)))
    return den


def test_naive_white_keeps_the_masked_data_but_samples_as_white_noise():
    cfg = load_config(overrides=[*MASKED, "data.naive=true"])
    prob = load_problem(cfg)
    noise = prob.corruption
    assert isinstance(noise, NaiveWhite) and isinstance(noise.inner, MaskedGaussian)
    assert noise.spec() == {"noise": "white", "sigma": 0.05}  # what checkpoints record
    assert noise.sigma == noise.tau == 0.05 and noise.backward_passes == 0
    assert "naive" in noise.describe() and "masked" in noise.describe()
    # the data is still masked: exact zeros where the mask (of these rows) is 0
    n = len(prob.noisy)
    y, m = np.asarray(prob.noisy), noise.inner.masks(np.arange(n), DIGIT)
    assert abs(m.mean() - 0.5) < 0.01 and np.all(y[m == 0] == 0)
    resid = (y - np.asarray(prob.noisy_truth))[m == 1]
    assert abs(resid.std() - 0.05) < 0.003
    # white noise's model space: a held-out noisy set at the level, and the same rows as the
    # masked model without data.naive
    assert prob.holdout is not None and np.all(prob.holdout.levels == 0.05)
    plain = load_problem(load_config(overrides=MASKED))
    assert isinstance(plain.corruption, MaskedGaussian) and plain.holdout is None
    assert len(plain.noisy) == n + len(prob.holdout.index)

    # backward sampling: white noise's truncated start at data.sigma, not the posterior
    den = _digit_prior(prob)
    grid = edm_sigmas(8, dtype=torch.float64)
    keys = torch.tensor([0, 3, 7, 11])
    yb = torch.as_tensor(y[keys.numpy()], dtype=torch.float64)
    got = noise.backward(den, yb, keys, grid, sampler="sde", stream=9)
    want = backward_sample(den, yb, 0.05, grid, keys=keys, stream=9, sampler="sde")
    assert torch.equal(got, want)
    white = WhiteGaussian(0.05)
    assert torch.equal(white.backward(den, yb, keys, grid, sampler="sde", stream=9), want)
    posterior = noise.inner.backward(den, yb, keys, grid, sampler="sde", stream=9)
    assert (posterior - want).abs().max() > 0.1
    idx = np.arange(n)
    white_calls = evaluations("sde", truncate_sigmas(grid, 0.05))
    assert noise.evaluations("sde", grid, idx) == n * white_calls
    assert noise.inner.evaluations("sde", grid, idx) == n * mmps_cost("sde", grid, 1)[0]
    # a subset stays naive over the subset's masks
    sub = noise.subset(np.array([5, 2]))
    assert isinstance(sub, NaiveWhite)
    assert np.array_equal(sub.inner.masks(np.arange(2), DIGIT), m[[5, 2]])


def test_masked_digits_run_end_to_end(tmp_path, capsys):
    """A barely trained U-Net: the posterior sampler runs through a real network's VJPs."""
    sets = [*TINY, "model.kind=unet", "model.channels=8", "sample.steps=4"]
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", "--set", *sets]) == 0
    stages = json.loads((out / "metrics.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == ["pretrain", "update"]
    metrics = stages[1]["metrics"]
    cfg = load_config(overrides=sets)
    prob = load_problem(cfg)
    assert isinstance(prob.corruption, MaskedGaussian) and prob.corruption.cg_steps == 1
    assert cfg.sample.sampler == "heun"  # from sigma_max: 7 denoiser calls on 4 steps
    calls = mmps_cost("heun", edm_sigmas(4), 1)[0]
    assert calls == 7 and metrics["denoise_nfe"] == len(prob.noisy) * calls
    assert metrics["denoise_backward"] == 2 * metrics["denoise_nfe"]  # cg_steps 1: 2 VJPs
    assert np.isfinite(metrics["denoise_psnr"])
    assert "denoise_nfe" not in stages[0]["metrics"]  # pretraining denoises nothing
    capsys.readouterr()
    assert main(["status", "--run", str(out)]) == 0
    text = capsys.readouterr().out
    assert "noise: masked (0.5 of entries kept), white noise sigma 0.05" in text
    # sfbd sample draws from the learned prior of a masked run like any other
    drawn = tmp_path / "samples.npy"
    assert main(["sample", "--run", str(out), "--n", "6", "--out", str(drawn), "--quiet"]) == 0
    assert np.load(drawn).shape == (6, *DIGIT) and np.isfinite(np.load(drawn)).all()

    # sfbd denoise of masked inputs with their masks: the observed entries are kept
    n = 12
    y = np.asarray(prob.noisy[:n])
    m = prob.corruption.masks(np.arange(n), DIGIT)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "m.npy", m)
    flags = ["--input", str(tmp_path / "y.npy"), "--mask", str(tmp_path / "m.npy")]
    flags += ["--sigma", "0.05", "--steps", "16", "--quiet"]
    cmd = ["denoise", "--run", str(out), *flags, "--out", str(tmp_path / "d.npy")]
    assert main(cmd) == 0
    d = np.load(tmp_path / "d.npy")
    assert d.shape == y.shape and np.isfinite(d).all()
    assert np.abs(d - y)[m == 1].mean() < 0.1  # observed at sigma 0.05
    assert np.abs(d[m == 0]).mean() > 0.1  # the missing entries are not left at 0
    # the Python API draws the same samples
    api = sfbd.load(out).denoise(y, sigma=0.05, mask=m, steps=16)
    assert np.array_equal(api, d)
    # a run's masks describe its own noisy set only: new inputs need theirs
    with pytest.raises(sfbd.errors.SfbdError, match="--mask"):
        sfbd.load(out).denoise(y, steps=16)


def test_masked_digits_are_imputed_by_the_analytic_prior(tmp_path):
    """With the exact Gaussian denoiser of the digits, ``sfbd denoise --mask`` fills the missing
    pixels far better than zeros or the clean mean."""
    sets = [*TINY, "model.kind=gaussian", "sample.steps=16"]
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", "--set", *sets]) == 0
    prob = load_problem(load_config(overrides=sets))
    n = 40
    y, x = np.asarray(prob.noisy[:n]), np.asarray(prob.noisy_truth[:n])
    m = prob.corruption.masks(np.arange(n), DIGIT)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "m.npy", m)
    cmd = ["denoise", "--run", str(out), "--input", str(tmp_path / "y.npy"), "--quiet"]
    cmd += ["--mask", str(tmp_path / "m.npy"), "--sigma", "0.05", "--steps", "16"]
    assert main([*cmd, "--out", str(tmp_path / "d.npy")]) == 0
    d = np.load(tmp_path / "d.npy")
    miss = m == 0
    err = np.mean((d - x)[miss] ** 2)
    mean = np.broadcast_to(np.asarray(prob.clean).mean(0), x.shape)
    assert err < 0.4 * np.mean(x[miss] ** 2)  # zeros (seen: 0.20 vs 0.72)
    assert err < 0.85 * np.mean((mean - x)[miss] ** 2)  # the clean mean (seen: 0.28)
    assert np.abs(d - y)[~miss].mean() < 0.06
