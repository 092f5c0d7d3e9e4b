"""Object counting metrics: counting MAE and GAME(L).

GAME, the Grid Average Mean absolute Error (Guerrero-Gomez-Olmedo et al.,
2015), as used by LCFCN and the consistency-loss paper: the image is split into
a ``2^L x 2^L`` grid, objects are counted per cell, and the absolute count
errors of all cells are summed. GAME(0) is the plain absolute count error;
higher levels also penalise objects found in the wrong place.

Objects are the 8-connected components of a mask (diagonal neighbours touch),
each located by its centroid. Scores of a set are means over its images.

Grid convention: pixel ``(r, c)`` covers the square ``[r, r+1) x [c, c+1)``, so a
centroid at index coordinates ``(r, c)`` is the point ``(r + 0.5, c + 0.5)``.
Cell edges are ``np.linspace(0, H, 2^L + 1)`` (and likewise for ``W``), so uneven
sizes leave no pixel out; a point exactly on an edge goes to the cell with the
higher index.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from covidal.metrics.segmentation import as_binary_mask, binary_pair
from covidal.validation import check_int

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
DEFAULT_GAME_LEVELS = (0, 1, 2, 3)


def _check_2d(mask: np.ndarray, name: str) -> None:
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2D mask [H, W], got shape {mask.shape}")


def _check_level(level: int) -> None:
    check_int("GAME level", level, minimum=0)


def count_objects(mask: np.ndarray) -> int:
    """Number of 8-connected foreground components in ``mask`` ``[H, W]``.

    Raises:
        ValueError: if ``mask`` is not 2D or its dtype is not bool/integer.
    """
    binary = as_binary_mask(mask, "mask")
    _check_2d(binary, "mask")
    _, count = ndimage.label(binary, structure=EIGHT_CONNECTED)
    return int(count)


def object_centroids(mask: np.ndarray) -> np.ndarray:
    """Centroids of the 8-connected components of ``mask`` ``[H, W]``.

    Returns:
        ``[N, 2]`` float array of ``(row, col)`` index coordinates, one row per
        component in label order; ``[0, 2]`` when the mask is empty.

    Raises:
        ValueError: if ``mask`` is not 2D or its dtype is not bool/integer.
    """
    binary = as_binary_mask(mask, "mask")
    _check_2d(binary, "mask")
    labels, count = ndimage.label(binary, structure=EIGHT_CONNECTED)
    if count == 0:
        return np.zeros((0, 2), dtype=float)
    centres = ndimage.center_of_mass(binary, labels, index=np.arange(1, count + 1))
    return np.asarray(centres, dtype=float).reshape(count, 2)


def _cell_indices(coordinates: np.ndarray, length: int, cells: int) -> np.ndarray:
    """Grid cell of each index coordinate along one axis of ``length`` pixels."""
    edges = np.linspace(0.0, length, cells + 1)
    # side="right" puts a point exactly on an edge into the higher cell; the clip
    # keeps the far border (coordinate length - 0.5, point == length) in the last cell.
    cell = np.searchsorted(edges, coordinates + 0.5, side="right") - 1
    return np.clip(cell, 0, cells - 1)


def grid_counts(centroids: np.ndarray, shape: tuple[int, int], level: int) -> np.ndarray:
    """Count points per cell of a ``2^L x 2^L`` grid over an image of ``shape``.

    Args:
        centroids: ``[N, 2]`` ``(row, col)`` index coordinates (floats), each within
            ``[-0.5, H - 0.5] x [-0.5, W - 0.5]`` (the pixel area of the image).
        shape: image size ``(H, W)``.
        level: grid level ``L >= 0``.

    Returns:
        ``[2^L, 2^L]`` int array of counts (see the module docstring for the
        cell edges and the boundary rule).

    Raises:
        ValueError: on a bad level or shape, centroids not ``[N, 2]``, or a
            centroid outside the image.
    """
    _check_level(level)
    if len(shape) != 2:
        raise ValueError(f"image shape must be (H, W), got {tuple(shape)}")
    height, width = (int(size) for size in shape)
    if height < 1 or width < 1:
        raise ValueError(f"image shape must be positive (H, W), got {tuple(shape)}")
    points = np.asarray(centroids, dtype=float)
    if points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"centroids must have shape [N, 2] (row, col), got {points.shape}")
    rows, cols = points[:, 0], points[:, 1]
    inside = (rows >= -0.5) & (rows <= height - 0.5) & (cols >= -0.5) & (cols <= width - 0.5)
    if not np.all(inside):
        outside = points[~inside][0].tolist()
        raise ValueError(f"centroid {outside} lies outside an image of shape {(height, width)}")
    cells = 2**level
    counts = np.zeros((cells, cells), dtype=int)
    np.add.at(counts, (_cell_indices(rows, height, cells), _cell_indices(cols, width, cells)), 1)
    return counts


def compute_game(prediction: np.ndarray, reference: np.ndarray, level: int) -> float:
    """GAME(L) of one image: sum over grid cells of |predicted count - reference count|.

    Args:
        prediction: predicted mask ``[H, W]``; its objects are its 8-connected blobs.
        reference: reference mask, same shape.
        level: grid level ``L >= 0``; GAME(0) = |predicted count - reference count|.

    Raises:
        ValueError: on a bad level, a shape mismatch, a non-2D mask or a
            dtype that is not bool/integer.
    """
    predicted, expected = binary_pair(prediction, reference)
    _check_2d(predicted, "prediction")
    return _game_of_centroids(object_centroids(predicted), object_centroids(expected), predicted.shape, level)


def _game_of_centroids(predicted: np.ndarray, reference: np.ndarray, shape: tuple[int, int], level: int) -> float:
    """GAME(L) between two ``[N, 2]`` centroid sets in an image of ``shape``."""
    difference = grid_counts(predicted, shape, level) - grid_counts(reference, shape, level)
    return float(np.abs(difference).sum())


class CountingMetric:
    """Accumulates per-image counting errors; scores are means over images.

    Args:
        levels: GAME levels to report, distinct non-negative integers.

    Raises:
        ValueError: if ``levels`` is empty, repeats a level, or holds something
            other than a non-negative integer.
    """

    def __init__(self, levels: tuple[int, ...] = DEFAULT_GAME_LEVELS) -> None:
        levels = tuple(levels)
        if not levels:
            raise ValueError("levels must name at least one GAME level, e.g. (0, 1, 2, 3)")
        for level in levels:
            _check_level(level)
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels must be distinct, got {levels}")
        self.levels = tuple(int(level) for level in levels)
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._absolute_errors: list[int] = []
        self._game_errors: dict[int, list[float]] = {level: [] for level in self.levels}

    def update(self, prediction: np.ndarray, reference: np.ndarray) -> None:
        """Add one image.

        Args:
            prediction: predicted mask ``[H, W]`` (bool or integer; non-zero is foreground).
            reference: reference mask, same shape; images may differ in size.

        Raises:
            ValueError: on a shape mismatch, a non-2D mask or a dtype that is
                not bool/integer.
        """
        predicted, expected = binary_pair(prediction, reference)
        _check_2d(predicted, "prediction")
        predicted_centroids = object_centroids(predicted)
        reference_centroids = object_centroids(expected)
        self._absolute_errors.append(abs(len(predicted_centroids) - len(reference_centroids)))
        for level in self.levels:
            self._game_errors[level].append(
                _game_of_centroids(predicted_centroids, reference_centroids, predicted.shape, level)
            )

    def aggregate(self) -> dict[str, float | dict[str, float]]:
        """Mean errors over all images so far.

        Returns:
            ``{"mae": mean |n_pred - n_ref|, "game": {"0": mean GAME(0), ...}}``,
            one ``"game"`` entry per configured level, keyed by the level as a string.

        Raises:
            RuntimeError: if no image has been added.
        """
        if not self._absolute_errors:
            raise RuntimeError("no images to aggregate; call update() at least once")
        return {
            "mae": float(np.mean(self._absolute_errors)),
            "game": {str(level): float(np.mean(errors)) for level, errors in self._game_errors.items()},
        }
