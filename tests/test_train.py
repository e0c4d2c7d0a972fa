import copy
import math

import numpy as np
import pytest
import torch
from train_helpers import train_kw

from sfbd.errors import SfbdError
from sfbd.nets import build_denoiser
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.runtime.interrupt import Interrupted, StopFlag
from sfbd.train.data import IndexedTrainingSet
from sfbd.train.ema import EMA
from sfbd.train.loop import TrainState, make_optimizer, train_stage
from sfbd.train.settings import TrainSettings

KW = dict(batch_size=8, lr=1e-3, lr_warmup=0, ema_halflife=0.1, seed=0, progress=False)


def _state(seed=0):
    torch.manual_seed(seed)
    model = build_denoiser("mlp", {"shape": [2], "hidden": 32, "layers": 1})
    return TrainState(model, copy.deepcopy(model), make_optimizer(model, 1e-3))


def test_training_lowers_the_loss_and_is_reproducible():
    # two tight clusters: far from Gaussian, so the untrained (skip-only) denoiser is poor
    g = torch.Generator().manual_seed(0)
    data = torch.where(torch.rand(2000, 1, generator=g) < 0.5, 0.7, -0.7) * torch.ones(2000, 2)
    data = data + 0.05 * torch.randn(2000, 2, generator=g)
    kw = dict(batch_size=128, lr=2e-3, lr_warmup=10, ema_halflife=0.1, seed=3, progress=False)
    s = _state()
    first = train_kw(s, data, steps=20, **kw)
    later = train_kw(s, data, steps=300, **kw)
    assert later < 0.8 * first
    assert s.step == 320
    s2 = _state()
    train_kw(s2, data, steps=20, **kw)
    assert train_kw(s2, data, steps=300, **kw) == later
    for a, b in zip(s.model.parameters(), s2.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ema_halflife_is_a_fraction_of_the_stage():
    # with a constant target the EMA gap halves every halflife*steps steps: after the stage
    # the initial gap has shrunk by 0.5 ** (1 / halflife)
    s = _state()
    with torch.no_grad():
        for p in s.ema.parameters():
            p.add_(1.0)
    gap0 = [(e - p).clone() for e, p in zip(s.ema.parameters(), s.model.parameters(), strict=True)]
    data = torch.zeros(10, 2)
    settings = TrainSettings(steps=40, batch_size=4, lr=1e-12, seed=0, progress=False)
    train_stage(s, data, settings, EMA.for_stage(0.25, settings.steps))
    for e, p, g in zip(s.ema.parameters(), s.model.parameters(), gap0, strict=True):
        assert torch.allclose(e - p, g * 0.5**4, atol=1e-5)


def test_nonfinite_steps_are_skipped_without_moving_weights_or_adam():
    s = _state()
    data = torch.zeros(8, 2)
    data[:, 0] = float("nan")
    before = [p.clone() for p in s.model.parameters()]
    ema_before = [p.clone() for p in s.ema.parameters()]
    train_kw(s, data, steps=5, **KW)
    for p, b in zip(s.model.parameters(), before, strict=True):
        assert torch.equal(p, b)  # every loss is NaN: every step skipped
    for p, b in zip(s.ema.parameters(), ema_before, strict=True):
        assert torch.equal(p, b)
    assert s.skipped == 5 and s.step == 5
    assert all(int(st["step"]) == 0 for st in s.optimizer.state.values())  # Adam never stepped


def test_a_nan_row_in_the_data_skips_only_the_batches_that_draw_it():
    g = torch.Generator().manual_seed(0)
    data = 0.5 * torch.randn(400, 2, generator=g)
    data[17] = float("nan")
    s = _state()
    logged = []
    loss = train_kw(s, data, steps=60, log=lambda *a: logged.append(a), log_every=20, **KW)
    # each batch of 8 from 400 rows holds row 17 with probability 1 - (399/400)^8 ~ 2%
    assert 0 < s.skipped < 15
    assert all(torch.isfinite(p).all() for p in s.model.parameters())
    assert all(torch.isfinite(p).all() for p in s.ema.parameters())
    assert loss == loss and [a[0] for a in logged] == [20, 40, 60]
    assert logged[-1][2] == s.skipped  # the log reports the running count


def test_logged_and_returned_means_count_only_the_finite_steps():
    g = torch.Generator().manual_seed(0)
    data = 0.5 * torch.randn(100, 2, generator=g)
    data[17] = float("nan")  # a batch of 8 from 100 rows draws it with probability ~8%

    def run(log_every: int) -> tuple[list, float, int]:
        s, logged = _state(), []
        loss = train_kw(
            s, data, steps=60, log=lambda *a: logged.append(a), log_every=log_every, **KW
        )
        return logged, loss, s.skipped

    per_step, _, skipped = run(1)
    losses = [a[1] for a in per_step]
    assert skipped == sum(x != x for x in losses) and skipped > 0  # skipped steps log NaN
    windows, loss, _ = run(20)
    for w, (step, mean, _) in enumerate(windows):
        finite = [x for x in losses[20 * w : 20 * (w + 1)] if x == x]
        assert step == 20 * (w + 1) and mean == pytest.approx(sum(finite) / len(finite), rel=1e-5)
    tail = [x for x in losses[54:] if x == x]  # the last 10% of 60 steps
    assert loss == pytest.approx(sum(tail) / len(tail), rel=1e-5)


def test_persistent_nonfinite_steps_stop_the_run():
    s = _state()
    data = torch.full((8, 2), float("inf"))
    with pytest.raises(SfbdError, match="12 consecutive steps had non-finite"):
        train_kw(s, data, steps=30, max_skipped=12, log_every=12, **KW)
    assert all(torch.isfinite(p).all() for p in s.model.parameters())


def test_resuming_from_a_step_snapshot_is_bit_identical():
    g = torch.Generator().manual_seed(1)
    data = 0.5 * torch.randn(500, 2, generator=g)
    kw = {**KW, "steps": 40, "seed": 9}
    straight = _state()
    loss = train_kw(straight, data, **kw)
    snaps = {}
    part = _state()
    flag = StopFlag()

    def keep(progress):
        snaps["p"] = progress
        snaps["w"] = copy.deepcopy((part.model.state_dict(), part.ema.state_dict()))
        snaps["o"] = copy.deepcopy(part.optimizer.state_dict())
        snaps["step"] = part.step
        if progress.done == 21:
            flag.set()

    with pytest.raises(Interrupted, match="at step 22/40"):
        train_kw(part, data, checkpoint=keep, checkpoint_every=7, stop=flag, **kw)
    assert snaps["p"].done == 22  # checkpoints at 7, 14, 21 and, for the stop, at 22
    torch.manual_seed(123)  # the global generator is restored from the snapshot
    resumed = _state(seed=5)
    resumed.model.load_state_dict(snaps["w"][0])
    resumed.ema.load_state_dict(snaps["w"][1])
    resumed.optimizer.load_state_dict(snaps["o"])
    resumed.step = snaps["step"]
    assert train_kw(resumed, data, resume=snaps["p"], **kw) == loss
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.parameters(), resumed.ema.parameters(), strict=True):
        assert torch.equal(a, b)


