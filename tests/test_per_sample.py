"""Per-sample noise levels (sfbd.noise.per_sample): per-row schedules, batch independence,
closed forms with the analytic Gaussian, SFBD's convergence with mixed levels (and the bias of
one level equal to the mean), the levels' key, bad input and a kill-and-resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from run_helpers import (
    RING8_STAGED,
    assert_kill_resume_identical,
    assert_torchrun_denoises_as_one_process,
    user_mode_round_trip,
)

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.diffusion.sample import backward_sample, backward_sample_rows
from sfbd.diffusion.schedule import edm_sigmas, truncate_rows, truncate_sigmas
from sfbd.errors import ConfigError, DataError
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.noise import PerSampleGaussian
from sfbd.noise.per_sample import check_levels, log_uniform_levels
from sfbd.run.runner import Run

MU = np.array([0.3, -0.2])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


def _prior() -> GaussianDenoiser:
    m = GaussianDenoiser((2,))
    m.set_moments(torch.as_tensor(MU), torch.as_tensor(COV))
    return m


def test_each_row_gets_the_schedule_it_gets_alone():
    grid = edm_sigmas(18, dtype=torch.float64)
    taus = torch.tensor([0.05, 2.0, 0.5853, 0.3, 0.05, 70.0, 0.0021])
    groups = truncate_rows(grid, taus)
    seen = torch.cat([rows for rows, _ in groups]).sort().values
    assert torch.equal(seen, torch.arange(len(taus)))
    for rows, sched in groups:
        for r, row in zip(rows.tolist(), sched, strict=True):
            assert torch.equal(row, truncate_sigmas(grid, float(taus[r])))


@pytest.mark.parametrize("sampler", ["heun", "sde"])
def test_one_level_for_all_rows_is_white_noise(sampler):
    grid = edm_sigmas(32, dtype=torch.float64)
    y = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    keys = torch.arange(50)
    one = backward_sample_rows(
        _prior(), y, torch.full((50,), 0.7), grid, keys=keys, stream=5, sampler=sampler
    )
    white = backward_sample(_prior(), y, 0.7, grid, keys=keys, stream=5, sampler=sampler)
    assert torch.allclose(one, white, atol=1e-10)


@pytest.mark.parametrize("sampler", ["heun", "sde"])
def test_results_do_not_depend_on_batch_size_or_order(sampler):
    grid = edm_sigmas(24, dtype=torch.float64)
    n = 40
    y = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    taus = torch.as_tensor(np.geomspace(0.02, 5.0, n))
    keys = torch.arange(n)
    whole = backward_sample_rows(_prior(), y, taus, grid, keys=keys, stream=3, sampler=sampler)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    shuffled = backward_sample_rows(
        _prior(), y[perm], taus[perm], grid, keys=keys[perm], stream=3, sampler=sampler
    )
    assert torch.allclose(shuffled, whole[perm], atol=1e-12)
    for i in (0, 17, 39):  # alone, a row is what it was in the batch
        alone = backward_sample_rows(
            _prior(),
            y[i : i + 1],
            taus[i : i + 1],
            grid,
            keys=keys[i : i + 1],
            stream=3,
            sampler=sampler,
        )
        assert torch.allclose(alone, whole[i : i + 1], atol=1e-12)


def test_heun_rows_follow_the_exact_probability_flow_map():
    grid = edm_sigmas(256, dtype=torch.float64)
    n = 30
    taus = torch.as_tensor(np.geomspace(0.05, 3.0, n))
    y = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    prior = _prior()
    got = backward_sample_rows(prior, y, taus, grid, keys=torch.arange(n), stream=0)
    want = torch.cat([prior.flow_map(y[i : i + 1], float(taus[i])) for i in range(n)])
    assert torch.allclose(got, want, atol=1e-3), (got - want).abs().max()  # Heun error


def test_sde_rows_draw_the_exact_posterior():
    """Rows at three levels: each group's samples have the Gaussian posterior's moments."""
    grid = edm_sigmas(256, dtype=torch.float64)
    prior, n = _prior(), 6000
    levels = torch.tensor([0.2, 0.6, 1.5]).repeat_interleave(n)
    y0 = torch.tensor([[0.5, 0.1]], dtype=torch.float64).expand(3 * n, 2)
    keys = torch.arange(n).repeat(3)  # each group keyed 0..n-1, like the white runs below
    out = backward_sample_rows(prior, y0, levels, grid, keys=keys, stream=1, sampler="sde")
    for j, tau in enumerate((0.2, 0.6, 1.5)):
        part = out[j * n : (j + 1) * n]
        mean, cov = prior.posterior(y0[:1], tau)
        assert torch.allclose(part.mean(0), mean.reshape(-1), atol=0.02), (tau, part.mean(0))
        # the SDE sampler at 256 steps draws about 8% too little posterior variance at every
        # level, as white noise's does (tests/test_contracts.py); mean and shape are exact
        got = torch.cov(part.T)
        assert torch.allclose(got, cov.reshape(2, 2), rtol=0.15, atol=1e-3), (tau, got, cov)
        white = backward_sample(
            prior, y0[:n], tau, grid, keys=torch.arange(n), stream=1, sampler="sde"
        )
        assert torch.allclose(part, white, atol=1e-6)  # each group is white noise at its level


def test_benchmark_levels_are_keyed_and_log_uniform():
    index = np.arange(5000, 25000)
    lv = log_uniform_levels(index, 0.1, 1.0, noise_seed=4)
    assert lv.min() >= 0.1 and lv.max() <= 1.0
    assert np.array_equal(log_uniform_levels(index[::-7], 0.1, 1.0, 4), lv[::-7])  # keyed
    assert not np.array_equal(log_uniform_levels(index, 0.1, 1.0, 5), lv)
    u = np.log(lv / 0.1) / np.log(10.0)  # uniform on [0, 1] if log-uniform
    assert np.allclose(np.quantile(u, [0.1, 0.5, 0.9]), [0.1, 0.5, 0.9], atol=0.015)


def test_bad_levels_get_one_line_errors():
    with pytest.raises(DataError, match="holds 3 levels but there are 4 noisy samples"):
        check_levels(np.ones(3), 4, "data.sigma file 'l.npy'")
    with pytest.raises(DataError, match="finite number > 0, but 2 are not.*index 1"):
        check_levels(np.array([0.1, 0.0, np.nan]), 3, "data.sigma")
    with pytest.raises(DataError, match="1-D array"):
        check_levels(np.ones((2, 2)), None, "data.sigma")


def test_user_levels_file_and_its_errors(tmp_path):
    noisy = np.zeros((4, 2), np.float32)
    np.save(tmp_path / "noisy.npy", noisy)
    np.save(tmp_path / "clean.npy", np.ones((3, 2), np.float32))
    base = [f"data.noisy={tmp_path / 'noisy.npy'}", f"data.clean={tmp_path / 'clean.npy'}"]
    np.save(tmp_path / "lv.npy", np.array([0.1, 0.2, 0.3, 0.4]))
    prob = load_problem(load_config(overrides=[*base, f"data.sigma={tmp_path / 'lv.npy'}"]))
    assert isinstance(prob.corruption, PerSampleGaussian)
    assert np.array_equal(prob.corruption.sigma, [0.1, 0.2, 0.3, 0.4])
    np.save(tmp_path / "short.npy", np.array([0.1, 0.2]))
    with pytest.raises(DataError, match="holds 2 levels but there are 4 noisy samples"):
        load_problem(load_config(overrides=[*base, f"data.sigma={tmp_path / 'short.npy'}"]))
    with pytest.raises(DataError, match="data.sigma: file .* not found"):
        load_problem(load_config(overrides=[*base, f"data.sigma={tmp_path / 'none.npy'}"]))
    with pytest.raises(ConfigError, match="data.sigma_range draws levels in benchmark mode"):
        load_config(overrides=[*base, "data.sigma=null", "data.sigma_range=[0.1, 0.5]"])
    with pytest.raises(ConfigError, match="0 < lo <= hi"):
        load_config(overrides=["data.source=ring8", "data.sigma=null", "data.sigma_range=[1, 0.5]"])
    with pytest.raises(
        ConfigError,
        match=r"data.sigma and data.sigma_range describe two noise models .*--set data.sigma=null",
    ):
        load_config(overrides=["data.source=ring8", "data.sigma_range=[0.1, 0.5]"])


def test_benchmark_levels_follow_the_noisy_samples():
    cfg = load_config(
        overrides=[
            "data.source=ring8",
            "data.num_samples=500",
            "data.sigma=null",
            "data.sigma_range=[0.05, 0.8]",
        ]
    )
    prob = load_problem(cfg)
    lv = prob.corruption.sigma
    assert len(lv) == len(prob.noisy) and lv.min() >= 0.05 and lv.max() <= 0.8
    # the noise of each sample has its own level: residuals scale with it
    r = (prob.noisy - prob.noisy_truth) / lv[:, None]
    assert abs(r.std() - 1.0) < 0.05
    assert abs(np.corrcoef(np.abs(prob.noisy - prob.noisy_truth).mean(1), lv)[0, 1]) > 0.5


def _fit_errors(out, n_stages: int) -> list[float]:
    errs = []
    for k in range(n_stages):
        ema = load_checkpoint(out / "checkpoints" / f"stage-{k:02d}")[1]
        errs.append(
            float(np.linalg.norm(ema.mean.numpy() - MU) + np.linalg.norm(ema.cov.numpy() - COV))
        )
    return errs


def test_sfbd_converges_with_mixed_levels_and_one_mean_level_does_not(tmp_path):
    path = tmp_path / "gauss.npy"
    np.save(path, np.random.default_rng(0).multivariate_normal(MU, COV, 100_000).astype("f4"))
    common = ["model.kind=gaussian", "sfbd.iterations=4", "train.update_steps=200"]
    common += ["sample.steps=64", "eval.num_samples=500", "data.holdout=0.02"]
    bench = [f"data.source={path}", "data.clean_fraction=0.0008", "data.sigma=null"]
    bench += ["data.sigma_range=[0.1, 2.0]"]
    cfg = load_config(overrides=[*common, *bench])
    Run(cfg, tmp_path / "per-sample", progress=False).execute()
    per_sample = _fit_errors(tmp_path / "per-sample", 5)
    # the same noisy data, as a user who assumes one level, the mean, would run it
    prob = load_problem(cfg)
    np.save(tmp_path / "noisy.npy", prob.noisy)
    np.save(tmp_path / "clean.npy", prob.clean)
    mean_level = float(prob.corruption.sigma.mean())
    user = [f"data.noisy={tmp_path / 'noisy.npy'}", f"data.clean={tmp_path / 'clean.npy'}"]
    cfg = load_config(overrides=[*common, *user, f"data.sigma={mean_level}"])
    Run(cfg, tmp_path / "naive", progress=False).execute()
    naive = _fit_errors(tmp_path / "naive", 5)
    assert per_sample[0] == pytest.approx(naive[0])  # the same pretraining on the clean set
    assert per_sample[-1] < 0.15 * per_sample[0], per_sample  # converges towards the truth
    assert naive[-1] > 3 * per_sample[-1], (naive, per_sample)  # the naive guess is biased


def test_killed_and_resumed_bit_identical(tmp_path):
    sets = [*RING8_STAGED, "data.sigma=null", "data.sigma_range=[0.1, 0.6]"]
    assert_kill_resume_identical(tmp_path, sets, ["denoise.shard:3", "train.step:12"])


def test_torchrun_shards_keep_each_samples_level(tmp_path):
    sets = ["data.sigma=null", "data.sigma_range=[0.05, 1.0]"]
    assert_torchrun_denoises_as_one_process(tmp_path, sets)


def test_user_mode_run_sample_and_denoise(tmp_path):
    bench = ["data.sigma=null", "data.sigma_range=[0.1, 0.6]"]
    cfg = load_config(overrides=["data.source=ring8", "data.num_samples=800", *bench])
    levels = tmp_path / "levels.npy"
    np.save(levels, load_problem(cfg).corruption.sigma)  # the levels as a user's file
    user_mode_round_trip(tmp_path, bench, [f"data.sigma={levels}"], ["--sigma", str(levels)])
