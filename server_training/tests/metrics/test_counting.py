from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidal.metrics.counting import (
    CountingMetric,
    compute_game,
    count_objects,
    grid_counts,
    object_centroids,
)

SHARED_MASKS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "covid_semiseg" / "train" / "masks"


def mask_with(shape: tuple[int, int], pixels: list[tuple[int, int]]) -> np.ndarray:
    """A bool mask of ``shape`` with the given ``(row, col)`` pixels set."""
    mask = np.zeros(shape, dtype=bool)
    for row, col in pixels:
        mask[row, col] = True
    return mask


@pytest.mark.parametrize(
    "mask, expected",
    [
        pytest.param([[0, 0, 0], [0, 0, 0]], 0, id="empty"),
        pytest.param([[0, 1, 0]], 1, id="single-pixel"),
        pytest.param([[1, 0, 0], [0, 1, 0], [0, 0, 1]], 1, id="diagonal-touching"),
        pytest.param([[0, 1], [1, 0]], 1, id="anti-diagonal-touching"),
        pytest.param([[1, 0, 1]], 2, id="gap-of-one"),
        pytest.param([[1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 1]], 3, id="three-blobs"),
        pytest.param(np.array([[255, 0, 255]], dtype=np.uint8), 2, id="uint8-255"),
    ],
)
def test_count_objects_uses_8_connectivity(mask, expected):
    assert count_objects(np.asarray(mask)) == expected


def test_object_centroids_in_label_order():
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    # Labels are assigned in raster order: the bar at row 0, the pixel (1, 3), the L-shape.
    expected = np.array([[0.0, 0.5], [1.0, 3.0], [11 / 3, 1 / 3]])
    np.testing.assert_allclose(object_centroids(mask), expected)


def test_object_centroids_of_empty_mask():
    centroids = object_centroids(np.zeros((4, 4), dtype=bool))
    assert centroids.shape == (0, 2)


def test_level_zero_grid_is_the_total_count():
    centroids = np.array([[0.0, 0.0], [5.0, 2.5], [6.0, 4.0]])
    np.testing.assert_array_equal(grid_counts(centroids, (7, 5), 0), [[3]])


def test_uneven_grid_covers_every_pixel():
    # 7x5 at level 2: row edges 0, 1.75, 3.5, 5.25, 7 and column edges 0, 1.25,
    # 2.5, 3.75, 5, applied to pixel centres r + 0.5, c + 0.5 (edge -> higher cell).
    # Rows per cell: {0,1} {2} {3,4} {5,6}; columns per cell: {0} {1} {2,3} {4}.
    every_pixel = np.array([(row, col) for row in range(7) for col in range(5)], dtype=float)
    expected = np.outer([2, 1, 2, 2], [1, 1, 2, 1])
    np.testing.assert_array_equal(grid_counts(every_pixel, (7, 5), 2), expected)


@pytest.mark.parametrize(
    "height, row, level, expected_cell",
    [
        pytest.param(7, 2.5, 1, 0, id="H7-point-3.0-below-edge-3.5"),
        pytest.param(7, 2.9, 1, 0, id="H7-point-3.4-below-edge-3.5"),
        pytest.param(7, 3.0, 1, 1, id="H7-point-on-edge-goes-up"),
        pytest.param(8, 3.0, 1, 0, id="H8-pixel-3-in-top-half"),
        pytest.param(8, 3.5, 1, 1, id="H8-two-pixel-blob-on-edge-goes-up"),
        pytest.param(8, -0.5, 2, 0, id="image-border-top"),
        pytest.param(8, 7.5, 2, 3, id="image-border-bottom"),
    ],
)
def test_grid_cell_of_a_row_coordinate(height, row, level, expected_cell):
    per_row_cell = grid_counts(np.array([[row, 0.0]]), (height, 1), level).sum(axis=1)
    expected = np.zeros(2**level, dtype=int)
    expected[expected_cell] = 1
    np.testing.assert_array_equal(per_row_cell, expected)


@pytest.mark.parametrize(
    "centroids, shape, level, message",
    [
        pytest.param([[0.0, 0.0]], (4, 4), -1, "integer >= 0", id="negative-level"),
        pytest.param([[0.0, 0.0]], (4, 4), 1.5, "integer >= 0", id="float-level"),
        pytest.param([[0.0, 0.0]], (4, 4), True, "integer >= 0", id="bool-level"),
        pytest.param([[4.0, 0.0]], (4, 4), 1, "outside an image", id="row-outside"),
        pytest.param([[0.0, -1.0]], (4, 4), 1, "outside an image", id="col-outside"),
        pytest.param([[np.nan, 0.0]], (4, 4), 1, "outside an image", id="nan"),
        pytest.param([[0.0, 0.0, 0.0]], (4, 4), 1, r"shape \[N, 2\]", id="three-columns"),
        pytest.param([[0.0, 0.0]], (0, 4), 1, "must be positive", id="empty-image"),
        pytest.param([[0.0, 0.0]], (4, 4, 4), 1, r"must be \(H, W\)", id="3d-shape"),
    ],
)
def test_grid_counts_rejects_bad_input(centroids, shape, level, message):
    with pytest.raises(ValueError, match=message):
        grid_counts(np.array(centroids), shape, level)


