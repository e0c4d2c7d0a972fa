import json

import numpy as np
import pytest
import torch
from run_helpers import RING8_TINY
from safetensors.torch import load_file

from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import SfbdError
from sfbd.methods import METHODS
from sfbd.nets.checkpoint import load_checkpoint
from sfbd.run.denoise import read_denoised
from sfbd.run.runner import Run, plan

MU = np.array([0.3, -0.2])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


@pytest.fixture(scope="module")
def gaussian_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "gauss.npy"
    x = np.random.default_rng(0).multivariate_normal(MU, COV, size=100_000)
    np.save(path, x.astype(np.float32))
    return path


def _errors(run: Run, stages: list[dict]) -> list[tuple[float, float]]:
    out = []
    for s in stages:
        ema = load_checkpoint(run.checkpoint_stem(s["iteration"]))[1]
        out.append(
            (
                float(np.linalg.norm(ema.mean.numpy() - MU)),
                float(np.linalg.norm(ema.cov.numpy() - COV)),
            )
        )
    return out


def test_sfbd_with_the_analytic_model_converges_to_the_true_gaussian(gaussian_file, tmp_path):
    # 80 clean samples, 98k noisy ones at tau = 0.5; the exact Gaussian denoiser is refitted
    # by moments at every stage, so each iteration is the population map
    # Sigma <- A (Sigma_y) A with A = S^1/2 (S + tau^2)^-1/2, a contraction towards the truth.
    common = [
        f"data.source={gaussian_file}",
        "data.sigma=0.5",
        "data.clean_fraction=0.0008",
        "data.holdout=0.02",
        "model.kind=gaussian",
        "sfbd.iterations=3",
        "sample.steps=64",
        "eval.num_samples=500",
    ]
    run = Run(load_config(overrides=common), tmp_path / "sfbd", progress=False)
    errs = _errors(run, run.execute())
    base = Run(
        load_config(overrides=[*common, "method=clean-only"]), tmp_path / "c", progress=False
    )
    clean_only = _errors(base, base.execute())[0]
    assert errs[0] == pytest.approx(clean_only)  # iteration 0 is the clean-only fit
    totals = [m + c for m, c in errs]
    assert all(b < a for a, b in zip(totals, totals[1:], strict=False)), errs
    for (m0, c0), (m1, c1) in zip(errs, errs[1:], strict=False):
        assert m1 <= m0 + 1e-3 and c1 <= c0 + 1e-3, errs
    assert errs[-1][0] < 0.1 * clean_only[0] and errs[-1][1] < 0.1 * clean_only[1], errs


RING = [
    "data.source=ring8",
    "data.num_samples=8000",
    "data.clean_fraction=0.01",
    "data.holdout=0.25",
    "model.hidden=64",
    "model.layers=2",
    "train.pretrain_steps=400",
    "train.update_steps=300",
    "train.batch_size=256",
    "sfbd.iterations=2",
    "eval.num_samples=1500",
]


def test_neural_sfbd_beats_clean_only_on_ring8(tmp_path):
    sfbd = Run(load_config(overrides=RING), tmp_path / "s", progress=False).execute()
    clean = Run(
        load_config(overrides=[*RING, "method=clean-only"]), tmp_path / "c", progress=False
    ).execute()
    assert [s["stage"] for s in sfbd] == ["pretrain", "update", "update"]
    assert clean[0]["train_steps"] == 400 + 2 * 300  # same total budget
    final, baseline = sfbd[-1]["metrics"]["swd"], clean[-1]["metrics"]["swd"]
    assert final < 0.75 * baseline, (final, baseline)
    # E_k is stored keyed by the noisy sample's index, one row per noisy sample
    index, x = read_denoised(tmp_path / "s", 2)
    n_noisy = len(load_problem(load_config(overrides=RING)).noisy)
    assert np.array_equal(index, np.arange(n_noisy))
    assert x.shape == (n_noisy, 2)
    for name in ("metrics.png", "stages.png", "samples/stage-02.png", "samples/stage-02.npy"):
        assert (tmp_path / "s" / name).is_file(), name


