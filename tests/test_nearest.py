"""sfbd.report.nearest: generated samples beside their nearest clean sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfbd.report.nearest import _pair_tiles, nearest_png


def _check_png(path: Path) -> tuple[int, int]:
    assert path.is_file()
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        w, h = im.size
    assert w > 0 and h > 0
    # No temporary files left next to the output.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return w, h


# ----------------------------------------------------------------------------- image_grid


def _red_pixels(path: Path) -> int:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r > 150) & (g < 120) & (b < 120) & (r - g > 80)).sum())


def test_pair_tiles_layout():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(-1, 1, (2, 1, 3, 4)), rng.uniform(-1, 1, (2, 1, 3, 4))
    t = _pair_tiles(x, y, np.array([True, False]), border=1)
    # b | W | b | W | b across, b | H | b down
    assert t.shape == (2, 3, 5, 11)
    for ch in range(3):  # grey images on all three channels
        np.testing.assert_array_equal(t[:, ch, 1:4, 1:5], x[:, 0])
        np.testing.assert_array_equal(t[:, ch, 1:4, 6:10], y[:, 0])
    # frame and the split between the two: red for the copy, grey for the other
    for col in (0, 5, 10):
        np.testing.assert_array_equal(t[0, :, :, col].T, np.tile([1.0, -1.0, -1.0], (5, 1)))
        np.testing.assert_array_equal(t[1, :, :, col].T, np.full((5, 3), 0.5))
    np.testing.assert_array_equal(t[0, :, 0].T, np.tile([1.0, -1.0, -1.0], (11, 1)))
    rgb = _pair_tiles(np.zeros((1, 3, 2, 2)), np.ones((1, 3, 2, 2)), np.array([False]))
    assert rgb.shape == (1, 3, 4, 7) and rgb[0, :, 1, 4].tolist() == [1.0, 1.0, 1.0]


def test_nearest_png_images_mark_copies(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (8, 1, 8, 8))
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape), -1, 1)
    none = tmp_path / "none" / "none.png"
    nearest_png(none, x, y, np.full(8, 0.9), title="stage 1 (update)")
    w, h = _check_png(none)
    assert w > 300 and h > 300
    assert _red_pixels(none) == 0  # grey images, grey frames, black text
    some = tmp_path / "some" / "some.png"
    nearest_png(some, x, y, np.array([0.01, 0.9, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9]))
    assert _check_png(some) == (w, h)
    assert _red_pixels(some) > 50
    # RGB and (n, H, W) inputs
    rgb = tmp_path / "rgb" / "rgb.png"
    nearest_png(rgb, rng.uniform(-1, 1, (5, 3, 6, 6)), rng.uniform(-1, 1, (5, 3, 6, 6)), [0.5] * 5)
    _check_png(rgb)
    hw = tmp_path / "hw" / "hw.png"
    nearest_png(hw, x[:, 0], y[:, 0], np.zeros(8), nrow=4)
    _check_png(hw)


def test_nearest_png_vectors(tmp_path):
    rng = np.random.default_rng(7)
    clean = rng.standard_normal((100, 2))
    x = clean[:20] + 0.3 * rng.standard_normal((20, 2))
    none = tmp_path / "none" / "none.png"
    nearest_png(none, x, clean[:20], np.full(20, 0.8), reference=clean)
    _check_png(none)
    assert _red_pixels(none) == 0
    some = tmp_path / "some" / "some.png"
    nearest_png(some, x, clean[:20], np.where(np.arange(20) < 5, 0.1, 0.8), reference=clean)
    _check_png(some)
    assert _red_pixels(some) > 0


def test_nearest_png_errors(tmp_path):
    x = np.zeros((4, 1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        nearest_png(tmp_path / "a.png", x, x[:3], np.zeros(4))
    with pytest.raises(ValueError, match="ratios"):
        nearest_png(tmp_path / "a.png", x, x, np.zeros(3))
    with pytest.raises(ValueError, match="channels"):
        nearest_png(tmp_path / "a.png", np.zeros((4, 2, 8, 8)), np.zeros((4, 2, 8, 8)), [0] * 4)
    with pytest.raises(ValueError, match="empty"):
        nearest_png(tmp_path / "a.png", x[:0], x[:0], [])
    assert not (tmp_path / "a.png").exists()