@pytest.mark.parametrize(
    "shape, predicted, reference, expected_by_level",
    [
        pytest.param((4, 4), [(0, 0)], [(3, 3)], {0: 0, 1: 2, 2: 2}, id="same-total-other-corner"),
        pytest.param((7, 5), [(2, 0)], [(3, 0)], {0: 0, 1: 2, 2: 2, 3: 2}, id="uneven-neighbouring-rows"),
        pytest.param((7, 5), [(3, 0)], [(4, 0)], {0: 0, 1: 0, 2: 0, 3: 2}, id="uneven-same-cell-until-level-3"),
        pytest.param((8, 8), [(0, 0), (0, 2)], [(7, 7)], {0: 1, 1: 3, 2: 3}, id="two-in-one-cell-vs-one-elsewhere"),
        pytest.param(
            (4, 4), [(0, 0), (0, 1), (0, 2)], [(0, 0)], {0: 0, 1: 0, 2: 2}, id="blob-counted-once-at-centroid"
        ),
        pytest.param((6, 6), [(1, 1), (4, 4)], [(1, 1), (4, 4)], {0: 0, 1: 0, 2: 0, 3: 0}, id="identical"),
        pytest.param((6, 6), [], [], {0: 0, 3: 0}, id="both-empty"),
    ],
)
def test_compute_game(shape, predicted, reference, expected_by_level):
    prediction = mask_with(shape, predicted)
    truth = mask_with(shape, reference)
    for level, expected in expected_by_level.items():
        assert compute_game(prediction, truth, level) == expected, f"GAME({level})"


def test_compute_game_rejects_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        compute_game(np.zeros((4, 4), dtype=bool), np.zeros((4, 5), dtype=bool), 1)
    with pytest.raises(ValueError, match=r"2D mask \[H, W\]"):
        compute_game(np.zeros((2, 4, 4), dtype=bool), np.zeros((2, 4, 4), dtype=bool), 1)
    with pytest.raises(ValueError, match="integer >= 0"):
        compute_game(np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool), -2)
    with pytest.raises(ValueError, match="threshold probabilities"):
        count_objects(np.zeros((4, 4), dtype=np.float32))


def three_image_set() -> list[tuple[np.ndarray, np.ndarray]]:
    """(prediction, reference) pairs with hand-computed errors (see the test below)."""
    return [
        # 2 predicted (top-left, top-right) vs 1 reference (top-left): |2-1| = 1; GAME(L>=1) = 1.
        (mask_with((8, 8), [(0, 0), (0, 7)]), mask_with((8, 8), [(0, 0)])),
        # Nothing predicted, 3 reference objects in a 5x6 image: 3 at every level.
        (mask_with((5, 6), []), mask_with((5, 6), [(0, 0), (4, 0), (4, 5)])),
        # Totals agree (2 vs 2) in opposite corners: |0|; GAME(L>=1) = 4.
        (mask_with((8, 8), [(0, 0), (7, 7)]), mask_with((8, 8), [(0, 7), (7, 0)])),
    ]


def test_counting_metric_means_over_images():
    metric = CountingMetric()
    for prediction, reference in three_image_set():
        metric.update(prediction, reference)
    result = metric.aggregate()
    assert result["mae"] == pytest.approx(4 / 3)
    assert result["game"] == pytest.approx({"0": 4 / 3, "1": 8 / 3, "2": 8 / 3, "3": 8 / 3})


def test_counting_metric_reports_configured_levels_only():
    metric = CountingMetric(levels=(1, 0))
    for prediction, reference in three_image_set():
        metric.update(prediction, reference)
    assert metric.aggregate()["game"] == pytest.approx({"1": 8 / 3, "0": 4 / 3})


def test_counting_metric_reset():
    metric = CountingMetric(levels=(0,))
    prediction, reference = three_image_set()[1]
    metric.update(prediction, reference)
    metric.reset()
    metric.update(reference, reference)
    assert metric.aggregate() == {"mae": 0.0, "game": {"0": 0.0}}


@pytest.mark.parametrize(
    "levels, message",
    [
        pytest.param((), "at least one", id="empty"),
        pytest.param((0, -1), "integer >= 0", id="negative"),
        pytest.param((1.0,), "integer >= 0", id="float"),
        pytest.param((True,), "integer >= 0", id="bool"),
        pytest.param(("1",), "integer >= 0", id="string"),
        pytest.param((0, 1, 1), "distinct", id="repeated"),
    ],
)
def test_counting_metric_rejects_bad_levels(levels, message):
    with pytest.raises(ValueError, match=message):
        CountingMetric(levels=levels)


def test_counting_metric_rejects_bad_pairs_without_recording_them():
    metric = CountingMetric()
    with pytest.raises(ValueError, match="does not match"):
        metric.update(np.zeros((4, 4), dtype=bool), np.zeros((5, 4), dtype=bool))
    with pytest.raises(RuntimeError, match="no images"):
        metric.aggregate()


def load_reference_masks(count: int) -> list[np.ndarray]:
    if not SHARED_MASKS.is_dir():
        pytest.skip(f"shared data not found at {SHARED_MASKS}; real-mask checks need ../shared/data")
    paths = sorted(SHARED_MASKS.glob("*.png"), key=lambda path: int(path.stem))[:count]
    return [np.asarray(Image.open(path).convert("L")) > 127 for path in paths]


def test_real_masks_perfect_and_empty_predictions():
    masks = load_reference_masks(8)
    perfect, empty = CountingMetric(), CountingMetric()
    for mask in masks:
        perfect.update(mask, mask)
        empty.update(np.zeros_like(mask), mask)

    assert perfect.aggregate() == {"mae": 0.0, "game": {"0": 0.0, "1": 0.0, "2": 0.0, "3": 0.0}}
    # With nothing predicted every cell's error is its reference count, so every
    # level's GAME equals the mean number of reference objects.
    mean_objects = float(np.mean([count_objects(mask) for mask in masks]))
    assert mean_objects > 0
    result = empty.aggregate()
    assert result["mae"] == pytest.approx(mean_objects)
    assert result["game"] == pytest.approx({level: mean_objects for level in ("0", "1", "2", "3")})