def test_gaussian_model_trains_by_refitting():
    m = GaussianDenoiser((2,))
    s = TrainState(m, GaussianDenoiser((2,)), make_optimizer(m, 1e-3))
    assert s.optimizer is None
    data = torch.randn(5000, 2, generator=torch.Generator().manual_seed(1)) * 0.2 + 1.0
    settings = TrainSettings(steps=1, batch_size=1, lr=1.0, seed=0, progress=False)
    out = train_stage(s, data, settings, EMA(0.1))
    assert out != out  # NaN: no loss for the analytic model
    assert torch.allclose(s.ema.mean, torch.ones(2, dtype=torch.float64), atol=0.02)


def _ddp_train(rank, world, out, micro):
    from torch.nn.parallel import DistributedDataParallel

    s = _state()
    s.forward = DistributedDataParallel(s.model)
    data = 0.5 * torch.randn(300, 2, generator=torch.Generator().manual_seed(2))
    kw = {**KW, "batch_size": 16, "seed": 4}
    loss = train_kw(s, data, steps=25, micro_batch=micro, **kw)
    if rank == 0:
        torch.save({"loss": loss, "params": [p.detach() for p in s.model.parameters()]}, out)


@pytest.mark.parametrize("world,micro", [(2, None), (2, 3), (3, 4)])
def test_ddp_equals_one_process_with_the_same_global_batch(tmp_path, world, micro):
    from ddp_helpers import run_ranks

    single = _state()
    data = 0.5 * torch.randn(300, 2, generator=torch.Generator().manual_seed(2))
    loss = train_kw(single, data, steps=25, **{**KW, "batch_size": 16, "seed": 4})
    run_ranks(world, _ddp_train, tmp_path / "ddp.pt", micro)
    got = torch.load(tmp_path / "ddp.pt")
    assert abs(got["loss"] - loss) < 1e-5 * max(1.0, abs(loss))
    for a, b in zip(single.model.parameters(), got["params"], strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), (a - b).abs().max()
    start = _state().model.parameters()
    moved = max((a - b).abs().max() for a, b in zip(single.model.parameters(), start, strict=True))
    assert moved > 1e-3  # the comparison is not between untrained networks


