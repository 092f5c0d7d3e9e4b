"""Per-volume scores and their averages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from covidal.volumes.evaluation import score_volume, summarise_scores


def _cube(shape, start, size) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


@pytest.mark.parametrize(
    ("prediction", "reference", "dice", "hd95"),
    [
        (_cube((10, 10, 10), (2, 2, 2), 4), _cube((10, 10, 10), (2, 2, 2), 4), 1.0, 0.0),
        # shifted by 2 voxels along i (2 mm each): half the cube overlaps
        (_cube((10, 10, 10), (2, 2, 4), 4), _cube((10, 10, 10), (2, 2, 2), 4), 0.5, 4.0),
        (np.zeros((10, 10, 10), bool), _cube((10, 10, 10), (2, 2, 2), 4), 0.0, math.nan),
    ],
)
def test_scores_of_known_pairs(prediction, reference, dice, hd95):
    score = score_volume(prediction, reference, (2.0, 1.0, 1.0))
    assert score.dice == pytest.approx(dice)
    assert (math.isnan(score.hd95_mm) and math.isnan(hd95)) or score.hd95_mm == pytest.approx(hd95)
    assert score.reference_ml == pytest.approx(64 * 2.0 / 1000)
    assert score.predicted_ml == pytest.approx(prediction.sum() * 2.0 / 1000)


def test_average_hd95_skips_volumes_where_it_is_undefined():
    summary = summarise_scores(
        {
            "a": {"dice": 1.0, "hd95_mm": 2.0},
            "b": {"dice": 0.0, "hd95_mm": math.nan},
            "c": {"dice": 0.5, "hd95_mm": 4.0},
        }
    )
    assert summary["dice"] == pytest.approx(0.5)
    assert summary["hd95_mm"] == pytest.approx(3.0)
    assert summary["hd95_undefined"] == 1
