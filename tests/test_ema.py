"""sfbd.train.ema: the EMA rule's closed form, its half-life, skipped steps and state."""

from __future__ import annotations

import copy

import pytest
import torch

from sfbd.train.ema import EMA


def _pair(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(average, model): a float64 Linear with a BatchNorm buffer, and its copy."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).double()
    return net, copy.deepcopy(net)


def _params(m: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


def test_beta_is_one_half_per_halflife_and_at_most_one_half():
    assert EMA(4.0).beta == 0.5**0.25
    assert EMA(4.0).beta ** 4 == pytest.approx(0.5, rel=1e-15)
    assert EMA(0.3).beta == 0.5  # a half-life under one step is one step
    assert EMA.for_stage(0.1, 2000).halflife == pytest.approx(200.0)
    assert EMA.for_stage(0.1, 2000).beta == 0.5 ** (1.0 / (0.1 * 2000))


def test_n_updates_equal_the_closed_form():
    # ema_n = beta^n w0 + sum_j beta^(n-j) (1 - beta) p_j over the targets p_1..p_n
    ema, model = _pair()
    rule = EMA(3.0)
    beta = rule.beta
    w0 = _params(ema)
    expected = [beta**5 * w for w in w0]
    for j in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.25 * j)
        for e, p in zip(expected, model.parameters(), strict=True):
            e += beta ** (5 - j) * (1 - beta) * p.detach()
        rule.update(ema, model)
    for e, x in zip(ema.parameters(), expected, strict=True):
        assert torch.allclose(e, x, rtol=0, atol=1e-12)


def test_after_one_halflife_the_initial_weights_count_one_half():
    ema, model = _pair()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # a constant target one away from the average
    gap0 = [e - p for e, p in zip(_params(ema), _params(model), strict=True)]
    rule = EMA(8.0)
    for _ in range(8):
        rule.update(ema, model)
    for e, p, g in zip(ema.parameters(), model.parameters(), gap0, strict=True):
        assert torch.allclose(e - p, 0.5 * g, rtol=1e-12, atol=0)


def test_one_update_is_lerp_by_one_minus_beta_bit_for_bit():
    ema, model = _pair()
    ema, model = ema.float(), model.float()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-2.0).add_(0.3)
    rule = EMA(5.0)
    want = [e.lerp(p, 1.0 - rule.beta) for e, p in zip(_params(ema), _params(model), strict=True)]
    rule.update(ema, model)
    assert all(torch.equal(e, w) for e, w in zip(ema.parameters(), want, strict=True))


def test_a_skipped_step_keeps_the_parameters_and_copies_the_buffers():
    ema, model = _pair()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(8, 3, dtype=torch.float64))  # moves BatchNorm's running stats
    before = _params(ema)
    rule = EMA(2.0)
    rule.update(ema, model, keep=torch.tensor(False))
    assert all(torch.equal(e, b) for e, b in zip(ema.parameters(), before, strict=True))
    assert all(torch.equal(e, b) for e, b in zip(ema.buffers(), model.buffers(), strict=True))
    # a kept step is the plain update (its weight 1 - beta is rounded to float32: equal in the
    # float32 the networks train in, within float32 rounding in float64)
    kept = copy.deepcopy(ema)
    rule.update(kept, model, keep=torch.tensor(True))
    rule.update(ema, model)
    for a, b in zip(kept.parameters(), ema.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-7)
    kept, ema, model = copy.deepcopy(ema).float(), ema.float(), model.float()
    rule.update(kept, model, keep=torch.tensor(True))
    rule.update(ema, model)
    assert all(torch.equal(a, b) for a, b in zip(kept.parameters(), ema.parameters(), strict=True))


def test_state_dict_round_trip():
    rule = EMA(12.5)
    assert rule.state_dict() == {"halflife": 12.5}
    other = EMA(1.0)
    other.load_state_dict(rule.state_dict())
    assert other.halflife == 12.5 and other.beta == rule.beta
    assert repr(other) == "EMA(halflife=12.5)"