def test_gradient_accumulation_in_one_process_equals_the_whole_batch():
    data = 0.5 * torch.randn(300, 2, generator=torch.Generator().manual_seed(2))
    kw = {**KW, "batch_size": 16, "seed": 4, "steps": 10}
    whole, acc = _state(), _state()
    train_kw(whole, data, **kw)
    train_kw(acc, data, micro_batch=5, **kw)  # 5 + 5 + 5 + 1... as 4 near-equal parts
    for a, b in zip(whole.model.parameters(), acc.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def _unet_state() -> TrainState:
    torch.manual_seed(0)  # the same initial weights on every rank
    cfg = {"shape": [1, 8, 8], "channels": 8, "channel_mult": [1, 2], "dropout": 0.3}
    model = build_denoiser("unet", cfg)
    return TrainState(model, copy.deepcopy(model), make_optimizer(model, 1e-3))


def _ddp_resume(rank, world, folder, phase):
    """phase 'straight': 100 steps, keeping the snapshot of step 91 (inside the last 10% whose
    mean loss is returned, and inside a log window); 'resume': from step 91."""
    import json

    from torch.nn.parallel import DistributedDataParallel

    from sfbd.train.loop import StageProgress

    data = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    kw = {**KW, "batch_size": 12, "seed": 5, "steps": 100, "log_every": 5}
    s = _unet_state()
    resume = None
    if phase == "resume":
        saved = torch.load(folder / "snap.pt")
        s.model.load_state_dict(saved["model"])
        s.ema.load_state_dict(saved["ema"])
        s.optimizer.load_state_dict(saved["optimizer"])
        s.step = saved["step"]
        resume = StageProgress.restore(json.loads(saved["meta"]), saved["tensors"])
        torch.manual_seed(1000 + rank)  # the dropout generators must come from the snapshot
    s.forward = DistributedDataParallel(s.model)

    def keep(progress):  # called on every rank at the checkpoint steps, like the pipeline's
        if rank == 0 and progress.done == 91:
            torch.save(
                {
                    "model": s.model.state_dict(),
                    "ema": s.ema.state_dict(),
                    "optimizer": s.optimizer.state_dict(),
                    "step": s.step,
                    "meta": json.dumps(progress.meta()),  # as the checkpoint's JSON holds it
                    "tensors": progress.tensors(),
                },
                folder / "snap.pt",
            )

    logged = []

    def log(*record):
        logged.append(record)

    loss = train_kw(s, data, resume=resume, checkpoint=keep, checkpoint_every=7, log=log, **kw)
    if rank == 0:
        params = [p.detach().clone() for p in (*s.model.parameters(), *s.ema.parameters())]
        torch.save({"loss": loss, "params": params, "log": logged}, folder / f"{phase}.pt")


def test_ddp_resume_from_a_step_snapshot_is_bit_identical(tmp_path):
    from ddp_helpers import run_ranks

    run_ranks(2, _ddp_resume, tmp_path, "straight")
    run_ranks(2, _ddp_resume, tmp_path, "resume")
    straight, resumed = torch.load(tmp_path / "straight.pt"), torch.load(tmp_path / "resume.pt")
    assert resumed["loss"] == straight["loss"]
    assert [a[0] for a in resumed["log"]] == [95, 100]  # the window of 91..95 spans the resume
    assert resumed["log"] == straight["log"][-2:]
    pairs = zip(straight["params"], resumed["params"], strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    start = _unet_state().model.parameters()
    moved = max((a - b).abs().max() for a, b in zip(straight["params"], start, strict=False))
    assert moved > 1e-3  # trained, not a comparison of untouched weights


def test_sum_reduction_is_the_mean_loss_with_adams_eps_divided_by_the_sample_size():
    # Adam is invariant to the loss scale except through eps: training the D-element sum
    # (EDM's reduction) equals training the mean with eps / D, and differs from the mean with
    # the same eps (seen: 0.93 of the weight change after 40 steps of a small SongUNet at
    # lr 1e-3, eps 1e-8, where the gradients of the zero-initialised output start tiny)
    from sfbd.config import load_config
    from sfbd.nets import build_model

    cfg = load_config(overrides=["data.source=digits", "model.kind=ddpmpp", "model.channels=8"])
    cfg.model.channel_mult, cfg.model.blocks_per_level, cfg.model.attn_resolutions = [1], 1, []
    data = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    d = 64

    def trained(eps, reduction):
        m = build_model(cfg, (1, 8, 8))
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=eps)
        state = TrainState(m, copy.deepcopy(m), opt)
        loss = train_kw(state, data, steps=20, **KW, loss_reduction=reduction)
        return torch.cat([p.detach().flatten() for p in m.parameters()]), loss

    mean, loss_mean = trained(1e-8, "mean")
    total, loss_sum = trained(1e-8, "sum")
    scaled, _ = trained(1e-8 / d, "mean")
    w0 = torch.cat([p.detach().flatten() for p in build_model(cfg, (1, 8, 8)).parameters()])
    change = (mean - w0).norm()
    assert (total - scaled).norm() < 1e-3 * change  # the same optimisation, up to rounding
    assert (total - mean).norm() > 1e-2 * change  # and not the mean's
    assert math.isfinite(loss_sum) and math.isfinite(loss_mean)  # both per-element means


# -- the ambient mixture: rows with white noise levels ------------------------------------
def _mixture(levels_of_noisy: float | None, n_clean: int = 60, n_noisy: int = 240):
    """A clean part and a noisy part (y = x + 0.3 eps) drawn as one set; the noisy rows'
    levels ``levels_of_noisy`` (None: no levels, every row taken as clean)."""
    g = torch.Generator().manual_seed(8)
    x = 0.5 * torch.randn(n_clean + n_noisy, 2, generator=g)
    x[n_clean:] += 0.3 * torch.randn(n_noisy, 2, generator=g)
    levels = None
    if levels_of_noisy is not None:
        levels = np.concatenate([np.zeros(n_clean), np.full(n_noisy, levels_of_noisy)])
    return IndexedTrainingSet(x.numpy(), torch.device("cpu"), levels=levels)


def _params(s: TrainState) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*s.model.parameters(), *s.ema.parameters())]


