"""Tests for sfbd.metrics.dinov2 and FD-DINOv2: the ViT written out by hand, EDM2's
preprocessing, DINOv2's position interpolation, the weight loader's checks, Fréchet identities,
and the per-stage metric of a run and of the CLI. Offline: random weights of the same
architecture (a tiny configuration; the full ViT-L/14 only on the meta device)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sfbd.cli.main import main
from sfbd.config import load_config
from sfbd.data import load_problem
from sfbd.errors import ConfigError, DataError, SfbdError
from sfbd.metrics.dinov2 import (
    DINOV2_WEIGHTS_FILENAME,
    DINOv2ViT,
    interpolate_positions,
    load_dinov2,
)
from sfbd.metrics.fid import (
    extract_features,
    feature_stats,
    fid_from_images,
    frechet_distance,
    load_stats,
    save_stats,
)
from sfbd.run.evaluate import check_fid, fid_reference_images
from sfbd.run.runner import Run

#: A tiny DINOv2: 2 blocks of width 128 (2 heads of 64, as every DINOv2 has), MLP 256, a 6x6
#: learned position grid (native input 84x84), patch 14, inputs resized to 224 (16x16 grid).
TINY = {"patch_size": 14, "embed_dim": 128, "depth": 2, "num_heads": 2, "mlp_hidden": 256}
TINY_GRID = 6


def tiny(seed: int = 0, **kw: int) -> DINOv2ViT:
    """Tiny model with every parameter random (LayerScale and LayerNorm affine included)."""
    torch.manual_seed(seed)
    model = DINOv2ViT(**{**TINY, "native_grid": TINY_GRID, **kw})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("gamma", "norm1.weight", "norm2.weight", "norm.weight")):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias") or name in ("cls_token", "mask_token"):
                p.copy_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dino") / "tiny_dinov2.pth"
    torch.save(tiny().state_dict(), path)
    return path


# ----------------------------------------------------------------------------- network


def test_full_vitl14_has_the_published_parameter_count_and_state_dict_keys():
    with torch.device("meta"):  # shapes only: no 1.2 GB of memory, nothing run
        model = DINOv2ViT()
    state = model.state_dict()
    # 304,368,640 parameters in 343 tensors: the published ViT-L/14 (by hand: patch conv
    # 3*14*14*1024 + 1024, cls + mask 2*1024, positions 1370*1024, 24 blocks of 12,598,272,
    # final norm 2048).
    per_block = 2 * 1024 + (1024 * 3072 + 3072) + (1024 * 1024 + 1024) + 1024
    per_block += 2 * 1024 + (1024 * 4096 + 4096) + (4096 * 1024 + 1024) + 1024
    assert per_block == 12_598_272
    by_hand = 3 * 14 * 14 * 1024 + 1024 + 2 * 1024 + 1370 * 1024 + 24 * per_block + 2048
    assert sum(p.numel() for p in model.parameters()) == by_hand == 304_368_640
    assert len(state) == 343
    shapes = {
        "cls_token": (1, 1, 1024),
        "pos_embed": (1, 1 + 37 * 37, 1024),
        "mask_token": (1, 1024),
        "patch_embed.proj.weight": (1024, 3, 14, 14),
        "patch_embed.proj.bias": (1024,),
        "blocks.0.attn.qkv.weight": (3072, 1024),
        "blocks.11.attn.proj.bias": (1024,),
        "blocks.23.ls1.gamma": (1024,),
        "blocks.23.mlp.fc1.weight": (4096, 1024),
        "blocks.23.mlp.fc2.weight": (1024, 4096),
        "blocks.23.ls2.gamma": (1024,),
        "norm.weight": (1024,),
        "norm.bias": (1024,),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    suffixes = {k.split(".", 2)[2] for k in state if k.startswith("blocks.")}
    assert suffixes == {
        f"{m}.{p}"
        for m, ps in {
            "norm1": ("weight", "bias"),
            "attn.qkv": ("weight", "bias"),
            "attn.proj": ("weight", "bias"),
            "ls1": ("gamma",),
            "norm2": ("weight", "bias"),
            "mlp.fc1": ("weight", "bias"),
            "mlp.fc2": ("weight", "bias"),
            "ls2": ("gamma",),
        }.items()
        for p in ps
    }
    assert {int(k.split(".")[1]) for k in state if k.startswith("blocks.")} == set(range(24))
    assert model.blocks[0].attn.num_heads == 16


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-6) * w + b


def _by_hand(model: DINOv2ViT, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The ViT's forward written out with explicit matrix products, for ``model.features``."""
    s = {k: v.double() for k, v in model.state_dict().items()}
    n, p = x.shape[0], model.patch_size
    x = x.double()
    patches = x.unfold(2, p, p).unfold(3, p, p)  # (N, 3, h, w, p, p)
    h, w = patches.shape[2:4]
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(n, h * w, -1)
    t = patches @ s["patch_embed.proj.weight"].reshape(model.embed_dim, -1).T
    t = t + s["patch_embed.proj.bias"]
    t = torch.cat([s["cls_token"].expand(n, 1, -1), t], dim=1) + pos.double()
    heads = model.blocks[0].attn.num_heads
    d = model.embed_dim
    for i in range(len(model.blocks)):
        b = f"blocks.{i}."
        y = _layer_norm(t, s[b + "norm1.weight"], s[b + "norm1.bias"])
        qkv = y @ s[b + "attn.qkv.weight"].T + s[b + "attn.qkv.bias"]
        q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
        outs = []
        for j in range(heads):
            sl = slice(j * d // heads, (j + 1) * d // heads)
            att = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d / heads), -1)
            outs.append(att @ v[..., sl])
        a = torch.cat(outs, -1) @ s[b + "attn.proj.weight"].T + s[b + "attn.proj.bias"]
        t = t + s[b + "ls1.gamma"] * a
        y = _layer_norm(t, s[b + "norm2.weight"], s[b + "norm2.bias"])
        hid = y @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"]
        hid = 0.5 * hid * (1 + torch.erf(hid / math.sqrt(2)))
        t = t + s[b + "ls2.gamma"] * (hid @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"])
    return _layer_norm(t, s["norm.weight"], s["norm.bias"])[:, 0]


def test_features_match_the_transformer_written_out_by_hand():
    model = tiny(1)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 14 * TINY_GRID, 14 * TINY_GRID, generator=g)  # the native grid
    with torch.no_grad():
        got = model.features(x)
        want = _by_hand(model, x, model.pos_embed)
    assert got.shape == (3, 128)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)
    # The 224x224 input of the protocol: a 16x16 grid, positions interpolated from 6x6.
    x = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        got = model.features(x)
        want = _by_hand(model, x, model.position_embedding(16, 16))
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_output_shapes_and_the_feature_is_a_normalised_token():
    model = tiny(3)
    with torch.no_grad():
        model.norm.weight.fill_(1.0)
        model.norm.bias.zero_()
        for shape in ((4, 3, 16, 16), (2, 1, 8, 8), (1, 3, 40, 30), (2, 3, 300, 300)):
            f = model(torch.rand(*shape) * 2 - 1)
            assert f.shape == (shape[0], 128) and f.dtype == torch.float32
            # LayerNorm with unit gain and zero bias: each feature row has mean 0, variance 1.
            torch.testing.assert_close(f.mean(1), torch.zeros(shape[0]), atol=1e-5, rtol=0)
            var = f.var(1, unbiased=False)
            torch.testing.assert_close(var, torch.ones(shape[0]), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="multiple of the patch"):
        model.features(torch.zeros(1, 3, 20, 28))
    with pytest.raises(ValueError, match="1 or 3"):
        model(torch.zeros(1, 2, 8, 8))


