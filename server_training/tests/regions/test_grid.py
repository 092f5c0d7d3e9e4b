import numpy as np
import pytest

from covidal.data.resizing import GridMapping, resize_mask
from covidal.regions.grid import Box, RegionGrid, RegionId

AWKWARD = [((7, 5), 4), ((13, 17), 9), ((512, 512), 64), ((100, 351), 64), ((8, 8), 64)]


def _coverage(boxes: list[Box], shape: tuple[int, int]) -> np.ndarray:
    """How many boxes cover each pixel: int ``[H, W]``."""
    counts = np.zeros(shape, dtype=np.int64)
    for box in boxes:
        counts[box.slices] += 1
    return counts


def _boxes_match_labels(boxes: list[Box], labels: np.ndarray) -> None:
    for index, box in enumerate(boxes):
        assert np.all(labels[box.slices] == index)
        assert np.count_nonzero(labels == index) == (box.row1 - box.row0) * (box.col1 - box.col0)


@pytest.mark.parametrize(("shape", "regions"), AWKWARD)
def test_native_boxes_tile_exactly_once(shape, regions):
    grid = RegionGrid(regions)
    boxes = grid.boxes(shape)
    assert len(boxes) == regions
    assert np.all(_coverage(boxes, shape) == 1)
    assert all(box.row1 > box.row0 and box.col1 > box.col0 for box in boxes)
    labels = grid.label_map(shape)
    assert labels.dtype == np.int64 and labels.shape == shape
    assert np.array_equal(np.bincount(labels.ravel(), minlength=regions) > 0, np.ones(regions, bool))
    _boxes_match_labels(boxes, labels)


@pytest.mark.parametrize(
    ("shape", "regions", "expected"),
    [
        # linspace(0, 7, 3) = 0, 3.5, 7 -> 0, 4, 7; linspace(0, 5, 3) = 0, 2.5, 5 -> 0, 3, 5 (half up).
        ((7, 5), 4, [Box(0, 4, 0, 3), Box(0, 4, 3, 5), Box(4, 7, 0, 3), Box(4, 7, 3, 5)]),
        ((3, 3), 9, [Box(r, r + 1, c, c + 1) for r in range(3) for c in range(3)]),
        ((2, 6), 1, [Box(0, 2, 0, 6)]),
    ],
)
def test_native_boxes_hand_computed(shape, regions, expected):
    assert RegionGrid(regions).boxes(shape) == expected


@pytest.mark.parametrize(("shape", "regions"), AWKWARD)
def test_region_of_agrees_with_label_map(shape, regions):
    grid = RegionGrid(regions)
    labels = grid.label_map(shape)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, shape[0], 50).tolist() + [0, shape[0] - 1]
    cols = rng.integers(0, shape[1], 50).tolist() + [0, shape[1] - 1]
    for row, col in zip(rows, cols, strict=True):
        assert grid.region_of(shape, row, col) == labels[row, col]


def test_region_of_corners_and_outside():
    grid = RegionGrid(64)
    assert grid.region_of((512, 512), 0, 0) == 0
    assert grid.region_of((512, 512), 0, 511) == 7
    assert grid.region_of((512, 512), 511, 0) == 56
    assert grid.region_of((512, 512), 64, 63) == 8
    for row, col in [(-1, 0), (0, -1), (512, 0), (0, 512)]:
        with pytest.raises(ValueError, match="outside"):
            grid.region_of((512, 512), row, col)


@pytest.mark.parametrize(("shape", "regions"), AWKWARD)
@pytest.mark.parametrize("train_size", [8, 32, 96])
def test_training_boxes_tile_and_follow_grid_mapping(shape, regions, train_size):
    grid = RegionGrid(regions)
    boxes = grid.boxes_on_training_grid(shape, train_size)
    assert len(boxes) == regions
    assert np.all(_coverage(boxes, (train_size, train_size)) == 1)
    # The training label map, by definition: each training pixel takes its native pixel's region.
    train_labels = resize_mask(grid.label_map(shape), train_size)
    _boxes_match_labels(boxes, train_labels)


