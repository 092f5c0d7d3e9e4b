"""Per-volume metrics of 3D masks: HD95 (surface distance in mm) and Dice.

HD95 follows MONAI's ``compute_hausdorff_distance(..., percentile=95)``: a
mask's surface is its voxels with a 6-neighbour outside the mask (voxels on
the array's border count, as outside the array is background); each surface
voxel of one mask gets the Euclidean distance in mm to the nearest surface
voxel of the other; HD95 is the larger of the two directed 95th percentiles
(linear interpolation between ranks, as ``torch.quantile`` and ``np.percentile``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import (
    binary_erosion,
    distance_transform_edt,
    generate_binary_structure,
)

from covidal.metrics.segmentation import binary_pair, compute_dice, confusion_counts

HD_PERCENTILE = 95.0
_SIX_NEIGHBOURS = generate_binary_structure(3, 1)


def compute_hd95(prediction: np.ndarray, reference: np.ndarray, spacing_ijk: tuple[float, float, float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance between two masks' surfaces, in mm.

    Args:
        prediction: ``[K, J, I]`` mask (bool or integer; non-zero is foreground).
        reference: ``[K, J, I]`` mask, same shape.
        spacing_ijk: voxel size in mm, ``(i, j, k)`` as in :class:`~covidal.data.volume.Volume`.

    Returns:
        The distance in mm; 0.0 when both masks are empty (they agree), NaN
        when exactly one is empty (no surface to measure against; MONAI gives
        inf there). Aggregate with ``np.nanmean`` and report the NaN count.

    Raises:
        ValueError: the masks are not 3D, differ in shape, are not bool/integer,
            or ``spacing_ijk`` is not three positive finite numbers.
    """
    predicted, expected = binary_pair(prediction, reference)
    if predicted.ndim != 3:
        raise ValueError(f"expected 3D masks [K, J, I], got shape {predicted.shape}")
    if len(spacing_ijk) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing_ijk):
        raise ValueError(f"spacing must be three positive millimetre values (i, j, k), got {spacing_ijk}")
    has_prediction, has_reference = predicted.any(), expected.any()
    if not has_prediction and not has_reference:
        return 0.0
    if not has_prediction or not has_reference:
        return float("nan")
    sampling = tuple(float(s) for s in reversed(spacing_ijk))  # array axes are (k, j, i)
    predicted, expected = _crop_to_union(predicted, expected)
    predicted_surface, expected_surface = _surface(predicted), _surface(expected)
    forward = _directed_distances(predicted_surface, expected_surface, sampling)
    backward = _directed_distances(expected_surface, predicted_surface, sampling)
    return float(max(np.percentile(forward, HD_PERCENTILE), np.percentile(backward, HD_PERCENTILE)))


def compute_volume_dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice of two masks of any (equal) shape; 1.0 when both are empty, as :func:`compute_dice`.

    Raises:
        ValueError: the shapes differ or a dtype is not bool/integer.
    """
    return compute_dice(confusion_counts(prediction, reference))


def _crop_to_union(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to their union's bounding box and padded by one background voxel on every side.

    Every surface voxel lies in the box, so distances between surfaces are unchanged, while the
    distance transform runs on the box instead of the whole CT; the padding makes voxels on the
    array's border surface voxels, as outside the array is background.
    """
    union = first | second
    box = tuple(slice(int(where.min()), int(where.max()) + 1) for where in np.nonzero(union))
    return np.pad(first[box], 1), np.pad(second[box], 1)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one of their 6 neighbours outside it."""
    return mask & ~binary_erosion(mask, structure=_SIX_NEIGHBOURS)


def _directed_distances(source: np.ndarray, target: np.ndarray, sampling: tuple[float, ...]) -> np.ndarray:
    """Distance in mm from each ``source`` voxel to the nearest ``target`` voxel, ``[N]`` for N source voxels."""
    return distance_transform_edt(~target, sampling=sampling)[source]
