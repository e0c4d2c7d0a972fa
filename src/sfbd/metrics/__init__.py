"""Evaluation metrics: sliced Wasserstein, RBF MMD^2, PSNR, FID (TF-FID Inception-v3)."""

from sfbd.metrics.distances import (
    bandwidth_median,
    data_range_of,
    mmd_rbf,
    psnr,
    sliced_wasserstein,
)
from sfbd.metrics.fid import (
    extract_features,
    feature_stats,
    fid_from_images,
    frechet_distance,
    load_stats,
    save_stats,
)
from sfbd.metrics.inception import FIDInceptionV3, load_inception

__all__ = [
    "FIDInceptionV3",
    "bandwidth_median",
    "data_range_of",
    "extract_features",
    "feature_stats",
    "fid_from_images",
    "frechet_distance",
    "load_inception",
    "load_stats",
    "mmd_rbf",
    "psnr",
    "save_stats",
    "sliced_wasserstein",
]
