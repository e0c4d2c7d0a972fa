"""Evaluation metrics: sliced Wasserstein, RBF MMD^2, PSNR, FID (TF-FID Inception-v3) and
FD-DINOv2 (DINOv2 ViT-L/14)."""

from sfbd.metrics.dinov2 import DINOv2ViT, load_dinov2
from sfbd.metrics.distances import (
    bandwidth_median,
    data_range_of,
    mmd_rbf,
    psnr,
    sliced_wasserstein,
)
from sfbd.metrics.fid import (
    FEATURE_NETWORKS,
    extract_features,
    feature_stats,
    fid_from_images,
    frechet_distance,
    load_feature_network,
    load_stats,
    save_stats,
)
from sfbd.metrics.inception import FIDInceptionV3, load_inception

__all__ = [
    "FEATURE_NETWORKS",
    "DINOv2ViT",
    "FIDInceptionV3",
    "bandwidth_median",
    "data_range_of",
    "extract_features",
    "feature_stats",
    "fid_from_images",
    "frechet_distance",
    "load_dinov2",
    "load_feature_network",
    "load_inception",
    "load_stats",
    "mmd_rbf",
    "psnr",
    "save_stats",
    "sliced_wasserstein",
]