def test_training_boxes_pointwise_against_grid_mapping():
    grid, shape, size = RegionGrid(9), (13, 17), 10
    mapping = GridMapping(shape, size)
    boxes = grid.boxes_on_training_grid(shape, size)
    for index, box in enumerate(boxes):
        for row in range(box.row0, box.row1):
            for col in range(box.col0, box.col1):
                assert grid.region_of(shape, *mapping.train_to_native(row, col)) == index


def test_training_boxes_hand_computed():
    # Native (4, 4), K=4: bands [0, 2), [2, 4). S=8 doubles each pixel.
    assert RegionGrid(4).boxes_on_training_grid((4, 4), 8) == [
        Box(0, 4, 0, 4),
        Box(0, 4, 4, 8),
        Box(4, 8, 0, 4),
        Box(4, 8, 4, 8),
    ]
    # Native rows 100, side 8: edges 0, 13, 25, 38, 50, 63, 75, 88, 100. S=8: training row t maps to
    # native floor(12.5 t + 6.25) = 6, 18, 31, 43, 56, 68, 81, 93, one per band.
    assert [(box.row0, box.row1) for box in RegionGrid(64).boxes_on_training_grid((100, 8), 8)[::8]] == [
        (t, t + 1) for t in range(8)
    ]


def test_training_box_empty_for_thin_band():
    # Native width 20 cut in 16 bands of 1-2 pixels; band 0 is native col 0 alone. S=8: training col c
    # maps to native floor(2.5 c + 1.25) = 1, 3, 6, ..., so band 0 (and others) get no training column.
    grid = RegionGrid(256)
    boxes = grid.boxes_on_training_grid((20, 20), 8)
    widths = [box.col1 - box.col0 for box in boxes[:16]]
    assert sum(widths) == 8 and widths[0] == 0 and widths.count(0) == 8
    assert np.all(_coverage(boxes, (8, 8)) == 1)


@pytest.mark.parametrize("regions", [0, 2, 63, -4, 8.0, True])
def test_bad_region_count_raises(regions):
    with pytest.raises(ValueError, match="perfect square"):
        RegionGrid(regions)


def test_side_and_default():
    assert RegionGrid().side == 8 and RegionGrid().regions == 64
    assert RegionGrid(1).side == 1 and RegionGrid(9).side == 3


@pytest.mark.parametrize("shape", [(7, 8), (8, 7), (0, 100), (1, 1)])
def test_too_small_shape_raises(shape):
    grid = RegionGrid(64)
    for call in (grid.boxes, grid.label_map, lambda s: grid.boxes_on_training_grid(s, 32)):
        with pytest.raises(ValueError, match="too small"):
            call(shape)
    with pytest.raises(ValueError, match="too small"):
        grid.region_of(shape, 0, 0)


def test_bad_train_size_raises():
    with pytest.raises(ValueError, match="training grid size"):
        RegionGrid(4).boxes_on_training_grid((16, 16), 4)


def test_region_id_ordering_and_hashing():
    ids = [RegionId("b", "1", 0), RegionId("a", "2", 5), RegionId("a", "10", 3), RegionId("a", "2", 1)]
    # Orders by case, then slice (as strings: "10" < "2"), then region.
    assert sorted(ids) == [RegionId("a", "10", 3), RegionId("a", "2", 1), RegionId("a", "2", 5), RegionId("b", "1", 0)]
    assert len({RegionId("a", "2", 1), RegionId("a", "2", 1), RegionId("a", "2", 2)}) == 2
    assert {RegionId("c", "case:40", 7): 1}[RegionId("c", "case:40", 7)] == 1
    with pytest.raises(AttributeError):
        ids[0].region = 3  # type: ignore[misc]


@pytest.mark.parametrize("region", [-1, 1.5, True])
def test_region_id_bad_region_raises(region):
    with pytest.raises(ValueError, match="integer >= 0"):
        RegionId("a", "1", region)
