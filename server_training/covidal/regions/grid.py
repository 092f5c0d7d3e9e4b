"""A slice cut into a ``side x side`` grid of ``K = side**2`` near-equal rectangles.

Band edges along an axis of ``n`` pixels are ``np.linspace(0, n, side + 1)``
rounded half up, computed in exact integer arithmetic, so uneven sizes leave no
pixel out and the boxes tile the slice exactly once. Regions are numbered
row-major: region ``r`` is band ``r // side`` down and band ``r % side`` across.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from covidal.data.resizing import GridMapping
from covidal.validation import ConfigError, check_int, is_integer

DEFAULT_REGIONS = 64


@dataclass(frozen=True, order=True)
class RegionId:
    """One region of one slice of one case; orders by case, then slice, then region.

    Attributes:
        case: case id.
        slice: slice id, e.g. ``"12"`` or ``"case:40"``.
        region: index in ``[0, K)`` of the slice's :class:`RegionGrid`.

    Raises:
        ValueError: ``region`` is not a non-negative integer.
    """

    case: str
    slice: str
    region: int

    def __post_init__(self) -> None:
        check_int("region", self.region, minimum=0)


@dataclass(frozen=True)
class Box:
    """Half-open pixel rectangle ``[row0, row1) x [col0, col1)``."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices, so ``array[box.slices]`` is the box's ``[h, w]`` part of an ``[H, W]`` array."""
        return slice(self.row0, self.row1), slice(self.col0, self.col1)


class RegionGrid:
    """Cuts ``[H, W]`` slices into ``K`` regions laid out as a square ``side x side`` grid.

    Args:
        regions: ``K``, a perfect square of at least 1.

    Raises:
        ValueError: ``regions`` is not a perfect square >= 1.
    """

    def __init__(self, regions: int = DEFAULT_REGIONS) -> None:
        if not is_integer(regions) or regions < 1 or math.isqrt(regions) ** 2 != regions:
            raise ConfigError(f"number of regions must be a perfect square >= 1 (e.g. 64), got {regions!r}")
        self.regions = int(regions)
        self._side = math.isqrt(regions)

    @property
    def side(self) -> int:
        """Regions per row and per column: ``sqrt(K)``."""
        return self._side

    def boxes(self, shape: tuple[int, int]) -> list[Box]:
        """The ``K`` native boxes of an ``(H, W)`` slice, row-major; they tile it exactly once.

        Raises:
            ValueError: ``H`` or ``W`` below ``side``.
        """
        height, width = self._checked_shape(shape)
        return self._boxes_from_edges(self._edges(height), self._edges(width))

    def region_of(self, shape: tuple[int, int], row: int, col: int) -> int:
        """Index in ``[0, K)`` of the region holding pixel ``(row, col)`` of an ``(H, W)`` slice.

        Raises:
            ValueError: shape too small, or ``(row, col)`` outside it.
        """
        height, width = self._checked_shape(shape)
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(f"pixel ({row}, {col}) is outside a slice of shape {(height, width)}")
        row_band = int(np.searchsorted(self._edges(height), row, side="right")) - 1
        col_band = int(np.searchsorted(self._edges(width), col, side="right")) - 1
        return row_band * self._side + col_band

    def label_map(self, shape: tuple[int, int]) -> np.ndarray:
        """int64 ``[H, W]``: the region index of each pixel.

        Raises:
            ValueError: ``H`` or ``W`` below ``side``.
        """
        height, width = self._checked_shape(shape)
        row_bands = self._bands(height)
        col_bands = self._bands(width)
        return row_bands[:, None] * self._side + col_bands[None, :]

    def boxes_on_training_grid(self, native_shape: tuple[int, int], train_size: int) -> list[Box]:
        """The ``K`` regions of a native ``(H, W)`` slice as boxes on the ``(S, S)`` training grid.

        Training pixel ``(r, c)`` belongs to the region holding native pixel
        ``GridMapping(native_shape, train_size).train_to_native(r, c)``. That
        map is monotone along each axis, so each region is a rectangle and the
        boxes tile the training grid exactly once. When the training grid is
        coarser than the native one, a thin native band may receive no training
        pixel: its boxes are then empty (``row0 == row1`` or ``col0 == col1``).

        Raises:
            ValueError: ``H`` or ``W`` below ``side``, or ``train_size`` below 8.
        """
        height, width = self._checked_shape(native_shape)
        native_rows, native_cols = GridMapping((height, width), train_size).train_to_native_indices()
        # Band of each training row/column, via the native pixel it maps back to.
        train_row_bands = self._bands(height)[native_rows]
        train_col_bands = self._bands(width)[native_cols]
        band_ids = np.arange(self._side + 1)
        row_edges = np.searchsorted(train_row_bands, band_ids, side="left")
        col_edges = np.searchsorted(train_col_bands, band_ids, side="left")
        return self._boxes_from_edges(row_edges, col_edges)

    def _checked_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """``shape`` as two ints, each at least ``side``; ValueError otherwise."""
        if len(shape) != 2 or any(int(n) != n for n in shape):
            raise ValueError(f"slice shape must be two integers (H, W), got {shape}")
        height, width = int(shape[0]), int(shape[1])
        if height < self._side or width < self._side:
            raise ValueError(
                f"slice shape {(height, width)} is too small for {self.regions} regions: "
                f"both sides need at least {self._side} pixels; use fewer regions"
            )
        return height, width

    def _edges(self, size: int) -> np.ndarray:
        """int64 ``[side + 1]`` band edges along an axis: ``round_half_up(i * size / side)``, exactly."""
        steps = np.arange(self._side + 1, dtype=np.int64)
        # Integer form of floor(i * size / side + 0.5); float rounding could merge two edges.
        return (2 * steps * size + self._side) // (2 * self._side)

    def _bands(self, size: int) -> np.ndarray:
        """int64 ``[size]``: band index of each pixel along an axis."""
        edges = self._edges(size)
        return np.repeat(np.arange(self._side, dtype=np.int64), np.diff(edges))

    def _boxes_from_edges(self, row_edges: np.ndarray, col_edges: np.ndarray) -> list[Box]:
        """Row-major boxes from ``[side + 1]`` row and column edges."""
        return [
            Box(int(row_edges[i]), int(row_edges[i + 1]), int(col_edges[j]), int(col_edges[j + 1]))
            for i in range(self._side)
            for j in range(self._side)
        ]
