"""Evaluation: per-patient segmentation metrics and their aggregation over patients."""

from __future__ import annotations

from npcseg.evaluation.metrics import (
    SegmentationMetrics,
    aggregate,
    average_symmetric_surface_distance,
    compute_metrics,
    conformity_coefficient,
    dice,
    hausdorff_distance,
    hausdorff_distance_95,
    precision,
    sensitivity,
    slice_dice,
    surface_dice,
    surface_distances,
    volume_ml,
)

__all__ = [
    "SegmentationMetrics",
    "aggregate",
    "average_symmetric_surface_distance",
    "compute_metrics",
    "conformity_coefficient",
    "dice",
    "hausdorff_distance",
    "hausdorff_distance_95",
    "precision",
    "sensitivity",
    "slice_dice",
    "surface_dice",
    "surface_distances",
    "volume_ml",
]
