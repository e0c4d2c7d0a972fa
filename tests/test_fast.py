"""Tests for the fast-path switches (bf16 autocast, channels_last, compile, fused Adam).

Device-parametrised through the environment: ``SFBD_TEST_DEVICE=cuda pytest tests/test_fast.py``
runs the same checks on a GPU (default: cpu).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from sfbd.diffusion.loss import EDMLoss
from sfbd.nets import build_denoiser
from sfbd.nets.songunet import PRESETS
from sfbd.runtime import fast

DEVICE = torch.device(os.environ.get("SFBD_TEST_DEVICE", "cpu"))
if DEVICE.type == "cuda" and not torch.cuda.is_available():
    pytest.skip("SFBD_TEST_DEVICE=cuda but CUDA is not available", allow_module_level=True)


@pytest.fixture(autouse=True)
def _exact_fp32() -> Iterator[None]:
    """TF32 off on CUDA, so that "fp32" references really are fp32 (cuDNN defaults to TF32)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _tiny_songunet(seed: int = 0) -> nn.Module:
    """A small DDPM++ SongUNet denoiser (with attention and augmentation labels) whose
    zero-initialised output layers are re-drawn, so every layer shapes the output."""
    torch.manual_seed(seed)
    kwargs = {
        "shape": [3, 16, 16],
        "model_channels": 16,
        "channel_mult": [1, 2],
        "num_blocks": 1,
        "attn_resolutions": [8],
        "dropout": 0.0,
        "augment_dim": 9,
        **PRESETS["ddpmpp"],
    }
    den = build_denoiser("songunet", kwargs)
    with torch.no_grad():
        for m in den.modules():
            if isinstance(m, nn.Conv2d) and m.weight.abs().max() < 1e-3:
                nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.weight[0].numel()))
    return den.to(DEVICE).eval()


def _tiny_mlp(seed: int = 0, hidden: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return build_denoiser("mlp", {"shape": [2], "hidden": hidden, "layers": 2}).to(DEVICE)


def _image_batch(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 16, 16, generator=g)
    sigma = torch.exp(torch.randn(n, generator=g) * 1.2 - 1.2)
    labels = torch.randn(n, 9, generator=g) * 0.3
    return x.to(DEVICE), sigma.to(DEVICE), labels.to(DEVICE)


# --- resolve -------------------------------------------------------------------------------


def test_resolve_defaults_per_device() -> None:
    on = fast.FastPath(bf16=True, channels_last=True, compile=True, fused_adam=True)
    assert fast.resolve("cuda") == on
    assert fast.resolve("cuda:3") == on
    assert fast.resolve("cpu") == fast.FastPath(False, False, False, True)
    assert fast.resolve("mps") == fast.FastPath()  # unknown devices: everything off


def test_resolve_overrides_and_rejects_bad_values() -> None:
    p = fast.resolve("cpu", bf16="on", fused_adam="off", compile=True)
    assert p == fast.FastPath(bf16=True, channels_last=False, compile=True, fused_adam=False)
    p = fast.resolve("cuda", channels_last="off", compile=False)
    assert p == fast.FastPath(bf16=True, channels_last=False, compile=False, fused_adam=True)
    with pytest.raises(ValueError, match="bf16 must be one of"):
        fast.resolve("cpu", bf16="yes")  # type: ignore[arg-type]


# --- autocast ------------------------------------------------------------------------------


def test_autocast_switch_runs_matmuls_in_bf16_only_when_enabled() -> None:
    lin = nn.Linear(4, 4).to(DEVICE)
    x = torch.randn(3, 4, device=DEVICE)
    with fast.autocast(DEVICE, True):
        assert lin(x).dtype == torch.bfloat16
    with fast.autocast(DEVICE, False):
        assert lin(x).dtype == torch.float32
    assert lin.weight.dtype == torch.float32  # master weights untouched


def test_bf16_denoiser_matches_fp32_within_tolerance() -> None:
    den = _tiny_songunet()
    x, sigma, labels = _image_batch()
    with torch.no_grad():
        ref = den(x, sigma, aug_labels=labels)
        with fast.autocast(DEVICE, False):
            off = den(x, sigma, aug_labels=labels)
        with fast.autocast(DEVICE, True):
            low = den(x, sigma, aug_labels=labels)
        skip = den(x, sigma * 1e-6, aug_labels=labels)  # ~ x: the part D shares with its input
    assert torch.equal(off, ref)  # disabled: the very same computation
    assert low.dtype == torch.float32  # the denoiser's output stays in the input's dtype
    # Compare the network's contribution D - c_skip x (the skip path is exact in both), per
    # sample, relative to its size: bf16 rounds to 8 significant bits (unit roundoff 2^-9 ~
    # 0.2%), and the roundings of a dozen layers add up to 1-2% here (measured 1.1-2.2% over
    # seeds; 1.7-2.4% for a deeper 3-level net).
    c_skip = 0.25 / (sigma**2 + 0.25)
    part = ref - c_skip.view(-1, 1, 1, 1) * x
    rel = (low - ref).flatten(1).norm(dim=1) / part.flatten(1).norm(dim=1)
    assert rel.mean() < 0.04 and rel.max() < 0.06, rel
    assert rel.min() > 1e-5, "bf16 changed nothing: autocast was not applied"
    assert torch.isfinite(skip).all()


def test_bf16_training_loss_tracks_fp32() -> None:
    """200 Adam steps of the EDM loss on 8 Gaussians in a ring, with the same data, noise and
    noise levels in both runs: the bf16 run's training loss ends within 10% of the fp32 run's,
    and its held-out loss (evaluated in fp32) within 10% of what fp32 training gained."""
    g = torch.Generator().manual_seed(0)
    n = 4096
    angle = torch.randint(0, 8, (n,), generator=g) * (2 * math.pi / 8)
    data = torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2, generator=g)
    data = data.to(DEVICE)
    held_out = (
        data[:2048],
        torch.exp(torch.randn(2048, generator=g) * 1.2 - 1.2).to(DEVICE),
        torch.randn(2048, 2, generator=g).to(DEVICE),
    )

    def evaluate(den: nn.Module) -> float:
        x, sigma, noise = held_out
        with torch.no_grad():
            return EDMLoss()(den, x, sigma=sigma, noise=noise).mean().item()

    def run(bf16: bool) -> tuple[float, float, list[float]]:
        den = _tiny_mlp(seed=3, hidden=64)
        start = evaluate(den)
        opt = fast.make_adam(den.parameters(), lr=3e-3)
        loss_fn = EDMLoss()
        gen = torch.Generator(device=DEVICE).manual_seed(7)
        idx_gen = torch.Generator().manual_seed(11)
        losses = []
        for _ in range(200):
            x = data[torch.randint(0, n, (128,), generator=idx_gen).to(DEVICE)]
            with fast.autocast(DEVICE, bf16):
                loss = loss_fn(den, x, gen).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return start, evaluate(den), losses

    start, eval_full, full = run(False)
    _, eval_half, half = run(True)
    gain = start - eval_full
    # The EDM loss has a large irreducible part (about 1 here), so check what training gained.
    assert gain > 0.15, "training did not learn: the comparison would be vacuous"
    assert abs(eval_half - eval_full) < 0.10 * gain, (eval_half, eval_full, gain)
    end_full, end_half = sum(full[-50:]) / 50, sum(half[-50:]) / 50
    assert abs(end_half - end_full) < 0.10 * end_full, (end_half, end_full)
    assert full != half  # the bf16 run really ran in reduced precision


