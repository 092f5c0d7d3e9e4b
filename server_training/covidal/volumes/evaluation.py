"""Whole-volume evaluation of a 3D model: Dice and HD95 in mm on each volume's own grid."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from covidal.data.io import read_label_volume
from covidal.metrics.surface import compute_hd95, compute_volume_dice
from covidal.volumes.cases import CaseSource
from covidal.volumes.preprocess import PreparedCase
from covidal.volumes.sliding_window import SlidingWindowConfig, predict_on_source_grid


@dataclass(frozen=True)
class VolumeScore:
    """Scores of one volume, computed on the volume's own (native) grid.

    ``hd95_mm`` is NaN when exactly one of prediction and reference is empty (undefined).
    """

    dice: float
    hd95_mm: float
    predicted_ml: float
    reference_ml: float


def score_volume(prediction: np.ndarray, reference: np.ndarray, spacing_ijk: tuple[float, float, float]) -> VolumeScore:
    """Dice, HD95 and both volumes in mL of two binary ``[K, J, I]`` masks on the same grid."""
    voxel_ml = float(np.prod(spacing_ijk)) / 1000.0
    prediction, reference = prediction.astype(bool), reference.astype(bool)
    return VolumeScore(
        dice=compute_volume_dice(prediction, reference),
        hd95_mm=compute_hd95(prediction, reference, spacing_ijk),
        predicted_ml=float(prediction.sum()) * voxel_ml,
        reference_ml=float(reference.sum()) * voxel_ml,
    )


def evaluate_cases(
    model: nn.Module,
    cases: Sequence[tuple[CaseSource, PreparedCase]],
    sliding_window: SlidingWindowConfig,
    device: torch.device,
    amp: bool = False,
    on_volume: Callable[[str, VolumeScore], None] | None = None,
) -> dict:
    """Predict every case and score it against its label on the native grid.

    Returns:
        ``{"dice": mean, "hd95_mm": mean over volumes where it is defined,
        "hd95_undefined": count, "volumes": {name: {"dice", "hd95_mm", "predicted_ml", "reference_ml"}}}``.

    Raises:
        CovidalError: a case has no label, or its label does not match the image (from the reader).
    """
    volumes: dict[str, dict] = {}
    for source, prepared in cases:
        if source.label is None:
            raise ValueError(f"case {source.name} has no label to evaluate against")
        reference = read_label_volume(source.label, prepared.source).array > 0
        predicted, _ = predict_on_source_grid(model, prepared, sliding_window, device, amp)
        score = score_volume(predicted.array > 0, reference, prepared.source.spacing)
        volumes[source.name] = asdict(score)
        if on_volume is not None:
            on_volume(source.name, score)
    return summarise_scores(volumes)


def summarise_scores(volumes: dict[str, dict]) -> dict:
    """Averages over per-volume scores (see :func:`evaluate_cases`)."""
    dice = [v["dice"] for v in volumes.values()]
    hd95 = [v["hd95_mm"] for v in volumes.values() if math.isfinite(v["hd95_mm"])]
    return {
        "dice": float(np.mean(dice)) if dice else math.nan,
        "hd95_mm": float(np.mean(hd95)) if hd95 else math.nan,
        "hd95_undefined": len(volumes) - len(hd95),
        "volumes": volumes,
    }
