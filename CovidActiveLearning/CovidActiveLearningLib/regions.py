"""Suggested regions as the backend sends them: a rectangle of voxels on one axial slice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VoxelBox:
    """The half-open voxel rectangle ``[i0, i1) x [j0, j1)`` of slice ``k``."""

    k: int
    i0: int
    i1: int
    j0: int
    j1: int

    def __post_init__(self) -> None:
        if not (self.i0 < self.i1 and self.j0 < self.j1 and min(self.i0, self.j0, self.k) >= 0):
            raise ValueError(f"an empty or negative voxel box: {self}")

    def contains(self, voxel: tuple[int, int, int]) -> bool:
        """Whether voxel ``(i, j, k)`` lies in the box."""
        i, j, k = voxel
        return k == self.k and self.i0 <= i < self.i1 and self.j0 <= j < self.j1

    def center_ijk(self) -> tuple[float, float, float]:
        """Continuous IJK of the middle of the box's voxel cells."""
        return (self.i0 + self.i1 - 1) / 2, (self.j0 + self.j1 - 1) / 2, float(self.k)

    def extent_voxels(self) -> tuple[int, int, int]:
        """Voxels along i, j and k (k is always 1)."""
        return self.i1 - self.i0, self.j1 - self.j0, 1


@dataclass(frozen=True)
class SuggestedRegion:
    """One suggestion of a cycle (``id`` is the backend's suggestion id; ``rank`` 1 is the most uncertain)."""

    id: int
    cycle_id: int
    volume_id: int
    box: VoxelBox
    score: float
    rank: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SuggestedRegion:
        """From the backend's ``SuggestionOut`` JSON.

        Raises:
            ValueError: a field is missing or malformed.
        """
        try:
            box = data["box"]
            return cls(
                id=int(data["id"]),
                cycle_id=int(data["cycle_id"]),
                volume_id=int(data["volume_id"]),
                box=VoxelBox(int(data["k"]), int(box["i0"]), int(box["i1"]), int(box["j0"]), int(box["j1"])),
                score=float(data["score"]),
                rank=int(data["rank"]),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"a malformed suggestion from the backend: {error!r}") from None

    def label(self) -> str:
        """The ROI's name: rank and score."""
        return f"Region {self.rank} ({self.score:.3f})"
