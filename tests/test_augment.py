import math

import pytest
import torch

from sfbd.train.augment import Augment, AugmentParams, augment_dim, zero_labels

OFF = dict(xflip=0, yflip=0, scale=0, rotate_frac=0, aniso=0, translate_frac=0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _only(name: str, p: float = 1.0, **kw) -> Augment:
    return Augment(p, **{**OFF, name: 1, **kw})


def _blob(h: int, w: int, cx: float, cy: float, s: float, dtype=torch.float64) -> torch.Tensor:
    """A Gaussian blob centred at pixel (cx, cy), as a (1, 1, H, W) image."""
    y = torch.arange(h, dtype=dtype)[:, None]
    x = torch.arange(w, dtype=dtype)[None, :]
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s**2))[None, None]


def _centroid(img: torch.Tensor) -> torch.Tensor:
    """(B, 2) intensity centroids (x, y) of (B, 1, H, W) images, in pixel units."""
    _, _, h, w = img.shape
    m = img[:, 0]
    tot = m.sum(dim=(1, 2))
    x = (m.sum(dim=1) * torch.arange(w, dtype=img.dtype)).sum(dim=1) / tot
    y = (m.sum(dim=2) * torch.arange(h, dtype=img.dtype)).sum(dim=1) / tot
    return torch.stack([x, y], dim=1)


def test_p_zero_is_identity_with_zero_labels():
    x = torch.randn(5, 3, 8, 6)
    out, labels = Augment(0.0)(x, _gen(0))
    assert augment_dim == 9
    assert out.shape == x.shape and labels.shape == (5, 9)
    assert torch.equal(out, x)
    assert torch.equal(labels, torch.zeros(5, 9))
    z = zero_labels(3, "cpu", torch.float64)
    assert z.shape == (3, 9) and z.dtype == torch.float64 and not z.any()


def test_default_is_edm_geometric_pipe():
    a = Augment()
    assert a.p == 0.12 and a.xflip == 1e8
    assert (a.yflip, a.scale, a.rotate_frac, a.aniso, a.translate_frac) == (1, 1, 1, 1, 1)
    x = torch.randn(64, 2, 8, 8)
    out, labels = a(x, _gen(1))
    assert out.shape == x.shape and labels.shape == (64, 9)
    assert torch.isfinite(out).all() and torch.isfinite(labels).all()
    # With the huge multiplier, x-flip is on for every sample: flipped about half the time.
    assert 10 < labels[:, 0].sum() < 54


def test_xflip_only_flips_exactly_and_label_says_which():
    x = torch.randn(64, 3, 5, 7)
    out, labels = _only("xflip")(x, _gen(2))
    flipped = labels[:, 0]
    assert set(flipped.tolist()) == {0.0, 1.0}
    assert not labels[:, 1:].any()
    for i in range(64):
        want = x[i].flip(-1) if flipped[i] == 1 else x[i]
        assert torch.equal(out[i], want)


def test_yflip_only_flips_top_bottom():
    x = torch.randn(32, 1, 6, 4)
    out, labels = _only("yflip")(x, _gen(3))
    for i in range(32):
        assert torch.equal(out[i], x[i].flip(-2) if labels[i, 1] == 1 else x[i])


def test_integer_translation_is_a_shift_with_reflected_border():
    h = w = 16
    aug = _only("translate_frac")  # translate_frac_std = 0.125: label 1 <-> 2 pixels
    x = torch.randn(1, 2, h, w, dtype=torch.float64)
    z = torch.zeros(1, dtype=torch.float64)
    params = AugmentParams(z, z, z, z, z, z, tx=z + 1.0, ty=z - 0.5)  # +2 px in x, -1 px in y
    out = aug.apply(x, params)
    assert torch.equal(params.labels()[0, 7:], torch.tensor([1.0, -0.5], dtype=torch.float64))
    rolled = torch.roll(x, shifts=(-1, 2), dims=(2, 3))  # content moves right 2, up 1
    torch.testing.assert_close(out[..., : h - 1, 2:], rolled[..., : h - 1, 2:], rtol=0, atol=1e-12)
    # Border pixels come from reflection about the image edge.
    torch.testing.assert_close(out[..., :-1, 0], x[..., 1:, 1], rtol=0, atol=1e-12)
    torch.testing.assert_close(out[..., -1, 2:], x[..., -1, :-2], rtol=0, atol=1e-12)


