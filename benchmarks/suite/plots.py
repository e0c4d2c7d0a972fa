"""What the figures share: the axes style, a run's last samples, the sweeps of sections 3-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sfbd import report
from suite.settings import COLORS


def style(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)


def last_samples(out: Path) -> np.ndarray:
    """The samples a run generated at its last stage."""
    return np.load(sorted((out / "samples").glob("stage-*.npy"))[-1])


def _fractions_panel(a: Axes, fractions: list[dict]) -> None:
    x = [d["clean_fraction"] for d in fractions]
    a.plot(
        x,
        [d["clean-only"] for d in fractions],
        "s--",
        color=COLORS["clean-only"],
        label="clean-only",
    )
    a.plot(x, [d["sfbd"] for d in fractions], "o-", color="tab:blue", label="sfbd")
    a.set_xscale("log")


def _sigmas_panel(b: Axes, sigmas: list[dict]) -> None:
    x = [d["sigma"] for d in sigmas]
    b.plot(
        x, [d["noisy-only"] for d in sigmas], "s--", color=COLORS["noisy-only"], label="noisy-only"
    )
    b.plot(x, [d["sfbd"] for d in sigmas], "o-", color="tab:blue", label="sfbd (2% clean)")


def sweeps_figure(path: Path, fractions: list[dict] | None, sigmas: list[dict] | None) -> None:
    """Sections 3 (clean fraction) and 4 (τ) side by side; one panel if only one of them ran."""
    panels = [p for p in (fractions, sigmas) if p is not None]
    fig = Figure(figsize=(4.0 * len(panels), 3.2))
    axes = list(fig.subplots(1, len(panels), squeeze=False)[0])
    if fractions is not None:
        a = axes.pop(0)
        _fractions_panel(a, fractions)
        style(a, "ring8: clean fraction (τ = 0.35)", "clean fraction", "final swd")
        a.legend(fontsize=7)
    if sigmas is not None:
        b = axes.pop(0)
        _sigmas_panel(b, sigmas)
        style(b, "ring8: noise level", "τ", "final swd")
        b.legend(fontsize=7)
    fig.tight_layout()
    report.save_figure(path, fig)
