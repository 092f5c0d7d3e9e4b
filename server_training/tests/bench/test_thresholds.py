"""The threshold benchmark: every threshold scored from one prediction per model and case, restricted to the lungs,
and the threshold chosen on the validation cases only."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "volumes"))  # lung_phantoms (--import-mode=importlib)
from lung_phantoms import chest_phantom

from covidal.bench.thresholds import (
    LabelledCase,
    ThresholdScore,
    chosen_threshold,
    lung_restricted_probabilities,
    threshold_scores,
)
from covidal.data.window import ImageKind
from covidal.losses.registry import LossConfig
from covidal.models.slices.build import ModelConfig, build_model
from covidal.training.checkpoint import save_checkpoint
from covidal.training.train_config import TrainConfig
from covidal.volumes.lungs import find_lungs

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def untrained_model(path: Path) -> Path:
    config = TrainConfig(loss=LossConfig("point"), model=ModelConfig(width=8), image_size=32, device="cpu")
    torch.manual_seed(0)
    save_checkpoint(path, build_model(config.model), config, step=1, val_dice=None, image_kind=ImageKind.HU)
    return path


def test_scores_fall_with_the_threshold_and_nothing_outside_the_lungs_counts(tmp_path):
    ct, lungs = chest_phantom()
    lesion = np.zeros_like(lungs)
    lesion[14:22, 26:38, 16:28] = True
    lesion &= lungs
    model = untrained_model(tmp_path / "model.pt")
    probabilities = lung_restricted_probabilities(model, ct)
    assert probabilities.shape == ct.array.shape
    assert not probabilities[find_lungs(ct).filled == 0].any() and probabilities.max() > 0
    thresholds = [0.2, 0.4, 0.5, 0.6, 0.8]
    scores = threshold_scores({"1": model}, {"phantom": LabelledCase(ct, lesion)}, thresholds)
    assert [score.threshold for score in scores] == thresholds
    predicted = [score.predicted_ml for score in scores]
    assert predicted == sorted(predicted, reverse=True)
    voxel_ml = float(np.prod(ct.spacing)) / 1000
    for score in scores:  # every score from the one prediction
        called = probabilities >= score.threshold
        assert score.predicted_ml == pytest.approx(called.sum() * voxel_ml)
        assert score.dice == pytest.approx(2 * (called & lesion).sum() / (called.sum() + lesion.sum()))


def score(case: str, threshold: float, dice: float, model: str = "1") -> ThresholdScore:
    return ThresholdScore(model, case, threshold, dice, 0.0)


def test_the_threshold_is_chosen_on_the_validation_cases_alone():
    scores = [
        score("val", 0.5, 0.2),
        score("val", 0.9, 0.4),
        score("val", 0.5, 0.3, model="2"),
        score("val", 0.9, 0.3, model="2"),  # mean at 0.9: 0.35 > 0.25
        score("test", 0.5, 0.9),  # the test case prefers 0.5, and must not be heard
        score("test", 0.9, 0.1),
    ]
    assert chosen_threshold(scores, ["val"]) == 0.9
    assert chosen_threshold([score("val", 0.7, 0.3), score("val", 0.6, 0.3)], ["val"]) == 0.6  # a tie: the lower
    with pytest.raises(ValueError, match="no score of the validation cases"):
        chosen_threshold(scores, ["other"])