# ----------------------------------------------------------------------------- preprocessing


def test_preprocessing_is_edm2s_resize_and_imagenet_normalisation():
    model = tiny()
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, 256, (2, 3, 10, 12), generator=g) / 127.5 - 1  # 8-bit levels
    # By hand: uint8 values, bicubic antialiased resize to 224x224, / 255, ImageNet mean/std.
    pixels = torch.round((x + 1) * 127.5)
    r = F.interpolate(pixels, size=(224, 224), mode="bicubic", antialias=True) / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model.preprocess(x), (r - mean) / std, rtol=1e-5, atol=1e-5)
    # A constant image of pixel value v gives (v / 255 - mean_c) / std_c in channel c.
    v = torch.tensor([10.0, 128.0, 250.0]).view(1, 3, 1, 1)
    flat = model.preprocess((v / 127.5 - 1).expand(1, 3, 9, 9))
    expected = [(10 / 255 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224]
    expected.append((250 / 255 - 0.406) / 0.225)
    for c in range(3):
        torch.testing.assert_close(
            flat[0, c], torch.full((224, 224), expected[c]), atol=1e-5, rtol=0
        )
    # Downsampling is antialiased: a 448x448 checkerboard of period 2 averages to flat grey.
    board = (torch.arange(448).view(-1, 1) + torch.arange(448).view(1, -1)) % 2 * 2.0 - 1
    grey = model.preprocess(board.expand(1, 3, 448, 448))[0, 0] * 0.229 + 0.485
    assert float((grey[8:-8, 8:-8] - 0.5).abs().max()) < 0.01
    # One-channel images are tiled to three.
    one = x[:, :1]
    torch.testing.assert_close(model.preprocess(one), model.preprocess(one.repeat(1, 3, 1, 1)))


# ----------------------------------------------------------------------------- positions


def _cubic(d: np.ndarray, a: float = -0.75) -> np.ndarray:
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _resize_1d(v: np.ndarray, out: int, scale: float) -> np.ndarray:
    """Bicubic resize along axis 0 (align_corners=False, source index (i + 1/2) / scale - 1/2,
    indices clamped at the borders), written out for the check below."""
    n = v.shape[0]
    rows = []
    for i in range(out):
        src = (i + 0.5) / scale - 0.5
        x0 = math.floor(src)
        taps = np.arange(x0 - 1, x0 + 3)
        weights = _cubic(src - taps)
        rows.append(np.tensordot(weights, v[np.clip(taps, 0, n - 1)], axes=1))
    return np.stack(rows)


def test_positions_are_the_learned_table_at_the_native_grid():
    model = tiny(5)
    assert model.position_embedding(TINY_GRID, TINY_GRID) is model.pos_embed
    with torch.device("meta"):
        full = DINOv2ViT()
    assert full.position_embedding(37, 37) is full.pos_embed  # a 518x518 input
    # Elsewhere the CLS position is kept and the grid resized.
    pos = model.position_embedding(16, 16)
    assert pos.shape == (1, 1 + 256, 128)
    torch.testing.assert_close(pos[:, 0], model.pos_embed[:, 0])


@pytest.mark.parametrize(("h", "w"), [(16, 16), (9, 4), (3, 3)])
def test_position_interpolation_is_bicubic_with_dinov2s_offset(h: int, w: int):
    rng = np.random.default_rng(6)
    g = 6
    table = rng.standard_normal((2, g, g))  # two channels of a 6x6 grid
    # DINOv2's scale factors are (h + 0.1) / G and (w + 0.1) / G, not h / G and w / G.
    want = _resize_1d(table.transpose(1, 2, 0), h, (h + 0.1) / g)  # (h, G, C)
    want = _resize_1d(want.transpose(1, 0, 2), w, (w + 0.1) / g).transpose(2, 1, 0)  # (C, h, w)
    got = interpolate_positions(torch.from_numpy(table)[None], h, w)[0].double().numpy()
    assert got.shape == (2, h, w)
    assert np.allclose(got, want, atol=1e-5)
    plain = F.interpolate(torch.from_numpy(table)[None], size=(h, w), mode="bicubic")
    assert not np.allclose(plain[0].numpy(), want, atol=1e-3)  # the offset matters


# ----------------------------------------------------------------------------- Fréchet


def test_frechet_identities_on_dinov2_features():
    model = tiny(7)
    g = torch.Generator().manual_seed(8)
    a = torch.rand(40, 3, 12, 12, generator=g) * 2 - 1
    b = (torch.rand(40, 3, 12, 12, generator=g) * 1.2 - 0.2).clamp(-1, 1)
    fa = extract_features(model, a, batch_size=16)
    fb = extract_features(model, b, batch_size=7)
    assert fa.shape == (40, 128)
    np.testing.assert_allclose(fa[:7], extract_features(model, a[:7]), rtol=1e-5, atol=1e-6)
    sa, sb = feature_stats(fa), feature_stats(fb)
    assert abs(frechet_distance(*sa, *sa)) < 1e-6 * np.trace(sa[1])  # FD(X, X) = 0
    ab, ba = frechet_distance(*sa, *sb), frechet_distance(*sb, *sa)
    assert ab > 0.01 * np.trace(sa[1])
    assert abs(ab - ba) <= 1e-6 * ab  # symmetric


def test_frechet_distance_of_gaussians_is_the_closed_form():
    # Commuting covariances S_i = Q diag(c_i) Q^T:
    # FD = |m1 - m2|^2 + sum_k (sqrt(c1_k) - sqrt(c2_k))^2.
    rng = np.random.default_rng(9)
    d = 64
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    c1, c2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = q @ np.diag(c1) @ q.T, q @ np.diag(c2) @ q.T
    closed = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(c1) - np.sqrt(c2)) ** 2)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(closed, rel=1e-8)
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2.
    assert frechet_distance(0.5, 4.0, -1.0, 0.25) == pytest.approx(1.5**2 + 1.5**2, rel=1e-12)


