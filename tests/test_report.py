"""Tests for sfbd.report: PNG writers and the image-grid layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfbd.report import (
    image_grid,
    image_grid_png,
    image_panels_png,
    metrics_png,
    scatter_panels_png,
    scatter_png,
)


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


def test_image_grid_exact_values():
    imgs = np.stack([np.full((1, 2, 2), v) for v in (-1.0, 0.0, 1.0, 0.5)])
    g = image_grid(imgs, nrow=2, pad=0)
    assert g.dtype == np.uint8
    assert g.shape == (4, 4, 1)
    # floor((x + 1) * 127.5 + 0.5): -1 -> 0, 0 -> 127.5 -> 128, 1 -> 255, 0.5 -> 191.25 -> 191.
    expected = np.array(
        [
            [0, 0, 128, 128],
            [0, 0, 128, 128],
            [255, 255, 191, 191],
            [255, 255, 191, 191],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(g[:, :, 0], expected)


def test_image_grid_rgb_layout_and_padding():
    imgs = np.zeros((3, 3, 2, 3))
    imgs[0, 0] = 1.0  # image 0 pure red
    imgs[1, 1] = 1.0  # image 1 green channel up (others 0 -> 128)
    imgs[2] = -1.0  # image 2 black
    g = image_grid(imgs, nrow=2, pad=1, pad_value=1.0)
    # rows = ceil(3/2) = 2: H' = 2*(2+1)+1 = 7, W' = 2*(3+1)+1 = 9.
    assert g.shape == (7, 9, 3)
    np.testing.assert_array_equal(g[1:3, 1:4], np.broadcast_to([255, 128, 128], (2, 3, 3)))
    np.testing.assert_array_equal(g[1:3, 5:8], np.broadcast_to([128, 255, 128], (2, 3, 3)))
    np.testing.assert_array_equal(g[4:6, 1:4], 0)
    # Borders and the empty 4th cell use the pad value (1.0 -> 255).
    assert (g[0] == 255).all() and (g[:, 0] == 255).all() and (g[3] == 255).all()
    np.testing.assert_array_equal(g[4:6, 5:8], 255)


def test_image_grid_clips_and_default_nrow():
    imgs = np.array([5.0, -3.0, 0.999, -0.999]).reshape(4, 1, 1, 1)
    g = image_grid(imgs, pad=0)  # default nrow = ceil(sqrt(4)) = 2
    np.testing.assert_array_equal(g[:, :, 0], [[255, 0], [255, 0]])
    # (N, H, W) is read as single-channel.
    assert image_grid(np.zeros((5, 3, 3)), nrow=5, pad=0).shape == (3, 15, 1)


def test_image_grid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="channels"):
        image_grid(np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match="empty"):
        image_grid(np.zeros((0, 1, 4, 4)))


# ----------------------------------------------------------------------------- PNG writers


def test_image_grid_png_gray_rgb_and_auto_scale(tmp_path):
    rng = np.random.default_rng(0)
    gray = tmp_path / "a" / "gray.png"
    image_grid_png(gray, rng.uniform(-1, 1, (16, 1, 8, 8)), nrow=4)
    w, h = _check_png(gray)
    # Grid is 4*(8+1)+1 = 37 px; auto scale = ceil(256/37) = 7 -> 259 px.
    assert (w, h) == (259, 259)
    with Image.open(gray) as im:
        assert im.mode == "L"
    rgb = tmp_path / "b" / "rgb.png"
    image_grid_png(rgb, rng.uniform(-1, 1, (6, 3, 4, 5)), nrow=3, pad=0, scale=2)
    assert _check_png(rgb) == (30, 16)
    with Image.open(rgb) as im:
        assert im.mode == "RGB"


def test_image_grid_png_pixels_match_grid(tmp_path):
    imgs = np.random.default_rng(1).uniform(-1.2, 1.2, (6, 3, 4, 5))
    out = tmp_path / "rgb.png"
    image_grid_png(out, imgs, nrow=3, pad=0, scale=2)
    with Image.open(out) as im:
        arr = np.asarray(im)
    np.testing.assert_array_equal(arr[::2, ::2], image_grid(imgs, nrow=3, pad=0))
    np.testing.assert_array_equal(arr[1::2, 1::2], image_grid(imgs, nrow=3, pad=0))


def test_scatter_png(tmp_path):
    rng = np.random.default_rng(2)
    out = tmp_path / "nested" / "dir" / "scatter.png"
    scatter_png(
        out,
        rng.standard_normal((7000, 2)),
        title="samples",
        reference=rng.standard_normal((300, 5)),  # D > 2: first two columns are used
        max_points=1000,
    )
    _check_png(out)
    out2 = tmp_path / "s2" / "scatter.png"
    scatter_png(out2, rng.standard_normal((10, 2)), lim=3.0)
    _check_png(out2)


def test_scatter_png_overwrites_atomically(tmp_path):
    out = tmp_path / "s.png"
    out.write_bytes(b"old")
    scatter_png(out, np.zeros((3, 2)))
    _check_png(out)
    with pytest.raises(ValueError, match="shape"):
        scatter_png(tmp_path / "bad.png", np.zeros((3, 1)))
    assert not (tmp_path / "bad.png").exists()
    _check_png(out)


def test_scatter_panels_png(tmp_path):
    rng = np.random.default_rng(3)
    clean = rng.standard_normal((500, 2))
    panels = [("clean", clean), ("noisy", clean + rng.standard_normal((500, 2))), ("E_1", clean)]
    out = tmp_path / "panels.png"
    scatter_panels_png(out, panels, reference=clean)
    w, h = _check_png(out)
    assert w > h  # side by side


def test_image_panels_png(tmp_path):
    rng = np.random.default_rng(4)
    out = tmp_path / "img_panels.png"
    image_panels_png(
        out,
        [
            ("stage 0", rng.uniform(-1, 1, (9, 1, 8, 8))),
            ("stage 1", rng.uniform(-1, 1, (4, 1, 8, 8))),
        ],
    )
    w, h = _check_png(out)
    assert w > h
    out_rgb = tmp_path / "rgb" / "img_panels.png"
    image_panels_png(out_rgb, [("rgb", rng.uniform(-1, 1, (4, 3, 6, 6)))], nrow=2)
    _check_png(out_rgb)


STAGES = [
    {"iteration": 0, "stage": "pretrain", "metrics": {"swd": 0.5, "mmd": 0.02}, "seconds": 3.2},
    {
        "iteration": 1,
        "stage": "update",
        "metrics": {"swd": 0.3, "mmd": 0.004, "denoise_psnr": 18.0},
        "seconds": 4.0,
    },
    {
        "iteration": 2,
        "stage": "update",
        "metrics": {"swd": 0.2, "mmd": 0.0005, "denoise_psnr": 21.5},
        "seconds": 4.1,
    },
]


def test_metrics_png_missing_keys_and_baselines(tmp_path):
    out = tmp_path / "m" / "metrics.png"
    metrics_png(
        out,
        STAGES,
        baselines={"clean-only": {"swd": 0.4, "mmd": 0.01}, "noisy-only": {"swd": 0.9}},
    )
    _check_png(out)


def test_metrics_png_keys_subset_and_edge_cases(tmp_path):
    out = tmp_path / "a.png"
    metrics_png(out, STAGES, keys=["denoise_psnr", "not_there"])
    _check_png(out)
    out2 = tmp_path / "b" / "empty.png"
    metrics_png(out2, [])
    _check_png(out2)
    out3 = tmp_path / "c" / "nan.png"
    metrics_png(out3, [{"iteration": 0, "metrics": {"swd": float("nan"), "mmd": None}}])
    _check_png(out3)


# ----------------------------------------------------------------------------- nearest pairs
