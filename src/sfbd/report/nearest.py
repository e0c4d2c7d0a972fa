"""Memorisation pictures: generated samples beside their nearest clean sample.

What :func:`sfbd.metrics.memorisation.nearest_pairs` returns, drawn so that copies stand out
(a copy: distance to the nearest clean sample under 1/3 of that to the second nearest).
"""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.figure import Figure

from sfbd.report.figures import (
    _COPY_COLOR,
    _auto_lim,
    _draw_scatter,
    _xy,
    image_grid,
    save_figure,
)

_COPY_RGB = (1.0, -1.0, -1.0)  # frame of a pair that counts as a copy: red (data units)
_PAIR_RGB = (0.5, 0.5, 0.5)  # frame of any other pair: light grey


def _pair_tiles(
    samples: np.ndarray, nearest: np.ndarray, copies: np.ndarray, border: int = 1
) -> np.ndarray:
    """``(n, 3, H + 2b, 2W + 3b)`` RGB tiles in ``[-1, 1]``: each sample left of its nearest
    clean sample, both framed (and split) by ``b = border`` pixels of red (a copy) or grey."""
    n, c, h, w = samples.shape
    s3, n3 = (np.repeat(a, 3, axis=1) if c == 1 else a for a in (samples, nearest))
    b = border
    frame = np.where(copies[:, None], _COPY_RGB, _PAIR_RGB)  # (n, 3)
    tiles = np.broadcast_to(frame[:, :, None, None], (n, 3, h + 2 * b, 2 * w + 3 * b)).copy()
    tiles[:, :, b : b + h, b : b + w] = s3
    tiles[:, :, b : b + h, 2 * b + w : 2 * b + 2 * w] = n3
    return tiles


def nearest_png(
    path: str | os.PathLike[str],
    samples: np.ndarray,
    nearest: np.ndarray,
    ratios: np.ndarray,
    *,
    threshold: float = 1.0 / 3.0,
    title: str = "",
    nrow: int | None = None,
    reference: np.ndarray | None = None,
    panel_inches: float = 6.0,
) -> None:
    """Draw generated samples beside their nearest clean sample, marking the copies.

    A pair is a copy when ``ratios < threshold``, ``ratios = d_1 / d_2`` the distance to the
    nearest clean sample over that to the second nearest (what
    :func:`sfbd.metrics.memorisation.nearest_pairs` returns). The title counts the copies.

    * Images ``(n, C, H, W)`` in ``[-1, 1]`` (``C`` in {1, 3}; ``(n, H, W)`` is read as
      ``C = 1``): a grid of pairs, generated left and nearest clean right, framed in red for a
      copy and grey otherwise.
    * Vectors ``(n, D)``, ``D >= 2`` (the first two coordinates drawn): generated points, their
      nearest clean points (crosses) and a segment joining each pair; a copy's segment is red
      and its clean point ringed in red.

    Args:
        path: output file; parent dirs are created.
        samples: generated samples, ``(n, *)``.
        nearest: each one's nearest clean sample, the same shape.
        ratios: ``(n,)`` ``d_1 / d_2`` per pair.
        threshold: ratio below which a pair is a copy.
        title: first title line (e.g. the stage).
        nrow: pairs per grid row (images; default about ``sqrt(n / 2)``, a squarish grid).
        reference: vectors only: the clean set ``(M, D)``, drawn in light grey behind.
        panel_inches: figure width in inches.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(nearest, dtype=np.float64)
    r = np.asarray(ratios, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"samples have shape {x.shape} but nearest has {y.shape}")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError("samples is empty")
    if len(r) != len(x):
        raise ValueError(f"{len(r)} ratios for {len(x)} pairs")
    copies = r < float(threshold)
    image = x.ndim in (3, 4)
    pairs = "generated | nearest clean" if image else "generated (dots) - nearest clean (x)"
    head = f"{pairs}; red: copy (d1 < {float(threshold):.3g} d2), {int(copies.sum())} of {len(x)}"
    head = f"{title}\n{head}" if title else head
    if image:
        if x.ndim == 3:
            x, y = x[:, None], y[:, None]
        if x.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {x.shape[1]}")
        ncol = max(1, math.ceil(math.sqrt(len(x) / 2))) if nrow is None else int(nrow)
        grid = image_grid(_pair_tiles(x, y, copies), nrow=ncol, pad=2)
        aspect = grid.shape[0] / grid.shape[1]
        fig = Figure(figsize=(panel_inches, panel_inches * aspect + 0.6))
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(grid, interpolation="nearest")
        ax.set_axis_off()
    else:
        pts = _xy(x, "samples", len(x))
        nn = _xy(y, "nearest", len(y))
        ref = None if reference is None else _xy(reference, "reference", 5000)
        lim = _auto_lim([pts, nn] + ([ref] if ref is not None else []))
        fig = Figure(figsize=(panel_inches, panel_inches))
        ax = fig.add_subplot(1, 1, 1)
        _draw_scatter(ax, pts, ref, "", lim)
        for sel, color in ((~copies, "0.4"), (copies, _COPY_COLOR)):
            if sel.any():
                ax.plot(
                    np.stack([pts[sel, 0], nn[sel, 0]]),
                    np.stack([pts[sel, 1], nn[sel, 1]]),
                    color=color,
                    linewidth=0.8,
                    zorder=3,
                )
        ax.scatter(nn[:, 0], nn[:, 1], s=12, marker="x", c="k", linewidths=0.8, zorder=4)
        if copies.any():  # a ring around each copied clean point: a copy's segment is tiny
            ax.scatter(
                nn[copies, 0],
                nn[copies, 1],
                s=70,
                facecolors="none",
                edgecolors=_COPY_COLOR,
                linewidths=1.2,
                zorder=5,
            )
    ax.set_title(head, fontsize=9)
    fig.tight_layout()
    save_figure(path, fig)


# --------------------------------------------------------------------------- metric curves
