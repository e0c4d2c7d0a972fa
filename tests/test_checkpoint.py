import copy

import pytest
import torch
from train_helpers import train_kw as train_stage

from sfbd.io.checkpoint import (
    CheckpointError,
    extra_tensors,
    load_tensors,
)
from sfbd.nets import build_denoiser
from sfbd.nets.checkpoint import load_checkpoint, save_checkpoint
from sfbd.nets.gaussian import GaussianDenoiser
from sfbd.train.loop import TrainState, make_optimizer


def test_round_trip_restores_weights_ema_and_adam(tmp_path):
    torch.manual_seed(0)
    model = build_denoiser("unet", {"shape": [1, 8, 8], "channels": 8, "channel_mult": [1, 2]})
    s = TrainState(model, copy.deepcopy(model), make_optimizer(model, 1e-3))
    data = torch.randn(32, 1, 8, 8)
    kw = dict(batch_size=8, lr=1e-3, lr_warmup=0, ema_halflife=0.5, seed=1, progress=False)
    train_stage(s, data, steps=3, **kw)
    save_checkpoint(tmp_path / "ck", s.model, s.ema, s.optimizer, {"step": s.step, "x": [1, 2]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.safetensors"]
    model2, ema2, opt_state, meta = load_checkpoint(tmp_path / "ck")
    assert meta == {"step": 3, "x": [1, 2]}
    x, sig = torch.randn(4, 1, 8, 8), torch.full((4,), 0.7)
    assert torch.equal(ema2.eval()(x, sig), s.ema.eval()(x, sig))
    # continuing from the checkpoint equals continuing in memory (Adam state included)
    opt2 = make_optimizer(model2, 1e-3)
    opt2.load_state_dict(opt_state)
    s2 = TrainState(model2, ema2, opt2, step=3)
    train_stage(s, data, steps=2, **kw)
    train_stage(s2, data, steps=2, **kw)
    for a, b in zip(s.model.parameters(), s2.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_gaussian_checkpoint(tmp_path):
    m = GaussianDenoiser((3,))
    m.fit(torch.randn(100, 3))
    save_checkpoint(tmp_path / "g", m, m, None, {})
    model, ema, opt, _ = load_checkpoint(tmp_path / "g")
    assert opt is None and isinstance(ema, GaussianDenoiser)
    assert torch.allclose(ema.cov, m.cov)


def test_extra_tensors_and_corruption_detection(tmp_path):
    m = build_denoiser("mlp", {"shape": [2], "hidden": 8, "layers": 1})
    gen_state = torch.Generator().manual_seed(4).get_state()
    save_checkpoint(tmp_path / "s", m, m, None, {"a": 1}, {"generator": gen_state})
    info, tensors = load_tensors(tmp_path / "s")
    assert torch.equal(extra_tensors(tensors)["generator"], gen_state)
    assert len(info["sha256"]) == 64
    path = tmp_path / "s.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        load_checkpoint(tmp_path / "s")
    (tmp_path / "s.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "s")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")
