"""A decision threshold chosen on validation cases and scored on a test case, with the models a served run trained.

The served point losses balance the classes, so their models call infection far more often than it occurs; the
threshold that corrects it depends on how rare infection is, hence on the kind of image. This measures it for CT
in HU: each model of a project (every finished training job's own file) predicts each case once, restricted to
its filled lungs as the service restricts predictions, and every threshold is scored from those probabilities.
The threshold is chosen by the mean Dice over the validation cases and every model, never on the test case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidal.bench.lungs import dice
from covidal.data.slices import load_volume_slices
from covidal.data.volume import Volume
from covidal.training.checkpoint import load_run
from covidal.training.inference import predict_probabilities
from covidal.volumes.lungs import find_lungs, restrict_to_lungs


@dataclass(frozen=True)
class LabelledCase:
    """A CT in HU and its infection labels ``[K, J, I]`` (bool)."""

    ct: Volume
    labels: np.ndarray


@dataclass(frozen=True)
class ThresholdScore:
    """One model's prediction of one case at one threshold: Dice and predicted mL."""

    model: str
    case: str
    threshold: float
    dice: float
    predicted_ml: float


def lung_restricted_probabilities(model_file: Path, ct: Volume) -> np.ndarray:
    """float32 ``[K, J, I]``: the infection probability of the model in ``model_file``, 0 outside the filled lungs."""
    run = load_run(model_file, torch.device("cpu"))
    probabilities = np.zeros(ct.array.shape, dtype=np.float32)
    records = load_volume_slices(ct, None, "volume", run.config.window)
    for record, probability in predict_probabilities(
        run.model, records, run.config.image_size, torch.device("cpu"), options=run.config.prediction
    ):
        probabilities[record.slice_index] = probability
    return restrict_to_lungs(probabilities, find_lungs(ct))


def threshold_scores(
    models: Mapping[str, Path], cases: Mapping[str, LabelledCase], thresholds: Sequence[float]
) -> list[ThresholdScore]:
    """Every model on every case at every threshold (each model predicts each case once)."""
    scores = []
    for model, path in models.items():
        for name, case in cases.items():
            probabilities = lung_restricted_probabilities(path, case.ct)
            voxel_ml = float(np.prod(case.ct.spacing)) / 1000.0
            for threshold in thresholds:
                predicted = probabilities >= threshold
                score = dice(predicted, case.labels)
                scores.append(ThresholdScore(model, name, threshold, score, int(predicted.sum()) * voxel_ml))
    return scores


def chosen_threshold(scores: Sequence[ThresholdScore], validation: Sequence[str]) -> float:
    """The threshold with the highest mean Dice over the ``validation`` cases and every model (ties: the lower).

    Raises:
        ValueError: no score of a validation case.
    """
    by_threshold: dict[float, list[float]] = {}
    for score in scores:
        if score.case in validation:
            by_threshold.setdefault(score.threshold, []).append(score.dice)
    if not by_threshold:
        raise ValueError(f"no score of the validation cases {list(validation)}")
    return max(sorted(by_threshold), key=lambda threshold: np.mean(by_threshold[threshold]))
