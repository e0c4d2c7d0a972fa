"""Tests for the U-Net image denoiser (raw network F of EDM preconditioning)."""

import json

import pytest
import torch

from sfbd.nets.unet import UNet

TINY = {"channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1, "emb_dim": 16}


def _perturb_output(net: UNet) -> None:
    """Make the zero-initialised output conv non-zero so the output depends on the inputs."""
    with torch.no_grad():
        net.out_conv.weight.normal_(0.0, 0.5)
        net.out_conv.bias.normal_(0.0, 0.5)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (3, 32, 32)])
def test_shape_dtype_and_zero_init(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    net = UNet(shape, **TINY)
    assert net.shape == shape
    x = torch.randn(2, *shape)
    out = net(x, torch.randn(2))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, torch.zeros_like(out))
    assert torch.equal(net(x, torch.randn(2), aug_labels=torch.randn(2, 9)), out)


def test_float64_and_three_levels_with_attention() -> None:
    torch.manual_seed(0)
    net = UNet((3, 16, 16), **{**TINY, "channel_mult": [1, 2, 2]}, attention=True).double()
    _perturb_output(net)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    out = net(x, torch.randn(2, dtype=torch.float64))
    assert out.shape == x.shape and out.dtype == torch.float64
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("attention", [False, True])
def test_gradients_reach_every_parameter(attention: bool) -> None:
    torch.manual_seed(0)
    net = UNet((1, 8, 8), **TINY, attention=attention)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, labels, target = torch.randn(4, 1, 8, 8), torch.randn(4), torch.randn(4, 1, 8, 8)

    # Step 1: only the zero-initialised output conv can receive non-zero gradients.
    (net(x, labels) - target).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    opt.step()
    opt.zero_grad()
    assert net(x, labels).abs().max() > 0

    # Step 2: the output conv is now non-zero, so every parameter gets a non-zero gradient.
    (net(x, labels) - target).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_config_roundtrip() -> None:
    net = UNet(
        (3, 16, 16),
        channels=8,
        channel_mult=(1, 2, 2),
        blocks_per_level=1,
        emb_dim=16,
        dropout=0.1,
        attention=True,
    )
    cfg = json.loads(json.dumps(net.config()))
    clone = type(net)(**cfg)
    assert clone.shape == net.shape
    assert clone.config() == cfg
    assert [(n, p.shape) for n, p in clone.named_parameters()] == [
        (n, p.shape) for n, p in net.named_parameters()
    ]
    clone.load_state_dict(net.state_dict())


def test_default_parameter_count() -> None:
    n = sum(p.numel() for p in UNet((1, 8, 8)).parameters())
    assert n == 991_841
    assert 500_000 <= n <= 1_000_000


def test_noise_conditioning_matters() -> None:
    torch.manual_seed(0)
    net = UNet((1, 8, 8), **TINY)
    _perturb_output(net)
    x = torch.randn(2, 1, 8, 8)
    a = net(x, torch.full((2,), -1.0))
    b = net(x, torch.full((2,), 0.5))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("attention", [False, True])
def test_batch_consistency(attention: bool) -> None:
    torch.manual_seed(0)
    net = UNet((3, 16, 16), **TINY, dropout=0.5, attention=attention).eval()
    _perturb_output(net)
    x, labels = torch.randn(4, 3, 16, 16), torch.randn(4)
    batched = net(x, labels)
    single = torch.cat([net(x[i : i + 1], labels[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_bad_image_size_raises() -> None:
    with pytest.raises(ValueError, match=r"image size 7x7 is not divisible by 2 \(needed by"):
        UNet((1, 7, 7))
    with pytest.raises(ValueError, match="not divisible by 4"):
        UNet((1, 8, 6), channel_mult=[1, 2, 2])
    UNet((1, 7, 7), **{**TINY, "channel_mult": [1]})  # a single level needs no divisibility
    with pytest.raises(ValueError, match="per-sample shape"):
        UNet((8, 8))