# ----------------------------------------------------------------------------- weights


def test_load_reads_the_architecture_off_the_file_and_loads_it_strictly(tiny_file: Path):
    with pytest.warns(UserWarning, match="are not ViT-L/14"):
        loaded = load_dinov2(tiny_file)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.blocks[0].attn.num_heads == 2 and loaded.native_grid == TINY_GRID
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tiny()(x))


def test_wrong_weights_are_refused_with_one_line(tmp_path: Path, tiny_file: Path):
    def refused(state: object, match: str) -> None:
        path = tmp_path / "w.pth"
        torch.save(state, path)
        with pytest.raises(SfbdError, match=match) as info:
            load_dinov2(path)
        assert "\n" not in str(info.value)

    good = tiny().state_dict()
    refused({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, "not a DINOv2 ViT state")
    refused({**good, "register_tokens": torch.zeros(1, 4, 128)}, "1 unexpected")
    refused({k: v for k, v in good.items() if k != "norm.bias"}, "1 missing .*norm.bias")
    bad = dict(good, **{"blocks.1.ls2.gamma": torch.zeros(64)})
    refused(bad, "1 with wrong shape .*blocks.1.ls2.gamma")
    refused([1, 2, 3], "does not hold a state dict")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SfbdError, match="cannot read DINOv2 weights"):
        load_dinov2(tmp_path / "junk.pth")
    with pytest.raises(SfbdError, match="not found .*eval.dinov2.*dl.fbaipublicfiles.com"):
        load_dinov2(tmp_path / "missing.pth")


