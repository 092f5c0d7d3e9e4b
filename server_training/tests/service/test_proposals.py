"""Initial region proposals: lung fractions against a loop reference, and the pick order on a hand-made CT."""

from __future__ import annotations

import numpy as np
import pytest
from service_testing import lung_ct

from covidal.data.volume import Volume
from covidal.regions.grid import RegionGrid
from covidal.service.proposals import JITTER, band_starts, lung_fraction_scores, propose_regions


@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.float32])
@pytest.mark.parametrize(("shape", "grid_k"), [((3, 11, 13), 9), ((2, 40, 17), 16), ((1, 5, 5), 1)])
def test_lung_fractions_match_a_loop_over_boxes_exactly(dtype, shape, grid_k):
    rng = np.random.default_rng(0)
    array = rng.integers(-1100, 100, shape).astype(dtype)  # uneven sides: bands of different sizes
    grid = RegionGrid(grid_k)
    expected = np.array([[np.mean((array[k][box.slices] >= -950) & (array[k][box.slices] <= -300))
                          for box in grid.boxes(shape[1:])] for k in range(shape[0])])
    np.testing.assert_array_equal(lung_fraction_scores(array, grid), expected)


def test_band_starts_are_the_boxes_first_rows_and_columns():
    rows, columns = band_starts(RegionGrid(9), (11, 13))
    assert (rows, columns) == ([0, 4, 7], [0, 4, 9])
    assert all(box.row0 in rows and box.col0 in columns for box in RegionGrid(9).boxes((11, 13)))


def test_lung_range_is_inclusive():
    array = np.array([[[-951, -950], [-300, -299]]])
    assert lung_fraction_scores(array, RegionGrid(1)).tolist() == [[0.5]]


def test_best_region_of_each_slice_first_then_the_rest():
    proposed = propose_regions([(7, Volume(lung_ct()))], RegionGrid(4), count=4)
    assert [(p.volume_id, p.k, p.region) for p in proposed[:2]] == [(7, 0, 3), (7, 1, 1)]
    assert proposed[2].k == 2 and proposed[2].score < JITTER
    assert (proposed[3].k, proposed[3].region) == (0, 0)
    np.testing.assert_allclose([p.score for p in proposed], [1.0, 0.75, 0.0, 0.5], atol=JITTER)
    # Boxes in voxel indices: region 3 of an 8 x 8 slice is i in [4, 8), j in [4, 8); region 1 is i [4, 8), j [0, 4).
    assert (proposed[0].i0, proposed[0].i1, proposed[0].j0, proposed[0].j1) == (4, 8, 4, 8)
    assert (proposed[1].i0, proposed[1].i1, proposed[1].j0, proposed[1].j1) == (4, 8, 0, 4)


def test_proposals_are_deterministic_and_distinct():
    pool = [(1, Volume(lung_ct())), (2, Volume(lung_ct()))]
    first = propose_regions(pool, RegionGrid(4), count=24)
    assert first == propose_regions(pool, RegionGrid(4), count=24)
    assert len({(p.volume_id, p.k, p.region) for p in first}) == 24  # every region of the pool, once
    assert len(propose_regions(pool, RegionGrid(4), count=100)) == 24


@pytest.mark.parametrize(("count", "grid_k", "words"), [(0, 4, "count"), (1, 100, "too small")])
def test_bad_requests_are_value_errors(count, grid_k, words):
    with pytest.raises(ValueError, match=words):
        propose_regions([(1, Volume(lung_ct()))], RegionGrid(grid_k), count=count)
