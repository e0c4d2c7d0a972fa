"""Tests for sfbd.metrics.inception: TF-FID Inception-v3 architecture and the weights loader.

Everything runs offline with seeded random weights of the same layout as pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth``; network access is replaced by unreachable or
``file://`` URLs, or by a monkeypatched ``urlopen``.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sfbd.errors import SfbdError
from sfbd.io.cache import file_digest
from sfbd.metrics import inception
from sfbd.metrics.inception import FIDInceptionV3, load_inception

# Parameters of the FID Inception (TF graph, 1008 classes, no aux head). Derived from public
# facts: torchvision's inception_v3 has 27,161,264 parameters (its documented ``num_params``)
# with the aux head (conv 768->128 1x1 + BN: 98,560; conv 128->768 5x5 + BN: 2,459,136;
# fc 768->1000: 769,000; total 3,326,696) and a 1000-way fc; the TF graph has no aux head and a
# 1008-way fc (+8 * 2049).
EXPECTED_PARAMS = 27_161_264 - 3_326_696 + 8 * 2049
assert EXPECTED_PARAMS == 23_850_960
# BatchNorm running_mean + running_var entries (2 x 17,216 channels over 94 BN layers).
EXPECTED_RUNNING = 34_432
# 94 conv weights + 94 x 4 BN tensors + fc weight and bias (num_batches_tracked not counted).
EXPECTED_TENSORS = 94 + 94 * 4 + 2

# Selected (key, shape) pairs of the weight file, one or more per block type.
EXPECTED_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_2b_3x3.conv.weight": (64, 32, 3, 3),
    "Conv2d_3b_1x1.conv.weight": (80, 64, 1, 1),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch_pool.conv.weight": (64, 288, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch_pool.bn.bias": (192,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def _random_model(seed: int = 0) -> FIDInceptionV3:
    """Seeded random weights with He-initialised convs so features are O(0.1), not ~1e-8."""
    torch.manual_seed(seed)
    model = FIDInceptionV3()
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.uniform_(mod.weight, 0.9, 1.1)
            nn.init.uniform_(mod.bias, -0.05, 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> FIDInceptionV3:
    return _random_model()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory, model: FIDInceptionV3) -> Path:
    path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(model.state_dict(), path)
    return path


# ----------------------------------------------------------------------------- architecture


def test_state_dict_layout_matches_weight_file(model: FIDInceptionV3):
    sd = model.state_dict()
    core = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert len(core) == EXPECTED_TENSORS
    for key, shape in EXPECTED_SHAPES.items():
        assert tuple(core[key].shape) == shape, key
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == EXPECTED_PARAMS
    n_running = sum(v.numel() for k, v in core.items() if ".running_" in k)
    assert n_running == EXPECTED_RUNNING
    # The published file is 95,628,359 bytes: float32 tensors plus a little pickle overhead.
    overhead = inception.FID_WEIGHTS_BYTES - 4 * (n_params + n_running)
    assert 0 < overhead < 200_000
    assert all(v.dtype == torch.float32 for v in core.values())
    assert not any(k.startswith("AuxLogits") for k in sd)


@pytest.mark.parametrize("size", [32, 64])
def test_output_shape_any_input_size(model: FIDInceptionV3, size: int):
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size)) * 2 - 1
    with torch.inference_mode():
        f = model(x)
    assert f.shape == (2, inception.FEATURE_DIM)
    assert torch.isfinite(f).all()
    assert (f >= 0).all()  # average of ReLU outputs
    assert f.std() > 1e-3  # He init keeps activations alive


def test_grayscale_equals_repeated_rgb(model: FIDInceptionV3):
    gray = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        a = model(gray)
        b = model(gray.repeat(1, 3, 1, 1))
    torch.testing.assert_close(a, b)


def test_preprocess_resize_and_scaling():
    m = FIDInceptionV3()
    x = torch.full((1, 3, 16, 16), 0.5)
    y = m.preprocess(x)
    assert y.shape == (1, 3, 299, 299)
    torch.testing.assert_close(y, torch.full_like(y, 0.5))  # [-1, 1] passes through unchanged
    tf_net = FIDInceptionV3(resize=False, tf_input_scaling=True)
    tf = tf_net.preprocess(torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2))
    # Pixel 0 -> -1, pixel 255 -> 127/128, as the TF graph's (p - 128) / 128.
    torch.testing.assert_close(tf[0, 0, 0, :2], torch.tensor([-1.0, 127 / 128]))
    with pytest.raises(ValueError, match="shape"):
        m.preprocess(torch.zeros(1, 2, 8, 8))


def test_tf_avg_pool_excludes_padding(model: FIDInceptionV3):
    # With count_include_pad=False a constant map stays constant at the borders, so the
    # pool branch (1x1 conv of the pooled map) is spatially constant; zero-padded averaging
    # (torchvision's ImageNet model) would darken the border.
    x = torch.ones(1, 192, 35, 35)
    with torch.inference_mode():
        out = model.Mixed_5b(x)[:, -32:]  # last 32 channels: branch_pool
    assert torch.allclose(out, out[..., 17:18, 17:18].expand_as(out))
    padded = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
    assert padded[0, 0, 0, 0] < 1.0  # the quirk is visible on this input


def test_last_e_block_uses_max_pool(model: FIDInceptionV3):
    assert model.Mixed_7b.pool == "avg"
    assert model.Mixed_7c.pool == "max"
    # A single positive spike: max pooling copies it to its 3x3 neighbourhood unchanged,
    # averaging would divide it by 9. Compare the pool branch against both.
    x = torch.zeros(1, 2048, 8, 8)
    x[0, :, 4, 4] = 1.0
    block = model.Mixed_7c
    with torch.inference_mode():
        got = block(x)[:, -192:]
        want_max = block.branch_pool(F.max_pool2d(x, 3, stride=1, padding=1))
        want_avg = block.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
    torch.testing.assert_close(got, want_max)
    assert not torch.allclose(got, want_avg)


# ----------------------------------------------------------------------------- loading


def test_load_from_path_round_trip(weights_file: Path, model: FIDInceptionV3):
    loaded = load_inception(weights_file)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_local_weights_other_than_the_published_file_load_with_a_warning(
    weights_file: Path, monkeypatch: pytest.MonkeyPatch
):
    with pytest.warns(UserWarning, match="not the published file"):
        load_inception(weights_file)
    digest = file_digest(weights_file, "sha256")
    monkeypatch.setattr(inception, "FID_WEIGHTS_SHA256", digest)  # as if it were the release
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_inception(weights_file)


def test_load_without_num_batches_tracked(tmp_path: Path, model: FIDInceptionV3):
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "no_nbt.pth"
    torch.save(sd, path)
    loaded = load_inception(path)
    torch.testing.assert_close(loaded.fc.weight, model.fc.weight)


def test_load_rejects_wrong_layout(tmp_path: Path, model: FIDInceptionV3):
    sd = dict(model.state_dict())
    sd["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's 1000-class head
    sd["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    path = tmp_path / "torchvision_like.pth"
    torch.save(sd, path)
    with pytest.raises(SfbdError, match="wrong shape.*fc.weight"):
        load_inception(path)
    with pytest.raises(SfbdError, match="unexpected"):
        load_inception(path)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(SfbdError, match="cannot read"):
        load_inception(tmp_path / "junk.pth")


def test_missing_explicit_path(tmp_path: Path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(SfbdError) as info:
        load_inception(missing)
    assert str(missing) in str(info.value)
    assert inception.FID_WEIGHTS_URL in str(info.value)


def test_default_cache_dir_respects_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SFBD_CACHE", str(tmp_path / "c"))
    assert inception.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SFBD_CACHE")
    assert inception.default_cache_dir().name == "sfbd"


# ----------------------------------------------------------------------------- download


def test_offline_download_fails_with_path_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path / "cache"
    url = "http://127.0.0.1:9/pt_inception-2015-12-05-6726825d.pth"  # discard port: refused
    monkeypatch.setenv("SFBD_CACHE", str(cache))
    monkeypatch.setattr(inception, "FID_WEIGHTS_URL", url)
    with pytest.raises(SfbdError) as info:
        load_inception()
    msg = str(info.value)
    assert "\n" not in msg
    assert str(cache / inception.FID_WEIGHTS_FILENAME) in msg
    assert url in msg
    assert list(cache.iterdir()) == []  # no partial file left behind


def test_offline_real_url_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(SfbdError) as info:
        load_inception(cache_dir=tmp_path)
    msg = str(info.value)
    assert (
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth"
    ) in msg
    assert str(tmp_path / "pt_inception-2015-12-05-6726825d.pth") in msg
    assert list(tmp_path.iterdir()) == []


def test_download_false_does_not_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    with pytest.raises(SfbdError, match="download=False") as info:
        load_inception(cache_dir=tmp_path, download=False)
    assert inception.FID_WEIGHTS_URL in str(info.value)


def test_wrong_checksum_is_rejected_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_file: Path
):
    cache = tmp_path / "cache"
    monkeypatch.setattr(inception, "FID_WEIGHTS_URL", weights_file.as_uri())
    with pytest.raises(SfbdError, match="SHA-256"):
        load_inception(cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_download_verifies_caches_and_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights_file: Path, model: FIDInceptionV3
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SFBD_CACHE", str(cache))
    monkeypatch.setattr(inception, "FID_WEIGHTS_URL", weights_file.as_uri())
    monkeypatch.setattr(inception, "FID_WEIGHTS_SHA256", file_digest(weights_file, "sha256"))
    loaded = load_inception()
    assert [p.name for p in cache.iterdir()] == [inception.FID_WEIGHTS_FILENAME]
    torch.testing.assert_close(loaded.fc.bias, model.fc.bias)

    # Second call: served from the cache, no network.
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download again")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    load_inception()

    # A corrupted cached file is refused with advice to delete it.
    cached = cache / inception.FID_WEIGHTS_FILENAME
    cached.write_bytes(cached.read_bytes()[:-10])
    with pytest.raises(SfbdError, match="delete it"):
        load_inception()