# --- channels_last -------------------------------------------------------------------------


def test_channels_last_same_outputs_and_state_dict() -> None:
    den = _tiny_songunet()
    x, sigma, labels = _image_batch()
    with torch.no_grad():
        ref = den(x, sigma, aug_labels=labels)
    keys = list(den.state_dict())
    assert fast.to_channels_last(den) is den
    convs = [m.weight for m in den.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)  # it really changed the layout
    with torch.no_grad():
        out = den(fast.channels_last_input(x), sigma, aug_labels=labels)
    assert list(den.state_dict()) == keys
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert fast.channels_last_input(x, enabled=False) is x


def test_channels_last_is_a_no_op_without_image_layers() -> None:
    mlp = _tiny_mlp()
    before = {k: (v.data_ptr(), v.stride()) for k, v in mlp.state_dict().items()}
    assert fast.to_channels_last(mlp) is mlp
    assert {k: (v.data_ptr(), v.stride()) for k, v in mlp.state_dict().items()} == before
    den = _tiny_songunet()
    assert fast.to_channels_last(den, enabled=False) is den
    assert all(w.is_contiguous() for w in den.parameters())


# --- compile -------------------------------------------------------------------------------


def test_compiled_matches_eager_and_keeps_the_module() -> None:
    """torch.compile (inductor) gives the eager outputs. On a CPU this needs a C++ compiler
    and takes ~25 s cold (the generated code is cached on disk afterwards); the test skips,
    saying why, when compiling fails or takes over a minute."""
    den = _tiny_mlp(seed=5)
    with torch.no_grad():
        nn.init.normal_(den.net.out.weight, 0.0, 0.3)
    x = torch.randn(16, 2, device=DEVICE)
    sigma = torch.exp(torch.randn(16, device=DEVICE))
    with torch.no_grad():
        ref = den(x, sigma)
    keys = list(den.state_dict())
    same = fast.maybe_compile(den, True)
    assert same is den and list(den.state_dict()) == keys  # no '_orig_mod.' prefix
    start = time.perf_counter()
    try:
        with torch.no_grad():
            out = den(x, sigma)
    except Exception as exc:  # no C++ compiler / triton, unsupported Python, ...
        pytest.skip(f"torch.compile is unavailable here: {type(exc).__name__}: {exc}"[:300])
    if time.perf_counter() - start > 60:
        pytest.skip("torch.compile works but takes over a minute here")
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)
    # a deep copy (e.g. the EMA network) runs its own weights, not the original's
    twin = copy.deepcopy(den)
    with torch.no_grad():
        twin.net.out.weight.zero_()
        twin.net.out.bias.zero_()
        assert not torch.allclose(twin(x, sigma), ref)
        assert torch.allclose(den(x, sigma), ref, rtol=1e-4, atol=1e-5)


