"""PNG figures for SFBD runs (:mod:`sfbd.report.figures`: scatter plots, image grids, metric
curves; :mod:`sfbd.report.nearest`: generated samples beside their nearest clean sample)."""

from sfbd.report.figures import (
    image_grid,
    image_grid_png,
    image_panels_png,
    metrics_png,
    save_figure,
    scatter_panels_png,
    scatter_png,
)
from sfbd.report.nearest import nearest_png

__all__ = [
    "image_grid",
    "image_grid_png",
    "image_panels_png",
    "metrics_png",
    "nearest_png",
    "save_figure",
    "scatter_panels_png",
    "scatter_png",
]
