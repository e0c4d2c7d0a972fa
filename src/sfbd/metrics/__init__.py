"""Evaluation metrics: sliced Wasserstein, RBF MMD^2, PSNR."""

from sfbd.metrics.distances import (
    bandwidth_median,
    data_range_of,
    mmd_rbf,
    psnr,
    sliced_wasserstein,
)

__all__ = [
    "bandwidth_median",
    "data_range_of",
    "mmd_rbf",
    "psnr",
    "sliced_wasserstein",
]