def test_the_cache_holds_only_the_published_vitl14(
    tmp_path: Path, tiny_file: Path, monkeypatch: pytest.MonkeyPatch
):
    from sfbd.io.cache import file_digest
    from sfbd.metrics import dinov2

    with pytest.raises(SfbdError, match="download=False; download https://dl.fbaipublicfiles"):
        load_dinov2(cache_dir=tmp_path, download=False)
    # A download whose SHA-256 is not the pinned one is discarded (file:// stands in for it).
    monkeypatch.setattr(dinov2, "DINOV2_WEIGHTS_URL", tiny_file.as_uri())
    with pytest.raises(SfbdError, match="not the published"):
        load_dinov2(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    # A cached file with another digest is refused, not used.
    (tmp_path / DINOV2_WEIGHTS_FILENAME).write_bytes(tiny_file.read_bytes())
    with pytest.raises(SfbdError, match="has SHA-256 .* expected d5383ea8"):
        load_dinov2(cache_dir=tmp_path)
    # Even a file with the pinned digest must hold ViT-L/14 (strict load): here it does not.
    monkeypatch.setattr(dinov2, "DINOV2_WEIGHTS_SHA256", file_digest(tiny_file, "sha256"))
    with pytest.raises(SfbdError, match="not a DINOv2 ViT-L/14 backbone .* wrong shape"):
        load_dinov2(cache_dir=tmp_path)


# ----------------------------------------------------------------------------- runs and CLI


def test_fd_dinov2_needs_images_and_a_reference(tmp_path: Path, capsys: pytest.CaptureFixture):
    ring = load_config(overrides=["data.source=ring8", "eval.fd_dinov2=true"])
    with pytest.raises(ConfigError, match="eval.fd_dinov2 needs images"):
        check_fid(ring, load_problem(load_config(overrides=["data.source=ring8"])))
    out = tmp_path / "run"
    sets = ["data.source=ring8", "data.num_samples=200", "eval.fd_dinov2=true", "device=cpu"]
    assert main(["run", "--out", str(out), "--quiet", "--set", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sfbd: error: eval.fd_dinov2 needs images") and "\n" not in err
    np.save(tmp_path / "n.npy", np.zeros((6, 1, 8, 8), np.float32))
    np.save(tmp_path / "c.npy", np.zeros((3, 1, 8, 8), np.float32))
    user = [
        f"data.noisy={tmp_path / 'n.npy'}",
        f"data.clean={tmp_path / 'c.npy'}",
        "data.sigma=0.35",
    ]
    cfg = load_config(overrides=[*user, "eval.fd_dinov2=true"])
    with pytest.raises(DataError, match="eval.fd_dinov2 in user mode .* eval.fd_dinov2_stats"):
        check_fid(cfg, load_problem(cfg))
    check_fid(
        load_config(overrides=[*user, "eval.fd_dinov2=true", "eval.fd_dinov2_stats=s.npz"]),
        load_problem(cfg),
    )


def test_digits_run_reports_fd_dinov2_per_stage(tmp_path: Path, tiny_file: Path):
    cfg = load_config(
        overrides=[
            "data.source=digits",
            "data.sigma=0.6",
            "data.clean_fraction=0.1",
            "data.holdout=0.05",
            "model.channels=8",
            "train.pretrain_steps=3",
            "train.update_steps=2",
            "train.batch_size=16",
            "sfbd.iterations=1",
            "sample.steps=4",
            "eval.num_samples=10",
            "eval.fd_dinov2=true",
            "eval.fid_samples=12",
            f"eval.dinov2={tiny_file}",
            "device=cpu",
        ]
    )
    with pytest.warns(UserWarning, match="are not ViT-L/14"):
        Run(cfg, tmp_path, progress=False).execute()
    stages = json.loads((tmp_path / "metrics.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == ["pretrain", "update"]
    for s in stages:
        assert np.isfinite(s["metrics"]["fd_dinov2"]) and s["metrics"]["fd_dinov2"] > 0
        assert "fid" not in s["metrics"]
    # The cached reference statistics are those of the hold-out's features, computed directly.
    mu, sigma = load_stats(tmp_path / "fd_dinov2_ref.npz")
    with pytest.warns(UserWarning):
        model = load_dinov2(tiny_file)
    ref = fid_reference_images(load_problem(cfg))
    mu0, sigma0 = feature_stats(extract_features(model, ref))
    assert mu.shape == (128,) and sigma.shape == (128, 128)
    np.testing.assert_allclose(mu, mu0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sigma, sigma0, rtol=1e-3, atol=1e-6)
    assert not (tmp_path / "fid_ref.npz").exists()


def test_cli_fid_with_dinov2_features(tmp_path: Path, tiny_file: Path, capsys):
    rng = np.random.default_rng(10)
    ref_images = rng.integers(0, 256, (20, 3, 12, 12), dtype=np.uint8)
    np.save(tmp_path / "ref.npy", ref_images)
    x = rng.uniform(-1, 1, (10, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    stats = tmp_path / "ref.npz"
    dino = ["--features", "dinov2", "--dinov2", str(tiny_file), "--device", "cpu", "--quiet"]
    fid = ["fid", "--input", str(tmp_path / "x.npy"), "--stats"]
    assert main(["fid-stats", str(tmp_path / "ref.npy"), "--out", str(stats), *dino]) == 0
    assert main([*fid, str(stats), *dino]) == 0
    printed = float(capsys.readouterr().out.strip())
    with pytest.warns(UserWarning):
        model = load_dinov2(tiny_file)
    mu, sigma = feature_stats(extract_features(model, ref_images / 127.5 - 1))
    assert printed == pytest.approx(fid_from_images(model, x, (mu, sigma)), rel=1e-3)
    # Weights for the other network, and statistics of the other width, are one-line errors.
    assert main([*fid, str(stats), "--features", "dinov2", "--inception", "w.pth"]) == 2
    assert "--inception gives the weights of --features inception" in capsys.readouterr().err
    other = tmp_path / "other.npz"
    save_stats(other, np.zeros(2048), np.eye(2048))
    assert main([*fid, str(other), *dino]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1  # one line (beside the warning about the test weights)
    assert "2048-d statistics, not the 128-d features of --features dinov2" in errors[0]
