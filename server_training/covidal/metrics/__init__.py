"""Evaluation metrics: micro-averaged segmentation scores and object counting (MAE, GAME)."""

from covidal.metrics.counting import (
    CountingMetric,
    compute_game,
    count_objects,
    grid_counts,
    object_centroids,
)
from covidal.metrics.segmentation import (
    ConfusionCounts,
    SegmentationMetric,
    compute_dice,
    compute_iou,
    compute_ppv,
    compute_sensitivity,
    compute_specificity,
    confusion_counts,
)

__all__ = [
    "ConfusionCounts",
    "CountingMetric",
    "SegmentationMetric",
    "compute_dice",
    "compute_game",
    "compute_iou",
    "compute_ppv",
    "compute_sensitivity",
    "compute_specificity",
    "confusion_counts",
    "count_objects",
    "grid_counts",
    "object_centroids",
]
