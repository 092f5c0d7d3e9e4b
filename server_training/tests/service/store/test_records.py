"""Validation of the records and specs the store takes, with the messages a clinician would see."""

from __future__ import annotations

import math

import numpy as np
import pytest

from covidal.service.store.errors import Invalid
from covidal.service.store.records import (
    JobProgress,
    RegionBox,
    SuggestionSpec,
    VolumeGeometry,
    check_points,
    check_text,
    format_time,
    to_json,
)

IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)


def test_geometry_is_normalised_to_tuples_of_python_numbers():
    geometry = VolumeGeometry([np.int64(4), 5, 6], [0.5, np.float32(0.75), 2], (0, 0, -1.5), list(IDENTITY))
    assert geometry == VolumeGeometry((4, 5, 6), (0.5, 0.75, 2.0), (0.0, 0.0, -1.5), tuple(map(float, IDENTITY)))
    assert all(type(value) is float for value in geometry.spacing + geometry.direction)


@pytest.mark.parametrize(
    "dims, spacing, origin, direction, message",
    [
        ((4, 5), (1, 1, 1), (0, 0, 0), IDENTITY, r"dims must be three positive integers .*\(4, 5\)"),
        ((4, 0, 6), (1, 1, 1), (0, 0, 0), IDENTITY, "dims must be three positive integers"),
        ((4, 5.0, 6), (1, 1, 1), (0, 0, 0), IDENTITY, "dims must be three positive integers"),
        ((4, 5, 6), (1, 0, 1), (0, 0, 0), IDENTITY, r"spacing must be 3 positive finite numbers, got \(1, 0, 1\)"),
        ((4, 5, 6), (1, 1, math.inf), (0, 0, 0), IDENTITY, "spacing must be 3 positive finite numbers"),
        ((4, 5, 6), (1, 1, 1), (0, "0", 0), IDENTITY, "origin must be 3 finite numbers"),
        ((4, 5, 6), (1, 1, 1), (0, 0, math.nan), IDENTITY, "origin must be 3 finite numbers"),
        ((4, 5, 6), (1, 1, 1), (0, 0, 0), IDENTITY[:6], "direction must be 9 finite numbers"),
        ((4, 5, 6), (1, 1, 1), (0, 0, 0), (True,) * 9, "direction must be 9 finite numbers"),
    ],
)
def test_bad_geometry_is_refused(dims, spacing, origin, direction, message):
    with pytest.raises(Invalid, match=message):
        VolumeGeometry(dims, spacing, origin, direction)


@pytest.mark.parametrize("box", [(0, 0, 0, 1), (3, 2, 0, 1), (0, 1, -1, 1), (0, 1.5, 0, 2), (0, True, 0, 1)])
def test_empty_reversed_negative_or_fractional_boxes_are_refused(box):
    with pytest.raises(Invalid, match=r"0 <= i0 < i1 and 0 <= j0 < j1"):
        RegionBox(*box)


@pytest.mark.parametrize(
    "i, j, inside", [(2, 5, True), (3, 6, True), (4, 5, False), (2, 7, False), (1, 5, False), (2, 4, False)]
)
def test_a_box_is_half_open(i, j, inside):
    assert RegionBox(2, 4, 5, 7).contains(i, j) is inside


@pytest.mark.parametrize(
    "field, values, message",
    [
        ("k", (1, -1, 0, 0.5), "suggestion k must be a non-negative integer, got -1"),
        ("region", (1, 0, 2.0, 0.5), "suggestion region must be a non-negative integer, got 2.0"),
        ("score", (1, 0, 0, math.nan), r"suggestion score must be 1 finite numbers"),
    ],
)
def test_bad_suggestion_specs_are_refused(field, values, message):
    volume_id, k, region, score = values
    with pytest.raises(Invalid, match=message):
        SuggestionSpec(volume_id, k, region, RegionBox(0, 1, 0, 1), score)


def test_a_spec_needs_a_region_box():
    with pytest.raises(Invalid, match="box must be a RegionBox"):
        SuggestionSpec(1, 0, 0, (0, 1, 0, 1), 0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epoch": -1}, "epoch must be an integer >= 0, got -1"),
        ({"epoch": 3, "epochs": 2}, "epochs must be an integer >= 3, got 2"),
        ({"epoch": 1, "loss": math.inf}, "loss must be a finite number, got inf"),
        ({"epoch": 1, "val_dice": 1.5}, r"val_dice must be a finite number in \[0, 1\], got 1.5"),
        ({"epoch": 1, "eta_seconds": -2}, "eta_seconds must be a finite number >= 0, got -2"),
    ],
)
def test_bad_progress_is_refused(kwargs, message):
    with pytest.raises(Invalid, match=message):
        JobProgress(**kwargs)


def test_points_are_normalised_to_integer_triples():
    assert check_points([[1, 2, 3], (np.int32(4), 5, 6)]) == ((1, 2, 3), (4, 5, 6))
    assert check_points([]) == ()


@pytest.mark.parametrize(
    "points, message",
    [
        ("1,2,3", r"points must be a list of \[i, j, k\] voxel indices"),
        ([[1, 2, 3], [1, 2]], r"point #2 must be three integers \[i, j, k\], got \[1, 2\]"),
        ([[1.5, 2, 3]], r"point #1 must be three integers \[i, j, k\], got \[1.5, 2, 3\]"),
        ([[1, True, 3]], "point #1 must be three integers"),
        ([[1, 2, 3], [4, 5, 6], [1, 2, 3]], r"point #3 \[1, 2, 3\] is given twice"),
    ],
)
def test_bad_points_are_refused_naming_the_point(points, message):
    with pytest.raises(Invalid, match=message):
        check_points(points)


@pytest.mark.parametrize("value", ["", "   ", "a\nb", "x" * 101, 7, None])
def test_text_fields_must_be_short_printable_and_not_blank(value):
    with pytest.raises(Invalid, match="annotator must be 1 to 100 printable characters"):
        check_text(value, "annotator", 100)


def test_json_fields_must_be_objects_of_standard_json():
    assert to_json({"b": [1, 2], "a": None}, "settings") == '{"a": null, "b": [1, 2]}'
    for value, message in (
        ([1], "settings must be a JSON object, got list"),
        ({"x": math.nan}, "not valid JSON"),
        ({"x": object()}, "not valid JSON"),
    ):
        with pytest.raises(Invalid, match=message):
            to_json(value, "settings")


def test_times_in_messages_are_iso_utc():
    assert format_time(1_700_000_000.4) == "2023-11-14T22:13:20Z"
    assert format_time(0) == "1970-01-01T00:00:00Z"