def test_compile_switch_off_returns_module_untouched() -> None:
    den = _tiny_mlp()
    assert fast.maybe_compile(den, False) is den
    assert getattr(den, "_compiled_call_impl", None) is None


# --- Adam ----------------------------------------------------------------------------------


def _params(seed: int = 0) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(5, 3, generator=g).to(DEVICE)) for _ in range(2)]


def _set_grads(params: list[nn.Parameter], step: int, value: float | None = None) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in params:
        grad = torch.randn(p.shape, generator=g) if value is None else torch.full(p.shape, value)
        p.grad = grad.to(DEVICE)


def test_make_adam_settings_and_fused_default() -> None:
    opt = fast.make_adam(_params(), lr=1e-3)
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    assert opt.defaults["lr"] == 1e-3
    assert fast.is_fused(opt)  # CUDA, and CPU since torch 2.4
    assert not fast.is_fused(fast.make_adam(_params(), lr=1e-3, fused=False))
    groups = [{"params": _params(1)}, {"params": _params(2), "lr": 5e-4}]
    assert fast.is_fused(fast.make_adam(groups, lr=1e-3))


def test_fused_and_plain_adam_agree() -> None:
    a, b = _params(), _params()
    oa, ob = fast.make_adam(a, lr=1e-2, fused=True), fast.make_adam(b, lr=1e-2, fused=False)
    for step in range(5):
        _set_grads(a, step)
        _set_grads(b, step)
        oa.step()
        ob.step()
    for pa, pb, p0 in zip(a, b, _params(), strict=True):
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-6)
        assert (pa - p0).abs().min() > 1e-4  # every entry moved


def test_fused_adam_found_inf_makes_the_step_a_no_op() -> None:
    """The behaviour the training loop relies on: with ``opt.found_inf = 1`` a fused Adam step
    leaves parameters, both moments and the step count unchanged, on the device."""
    params = _params()
    opt = fast.make_adam(params, lr=1e-2, fused=True)
    _set_grads(params, 0)
    opt.step()
    before = [p.detach().clone() for p in params]
    state = [{k: v.clone() for k, v in opt.state[p].items()} for p in params]

    _set_grads(params, 1, value=float("nan"))
    opt.found_inf = torch.ones((), device=DEVICE)
    opt.step()
    for p, b, s in zip(params, before, state, strict=True):
        assert torch.equal(p, b)
        assert set(opt.state[p]) == set(s)
        for k, v in opt.state[p].items():
            assert torch.equal(v, s[k]), k

    # found_inf = 0: an ordinary step, identical to one by an optimizer that never skipped
    ref_params = _params()
    ref = fast.make_adam(ref_params, lr=1e-2, fused=True)
    _set_grads(ref_params, 0)
    ref.step()
    _set_grads(ref_params, 2)
    ref.step()
    opt.found_inf = torch.zeros((), device=DEVICE)
    _set_grads(params, 2)
    opt.step()
    for p, r in zip(params, ref_params, strict=True):
        assert torch.equal(p, r)
        assert float(opt.state[p]["step"]) == 2.0


@pytest.mark.parametrize("fused", [True, False])
def test_step_unless_nonfinite_skips_bad_steps(fused: bool) -> None:
    params, ref_params = _params(), _params()
    opt = fast.make_adam(params, lr=1e-2, fused=fused)
    ref = fast.make_adam(ref_params, lr=1e-2, fused=fused)
    for step, bad in enumerate([None, float("nan"), None, float("inf"), None]):
        _set_grads(params, step, value=bad)
        flag = fast.step_unless_nonfinite(opt)
        assert flag.shape == () and float(flag) == (0.0 if bad is None else 1.0)
        if bad is None:  # the reference sees only the good steps
            _set_grads(ref_params, step)
            ref.step()
    for p, r in zip(params, ref_params, strict=True):
        assert torch.equal(p, r)
    assert float(opt.state[params[0]]["step"]) == 3.0


def test_nonfinite_flag_without_gradients_is_zero() -> None:
    assert float(fast.nonfinite_flag([])) == 0.0
