"""Tests for the ADM U-Net (raw network F of EDM preconditioning)."""

import json

import pytest
import torch

from sfbd.nets.adm import ADMUNet

SHAPE = (3, 16, 16)
TINY = {
    "model_channels": 16,
    "channel_mult": (1, 2),
    "num_blocks": 1,
    "attn_resolutions": (8,),
    "channels_per_head": 8,
}


def _perturb_zero_init(net: ADMUNet, std: float = 0.1) -> None:
    """Give the zero-initialised layers (block output convs, attention projections, augment
    map, output conv) random weights so that every input and parameter matters."""
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0.0, std)
        net.out_conv.weight.normal_(0.0, 0.3)


def test_imagenet64_parameter_count() -> None:
    # EDM's ImageNet-64 ADM without its 1000-class label map (1000 x 768, no bias); with it the
    # total is 295,899,267, the 295.9M EDM reports.
    with torch.device("meta"):
        net = ADMUNet((3, 64, 64))
    n = sum(p.numel() for p in net.parameters())
    assert n == 295_131_267
    assert round((n + 1000 * 768) / 1e6, 1) == 295.9


def test_shape_dtype_and_zero_init() -> None:
    torch.manual_seed(0)
    net = ADMUNet(SHAPE, **TINY, augment_dim=9).eval()
    assert net.shape == SHAPE
    x = torch.randn(2, *SHAPE)
    out = net(x, torch.randn(2), torch.randn(2, 9))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, torch.zeros_like(out))  # zero output conv: F starts at 0

    net64 = ADMUNet((1, 8, 16), **TINY).double().eval()
    _perturb_zero_init(net64)
    x64 = torch.randn(2, 1, 8, 16, dtype=torch.float64)
    out64 = net64(x64, torch.randn(2, dtype=torch.float64))
    assert out64.shape == x64.shape and out64.dtype == torch.float64
    assert torch.isfinite(out64).all()


def test_attention_heads_and_placement() -> None:
    net = ADMUNet(SHAPE, **TINY)
    # Level 1 (8x8, 32 channels) has attention with 32 / 8 = 4 heads; level 0 (16x16) none.
    assert [b.heads for b in net.enc_blocks[0]] == [0]
    assert [b.heads for b in net.enc_blocks[1]] == [4]
    assert [b.heads for b in net.mid] == [4, 0]
    assert [b.heads for b in net.dec_blocks[1]] == [4, 4]
    assert [b.heads for b in net.dec_blocks[0]] == [0, 0]
    assert net.enc_down["1"].heads == 0 and net.dec_up["0"].heads == 0
    # Fewer channels than one head's width still get one head.
    # as EDM: a block narrower than one head (32 < 64 channels) has no attention at all
    narrow = ADMUNet(SHAPE, **{**TINY, "channels_per_head": 64})
    assert narrow.mid[0].heads == 0
    assert not any("attn" in name or "qkv" in name for name, _ in narrow.named_parameters())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="divisible"):
        ADMUNet((3, 15, 16), **TINY)
    with pytest.raises(ValueError, match="heads"):
        ADMUNet(SHAPE, **{**TINY, "channels_per_head": 10})  # 32 channels, 3 heads
    net = ADMUNet(SHAPE, **TINY, augment_dim=9)
    with pytest.raises(ValueError, match="aug_labels"):
        net(torch.randn(2, *SHAPE), torch.randn(2), torch.randn(2, 4))


def test_conditioning_on_noise_and_augment_labels() -> None:
    torch.manual_seed(0)
    net = ADMUNet(SHAPE, **TINY, augment_dim=9).eval()
    _perturb_zero_init(net)
    x, labels = torch.randn(2, *SHAPE), torch.randn(2)
    with torch.no_grad():
        base = net(x, labels)
        assert torch.equal(net(x, labels, torch.zeros(2, 9)), base)
        assert not torch.allclose(net(x, labels + 0.5), base, atol=1e-4)
        assert not torch.allclose(net(x, labels, torch.randn(2, 9)), base, atol=1e-4)


def test_batch_independence_in_eval_mode() -> None:
    torch.manual_seed(0)
    net = ADMUNet(SHAPE, **TINY, augment_dim=9).eval()
    _perturb_zero_init(net)
    x, labels, aug = torch.randn(3, *SHAPE), torch.randn(3), torch.randn(3, 9)
    with torch.no_grad():
        batched = net(x, labels, aug)
        single = torch.cat([net(x[i : i + 1], labels[i : i + 1], aug[i : i + 1]) for i in range(3)])
    assert batched.abs().max() > 1e-3
    assert torch.allclose(batched, single, atol=1e-4, rtol=1e-4)


def test_config_roundtrip() -> None:
    torch.manual_seed(0)
    net = ADMUNet(SHAPE, **TINY, augment_dim=9, dropout=0.2)
    cfg = json.loads(json.dumps(net.config()))
    clone = type(net)(**cfg)
    assert clone.shape == net.shape and clone.config() == cfg
    assert [(n, p.shape) for n, p in clone.named_parameters()] == [
        (n, p.shape) for n, p in net.named_parameters()
    ]


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    net = ADMUNet(SHAPE, **TINY, augment_dim=9, dropout=0.0)
    x, labels, target = torch.randn(2, *SHAPE), torch.randn(2), torch.randn(2, *SHAPE)
    aug = torch.randn(2, 9)

    # At initialisation the zero layers block most gradients, but none is missing or NaN.
    (net(x, labels, aug) - target).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    net.zero_grad()

    # Once the zero-initialised layers are non-zero, every parameter gets a non-zero gradient.
    _perturb_zero_init(net)
    (net(x, labels, aug) - target).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name
