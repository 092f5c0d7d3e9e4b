import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist

from covidal.metrics.surface import compute_hd95, compute_volume_dice

SHAPE = (10, 12, 14)  # [K, J, I]
SPACING_IJK = (0.7, 0.9, 2.5)


def single_voxels(first, second, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    a[first], b[second] = 1, 1
    return a, b


def cube(corner, side: int, shape=SHAPE) -> np.ndarray:
    mask = np.zeros(shape, bool)
    k, j, i = corner
    mask[k : k + side, j : j + side, i : i + side] = True
    return mask


def blob(seed: int, shape=(12, 16, 20)) -> np.ndarray:
    """A random smooth blob (thresholded smoothed noise), several components, some touching the border."""
    noise = gaussian_filter(np.random.default_rng(seed).random(shape), sigma=2.0)
    return noise > np.quantile(noise, 0.7)


def brute_force_hd95(first: np.ndarray, second: np.ndarray, spacing_ijk) -> float:
    """Independent reference: surfaces by comparing each voxel with its 6 neighbours, all pairwise distances."""

    def surface_points_mm(mask):
        padded = np.pad(mask, 1)
        inner = padded[1:-1, 1:-1, 1:-1]
        outside_neighbour = np.zeros_like(mask)
        for axis in range(3):
            for step in (-1, 1):
                outside_neighbour |= ~np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(inner & outside_neighbour) * np.asarray(spacing_ijk[::-1])

    distances = cdist(surface_points_mm(first), surface_points_mm(second))
    return max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))


def as_batch(mask: np.ndarray) -> torch.Tensor:
    """``[1, 1, K, J, I]`` float, MONAI's one-hot batch layout."""
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def monai_hd95(first: np.ndarray, second: np.ndarray, spacing_ijk) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about its own deprecations
        value = compute_hausdorff_distance(
            as_batch(first), as_batch(second), include_background=True, percentile=95, spacing=spacing_ijk[::-1]
        )
    return float(value[0, 0])


@pytest.mark.parametrize(
    ("first", "second", "expected_mm"),
    [
        ((2, 2, 2), (2, 2, 5), 3 * 0.7),  # 3 voxels along i
        ((2, 2, 2), (2, 6, 2), 4 * 0.9),  # 4 along j
        ((1, 2, 2), (4, 2, 2), 3 * 2.5),  # 3 along k
        ((1, 2, 2), (4, 6, 5), math.sqrt((3 * 2.5) ** 2 + (4 * 0.9) ** 2 + (3 * 0.7) ** 2)),
        ((3, 3, 3), (3, 3, 3), 0.0),
    ],
)
def test_two_single_voxels_are_their_distance_apart(first, second, expected_mm):
    assert compute_hd95(*single_voxels(first, second), SPACING_IJK) == pytest.approx(expected_mm)


def test_cubes_apart_along_k():
    # 4-voxel cubes on slices 0..3 and 6..9: directed distances of the first cube's 56 surface voxels
    # to the second's bottom face (slice 6) are 6, 5, 4, 3 slices for 16, 12, 12, 16 voxels; the 95th
    # percentile (rank 0.95 * 55 = 52.25) falls among the 16 largest: 6 slices = 15 mm, both ways.
    first, second = cube((0, 2, 2), 4), cube((6, 2, 2), 4)
    assert compute_hd95(first, second, SPACING_IJK) == pytest.approx(6 * 2.5)


def test_one_far_outlier_voxel_does_not_move_hd95():
    # The outlier is 1 of 57 prediction surface voxels, beyond the 95th percentile: HD95 stays 0
    # although the maximum (Hausdorff) distance is the outlier's.
    reference = cube((1, 1, 1), 4)
    prediction = reference.copy()
    prediction[9, 11, 13] = True
    assert compute_hd95(prediction, reference, SPACING_IJK) == 0.0
    assert compute_hd95(reference, reference, SPACING_IJK) == 0.0


def test_shifted_cube_matches_the_brute_force_reference():
    first, second = cube((2, 2, 3), 5), cube((3, 2, 5), 5)
    value = compute_hd95(first, second, SPACING_IJK)
    assert value > 0
    assert value == pytest.approx(brute_force_hd95(first, second, SPACING_IJK))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_blobs_agree_with_monai_and_brute_force(seed):
    first, second = blob(seed), blob(seed + 100)
    value = compute_hd95(first, second, SPACING_IJK)
    assert value > 0
    assert value == pytest.approx(monai_hd95(first, second, SPACING_IJK), rel=1e-5)
    assert value == pytest.approx(brute_force_hd95(first, second, SPACING_IJK), rel=1e-9)


def test_masks_touching_the_border_count_it_as_surface():
    # The whole array is foreground: every voxel on the array's faces is surface, so a mask missing
    # only its last slice (on the far face) has a surface 1 slice away there.
    full = np.ones(SHAPE, bool)
    fewer = full.copy()
    fewer[-1] = False
    assert compute_hd95(full, fewer, SPACING_IJK) == pytest.approx(brute_force_hd95(full, fewer, SPACING_IJK))
    assert compute_hd95(full, fewer, SPACING_IJK) == pytest.approx(monai_hd95(full, fewer, SPACING_IJK), rel=1e-5)


def test_empty_masks():
    empty, some = np.zeros(SHAPE, np.uint8), cube((1, 1, 1), 2).astype(np.uint8)
    assert compute_hd95(empty, empty, SPACING_IJK) == 0.0
    assert math.isnan(compute_hd95(empty, some, SPACING_IJK))
    assert math.isnan(compute_hd95(some, empty, SPACING_IJK))


@pytest.mark.parametrize(
    ("prediction", "reference", "spacing", "message"),
    [
        (np.zeros(SHAPE, np.float32), np.zeros(SHAPE, np.uint8), SPACING_IJK, "bool or integer mask"),
        (np.zeros(SHAPE, np.uint8), np.zeros((10, 12, 13), np.uint8), SPACING_IJK, "does not match reference shape"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), SPACING_IJK, r"expected 3D masks \[K, J, I\]"),
        (np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8), (0.7, 0.0, 2.5), "spacing must be three positive"),
        (np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8), (0.7, 0.9), "spacing must be three positive"),
    ],
)
def test_bad_hd95_inputs_are_refused(prediction, reference, spacing, message):
    with pytest.raises(ValueError, match=message):
        compute_hd95(prediction, reference, spacing)


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        (cube((0, 0, 0), 2), cube((0, 0, 0), 2), 1.0),
        (cube((0, 0, 0), 2), cube((5, 5, 5), 2), 0.0),
        (cube((0, 0, 0), 2), cube((0, 0, 1), 2), 2 * 4 / (8 + 8)),  # 4 of 8 voxels shared
        (cube((0, 0, 0), 2), cube((0, 0, 0), 3), 2 * 8 / (8 + 27)),
        (np.zeros(SHAPE, bool), np.zeros(SHAPE, bool), 1.0),  # both empty: agreement, as compute_dice
        (np.zeros(SHAPE, bool), cube((0, 0, 0), 2), 0.0),
    ],
)
def test_volume_dice(prediction, reference, expected):
    assert compute_volume_dice(prediction, reference) == pytest.approx(expected)


def test_volume_dice_refuses_probabilities():
    with pytest.raises(ValueError, match="bool or integer mask"):
        compute_volume_dice(np.full(SHAPE, 0.7), np.zeros(SHAPE, np.uint8))