def test_noisy_rows_at_vanishing_levels_train_as_clean_rows():
    """tau = 0 everywhere: the ambient path is EDM's, bit for bit; tau -> 0 (1e-12): the same
    weights to float tolerance; tau = 0.3: different training."""
    kw = {**KW, "batch_size": 32, "seed": 6, "steps": 40}
    runs = {}
    for name, lv in {"plain": None, "zero": 0.0, "tiny": 1e-12, "noisy": 0.3}.items():
        s = _state()
        runs[name] = (train_kw(s, _mixture(lv), **kw), _params(s))
    assert runs["zero"][0] == runs["plain"][0]
    assert all(torch.equal(a, b) for a, b in zip(runs["zero"][1], runs["plain"][1], strict=True))
    assert runs["tiny"][0] == pytest.approx(runs["plain"][0], rel=1e-5)
    for a, b in zip(runs["tiny"][1], runs["plain"][1], strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()
    pairs = zip(runs["noisy"][1], runs["plain"][1], strict=True)
    assert max((a - b).abs().max() for a, b in pairs) > 1e-3


def _ddp_ambient(rank, world, out):
    from torch.nn.parallel import DistributedDataParallel

    s = _state()
    s.forward = DistributedDataParallel(s.model)
    loss = train_kw(s, _mixture(0.3), steps=25, **{**KW, "batch_size": 16, "seed": 4})
    if rank == 0:
        torch.save({"loss": loss, "params": [p.detach() for p in s.model.parameters()]}, out)


def test_ddp_ambient_mixture_equals_one_process(tmp_path):
    """Every rank draws the global batch's levels: two processes train as one."""
    from ddp_helpers import run_ranks

    single = _state()
    loss = train_kw(single, _mixture(0.3), steps=25, **{**KW, "batch_size": 16, "seed": 4})
    run_ranks(2, _ddp_ambient, tmp_path / "ddp.pt")
    got = torch.load(tmp_path / "ddp.pt")
    assert abs(got["loss"] - loss) < 1e-5 * max(1.0, abs(loss))
    for a, b in zip(single.model.parameters(), got["params"], strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), (a - b).abs().max()


def test_the_analytic_model_refuses_noisy_rows():
    m = GaussianDenoiser((2,))
    s = TrainState(m, GaussianDenoiser((2,)), make_optimizer(m, 1e-3))
    settings = TrainSettings(steps=1, batch_size=1, lr=1.0, seed=0, progress=False)
    with pytest.raises(SfbdError, match="noisy rows"):
        train_stage(s, _mixture(0.3), settings, EMA(0.1))
