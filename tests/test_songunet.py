"""Tests for the DDPM++ / NCSN++ SongUNet (raw network F of EDM preconditioning)."""

import json

import pytest
import torch

from sfbd.nets.layers import Resample
from sfbd.nets.songunet import PRESETS, SongUNet

SHAPE = (3, 16, 16)
TINY = {"model_channels": 16, "channel_mult": (1, 2), "num_blocks": 1, "attn_resolutions": (8,)}


def _tiny(preset: str = "ddpmpp", **kwargs) -> SongUNet:
    return SongUNet(SHAPE, **{**PRESETS[preset], **TINY, **kwargs})


def _perturb_output(net: SongUNet) -> None:
    """Give the near-zero (1e-5 init) layers -- the last conv of each block, the attention
    projections and the output convs -- weights of order one, so every input matters."""
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1 and p.abs().max() < 1e-3:
                p.normal_(0.0, 0.1)
        for layer in net.out_conv.values():
            layer.weight.normal_(0.0, 0.3)


def test_cifar10_ddpmpp_parameter_count_matches_edm() -> None:
    # EDM's CIFAR-10 DDPM++ network (unconditional, augment_dim=9): 55,733,891 parameters.
    with torch.device("meta"):
        net = SongUNet(
            (3, 32, 32),
            **PRESETS["ddpmpp"],
            model_channels=128,
            channel_mult=(2, 2, 2),
            num_blocks=4,
            attn_resolutions=(16,),
            dropout=0.13,
            augment_dim=9,
        )
    assert sum(p.numel() for p in net.parameters()) == 55_733_891


def test_presets_match_edm_train_py() -> None:
    assert PRESETS["ddpmpp"] == {
        "embedding_type": "positional",
        "encoder_type": "standard",
        "decoder_type": "standard",
        "channel_mult_noise": 1,
        "resample_filter": [1, 1],
    }
    assert PRESETS["ncsnpp"] == {
        "embedding_type": "fourier",
        "encoder_type": "residual",
        "decoder_type": "standard",
        "channel_mult_noise": 2,
        "resample_filter": [1, 3, 3, 1],
    }
    assert SongUNet.ncsnpp(SHAPE, **TINY).config() == _tiny("ncsnpp").config()
    assert SongUNet.ddpmpp(SHAPE, **TINY).config() == _tiny("ddpmpp").config()


@pytest.mark.parametrize("decoder_type", ["standard", "skip"])
@pytest.mark.parametrize("encoder_type", ["standard", "skip", "residual"])
@pytest.mark.parametrize("preset", ["ddpmpp", "ncsnpp"])
def test_shapes_all_variants(preset: str, encoder_type: str, decoder_type: str) -> None:
    torch.manual_seed(0)
    net = _tiny(preset, encoder_type=encoder_type, decoder_type=decoder_type).eval()
    assert net.shape == SHAPE
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        out = net(x, torch.randn(2))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert 0 < out.abs().max() < 1e-2  # output convs start near zero (init weight 1e-5)


def test_float64_and_rectangular() -> None:
    torch.manual_seed(0)
    net = SongUNet((1, 8, 16), **{**PRESETS["ncsnpp"], **TINY}).double().eval()
    x = torch.randn(2, 1, 8, 16, dtype=torch.float64)
    out = net(x, torch.randn(2, dtype=torch.float64))
    assert out.shape == x.shape and out.dtype == torch.float64


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="divisible"):
        SongUNet((3, 15, 16), **TINY)
    with pytest.raises(ValueError, match="encoder_type"):
        SongUNet(SHAPE, **TINY, encoder_type="fancy")
    net = _tiny(augment_dim=9)
    with pytest.raises(ValueError, match="aug_labels"):
        net(torch.randn(2, *SHAPE), torch.randn(2), torch.randn(2, 4))


@pytest.mark.parametrize("preset", ["ddpmpp", "ncsnpp"])
def test_conditioning_on_noise_and_augment_labels(preset: str) -> None:
    torch.manual_seed(0)
    net = _tiny(preset, augment_dim=9).eval()
    _perturb_output(net)
    x, labels = torch.randn(2, *SHAPE), torch.randn(2)
    with torch.no_grad():
        base = net(x, labels)
        assert torch.equal(net(x, labels, torch.zeros(2, 9)), base)
        assert not torch.allclose(net(x, labels + 0.5), base, atol=1e-4)
        assert not torch.allclose(net(x, labels, torch.randn(2, 9)), base, atol=1e-4)


def test_batch_independence_in_eval_mode() -> None:
    torch.manual_seed(0)
    net = _tiny("ncsnpp", augment_dim=9, decoder_type="skip").eval()
    _perturb_output(net)
    x, labels, aug = torch.randn(3, *SHAPE), torch.randn(3), torch.randn(3, 9)
    with torch.no_grad():
        batched = net(x, labels, aug)
        single = torch.cat([net(x[i : i + 1], labels[i : i + 1], aug[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("preset", ["ddpmpp", "ncsnpp"])
def test_config_roundtrip(preset: str) -> None:
    torch.manual_seed(0)
    net = _tiny(preset, augment_dim=9, encoder_type="skip", decoder_type="skip", dropout=0.2)
    cfg = json.loads(json.dumps(net.config()))
    clone = type(net)(**cfg)
    assert clone.shape == net.shape and clone.config() == cfg
    assert [(n, p.shape) for n, p in clone.named_parameters()] == [
        (n, p.shape) for n, p in net.named_parameters()
    ]
    # The state dict (including NCSN++'s random Fourier frequencies) reproduces the network.
    clone.load_state_dict(net.state_dict())
    x, labels = torch.randn(2, *SHAPE), torch.randn(2)
    net.eval(), clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(x, labels), net(x, labels))


@pytest.mark.parametrize("preset", ["ddpmpp", "ncsnpp"])
def test_gradients_reach_every_parameter(preset: str) -> None:
    torch.manual_seed(0)
    net = _tiny(preset, augment_dim=9, encoder_type="skip", decoder_type="skip", dropout=0.0)
    _perturb_output(net)
    x, labels, target = torch.randn(2, *SHAPE), torch.randn(2), torch.randn(2, *SHAPE)
    (net(x, labels, torch.randn(2, 9)) - target).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


@pytest.mark.parametrize("taps", [(1, 1), (1, 3, 3, 1)])
def test_resample_shapes_and_constant_preservation(taps: tuple[int, ...]) -> None:
    x = torch.full((1, 2, 8, 8), 3.0)
    down, up = Resample("down", taps)(x), Resample("up", taps)(x)
    assert down.shape == (1, 2, 4, 4) and up.shape == (1, 2, 16, 16)
    # The filter has unit gain: constants survive away from the zero-padded border.
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    if taps == (1, 1):
        assert torch.equal(down, torch.nn.functional.avg_pool2d(x, 2))
