"""Online SFBD (sfbd.methods.online): the bank's mechanics, the identity with SFBD, the
convergence of its fit on Gaussian data, its cost accounting, crash safety and DDP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from run_helpers import RING8_TINY, torchrun
from run_helpers import sfbd_run as run_in_subprocess

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.diffusion.schedule import edm_sigmas, truncate_sigmas
from sfbd.methods.online import Bank, OnlineSFBD, ramp_weight, refresh_points, refresh_size
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.run.runner import Run, plan

TINY = [*RING8_TINY, "train.pretrain_steps=40", "train.update_steps=30", "train.batch_size=64"]
TINY += ["sfbd.iterations=2", "eval.num_samples=200", "sample.steps=16", "device=cpu"]


class _Ctx:
    """A StageContext whose backward pass returns -(index + 1000 * visit) in every coordinate."""

    def __init__(self, cfg, n=10, m=4):
        self.cfg, self.device, self.carry = cfg, torch.device("cpu"), {}
        self.prob = type("P", (), {"clean": np.ones((m, 2), np.float32), "noisy": np.zeros((n, 2))})
        self.calls: list[tuple[list[int], int]] = []

    def backward(self, index, visit):
        self.calls.append((list(map(int, index)), visit))
        v = -(torch.as_tensor(index, dtype=torch.float32) + 1000 * visit)
        return v[:, None].expand(-1, 2).clone()

    def evaluations(self, index=None):
        return 3 * (len(self.prob.noisy) if index is None else len(index))


def _bank(ctx, k=2, n=10):
    stage = OnlineSFBD().plan(ctx.cfg)[k]
    return Bank(ctx, stage, torch.zeros(n, 2), 0, torch.ones(n, dtype=torch.int64))


def test_refreshes_go_round_robin_with_one_visit_count_per_sample():
    cfg = load_config(overrides=[*TINY, "online.refresh_size=4", "online.refresh_every=5"])
    ctx = _Ctx(cfg)
    bank = _bank(ctx)
    for _ in range(5):  # 20 refreshed samples: every one of the 10 exactly twice
        bank.refresh()
    want = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [0, 1], [2, 3, 4, 5], [6, 7, 8, 9]]
    assert [c[0] for c in ctx.calls] == want
    assert [c[1] for c in ctx.calls] == [2, 2, 2, 3, 3, 3]  # the wrap splits visit counts
    assert bank.visits.tolist() == [3] * 10 and bank.cursor == 0
    assert bank.bank[:, 0].tolist() == [-(i + 3000) for i in range(10)]
    assert torch.equal(bank.data[10:], torch.ones(4, 2))  # the clean set is never touched


def test_bank_state_round_trip_restores_draws():
    cfg = load_config(overrides=[*TINY, "online.refresh_size=3", "online.ramp=0.5"])
    ctx = _Ctx(cfg)
    a = _bank(ctx, k=1)
    a.hook(20)
    a.refresh()
    b = _bank(_Ctx(cfg), k=1)
    b.load_state(a.state())
    assert b.cursor == a.cursor and b.lam == a.lam and torch.equal(b.bank, a.bank)
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(a.draw(ga, 50), b.draw(gb, 50))


def test_ramp_and_mixture_probability():
    assert ramp_weight(0, 100, 0.5) == 0.0 and ramp_weight(25, 100, 0.5) == 0.5
    assert ramp_weight(50, 100, 0.5) == 1.0 and ramp_weight(0, 100, 0.0) == 1.0
    cfg = load_config(overrides=[*TINY, "online.ramp=1.0", "online.refresh_size=30"])
    ctx = _Ctx(cfg, n=30, m=10)
    bank = _bank(ctx, k=1, n=30)  # bank -1000 - i (after a refresh), clean 1
    bank.refresh()
    bank.lam = 0.5  # p(bank) = 0.5 * 30 / (0.5 * 30 + 10) = 0.6
    x = bank.draw(torch.Generator().manual_seed(0), 20000)
    frac = float((x[:, 0] < 0).float().mean())
    assert abs(frac - 0.6) < 0.015, frac
    bank.lam = 0.0
    assert (bank.draw(torch.Generator().manual_seed(0), 500) == 1).all()  # clean only
    _, w = bank.population()
    assert w is not None and (w[:30] == 0).all() and (w[30:] == 1).all()


def test_plan_budget_and_refresh_schedule():
    cfg = load_config(overrides=[*TINY, "method=online-sfbd", "online.refresh_every=7"])
    stages = plan(cfg)
    assert [(s.iteration, s.name, s.steps, s.denoises) for s in stages] == [
        (0, "pretrain", 40, False),
        (1, "online", 30, True),
        (2, "online", 30, False),
    ]
    assert refresh_points(stages[1], 7) == [7, 14, 21, 28]  # after the full pass
    assert refresh_points(stages[2], 7) == [0, 7, 14, 21, 28]
    # SFBD's budget: (K - 1) N = 855 re-denoisings over 2 x 5 - 1 = 9 refreshes
    assert refresh_size(cfg, 855) == 95
    one = load_config(overrides=[*TINY, "sfbd.iterations=1"])
    assert refresh_size(one, 855) == 0  # K = 1: the first pass is SFBD's whole budget
    assert (
        refresh_size(load_config(overrides=[*TINY, "online.refresh_size=1000000000"]), 855) == 855
    )


def _metrics(out: Path) -> list[dict]:
    stages = json.loads((out / "metrics.json").read_text())["stages"]
    return [s["metrics"] for s in stages]


def test_full_refresh_per_stage_without_ramp_is_sfbd(tmp_path):
    # refresh_size = N, refresh_every = update_steps, ramp 0: each stage starts with a full
    # refresh under the EMA SFBD would use, so every number is SFBD's (N < sample.batch_size:
    # the same batches, so bit for bit)
    same = [*TINY, "online.refresh_size=100000", "online.refresh_every=30", "online.ramp=0"]
    sfbd = Run(load_config(overrides=same), tmp_path / "sfbd", progress=False).execute()
    online = Run(
        load_config(overrides=[*same, "method=online-sfbd"]), tmp_path / "on", progress=False
    ).execute()
    assert [s["stage"] for s in online] == ["pretrain", "online", "online"]
    for a, b in zip(sfbd, online, strict=True):
        assert a["metrics"] == b["metrics"]
    for k in (1, 2):
        _, ea, _, _ = load_checkpoint(tmp_path / "sfbd" / "checkpoints" / f"stage-{k:02d}")
        _, eb, _, _ = load_checkpoint(tmp_path / "on" / "checkpoints" / f"stage-{k:02d}")
        for (name, pa), pb in zip(ea.state_dict().items(), eb.state_dict().values(), strict=True):
            assert torch.equal(pa, pb), name


def test_denoise_nfe_counts_the_denoiser_calls(tmp_path, monkeypatch):
    from sfbd.noise.white import WhiteGaussian

    calls = []
    original = WhiteGaussian.backward

    def counted(self, denoiser, y, keys, grid, *, sampler, stream):
        def d(x, s):
            calls.append(len(x))
            return denoiser(x, s)

        return original(self, d, y, keys, grid, sampler=sampler, stream=stream)

    monkeypatch.setattr(WhiteGaussian, "backward", counted)
    cfg = load_config(overrides=[*TINY, "method=online-sfbd", "online.refresh_every=8"])
    stages = Run(cfg, tmp_path / "r", progress=False).execute()
    recorded = [s["metrics"].get("denoise_nfe", 0) for s in stages]
    assert sum(calls) == sum(recorded)
    # heun below sigma 0.35 on the 16-step grid: 2 calls per step, 1 for the last (to 0)
    levels = truncate_sigmas(edm_sigmas(16), 0.35)
    n, per = 855, 2 * (len(levels) - 2) + 1
    size = refresh_size(cfg, n)  # ceil(855 / 7): refreshes at 8 16 24 | 0 8 16 24
    assert size == 123
    assert recorded == [0, n * per + 3 * size * per, 4 * size * per]
    assert 0 <= sum(recorded) - 2 * n * per <= 7 * per  # SFBD's budget, up to rounding


MU = np.array([0.3, -0.2])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


def _moment_errors(out: Path, n_stages: int) -> list[tuple[float, float]]:
    errs = []
    for k in range(n_stages):
        ema = load_checkpoint(out / "checkpoints" / f"stage-{k:02d}")[1]
        errs.append(
            (
                float(np.linalg.norm(ema.mean.numpy() - MU)),
                float(np.linalg.norm(ema.cov.numpy() - COV)),
            )
        )
    return errs


def test_online_fit_converges_to_the_true_gaussian_like_sfbd(tmp_path):
    path = tmp_path / "gauss.npy"
    x = np.random.default_rng(0).multivariate_normal(MU, COV, size=100_000)
    np.save(path, x.astype(np.float32))
    common = [
        f"data.source={path}",
        "data.sigma=0.5",
        "data.clean_fraction=0.0008",
        "data.holdout=0.02",
        "model.kind=gaussian",
        "sfbd.iterations=3",
        "train.update_steps=200",
        "sample.steps=64",
        "eval.num_samples=500",
    ]
    errs = {}
    for method in ("sfbd", "online-sfbd"):
        cfg = load_config(overrides=[*common, f"method={method}"])
        Run(cfg, tmp_path / method, progress=False).execute()
        errs[method] = _moment_errors(tmp_path / method, 4)
    on, sf = errs["online-sfbd"], errs["sfbd"]
    assert on[0] == pytest.approx(sf[0])  # the same pretraining
    totals = [m + c for m, c in on]
    assert totals[2] < totals[1] < totals[0], on  # stage 3 sits at the finite-sample floor
    assert on[-1][0] < 0.1 * on[0][0] and on[-1][1] < 0.1 * on[0][1], on
    # at the same budget it is at least as close to the truth as SFBD at every stage (seen:
    # total error 0.012 / 0.006 / 0.006 against SFBD's 0.034 / 0.011 / 0.006)
    for k in (1, 2, 3):
        assert sum(on[k]) <= 1.1 * sum(sf[k]), (k, on, sf)


STAGED = [
    *TINY,
    "method=online-sfbd",
    "train.checkpoint_every=7",
    "online.refresh_every=5",
    "sample.sampler=sde",
    "sample.shard_size=200",
    "sample.batch_size=64",
]


def _outputs(run: Path) -> dict[str, bytes]:
    files = [*run.glob("checkpoints/stage-*.safetensors"), *run.glob("denoised/*/*.npz")]
    files += run.glob("samples/*.npy")
    return {str(f.relative_to(run)): f.read_bytes() for f in sorted(files)}


def test_killed_mid_refresh_and_mid_training_then_rerun_is_bit_identical(tmp_path):
    ref = tmp_path / "ref"
    assert run_in_subprocess(ref, STAGED).returncode == 0
    run = tmp_path / "run"
    kills = [
        "denoise.shard:3",  # the full pass that makes the bank: 3 of 5 shards written
        "online.refresh:3",  # stage 1: in the 3rd refresh, before the bank is updated
        "train.step:12",  # stage 1 resumed from its step checkpoint at 7
        "online.refresh:5",  # stage 2 (or late stage 1), mid-refresh
    ]
    for fault in kills:
        died = run_in_subprocess(run, STAGED, fault)
        assert died.returncode == -9, (fault, died.returncode, died.stderr[-2000:])
    done = run_in_subprocess(run, STAGED)
    assert done.returncode == 0, done.stderr
    strip = [{k: v for k, v in s.items() if k != "seconds"} for s in _load(run)]
    assert strip == [{k: v for k, v in s.items() if k != "seconds"} for s in _load(ref)]
    got, want = _outputs(run), _outputs(ref)
    assert got.keys() == want.keys() and [k for k in want if got[k] != want[k]] == []


def _load(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["stages"]


def test_user_mode_online_run(tmp_path):
    cfg = load_config(overrides=TINY)
    prob = load_problem(cfg)
    np.save(tmp_path / "noisy.npy", prob.noisy)
    np.save(tmp_path / "clean.npy", prob.clean)
    user = [
        *[s for s in TINY if not s.startswith("data.")],
        f"data.noisy={tmp_path / 'noisy.npy'}",
        f"data.clean={tmp_path / 'clean.npy'}",
        "data.sigma=0.35",
        "method=online-sfbd",
    ]
    stages = Run(load_config(overrides=user), tmp_path / "u", progress=False).execute()
    assert [s["stage"] for s in stages] == ["pretrain", "online", "online"]
    assert all(s["metrics"]["denoise_nfe"] > 0 for s in stages[1:])


def test_torchrun_two_processes_online(tmp_path):
    sets = [*TINY, "method=online-sfbd", "online.refresh_every=10", "sample.shard_size=200"]
    done = torchrun(tmp_path / "ddp", sets)
    assert done.returncode == 0, done.stderr[-3000:]
    one = Run(load_config(overrides=sets), tmp_path / "one", progress=False).execute()
    ddp = _load(tmp_path / "ddp")
    assert [s["stage"] for s in ddp] == ["pretrain", "online", "online"]
    for a, b in zip(one, ddp, strict=True):  # same global batches; float summation order
        assert a["metrics"].get("denoise_nfe") == b["metrics"].get("denoise_nfe")
        assert b["metrics"]["swd"] == pytest.approx(a["metrics"]["swd"], rel=0.05, abs=0.01)
