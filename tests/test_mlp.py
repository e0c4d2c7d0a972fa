"""Tests for the MLP vector denoiser (raw network F of EDM preconditioning)."""

import json

import pytest
import torch

from sfbd.nets.mlp import MLP


def _perturb_output(net: MLP) -> None:
    """Make the zero-initialised output layer non-zero so the output depends on the inputs."""
    with torch.no_grad():
        net.out.weight.normal_(0.0, 0.5)
        net.out.bias.normal_(0.0, 0.5)


@pytest.mark.parametrize("dim", [2, 64])
def test_shape_dtype_and_zero_init(dim: int) -> None:
    torch.manual_seed(0)
    net = MLP((dim,), hidden=32, layers=2, emb_dim=16)
    assert net.shape == (dim,)
    x = torch.randn(5, dim)
    out = net(x, torch.randn(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, torch.zeros_like(out))
    # Extra aug_labels are accepted and ignored.
    assert torch.equal(net(x, torch.randn(5), aug_labels=torch.randn(5, 3)), out)

    net64 = MLP((dim,), hidden=32, layers=2, emb_dim=16).double()
    x64 = torch.randn(3, dim, dtype=torch.float64)
    assert net64(x64, torch.zeros(3, dtype=torch.float64)).dtype == torch.float64


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    net = MLP((2,), hidden=32, layers=2, emb_dim=16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, labels, target = torch.randn(16, 2), torch.randn(16), torch.randn(16, 2)

    # Step 1: only the zero-initialised output layer can receive non-zero gradients.
    loss = (net(x, labels) - target).square().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    opt.step()
    opt.zero_grad()
    assert net(x, labels).abs().max() > 0

    # Step 2: the output layer is now non-zero, so every parameter gets a non-zero gradient.
    (net(x, labels) - target).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_config_roundtrip() -> None:
    net = MLP([3], hidden=24, layers=4, emb_dim=8)
    cfg = json.loads(json.dumps(net.config()))
    clone = type(net)(**cfg)
    assert clone.shape == net.shape
    assert [(n, p.shape) for n, p in clone.named_parameters()] == [
        (n, p.shape) for n, p in net.named_parameters()
    ]
    clone.load_state_dict(net.state_dict())


def test_default_parameter_count() -> None:
    assert sum(p.numel() for p in MLP((2,)).parameters()) == 365_826


def test_noise_conditioning_matters() -> None:
    torch.manual_seed(0)
    net = MLP((2,), hidden=32, layers=2, emb_dim=16)
    _perturb_output(net)
    x = torch.randn(4, 2)
    a = net(x, torch.full((4,), -1.0))
    b = net(x, torch.full((4,), 0.5))
    assert (a - b).abs().max() > 1e-3


def test_batch_consistency() -> None:
    torch.manual_seed(0)
    net = MLP((2,), hidden=32, layers=2, emb_dim=16).eval()
    _perturb_output(net)
    x, labels = torch.randn(4, 2), torch.randn(4)
    batched = net(x, labels)
    single = torch.cat([net(x[i : i + 1], labels[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_bad_shape_rejected() -> None:
    with pytest.raises(ValueError, match="per-sample shape"):
        MLP((2, 2))


def test_fits_random_target() -> None:
    torch.manual_seed(0)
    net = MLP((2,), hidden=64, layers=2, emb_dim=32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, labels, target = torch.randn(64, 2), torch.rand(64) * 2.7 - 1.6, torch.randn(64, 2)
    with torch.no_grad():
        initial = (net(x, labels) - target).square().mean().item()
    for _ in range(300):
        loss = (net(x, labels) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = (net(x, labels) - target).square().mean().item()
    assert final < initial / 10, (initial, final)
