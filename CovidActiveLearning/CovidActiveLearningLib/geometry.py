"""Named conversions between a volume's voxel indices (IJK) and RAS millimetres.

Voxel centres sit at integer IJK; a voxel ``(i, j, k)`` covers ``[i - 0.5, i + 0.5]`` along each
axis. numpy arrays of a volume are indexed ``[k, j, i]``. Nothing else in the module converts
between the two spaces by hand.
"""

from __future__ import annotations

import numpy as np
import vtk

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.regions import VoxelBox

MATCH_TOLERANCE_MM = 1e-3


def ijk_to_ras_matrix(volume_node) -> np.ndarray:
    """``[4, 4]`` homogeneous IJK-to-RAS matrix of a volume node.

    Raises:
        UserFacingError: the volume sits under a transform (its voxels are not where its matrix says).
    """
    if volume_node.GetParentTransformNode() is not None:
        raise UserFacingError(
            f"The volume '{volume_node.GetName()}' is under a transform; harden the transform "
            "(Data module, right-click) before annotating it."
        )
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def ijk_to_ras(volume_node, ijk) -> np.ndarray:
    """RAS mm ``[3]`` of continuous voxel coordinates ``ijk`` ``[3]``."""
    return (ijk_to_ras_matrix(volume_node) @ np.append(np.asarray(ijk, dtype=float), 1.0))[:3]


def ras_to_ijk(volume_node, ras) -> np.ndarray:
    """Continuous voxel coordinates ``[3]`` of a RAS point ``[3]`` (mm)."""
    return (np.linalg.inv(ijk_to_ras_matrix(volume_node)) @ np.append(np.asarray(ras, dtype=float), 1.0))[:3]


def ras_to_voxel(volume_node, ras) -> tuple[int, int, int]:
    """The voxel ``(i, j, k)`` whose cell holds the RAS point (rounded to the nearest centre; may lie outside)."""
    i, j, k = np.floor(ras_to_ijk(volume_node, ras) + 0.5).astype(int)
    return int(i), int(j), int(k)


def volume_dims(volume_node) -> tuple[int, int, int]:
    """Voxels along ``(i, j, k)``.

    Raises:
        UserFacingError: the node has no image data.
    """
    image = volume_node.GetImageData()
    if image is None:
        raise UserFacingError(f"The volume '{volume_node.GetName()}' holds no image data.")
    i, j, k = image.GetDimensions()
    return int(i), int(j), int(k)


def voxel_inside(volume_node, voxel: tuple[int, int, int]) -> bool:
    """Whether the voxel index lies inside the volume."""
    return all(0 <= index < size for index, size in zip(voxel, volume_dims(volume_node)))


def box_center_ras(volume_node, box: VoxelBox) -> np.ndarray:
    """RAS mm ``[3]`` of the centre of the box's voxel cells (one slice thick)."""
    return ijk_to_ras(volume_node, box.center_ijk())


def box_size_mm(volume_node, box: VoxelBox) -> np.ndarray:
    """Edge lengths ``[3]`` (mm) of the box along the volume's i, j and k axes."""
    return np.asarray(box.extent_voxels(), dtype=float) * voxel_spacing(volume_node)


def voxel_spacing(volume_node) -> np.ndarray:
    """Voxel edge lengths ``[3]`` (mm) along i, j, k, from the IJK-to-RAS matrix."""
    return np.linalg.norm(ijk_to_ras_matrix(volume_node)[:3, :3], axis=0)


def axes_rotation(volume_node) -> np.ndarray:
    """``[3, 3]`` rotation whose columns are the volume's i, j and k directions in RAS.

    A left-handed grid (determinant below zero) gets its k column negated: a box centred on
    its midpoint is the same box either way, and an ROI's orientation must be a rotation.
    """
    matrix = ijk_to_ras_matrix(volume_node)[:3, :3]
    rotation = matrix / np.linalg.norm(matrix, axis=0)
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] *= -1
    return rotation


def check_backend_geometry(volume_node, dims, backend_ijk_to_ras) -> None:
    """Check that the backend's copy of a volume has the node's grid.

    Args:
        dims: the backend's voxel counts along (i, j, k).
        backend_ijk_to_ras: the backend's ``[4, 4]`` IJK-to-RAS (nested lists).

    Raises:
        UserFacingError: the grids differ (sizes, or corners more than ``MATCH_TOLERANCE_MM`` apart).
    """
    if tuple(int(d) for d in dims) != volume_dims(volume_node):
        raise UserFacingError(
            f"The backend's copy of '{volume_node.GetName()}' has {tuple(dims)} voxels, "
            f"the scene's has {volume_dims(volume_node)}; upload the volume again."
        )
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1) for k in (0, dims[2] - 1)])
    gap = np.abs(corners @ np.asarray(backend_ijk_to_ras, dtype=float).T - corners @ ijk_to_ras_matrix(volume_node).T)
    if gap.max() > MATCH_TOLERANCE_MM:
        raise UserFacingError(
            f"The backend's copy of '{volume_node.GetName()}' lies {gap.max():.3g} mm away from "
            "the scene's volume; upload the volume again."
        )
