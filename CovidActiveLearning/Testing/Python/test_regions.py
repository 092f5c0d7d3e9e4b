"""Tests of CovidActiveLearningLib/regions.py."""

import pytest

from CovidActiveLearningLib.regions import SuggestedRegion, VoxelBox

SUGGESTION = {
    "id": 7,
    "cycle_id": 2,
    "volume_id": 3,
    "k": 4,
    "region": 9,
    "box": {"i0": 8, "i1": 16, "j0": 0, "j1": 6},
    "score": 0.8125,
    "rank": 1,
}


def test_from_json_reads_the_backend_suggestion():
    region = SuggestedRegion.from_json(SUGGESTION)
    assert region == SuggestedRegion(7, 2, 3, VoxelBox(4, 8, 16, 0, 6), 0.8125, 1)
    assert region.label() == "Region 1 (0.812)"


@pytest.mark.parametrize(
    "voxel, inside",
    [
        ((8, 0, 4), True),
        ((15, 5, 4), True),
        ((16, 5, 4), False),
        ((8, 6, 4), False),
        ((7, 0, 4), False),
        ((10, 3, 3), False),
    ],
)
def test_box_contains_is_half_open(voxel, inside):
    assert VoxelBox(4, 8, 16, 0, 6).contains(voxel) is inside


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 0, "i0": 3, "i1": 3, "j0": 0, "j1": 2},
        {"k": -1, "i0": 0, "i1": 1, "j0": 0, "j1": 1},
        {"k": 0, "i0": 0, "i1": 2, "j0": 5, "j1": 1},
    ],
)
def test_empty_or_negative_boxes_are_refused(bad):
    with pytest.raises(ValueError, match="voxel box"):
        VoxelBox(**bad)


def test_malformed_suggestion_is_a_value_error():
    with pytest.raises(ValueError, match="malformed suggestion"):
        SuggestedRegion.from_json({key: value for key, value in SUGGESTION.items() if key != "box"})
