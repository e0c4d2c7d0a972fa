"""The ambient method (sfbd.methods.ambient) and ``sfbd.pretrain: ambient``: the plan, the
mixture's per-row levels, the configuration checks, the identity with clean training as the
noise vanishes, kill-and-resume, runs in both modes and, on Gaussian data (known truth), the
trained denoiser against clean-only's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from run_helpers import RING8_STAGED, RING8_TINY, assert_kill_resume_identical

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import ConfigError
from sfbd.methods import METHODS, base
from sfbd.methods.ambient import Ambient
from sfbd.methods.base import ambient_set, total_steps
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.noise.base import Corruption
from sfbd.run.directory import stage_stem
from sfbd.run.runner import Run
from sfbd.train.data import IndexedTrainingSet

TINY = [*RING8_TINY, "train.pretrain_steps=30", "train.update_steps=15", "train.batch_size=64"]
TINY += ["sfbd.iterations=2", "eval.num_samples=200", "sample.steps=8", "device=cpu"]
AMB = [*TINY, "method=ambient"]
MU = torch.tensor([0.3, -0.2], dtype=torch.float64)
CHOL = torch.tensor([[0.5, 0.0], [0.3, 0.2]], dtype=torch.float64)


class _Ctx:
    """The StageContext a method sees, for building its training set."""

    def __init__(self, cfg):
        self.cfg, self.prob, self.device, self.carry = (
            cfg,
            load_problem(cfg),
            torch.device("cpu"),
            {},
        )


def _weights(out, k=0) -> dict[str, torch.Tensor]:
    model, ema = load_checkpoint(stage_stem(out, k))[:2]
    return {**{f"m.{k}": v for k, v in model.state_dict().items()}, **ema.state_dict()}


# -- the method -----------------------------------------------------------------------------
def test_one_stage_of_sfbds_budget_after_the_baselines():
    cfg = load_config(overrides=AMB)
    (stage,) = Ambient().plan(cfg)
    assert (stage.iteration, stage.name, stage.steps, stage.denoises) == (0, "ambient", 60, False)
    assert stage.steps == total_steps(cfg)
    names = METHODS.names()
    assert names[-1] == "ambient" and names.index("ambient") > names.index("oracle")
    assert Ambient.needs_noisy and Ambient.pretrains


@pytest.mark.parametrize(
    "noise",
    [[], ["data.sigma=null", "data.sigma_range=[0.2,0.6]"]],
    ids=["white", "per-sample"],
)
def test_the_mixture_holds_clean_rows_at_zero_then_noisy_rows_at_their_levels(noise):
    cfg = load_config(overrides=[*AMB, *noise])
    ctx = _Ctx(cfg)
    prob = ctx.prob
    tset = ambient_set(ctx)
    assert isinstance(tset, IndexedTrainingSet) and tset.has_levels
    m, n = len(prob.clean), len(prob.noisy)
    assert (m, n) == (45, 855) and len(tset) == m + n
    levels = tset.levels.numpy()
    want = prob.corruption.white_levels(np.arange(n))
    assert (levels[:m] == 0).all() and np.array_equal(levels[m:], want)
    assert np.array_equal(np.asarray(tset.data)[:m], np.asarray(prob.clean))
    assert np.array_equal(np.asarray(tset.data)[m:], np.asarray(prob.noisy))
    if noise:  # each sample its own tau_i
        assert len(np.unique(want)) == n and want.min() >= 0.2 and want.max() <= 0.6


def test_data_pretrain_samples_join_as_clean_rows():
    ctx = _Ctx(load_config(overrides=[*AMB, "data.pretrain=checkerboard"]))
    tset = ambient_set(ctx)
    p, m, n = len(ctx.prob.pretrain), len(ctx.prob.clean), len(ctx.prob.noisy)
    assert len(tset) == p + m + n and (tset.levels[: p + m] == 0).all()
    assert (tset.levels[p + m :] > 0).all()


def test_coloured_noise_trains_at_its_model_space_level(tmp_path):
    np.save(tmp_path / "cov.npy", np.array([[0.09, 0.03], [0.03, 0.04]]))
    cfg = load_config(overrides=[*AMB, "data.sigma=null", f"data.noise_cov={tmp_path / 'cov.npy'}"])
    ctx = _Ctx(cfg)
    levels = ambient_set(ctx).levels
    tau = ctx.prob.corruption.white_levels(np.arange(1))[0]
    assert (levels[45:] == tau).all() and tau > 0


def test_photon_noise_trains_at_its_anscombe_space_level():
    sets = ["data.source=digits", "data.sigma=null", "data.noise=poisson-gaussian"]
    cfg = load_config(overrides=[*sets, "data.gain=0.05", "method=ambient", "device=cpu"])
    ctx = _Ctx(cfg)
    tset, corruption = ambient_set(ctx), ctx.prob.corruption
    m, n = len(ctx.prob.clean), len(ctx.prob.noisy)
    assert not corruption.white_is_exact  # the Anscombe transform's level is approximate
    assert (tset.levels[:m] == 0).all()
    assert np.array_equal(tset.levels[m:].numpy(), corruption.white_levels(np.arange(n)))
    assert (tset.levels[m:] > 0).all()


# -- configuration checks -------------------------------------------------------------------
@pytest.mark.parametrize(
    "sets,match",
    [
        (["method=ambient", "model.kind=ddpmpp", "train.augment=0.12"], "train.augment"),
        (["method=ambient", "model.kind=gaussian"], "gradient steps"),
        (["sfbd.pretrain=ambient", "model.kind=gaussian"], "sfbd.pretrain=ambient"),
        (["method=online-sfbd", "sfbd.pretrain=ambient", "model.kind=gaussian"], "gradient"),
        (["sfbd.pretrain=noisy"], "sfbd.pretrain must be one of clean, ambient"),
        (["method=clean-only", "sfbd.pretrain=Ambient"], "sfbd.pretrain must be one of"),
    ],
)
def test_configurations_it_cannot_run_are_refused_in_one_line(sets, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config(overrides=["data.source=ring8", *sets])
    assert "\n" not in str(err.value)


def test_sfbd_pretrain_is_read_only_by_sfbd_and_online():
    for method in ("clean-only", "noisy-only", "oracle"):  # ignored there, as online.* is
        sets = [f"method={method}", "sfbd.pretrain=ambient", "model.kind=gaussian"]
        load_config(overrides=["data.source=ring8", *sets])
    assert load_config(overrides=["data.source=ring8"]).sfbd.pretrain == base.CLEAN


def test_a_noise_model_without_white_levels_is_refused(monkeypatch):
    from sfbd.noise.white import WhiteGaussian

    monkeypatch.setattr(WhiteGaussian, "white_levels", Corruption.white_levels)
    with pytest.raises(ConfigError, match="white Gaussian in the model space"):
        load_config(overrides=["data.source=ring8", "method=ambient"])
    with pytest.raises(ConfigError, match="no such levels"):
        load_config(overrides=["data.source=ring8", "sfbd.pretrain=ambient"])
    cfg = load_config(overrides=TINY)  # and, were it to get that far, the run refuses it
    cfg.method = "ambient"
    with pytest.raises(ConfigError, match="needs white Gaussian noise"):
        ambient_set(_Ctx(cfg))


# -- the identity: vanishing noise levels are clean training --------------------------------
def _run_with_levels(tmp_path, name, monkeypatch, levels):
    """A tiny method=ambient run whose noisy rows have level ``levels`` (None: the mixture's
    levels dropped, i.e. every row trained as clean by EDM's loss)."""
    from sfbd.noise.white import WhiteGaussian

    with monkeypatch.context() as mp:
        if levels is None:
            mp.setattr(IndexedTrainingSet, "draw_levels", lambda s, g, n: (s.draw(g, n), None))
        else:
            mp.setattr(WhiteGaussian, "white_levels", lambda s, i: np.full(len(i), levels))
        out = tmp_path / name
        done = Run(load_config(overrides=AMB), out, progress=False).execute()
    return done[0], _weights(out)


def test_vanishing_levels_train_as_clean_training_on_clean_and_noisy(tmp_path, monkeypatch):
    clean, w_clean = _run_with_levels(tmp_path, "clean", monkeypatch, None)
    zero, w_zero = _run_with_levels(tmp_path, "zero", monkeypatch, 0.0)
    tiny, w_tiny = _run_with_levels(tmp_path, "tiny", monkeypatch, 1e-12)
    real, w_real = _run_with_levels(tmp_path, "real", monkeypatch, 0.35)
    assert zero["metrics"] == clean["metrics"]  # tau = 0 is EDM's loss, bit for bit
    assert all(torch.equal(w_zero[k], w_clean[k]) for k in w_clean)
    assert tiny["metrics"]["train_loss"] == pytest.approx(clean["metrics"]["train_loss"], 1e-4)
    for k in w_clean:
        assert torch.allclose(w_tiny[k], w_clean[k], atol=1e-5, rtol=1e-4), k
    assert max(float((w_real[k] - w_clean[k]).abs().max()) for k in w_clean) > 1e-3


# -- runs -----------------------------------------------------------------------------------
def test_killed_and_rerun_is_bit_identical(tmp_path):
    sets = [*RING8_STAGED, "method=ambient", "data.sigma=null", "data.sigma_range=[0.2,0.6]"]
    kills = ["data.write:1", "train.step:12", "checkpoint.write:2", "train.step:30", "stage.end:1"]
    assert_kill_resume_identical(tmp_path, sets, kills)


def test_user_mode_run(tmp_path):
    from sfbd.cli.main import main

    prob = load_problem(load_config(overrides=AMB))
    np.save(tmp_path / "noisy.npy", prob.noisy)
    np.save(tmp_path / "clean.npy", prob.clean)
    user = [s for s in AMB if not s.startswith("data.")]
    user += [f"data.noisy={tmp_path / 'noisy.npy'}", f"data.clean={tmp_path / 'clean.npy'}"]
    user.append("data.sigma=0.35")
    assert main(["run", "--out", str(tmp_path / "u"), "--quiet", "--set", *user]) == 0
    (stage,) = json.loads((tmp_path / "u" / "metrics.json").read_text())["stages"]
    assert stage["stage"] == "ambient" and np.isfinite(stage["metrics"]["train_loss"])
    assert "denoise_nfe" not in stage["metrics"]  # nothing is backward-sampled


@pytest.mark.parametrize(
    "method,noise",
    [("sfbd", "coloured"), ("online-sfbd", "per-sample")],
)
def test_sfbd_and_online_pretrain_on_the_ambient_mixture(tmp_path, method, noise):
    np.save(tmp_path / "cov.npy", np.array([[0.09, 0.03], [0.03, 0.04]]))
    keys = {
        "coloured": ["data.sigma=null", f"data.noise_cov={tmp_path / 'cov.npy'}"],
        "per-sample": ["data.sigma=null", "data.sigma_range=[0.2,0.6]"],
    }[noise]
    sets = [*TINY, f"method={method}", *keys, "online.refresh_every=5"]
    plain = Run(load_config(overrides=sets), tmp_path / "clean", progress=False).execute()
    sets.append("sfbd.pretrain=ambient")
    amb = Run(load_config(overrides=sets), tmp_path / "amb", progress=False).execute()
    assert [s["stage"] for s in amb] == [s["stage"] for s in plain]
    assert [s["train_steps"] for s in amb] == [30, 15, 15]
    assert all(np.isfinite(s["metrics"]["swd"]) for s in amb)
    assert all(s["metrics"]["denoise_nfe"] > 0 for s in amb[1:])  # SFBD's stages follow
    w_plain, w_amb = _weights(tmp_path / "clean"), _weights(tmp_path / "amb")
    assert max(float((w_amb[k] - w_plain[k]).abs().max()) for k in w_plain) > 1e-3


def _denoiser_error(ema: torch.nn.Module, sigmas: np.ndarray) -> float:
    """E||D - D*||^2 / MMSE of ``ema`` against the exact denoiser of N(MU, CHOL CHOL^T),
    averaged over ``sigmas`` (fresh samples, float64 truth)."""
    exact = GaussianDenoiser((2,))
    exact.set_moments(MU, CHOL @ CHOL.T)
    g = torch.Generator().manual_seed(7)
    errs = []
    with torch.no_grad():
        for s in sigmas:
            x = MU + torch.randn(4000, 2, generator=g, dtype=torch.float64) @ CHOL.T
            x_t = x + float(s) * torch.randn(4000, 2, generator=g, dtype=torch.float64)
            sig = torch.full((4000,), float(s), dtype=torch.float64)
            d = ema(x_t.float(), sig.float()).double()
            errs.append(float(((d - exact(x_t, sig)) ** 2).mean()) / (s**2 / 4 / (s**2 + 0.25)))
    return float(np.mean(errs))


def test_on_gaussian_data_ambient_learns_the_clean_denoiser_better_than_clean_only(tmp_path):
    """Known truth: 2-D Gaussian data, 5% clean, tau = 0.35, SFBD's budget for both. The
    ambient loss's minimiser is the clean denoiser, so the noisy 95% must bring the trained
    denoiser closer to the exact one where they are used (tau <= sigma < 2 tau) than the 5%
    clean samples alone do (benchmarks/AMBIENT_WEIGHTING.md: 0.0046 vs 0.0130, 3 seeds)."""
    g = torch.Generator().manual_seed(0)
    x = MU + torch.randn(4000, 2, generator=g, dtype=torch.float64) @ CHOL.T
    np.save(tmp_path / "gauss.npy", x.float().numpy())
    sets = [f"data.source={tmp_path / 'gauss.npy'}", "data.clean_fraction=0.05"]
    sets += ["model.hidden=64", "model.layers=2", "train.batch_size=256", "device=cpu"]
    sets += ["train.pretrain_steps=1000", "train.update_steps=500", "sfbd.iterations=2"]
    sets += ["eval.num_samples=200", "sample.steps=8"]
    err = {}
    for method in ("clean-only", "ambient"):
        cfg = load_config(overrides=[*sets, f"method={method}"])
        Run(cfg, tmp_path / method, progress=False).execute()
        ema = load_checkpoint(stage_stem(tmp_path / method, 0))[1].eval()
        err[method] = _denoiser_error(ema, np.geomspace(0.35, 0.7, 8))
    assert err["ambient"] < 0.6 * err["clean-only"], err
