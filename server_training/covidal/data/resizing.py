"""Mapping between a slice's native pixel grid ``(H, W)`` and the square training grid ``(S, S)``.

Both grids cover the same field of view; pixel ``r`` of a grid of ``n`` pixels
spans ``[r, r + 1) * extent / n``. A pixel maps to the pixel of the other grid
that contains its centre, which is what ``align_corners=False`` interpolation
and torch's ``nearest-exact`` mode assume. Points are labelled, and every
metric is computed, on the native grid; the network only sees the training grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from covidal.data.points import PointLabel, point_label_map
from covidal.validation import check_int

DEFAULT_TRAIN_SIZE = 352
MIN_TRAIN_SIZE = 8


@dataclass(frozen=True)
class GridMapping:
    """Maps pixel positions between a slice's native grid and the square training grid.

    Attributes:
        native_shape: ``(H, W)`` of the slice.
        train_size: ``S``; the training grid is ``(S, S)``.

    Raises:
        ValueError: a non-positive native size, or ``train_size`` below 8.
    """

    native_shape: tuple[int, int]
    train_size: int = DEFAULT_TRAIN_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "native_shape", _checked_shape(self.native_shape))
        _check_train_size(self.train_size)

    def native_to_train(self, row: int, col: int) -> tuple[int, int]:
        """Training pixel containing the centre of native pixel ``(row, col)``.

        ``r_t = floor((r + 0.5) * S / H)``, always within ``[0, S - 1]``.

        Raises:
            ValueError: ``(row, col)`` outside the native grid.
        """
        height, width = self.native_shape
        return (
            _centre_to_pixel(row, height, self.train_size, "row"),
            _centre_to_pixel(col, width, self.train_size, "col"),
        )

    def train_to_native(self, row: int, col: int) -> tuple[int, int]:
        """Native pixel containing the centre of training pixel ``(row, col)``.

        Raises:
            ValueError: ``(row, col)`` outside the training grid.
        """
        height, width = self.native_shape
        return (
            _centre_to_pixel(row, self.train_size, height, "row"),
            _centre_to_pixel(col, self.train_size, width, "col"),
        )

    def native_to_train_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """For each native row and column, its training row/column: int64 ``[H]`` and ``[W]``."""
        height, width = self.native_shape
        return _centre_indices(height, self.train_size), _centre_indices(width, self.train_size)

    def train_to_native_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """For each training row and column, its native row/column: two int64 ``[S]`` arrays."""
        height, width = self.native_shape
        return _centre_indices(self.train_size, height), _centre_indices(self.train_size, width)


def _centre_to_pixel(index: int, source_size: int, target_size: int, axis: str) -> int:
    """Target pixel holding the centre of source pixel ``index``, in exact integer arithmetic."""
    if not 0 <= index < source_size:
        raise ValueError(f"{axis} {index} is outside a grid of {source_size} pixels")
    # floor((index + 0.5) * target / source) without floating-point rounding.
    return (2 * index + 1) * target_size // (2 * source_size)


def _centre_indices(source_size: int, target_size: int) -> np.ndarray:
    """:func:`_centre_to_pixel` for every source pixel: int64 ``[source_size]``."""
    return (2 * np.arange(source_size, dtype=np.int64) + 1) * target_size // (2 * source_size)


def _checked_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """``shape`` as a tuple of two positive ints; ValueError otherwise."""
    if len(shape) != 2 or any(int(n) != n or n <= 0 for n in shape):
        raise ValueError(f"native shape must be two positive integers (H, W), got {shape}")
    return (int(shape[0]), int(shape[1]))


def _check_train_size(size: int) -> None:
    """ValueError unless ``size`` is an integer of at least :data:`MIN_TRAIN_SIZE`."""
    check_int("training grid size", size, minimum=MIN_TRAIN_SIZE)


def _checked_2d(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` if it is a non-empty 2D array; ValueError otherwise."""
    array = np.asarray(array)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 2D array [H, W], got shape {array.shape}")
    return array


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resample an image to the training grid, bilinear, antialiased when shrinking.

    Args:
        image: ``[H, W]``, any real dtype.
        size: ``S`` (at least 8).

    Returns:
        float32 ``[S, S]``; every value lies between the input's minimum and maximum.

    Raises:
        ValueError: ``image`` is not 2D, or ``size`` is below 8.
    """
    image = _checked_2d(image, "image")
    _check_train_size(size)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    # antialias only changes the result when shrinking: it averages over each
    # output pixel's footprint instead of sampling, so thin structures survive.
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized[0, 0].numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resample a label mask to the training grid by nearest neighbour (pixel centres).

    Training pixel ``(r, c)`` takes the value of native pixel
    ``GridMapping(mask.shape, size).train_to_native(r, c)``.

    Args:
        mask: ``[H, W]``, any dtype.
        size: ``S`` (at least 8).

    Returns:
        ``[S, S]``, same dtype as ``mask``.

    Raises:
        ValueError: ``mask`` is not 2D, or ``size`` is below 8.
    """
    mask = _checked_2d(mask, "mask")
    rows, cols = GridMapping(mask.shape, size).train_to_native_indices()
    return mask[np.ix_(rows, cols)]


def point_label_map_on_grid(points: Sequence[PointLabel], mapping: GridMapping) -> np.ndarray:
    """Rasterise one slice's native-grid points on the training grid.

    Args:
        points: points of a single slice, in its native grid.
        mapping: that slice's native grid and the training size ``S``.

    Returns:
        int64 ``[S, S]``: -1 (ignore) except at the mapped points, which hold
        0 (background) or 1 (infection). When several points land on one
        training pixel and disagree, infection wins.

    Raises:
        ValueError: points from several slices, or a point outside the native grid.
    """
    mapped = [
        PointLabel(point.slice_id, *mapping.native_to_train(point.row, point.col), point.label) for point in points
    ]
    return point_label_map(mapped, (mapping.train_size, mapping.train_size))


def probabilities_to_native(probs: torch.Tensor, native_shape: tuple[int, int]) -> torch.Tensor:
    """Resample training-grid probabilities to a slice's native grid, so metrics use native pixels.

    Bilinear with ``align_corners=False`` (antialiased when shrinking, as
    :func:`resize_image`), so each output value is a convex combination of
    inputs: probabilities stay in ``[0, 1]`` and class sums stay 1.

    Args:
        probs: float ``[B, C, S, S]``.
        native_shape: ``(H, W)``.

    Returns:
        ``[B, C, H, W]``, same dtype and device as ``probs``.

    Raises:
        ValueError: ``probs`` is not a 4D floating tensor, or a non-positive ``native_shape``.
    """
    if probs.ndim != 4 or not probs.is_floating_point():
        raise ValueError(f"probs must be a floating tensor [B, C, S, S], got {probs.dtype} {tuple(probs.shape)}")
    height, width = _checked_shape(native_shape)
    return F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
