import math

import numpy as np
import pytest

from covidal.annotation.effort import ClickEffort, EffortModel, OutlineEffort, PolygonEffort, polygon_vertices
from covidal.annotation.state import Answer, RegionLabel
from covidal.regions.grid import RegionGrid, RegionId

KEY = ("12", "12")


def _label(index, *points):
    answer = Answer.INFECTION if points else Answer.BACKGROUND
    return RegionLabel(RegionId(*KEY, index), answer, points)


# --- clicks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "seconds"),
    [
        (_label(0), 3.0),
        (_label(1, (0, 5)), 3.0),
        (_label(2, (6, 0), (7, 1)), 6.0),
        (_label(3, (5, 5), (6, 6), (7, 7)), 9.0),
    ],
)
def test_click_effort_per_answer(label, seconds):
    assert ClickEffort().seconds(label) == seconds


def test_click_effort_sums_and_scales():
    labels = [_label(0), _label(1, (0, 5)), _label(2, (6, 0), (7, 1))]
    assert ClickEffort().total_seconds(labels) == 12.0
    assert ClickEffort(seconds_per_answer=2.5).total_seconds(labels) == 10.0
    assert ClickEffort().total_seconds([]) == 0.0
    assert isinstance(ClickEffort(), EffortModel)


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan, math.inf, True, "3"])
def test_click_effort_rejects_bad_seconds(seconds):
    with pytest.raises(ValueError, match="seconds_per_answer"):
        ClickEffort(seconds)


# --- polygons --------------------------------------------------------------------


def _slice(*lesions: tuple[slice, slice], shape=(16, 16)) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for lesion in lesions:
        mask[lesion] = 1
    return mask


@pytest.mark.parametrize(
    ("mask", "vertices"),
    [
        (_slice(), 0),
        (_slice(np.s_[2:6, 2:6]), 4),  # square: 4 corners
        (_slice(np.s_[2:4, 1:7]), 4),  # rectangle
        (_slice(np.s_[3:4, 3:4]), 3),  # 1-pixel lesion: a polygon has at least 3 vertices
        (_slice(np.s_[3:4, 1:9]), 3),  # 1-pixel-thick line
        (_slice(np.s_[1:4, 1:4], np.s_[8:11, 8:11]), 8),  # two components sum
        (_slice(np.s_[2:8, 2:8]) - _slice(np.s_[2:5, 2:5]), 6),  # L shape: 6 corners
        (_slice(np.s_[2:8, 2:8]) - _slice(np.s_[4:6, 4:6]), 4),  # a hole is not outlined
        (_slice(np.s_[2:3, 2:3], np.s_[3:4, 3:4]), 3),  # touching at a corner: one 8-connected component
        (np.tril(np.ones((12, 12), dtype=np.uint8)), 3),  # staircase simplified to a triangle
    ],
)
def test_polygon_vertices(mask, vertices):
    assert polygon_vertices(mask != 0) == vertices


def test_zero_tolerance_keeps_every_boundary_edge():
    # A 4x4 square's outline crosses 16 pixel edges.
    assert polygon_vertices(_slice(np.s_[2:6, 2:6]) != 0, tolerance=0.0) == 16


def test_region_slice_and_pool_seconds():
    # 16x16, K=4: region 0 rows/cols 0-7, region 1 rows 0-7 cols 8-15, regions 2 and 3 below.
    masks = {
        KEY: _slice(np.s_[1:5, 1:5], np.s_[6:7, 6:7], np.s_[10:14, 6:12]),
        ("ct1", "ct1:2"): _slice(),
    }
    effort = PolygonEffort(masks, RegionGrid(4))
    region = [RegionId(*KEY, index) for index in range(4)]
    assert effort.region_seconds(region[0]) == 3.0 * (4 + 3)  # square + 1-pixel lesion
    assert effort.region_seconds(region[1]) == 0.0
    # The 4x6 lesion is cut by the column edge at 8 into two rectangles.
    assert effort.region_seconds(region[2]) == 12.0
    assert effort.region_seconds(region[3]) == 12.0
    assert effort.slice_seconds(KEY) == 3.0 * (4 + 3 + 4)  # whole lesions, not cut
    assert effort.slice_seconds(("ct1", "ct1:2")) == 0.0
    assert effort.pool_seconds([KEY, ("ct1", "ct1:2")]) == 33.0
    assert effort.seconds(_label(0)) == effort.region_seconds(region[0])
    assert effort.total_seconds([_label(0), _label(2, (10, 6))]) == 33.0
    assert PolygonEffort(masks, RegionGrid(4), seconds_per_vertex=1.5).slice_seconds(KEY) == 16.5


def test_polygon_effort_unknown_slice_or_region():
    effort = PolygonEffort({KEY: _slice()}, RegionGrid(4))
    with pytest.raises(ValueError, match="no reference mask"):
        effort.region_seconds(RegionId("x", "y", 0))
    with pytest.raises(ValueError, match="no reference mask"):
        effort.slice_seconds(("x", "y"))
    with pytest.raises(ValueError, match="out of range"):
        effort.region_seconds(RegionId(*KEY, 4))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seconds_per_vertex": 0}, "seconds_per_vertex"),
        ({"seconds_per_vertex": -3.0}, "seconds_per_vertex"),
        ({"seconds_per_vertex": math.nan}, "seconds_per_vertex"),
        ({"tolerance": -0.5}, "tolerance"),
        ({"tolerance": math.nan}, "tolerance"),
        ({"tolerance": math.inf}, "tolerance"),
        ({"tolerance": "1"}, "tolerance"),
    ],
)
def test_polygon_effort_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        PolygonEffort({KEY: _slice()}, RegionGrid(4), **options)


@pytest.mark.parametrize("mask", [np.zeros((2, 16, 16)), np.zeros((1, 16))])
def test_polygon_effort_rejects_bad_masks(mask):
    with pytest.raises(ValueError):
        PolygonEffort({KEY: mask}, RegionGrid(4))


def test_outline_effort_prices_vertices_or_one_tag():
    """The mask protocol's price: a region's polygon vertices x 3 s, or 3 s for a region without infection."""
    mask = np.zeros((8, 8), np.uint8)
    mask[4:7, 4:7] = 1  # a square in region 3 of a 2 x 2 grid: 4 vertices
    key, grid = ("c", "s"), RegionGrid(4)
    effort = OutlineEffort(PolygonEffort({key: mask}, grid))
    infected = RegionLabel(RegionId(*key, 3), Answer.INFECTION, ((4, 4),), outlined=True)
    assert effort.seconds(infected) == 12.0
    assert effort.seconds(RegionLabel(RegionId(*key, 0), Answer.BACKGROUND)) == 3.0
    with pytest.raises(ValueError, match="seconds_per_tag"):
        OutlineEffort(PolygonEffort({key: mask}, grid), seconds_per_tag=0)
