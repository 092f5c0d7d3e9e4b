"""Reference infection masks by slice, cut into regions: what the simulated annotator and the effort model read."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from covidal.annotation.state import SliceKey, describe
from covidal.regions.grid import Box, RegionGrid, RegionId


class ReferenceMasks:
    """Binary reference masks of a pool's slices and the native boxes of their regions.

    Args:
        masks: ``(case, slice)`` -> native ``[H, W]`` mask (uint8 or bool; non-zero = infection).
        grid: how slices are cut into ``K`` regions.

    Raises:
        ValueError: a mask that is not 2-D, or too small for ``grid``.
    """

    def __init__(self, masks: Mapping[SliceKey, np.ndarray], grid: RegionGrid) -> None:
        self.grid = grid
        self._masks: dict[SliceKey, np.ndarray] = {}
        self._boxes: dict[SliceKey, list[Box]] = {}
        for key, mask in masks.items():
            mask = np.asarray(mask)
            if mask.ndim != 2:
                raise ValueError(f"mask of slice {key!r} must be 2-D [H, W], got shape {mask.shape}")
            self._masks[key] = mask != 0
            self._boxes[key] = grid.boxes(mask.shape)

    @property
    def shapes(self) -> dict[SliceKey, tuple[int, int]]:
        """Native ``(H, W)`` of every slice with a mask."""
        return {key: mask.shape for key, mask in self._masks.items()}

    def whole(self, key: SliceKey) -> np.ndarray:
        """The bool ``[H, W]`` mask of one slice.

        Raises:
            ValueError: no mask for ``key``.
        """
        if key not in self._masks:
            raise ValueError(f"slice {key!r} has no reference mask")
        return self._masks[key]

    def in_region(self, region: RegionId) -> tuple[Box, np.ndarray]:
        """The region's native box and the bool ``[h, w]`` mask inside it.

        Raises:
            ValueError: no mask for the region's slice, or its index is ``>= K``.
        """
        key = (region.case, region.slice)
        if key not in self._masks:
            raise ValueError(f"{describe(region)}: no reference mask for this slice")
        if region.region >= self.grid.regions:
            raise ValueError(f"{describe(region)}: the index is out of range for a grid of {self.grid.regions} regions")
        box = self._boxes[key][region.region]
        return box, self._masks[key][box.slices]
