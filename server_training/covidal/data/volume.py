"""A 3D image with its physical geometry, and the named conversions between grids.

Conventions (the same as ITK/SimpleITK and DICOM):

* ``array`` is indexed ``[k, j, i]`` (numpy order: slice, row, column), so
  ``array[k]`` is the k-th axial slice of an axially acquired CT.
* ``spacing`` and ``origin`` are given in ``(i, j, k)`` order, in millimetres.
* ``direction`` is the 3x3 matrix whose columns are the i, j, k axis directions
  in LPS (patient) coordinates.

3D Slicer works in RAS. :meth:`Volume.ijk_to_ras` gives the matrix Slicer calls
IJK-to-RAS; voxel indices and RAS coordinates are only ever converted through
:meth:`Volume.ijk_to_ras_points` / :meth:`Volume.ras_to_ijk_points`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_lps_matrix(spacing, origin, direction) -> np.ndarray:
    """``[4, 4]`` from voxel index ``(i, j, k)`` to LPS mm: ``direction`` (3x3, or 9 values row by row) columns
    scaled by ``spacing``, then ``origin``."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.reshape(direction, (3, 3)) @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def ijk_to_ras_matrix(spacing, origin, direction) -> np.ndarray:
    """``[4, 4]`` from voxel index ``(i, j, k)`` to RAS mm (Slicer's IJKToRAS): LPS with x and y negated."""
    return np.diag([*np.diag(LPS_TO_RAS), 1.0]) @ ijk_to_lps_matrix(spacing, origin, direction)


@dataclass
class Volume:
    """A voxel array with spacing, origin and direction.

    Attributes:
        array: voxel values, shape ``[K, J, I]``.
        spacing: voxel size in mm, ``(i, j, k)``.
        origin: LPS position of voxel ``(0, 0, 0)`` in mm.
        direction: ``[3, 3]`` LPS direction cosines, one column per axis.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        """Size along ``(i, j, k)``."""
        k, j, i = self.array.shape
        return (i, j, k)

    def ijk_to_lps(self) -> np.ndarray:
        """``[4, 4]`` homogeneous matrix from voxel index ``(i, j, k)`` to LPS mm."""
        return ijk_to_lps_matrix(self.spacing, self.origin, self.direction)

    def ijk_to_ras(self) -> np.ndarray:
        """``[4, 4]`` homogeneous matrix from voxel index ``(i, j, k)`` to RAS mm (Slicer's IJKToRAS)."""
        return ijk_to_ras_matrix(self.spacing, self.origin, self.direction)

    def same_geometry(self, other: Volume, tolerance: float = 1e-4) -> bool:
        """True when both volumes share size, spacing, origin and direction."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=tolerance)
            and np.allclose(self.origin, other.origin, atol=tolerance * 100)
            and np.allclose(self.direction, other.direction, atol=tolerance)
        )

    def with_array(self, array: np.ndarray) -> Volume:
        """A volume with the same geometry and new voxel values of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {self.array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction.copy())

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Volume:
        """Build from a 3D SimpleITK image (geometry copied exactly)."""
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=np.array(image.GetDirection()).reshape(3, 3),
        )

    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with this volume's voxels and geometry."""
        image = sitk.GetImageFromArray(self.array, isVector=False)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.ravel()))
        return image
