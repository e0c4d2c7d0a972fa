"""PNG figures for SFBD runs: 2-D scatter plots, image grids and metric-vs-iteration curves.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no GUI backend,
no global figure registry, so nothing is ever shown and nothing stays open); image grids are
written with Pillow. Every writer creates missing parent directories, writes to a temporary
file in the destination directory and then renames it over ``path`` with :func:`os.replace`,
so readers never see a half-written PNG.

Image data follow the library convention: float arrays ``(N, C, H, W)`` with values in
``[-1, 1]``, ``C`` in ``{1, 3}``, mapped to bytes by ``floor((clip(x, -1, 1) + 1) * 127.5 + 0.5)``
(round half up: -1 -> 0, 0 -> 128, 0.5 -> 191, 1 -> 255).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from sfbd.io.atomic import atomic_write

__all__ = [
    "image_grid",
    "image_grid_png",
    "image_panels_png",
    "metrics_png",
    "scatter_panels_png",
    "scatter_png",
]

_POINT_COLOR = "tab:blue"
_REF_COLOR = "0.8"
_COPY_COLOR = "tab:red"
_DPI = 110


def save_figure(path: str | os.PathLike[str], fig: Figure) -> None:
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=_DPI))
    finally:
        fig.clear()


# --------------------------------------------------------------------------- scatter plots


def _xy(points: np.ndarray, name: str, max_points: int) -> np.ndarray:
    """``(n, 2)`` float array: first two columns of ``points``, at most ``max_points`` rows.

    Rows beyond ``max_points`` are subsampled without replacement with a fixed seed, so the same
    input always gives the same picture. Only the rows drawn are read, so ``points`` may be a
    memory-mapped array or a lazy sample view (:mod:`sfbd.io.arrays`).
    """
    if not hasattr(points, "shape"):
        points = np.asarray(points)
    shape = tuple(points.shape)
    if len(shape) != 2 or shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (N, 2) (or (N, D>2): first two used), got {shape}"
        )
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    idx = np.arange(shape[0])
    if shape[0] > max_points:
        idx = np.sort(np.random.default_rng(0).choice(shape[0], max_points, replace=False))
    step = 1024  # rows read at a time: only their first two columns are kept
    parts = [np.asarray(points[idx[i : i + step]])[:, :2] for i in range(0, len(idx), step)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 2))


def _auto_lim(arrays: Sequence[np.ndarray]) -> float:
    """Symmetric half-width covering all finite points, with a 5% margin."""
    vals = [np.abs(a[np.isfinite(a).all(axis=1)]) for a in arrays if a.size]
    vals = [v for v in vals if v.size]
    if not vals:
        return 1.0
    m = max(float(v.max()) for v in vals)
    return 1.05 * m if m > 0 else 1.0


def _marker_size(n: int) -> float:
    return float(np.clip(2000.0 / max(n, 1), 0.5, 6.0))


def _draw_scatter(ax: Any, pts: np.ndarray, ref: np.ndarray | None, title: str, lim: float) -> None:
    if ref is not None and ref.size:
        ax.scatter(
            ref[:, 0],
            ref[:, 1],
            s=_marker_size(len(ref)),
            c=_REF_COLOR,
            linewidths=0,
            zorder=1,
            label="reference",
        )
    if pts.size:
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=_marker_size(len(pts)),
            c=_POINT_COLOR,
            linewidths=0,
            alpha=0.7,
            zorder=2,
        )
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)


def scatter_png(
    path: str | os.PathLike[str],
    points: np.ndarray,
    *,
    title: str = "",
    reference: np.ndarray | None = None,
    max_points: int = 5000,
    lim: float | None = None,
) -> None:
    """Write a 2-D scatter plot of ``points`` to ``path`` (PNG).

    Args:
        path: output file; parent dirs are created.
        points: ``(N, 2)`` array (for ``(N, D>2)`` the first two coordinates are used).
        title: axes title.
        reference: optional ``(M, 2)`` array drawn in light grey behind ``points``.
        max_points: at most this many points of each set are drawn (fixed-seed subsample).
        lim: axes span ``[-lim, lim]`` on both axes; default covers all points.
    """
    pts = _xy(points, "points", max_points)
    ref = None if reference is None else _xy(reference, "reference", max_points)
    if lim is None:
        lim = _auto_lim([pts] + ([ref] if ref is not None else []))
    fig = Figure(figsize=(4.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    _draw_scatter(ax, pts, ref, title, float(lim))
    fig.tight_layout()
    save_figure(path, fig)


def scatter_panels_png(
    path: str | os.PathLike[str],
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    reference: np.ndarray | None = None,
    max_points: int = 5000,
    lim: float | None = None,
) -> None:
    """Write several scatter panels side by side with shared, equal axes limits.

    Args:
        path: output file.
        panels: ``[(title, points (N_i, 2)), ...]``, e.g. clean / noisy / denoised or stages.
        reference: optional ``(M, 2)`` array drawn in light grey behind every panel.
        max_points: per-set cap on drawn points (fixed-seed subsample).
        lim: shared axes span ``[-lim, lim]``; default covers all panels and the reference.
    """
    if len(panels) == 0:
        raise ValueError("panels is empty")
    data = [(str(t), _xy(p, f"panel {t!r}", max_points)) for t, p in panels]
    ref = None if reference is None else _xy(reference, "reference", max_points)
    if lim is None:
        lim = _auto_lim([p for _, p in data] + ([ref] if ref is not None else []))
    k = len(data)
    fig = Figure(figsize=(3.2 * k, 3.4))
    axes = fig.subplots(1, k, sharex=True, sharey=True, squeeze=False)[0]
    for ax, (title, pts) in zip(axes, data, strict=True):
        _draw_scatter(ax, pts, ref, title, float(lim))
    fig.tight_layout()
    save_figure(path, fig)


# --------------------------------------------------------------------------- image grids


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.floor((np.clip(x, -1.0, 1.0) + 1.0) * 127.5 + 0.5).astype(np.uint8)


def image_grid(
    images: np.ndarray, *, nrow: int | None = None, pad: int = 1, pad_value: float = 1.0
) -> np.ndarray:
    """Tile images into one ``uint8`` picture.

    Args:
        images: ``(N, C, H, W)`` float array in ``[-1, 1]`` with ``C`` in {1, 3} (an
            ``(N, H, W)`` array is read as ``C = 1``). Values are clipped to ``[-1, 1]``;
            NaN is drawn as -1.
        nrow: images per grid row (default ``ceil(sqrt(N))``); ``ceil(N / nrow)`` rows.
        pad: pixels of border around and between images.
        pad_value: border colour in data units (default 1.0, white).

    Returns:
        ``(H', W', C)`` uint8 array, ``H' = rows * (H + pad) + pad``,
        ``W' = nrow * (W + pad) + pad``, bytes ``floor((x + 1) * 127.5 + 0.5)``. Empty cells of
        the last row are filled with ``pad_value``.
    """
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {arr.shape}")
    n, c, h, w = arr.shape
    if n == 0:
        raise ValueError("images is empty")
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    ncol = math.ceil(math.sqrt(n)) if nrow is None else int(nrow)
    if ncol < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    ncol = min(ncol, n)
    rows = math.ceil(n / ncol)
    arr = np.nan_to_num(arr, nan=-1.0)
    tiles = _to_uint8(arr).transpose(0, 2, 3, 1)  # (N, H, W, C)
    fill = _to_uint8(np.array(pad_value, dtype=np.float64))
    grid = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        y0 = pad + r * (h + pad)
        x0 = pad + q * (w + pad)
        grid[y0 : y0 + h, x0 : x0 + w] = tiles[i]
    return grid


def _auto_scale(width: int, target: int = 256, max_scale: int = 16) -> int:
    """Smallest integer factor making ``width`` at least ``target`` px (1..max_scale)."""
    return int(min(max_scale, max(1, math.ceil(target / max(width, 1)))))


def image_grid_png(
    path: str | os.PathLike[str],
    images: np.ndarray,
    *,
    nrow: int | None = None,
    pad: int = 1,
    scale: int | None = None,
) -> None:
    """Save :func:`image_grid` of ``images`` as a PNG (grayscale for ``C = 1``, else RGB).

    Args:
        path: output file.
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        nrow: images per row (see :func:`image_grid`).
        pad: border pixels (before scaling).
        scale: integer nearest-neighbour upscaling; ``None`` picks the smallest factor making
            the grid at least 256 px wide (at most 16x), e.g. 8x8 digits in a 10-wide grid -> 3x.
    """
    grid = image_grid(images, nrow=nrow, pad=pad)
    s = _auto_scale(grid.shape[1]) if scale is None else int(scale)
    if s < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if s > 1:
        grid = grid.repeat(s, axis=0).repeat(s, axis=1)
    img = Image.fromarray(grid[:, :, 0], mode="L") if grid.shape[2] == 1 else Image.fromarray(grid)
    atomic_write(path, lambda fh: img.save(fh, format="PNG"))


def image_panels_png(
    path: str | os.PathLike[str],
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    nrow: int | None = None,
    pad: int = 1,
    panel_inches: float = 3.0,
) -> None:
    """Write several titled image grids side by side (e.g. stages or methods).

    Args:
        path: output file.
        panels: ``[(title, images (N_i, C, H, W) in [-1, 1]), ...]``.
        nrow: images per grid row in every panel (see :func:`image_grid`).
        pad: border pixels inside each grid.
        panel_inches: width of one panel in inches.
    """
    if len(panels) == 0:
        raise ValueError("panels is empty")
    grids = [(str(t), image_grid(x, nrow=nrow, pad=pad)) for t, x in panels]
    aspect = max(g.shape[0] / g.shape[1] for _, g in grids)
    k = len(grids)
    fig = Figure(figsize=(panel_inches * k, panel_inches * aspect + 0.5))
    axes = fig.subplots(1, k, squeeze=False)[0]
    for ax, (title, g) in zip(axes, grids, strict=True):
        if g.shape[2] == 1:
            ax.imshow(g[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(g, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(path, fig)


# --------------------------------------------------------------------------- nearest pairs


def _finite_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def metrics_png(
    path: str | os.PathLike[str],
    stages: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str] | None = None,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    label: str = "SFBD",
    best: int | None = None,
) -> None:
    """Plot metric-vs-iteration curves, one subplot per metric (the run's curve is ``label``);
    ``best``: the iteration marked on every subplot as the best stage (a dotted line).

    Args:
        path: output file.
        stages: the run's ``metrics.json`` list, each entry
            ``{"iteration": int, "stage": str, "metrics": {name: value, ...}, ...}``. A metric
            missing (or non-finite / non-numeric) at some stage is simply skipped there.
        keys: metrics to plot, in order; default: every key that appears in any stage, in order
            of first appearance. A requested key with no data gets an empty, labelled subplot.
        baselines: ``{method: {metric: value}}``, drawn as dashed horizontal lines with a
            legend on the subplots of the metrics they contain.

    The y axis is logarithmic only when every plotted value (baselines included) is positive
    and ``max / min > 20``. The x axis uses integer ticks.
    """
    baselines = dict(baselines or {})
    series: dict[str, list[tuple[float, float]]] = {}
    order: list[str] = []
    for idx, st in enumerate(stages):
        it = _finite_float(st.get("iteration", idx))
        it = float(idx) if it is None else it
        for name, val in dict(st.get("metrics") or {}).items():
            if name not in series:
                series[name] = []
                order.append(name)
            f = _finite_float(val)
            if f is not None:
                series[name].append((it, f))
    names = list(order) if keys is None else [str(k) for k in keys]

    ncols = max(1, min(3, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if not names:
        axes[0].text(0.5, 0.5, "no metrics", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    colors = ["tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray"]
    for ax, name in zip(axes, names, strict=False):
        pts = sorted(series.get(name, []))
        ys = [v for _, v in pts]
        if pts:
            ax.plot(
                [i for i, _ in pts], ys, marker="o", linestyle="-", color=_POINT_COLOR, label=label
            )
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        for j, (method, vals) in enumerate(baselines.items()):
            b = _finite_float(vals.get(name)) if isinstance(vals, Mapping) else None
            if b is None:
                continue
            ys.append(b)
            ax.axhline(
                b, linestyle="--", linewidth=1.2, color=colors[j % len(colors)], label=str(method)
            )
        if ys and min(ys) > 0 and max(ys) / min(ys) > 20:
            ax.set_yscale("log")
        if best is not None:
            ax.axvline(best, linestyle=":", linewidth=1.2, color="0.3", label=f"best ({best})")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("iteration", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0] and (baselines or best is not None):
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(path, fig)