def test_translation_label_matches_centroid_shift():
    h, w = 24, 32
    x = _blob(h, w, (w - 1) / 2, (h - 1) / 2, 2.0).expand(16, 1, h, w).contiguous()
    out, labels = _only("translate_frac", translate_frac_std=0.05)(x, _gen(4))
    shift = _centroid(out) - _centroid(x)
    want = labels[:, 7:] * 0.05 * torch.tensor([w, h], dtype=torch.float64)
    assert labels[:, 7:].abs().max() > 0.5
    torch.testing.assert_close(shift, want, rtol=0, atol=0.05)


def test_deterministic_given_generator():
    x = torch.randn(16, 3, 8, 8)
    aug = Augment(0.5)
    a_img, a_lab = aug(x, _gen(5))
    b_img, b_lab = aug(x, _gen(5))
    c_img, c_lab = aug(x, _gen(6))
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    assert not torch.equal(a_lab, c_lab) and not torch.equal(a_img, c_img)


def test_untouched_samples_have_zero_labels_and_are_bit_exact():
    x = torch.randn(200, 2, 7, 5)  # odd sizes: an identity resampling would not be bit-exact
    out, labels = Augment(0.3, xflip=1)(x, _gen(7))
    none = (labels == 0).all(dim=1)
    assert 10 < none.sum() < 190
    assert torch.equal(out[none], x[none])
    assert not torch.equal(out[~none], x[~none])


@pytest.mark.parametrize(("name", "col"), [("scale", 2), ("rotate_frac", 4), ("aniso", 5)])
def test_fraction_augmented_matches_p(name, col):
    n, p = 4000, 0.5
    aug = _only(name, p, aniso_rotate_prob=0)
    params = aug.sample(n, _gen(8))
    frac = (params.labels()[:, col] != 0).double().mean().item()
    se = math.sqrt(p * (1 - p) / n)
    assert abs(frac - p) < 4 * se
    others = [i for i in range(augment_dim) if i not in (col, col - 1 if col == 4 else col)]
    assert not params.labels()[:, others].any()


def test_rotation_preserves_radial_blob_and_changes_asymmetric_image():
    h = w = 25
    c = (w - 1) / 2
    n = 32
    aug = _only("rotate_frac")
    sym = _blob(h, w, c, c, 3.0).expand(n, 1, h, w).contiguous()
    off = (_blob(h, w, c + 6, c, 2.0) + 0.5 * _blob(h, w, c, c - 4, 2.0)).expand(n, 1, h, w)
    out_sym, lab = aug(sym, _gen(9))
    out_off, lab2 = aug(off.contiguous(), _gen(9))
    assert torch.equal(lab, lab2)
    angle = torch.atan2(lab[:, 4], lab[:, 3] + 1)
    big = angle.abs() > 0.5
    assert big.sum() > 10
    err_sym = (out_sym - sym).abs().amax(dim=(1, 2, 3))
    err_off = (out_off - off).abs().amax(dim=(1, 2, 3))
    assert err_sym.max() < 0.05  # bilinear interpolation error only
    assert (err_off[big] > 0.3).all()
    # The label-recorded angle is the one applied: the off-centre blob's centroid rotates by it.
    # Only the inscribed disc is rotated in from inside the image (corners come from reflection).
    single = _blob(h, w, c + 6, c, 1.5).expand(n, 1, h, w).contiguous()
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = ((xx - c) ** 2 + (yy - c) ** 2 <= c**2).double()
    got = _centroid(aug(single, _gen(9))[0] * disc) - c
    want = 6 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    torch.testing.assert_close(got, want.double(), rtol=0, atol=0.1)


def test_scale_label_matches_blob_size():
    h = w = 33
    c = (w - 1) / 2
    x = _blob(h, w, c, c, 3.0).expand(16, 1, h, w).contiguous()
    out, lab = _only("scale")(x, _gen(10))
    factor = torch.exp2(lab[:, 2].double() * 0.2)
    torch.testing.assert_close(
        out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3)), factor**2, atol=0.02, rtol=0.02
    )


def test_float32_and_float64_agree():
    x = torch.randn(8, 3, 8, 8, dtype=torch.float64)
    o64, l64 = Augment(0.8)(x, _gen(11))
    o32, l32 = Augment(0.8)(x.float(), _gen(11))
    assert o64.dtype == l64.dtype == torch.float64 and o32.dtype == l32.dtype == torch.float32
    torch.testing.assert_close(l32.double(), l64)
    torch.testing.assert_close(o32.double(), o64, atol=1e-4, rtol=0)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        Augment(-0.1)
    with pytest.raises(ValueError):
        Augment(0.1, aniso_rotate_prob=2)
    with pytest.raises(ValueError):
        Augment()(torch.zeros(2, 8, 8))
