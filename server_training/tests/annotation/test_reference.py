import numpy as np
import pytest

from covidal.annotation.reference import ReferenceMasks
from covidal.regions.grid import Box, RegionGrid, RegionId

KEY = ("ct1", "ct1:4")


def reference() -> ReferenceMasks:
    mask = np.zeros((10, 7), dtype=np.uint8)
    mask[1, 1] = mask[8, 6] = 255
    return ReferenceMasks({KEY: mask}, RegionGrid(4))


@pytest.mark.parametrize(
    ("region", "box", "infected"),
    [(0, Box(0, 5, 0, 4), [(1, 1)]), (3, Box(5, 10, 4, 7), [(3, 2)]), (1, Box(0, 5, 4, 7), [])],
)
def test_region_box_and_binary_mask(region, box, infected):
    found_box, inside = reference().in_region(RegionId(*KEY, region))
    assert found_box == box and inside.dtype == bool and inside.shape == (box.row1 - box.row0, box.col1 - box.col0)
    assert list(zip(*np.nonzero(inside))) == infected


def test_whole_slice_and_shapes():
    ref = reference()
    assert ref.shapes == {KEY: (10, 7)}
    assert list(zip(*np.nonzero(ref.whole(KEY)))) == [(1, 1), (8, 6)]


def test_unknown_slice_or_region_and_bad_masks():
    ref = reference()
    with pytest.raises(ValueError, match="no reference mask"):
        ref.whole(("x", "y"))
    with pytest.raises(ValueError, match="no reference mask"):
        ref.in_region(RegionId("x", "y", 0))
    with pytest.raises(ValueError, match="out of range"):
        ref.in_region(RegionId(*KEY, 4))
    with pytest.raises(ValueError, match="2-D"):
        ReferenceMasks({KEY: np.zeros((2, 8, 8))}, RegionGrid(4))
    with pytest.raises(ValueError, match="too small"):
        ReferenceMasks({KEY: np.zeros((1, 8))}, RegionGrid(4))