TINY = [
    *RING8_TINY,
    "train.pretrain_steps=30",
    "train.update_steps=20",
    "train.batch_size=64",
    "sfbd.iterations=2",
    "eval.num_samples=200",
    "sample.sampler=sde",
]


def _strip(stages):
    return [{k: v for k, v in s.items() if k != "seconds"} for s in stages]


def test_resume_after_a_stage_gives_identical_results(tmp_path):
    cfg = load_config(overrides=TINY)
    straight = Run(cfg, tmp_path / "a", progress=False).execute()
    first = Run(cfg, tmp_path / "b", progress=False).execute(max_stages=1)
    assert len(first) == 1
    second = Run(cfg, tmp_path / "b", progress=False).execute(max_stages=1)
    assert len(second) == 2
    resumed = Run(cfg, tmp_path / "b", progress=False).execute()
    assert _strip(resumed) == _strip(straight)
    a = load_file(str(tmp_path / "a" / "checkpoints" / "stage-02.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "stage-02.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a finished run is not redone
    again = Run(cfg, tmp_path / "b", progress=False).execute()
    assert _strip(again) == _strip(straight)


def test_iterations_can_be_extended_but_other_changes_are_refused(tmp_path):
    Run(load_config(overrides=TINY), tmp_path, progress=False).execute(max_stages=1)
    more = load_config(overrides=[*TINY, "sfbd.iterations=3"])
    assert len(Run(more, tmp_path, progress=False).execute(max_stages=1)) == 2
    other = load_config(overrides=[*TINY, "sfbd.iterations=3", "data.sigma=0.2"])
    with pytest.raises(SfbdError, match=r"different configuration \(differs in data.sigma\)"):
        Run(other, tmp_path, progress=False).execute()
    redone = Run(other, tmp_path, progress=False).execute(max_stages=1, force=True)
    assert len(redone) == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["stages"] == redone


def test_a_finished_run_is_not_shrunk_by_fewer_iterations(tmp_path):
    """K=2 rerun with K=1 would leave config.yaml and status at one iteration while
    metrics.json, the checkpoints and sfbd.load kept stage 2: refused, naming the key."""
    Run(load_config(overrides=TINY), tmp_path, progress=False).execute()
    before = (tmp_path / "config.yaml").read_text(), (tmp_path / "metrics.json").read_text()
    fewer = load_config(overrides=[*TINY, "sfbd.iterations=1"])
    with pytest.raises(SfbdError, match=r"sfbd.iterations: 2 there, 1 here, .*grow but not shrink"):
        Run(fewer, tmp_path, progress=False).execute()
    assert (
        (tmp_path / "config.yaml").read_text(),
        (tmp_path / "metrics.json").read_text(),
    ) == before
    assert len(Run(fewer, tmp_path, progress=False).execute(force=True)) == 2  # starts over


def test_refuses_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SfbdError, match="not an sfbd run directory"):
        Run(load_config(overrides=TINY), tmp_path, progress=False).execute()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


class _Ctx:
    """A StageContext whose E_k is a given array."""

    def __init__(self, cfg, prob, denoised=None):
        self.cfg, self.prob, self.device, self.carry = cfg, prob, torch.device("cpu"), {}
        self._denoised = denoised

    def denoise(self, k):
        return self._denoised

    def evaluations(self, index=None):
        return 1 * (len(self.prob.noisy) if index is None else len(index))


def _drawn(cfg, stage, ctx):
    return METHODS[cfg.method]().training_set(stage, ctx).population()[0].numpy()


def test_plans_and_training_sets():
    cfg = load_config(overrides=[*TINY, "method=oracle"])
    assert [(s.iteration, s.name, s.steps) for s in plan(cfg)] == [(0, "oracle", 70)]
    prob = load_problem(cfg)
    stage = plan(cfg)[0]
    assert len(_drawn(cfg, stage, _Ctx(cfg, prob))) == len(prob.clean) + len(prob.noisy)
    cfg = load_config(overrides=[*TINY, "method=noisy-only"])
    assert np.array_equal(_drawn(cfg, stage, _Ctx(cfg, prob)), prob.noisy)
    cfg = load_config(overrides=TINY)
    denoised = np.zeros_like(prob.noisy)
    update = plan(cfg)[1]
    assert len(_drawn(cfg, update, _Ctx(cfg, prob, denoised))) == len(prob.noisy) + len(prob.clean)


def test_pretraining_on_a_similar_set_without_a_clean_subset(tmp_path):
    # data.pretrain replaces the clean subset: stage 0 learns ring8 from an independent draw,
    # the updates train on E_k alone (clean_fraction 0)
    cfg = load_config(overrides=[*TINY, "data.clean_fraction=0", "data.pretrain=ring8"])
    run = Run(cfg, tmp_path / "p", progress=False)
    prob = load_problem(cfg)
    assert len(prob.clean) == 0 and prob.pretrain is not None and len(prob.pretrain) == 1000
    stage0 = plan(cfg)[0]
    assert np.array_equal(_drawn(cfg, stage0, _Ctx(cfg, prob)), prob.pretrain)
    e = np.zeros((len(prob.noisy), 2), np.float32)
    assert np.array_equal(_drawn(cfg, plan(cfg)[1], _Ctx(cfg, prob, e)), e)
    stages = run.execute()
    assert [s["stage"] for s in stages] == ["pretrain", "update", "update"]
    assert all(np.isfinite(s["metrics"]["swd"]) for s in stages)


def test_not_enough_disk_for_the_denoised_sets_is_refused_before_any_work(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("sfbd.io.disk.shutil.disk_usage", lambda p: usage._replace(free=10 * 2**20))
    cfg = load_config(overrides=TINY)
    run = Run(cfg, tmp_path / "d", progress=False)
    # every E_k and the benchmark's noisy set, float32
    need = (cfg.sfbd.iterations + 1) * int(len(load_problem(cfg).noisy)) * 2 * 4
    with pytest.raises(
        SfbdError,
        match=r"not enough disk space for the rest of this run \(the denoised sets E_k and the "
        rf"stored noisy set\) in "
        rf".*: {need:,} bytes .* needed, 10,485,760 bytes \(0.01 GiB\) free",
    ):
        run.execute()
    assert run.metrics() == []  # refused before pretraining
    assert not list((tmp_path / "d").glob("denoised/*/*.npz"))
    assert not (tmp_path / "d" / "checkpoints").exists()


def _denoise_worker(rank, world, out, ckpt):
    from sfbd.diffusion.schedule import edm_sigmas
    from sfbd.run.denoise import ShardedDenoiser
    from sfbd.runtime.fast import FastPath
    from sfbd.runtime.interrupt import NEVER

    cfg = load_config(overrides=[*TINY, "sample.shard_size=150", "sample.batch_size=40"])
    _, ema, _, _ = load_checkpoint(ckpt)
    den = ShardedDenoiser(
        cfg,
        load_problem(cfg),
        out,
        edm_sigmas(cfg.sample.steps),
        FastPath(),
        progress=False,
        log=lambda msg, warn: None,
        stop_requested=lambda: False,
    )
    den.full_pass(1, ema.eval(), NEVER)


def test_sharded_denoising_gives_the_same_keyed_set_for_1_2_and_3_processes(tmp_path):
    from ddp_helpers import run_ranks

    cfg = load_config(overrides=TINY)
    Run(cfg, tmp_path / "base", progress=False).execute(max_stages=1)
    ckpt = tmp_path / "base" / "checkpoints" / "stage-00"
    sets = {}
    for world in (1, 2, 3):
        out = tmp_path / f"w{world}"
        run_ranks(world, _denoise_worker, out, ckpt)
        files = sorted((out / "denoised" / "E_01").glob("shard-*.npz"))
        assert len(files) == 6  # 855 noisy samples in shards of 150
        sets[world] = read_denoised(out, 1)
    index, x = sets[1]
    assert np.array_equal(index, np.arange(855))  # every noisy sample exactly once
    for world in (2, 3):
        assert np.array_equal(sets[world][0], index)
        assert np.array_equal(sets[world][1], x)  # bit-identical: keyed noise, same batches


def test_torchrun_two_processes_end_to_end(tmp_path):
    from run_helpers import torchrun

    sets = [*TINY, "device=cpu", "sample.shard_size=200"]
    done = torchrun(tmp_path / "ddp", sets)
    assert done.returncode == 0, done.stderr[-3000:]
    single = Run(load_config(overrides=sets), tmp_path / "one", progress=False).execute()
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())["stages"]
    assert [s["stage"] for s in ddp] == ["pretrain", "update", "update"]
    for a, b in zip(ddp, single, strict=True):  # same science up to float summation order
        assert a["metrics"]["train_loss"] == pytest.approx(b["metrics"]["train_loss"], rel=1e-3)
        assert a["metrics"]["swd"] == pytest.approx(b["metrics"]["swd"], rel=0.05, abs=2e-3)
    index, x = read_denoised(tmp_path / "ddp", 2)
    assert np.array_equal(index, np.arange(855))
    assert np.allclose(x, read_denoised(tmp_path / "one", 2)[1], atol=1e-3)


def test_bf16_fast_path_runs_and_tracks_fp32(tmp_path):
    fp32 = Run(load_config(overrides=TINY), tmp_path / "a", progress=False).execute(max_stages=2)
    cfg = load_config(overrides=[*TINY, "fast.bf16=on"])
    run = Run(cfg, tmp_path / "b", progress=False)
    assert run.fast.bf16 and not run.fast.compile
    bf16 = run.execute(max_stages=2)
    for a, b in zip(fp32, bf16, strict=True):
        la, lb = a["metrics"]["train_loss"], b["metrics"]["train_loss"]
        assert abs(la - lb) < 0.1 * la, (la, lb)
        assert np.isfinite(b["metrics"]["swd"])
    _, x = read_denoised(tmp_path / "b", 1)
    assert x.dtype == np.float32 and np.isfinite(x).all()


def test_a_run_from_an_older_version_without_the_new_keys_is_not_refused(tmp_path):
    import yaml

    cfg = load_config(overrides=TINY)
    Run(cfg, tmp_path, progress=False).execute(max_stages=1)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["fast"], saved["train"]["checkpoint_every"]  # keys an older sfbd did not know
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert len(Run(cfg, tmp_path, progress=False).execute(max_stages=1)) == 2
    # ... but a new key set away from its default is a real difference
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    other = load_config(overrides=[*TINY, "train.checkpoint_every=5"])
    with pytest.raises(SfbdError, match=r"differs in train.checkpoint_every\)"):
        Run(other, tmp_path, progress=False).execute()


def test_a_run_from_before_the_noisy_holdout_resumes_only_without_one(tmp_path):
    """A 0.7 config.yaml has no eval.noisy_holdout: its run held no noisy sample out, so it
    resumes with eval.noisy_holdout=0 and is refused with the default (its noisy set would
    change under it)."""
    import yaml

    cfg = load_config(overrides=TINY)  # eval.noisy_holdout=0 (RING8_TINY)
    Run(cfg, tmp_path, progress=False).execute(max_stages=1)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["eval"]["noisy_holdout"], saved["eval"]["noisy_holdout_max"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    held = load_config(overrides=[*TINY, "eval.noisy_holdout=0.05"])
    with pytest.raises(SfbdError, match=r"differs in eval.noisy_holdout\)"):
        Run(held, tmp_path, progress=False).execute()
    assert len(Run(cfg, tmp_path, progress=False).execute(max_stages=1)) == 2  # resumed


def test_starting_over_clears_the_stored_noisy_set_but_not_a_users_files(tmp_path):
    from sfbd.run.directory import RunDirectory

    cfg = load_config(overrides=[*TINY, "sfbd.iterations=1"])
    Run(cfg, tmp_path / "r", progress=False).execute(max_stages=1)
    data = tmp_path / "r" / "data"
    assert (data / "noisy.npy").is_file() and (data / "noisy.json").is_file()
    (data / "mine.txt").write_text("keep me")
    RunDirectory(tmp_path / "r").clear()
    assert sorted(p.name for p in data.iterdir()) == ["mine.txt"]
