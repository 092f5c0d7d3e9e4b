"""Scalar volumes of the scene: checks, content hash, NRRD files for the backend, DICOM series reading."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import slicer

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import ijk_to_ras_matrix, volume_dims

CONTENT_HASH_ATTRIBUTE = "CovidActiveLearning.ContentHash"
MIN_SLICES = 2


def check_annotatable(volume_node) -> None:
    """Refuse what cannot be annotated: nothing selected, a non-scalar node, a 2D image, a transformed volume.

    Raises:
        UserFacingError: with the reason.
    """
    if volume_node is None:
        raise UserFacingError("Select a CT volume first.")
    if not volume_node.IsA("vtkMRMLScalarVolumeNode") or volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise UserFacingError(f"'{volume_node.GetName()}' is not a scalar (CT) volume.")
    dims = volume_dims(volume_node)
    if min(dims) < 1 or dims[2] < MIN_SLICES:
        raise UserFacingError(f"'{volume_node.GetName()}' is a 2D image ({dims[0]} x {dims[1]} x {dims[2]} voxels); "
                              "the backend needs a CT volume of several axial slices.")
    if volume_node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise UserFacingError(f"'{volume_node.GetName()}' has several components per voxel; use a CT volume.")
    ijk_to_ras_matrix(volume_node)  # refuses a volume under a transform


def content_hash(volume_node) -> str:
    """SHA-256 of the voxels (their dtype and values) and the grid (dims and IJK-to-RAS to 1 µm).

    The same CT loaded twice (from a file or from the DICOM database) hashes the same, so it is
    uploaded once; the hash is kept on the node (attribute ``CovidActiveLearning.ContentHash``).
    """
    array = np.ascontiguousarray(slicer.util.arrayFromVolume(volume_node))
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.round(ijk_to_ras_matrix(volume_node), 3).tobytes())
    digest.update(array.tobytes())
    value = digest.hexdigest()
    volume_node.SetAttribute(CONTENT_HASH_ATTRIBUTE, value)
    return value


def write_nrrd(volume_node, path: Path) -> Path:
    """Write the volume as a gzip NRRD (its geometry in LPS, as NRRD files hold it) to the absolute ``path``.

    Raises:
        UserFacingError: the file could not be written.
    """
    path = Path(path).resolve()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    if not storage.WriteData(volume_node):
        raise UserFacingError(f"Could not write '{volume_node.GetName()}' to {path}.")
    return path


def read_volume(scene, path: Path, name: str | None = None, labelmap: bool = False):
    """Read a NRRD/NIfTI file into a new scalar (or labelmap) volume node of ``scene``.

    Raises:
        UserFacingError: the file is missing or unreadable.
    """
    path = Path(path).resolve()
    node_class = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(node_class, name or path.name.split(".")[0])
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    if not path.is_file() or not storage.ReadData(node):
        scene.RemoveNode(node)
        raise UserFacingError(f"Could not read a volume from {path}.")
    return node


def read_dicom_series(scene, folder: Path, name: str):
    """Read the one DICOM series in ``folder`` into a new scalar volume node (HU, RAS geometry).

    Uses SimpleITK with GDCM's position-sorted file list (Slicer bundles SimpleITK); the LPS
    geometry becomes IJK-to-RAS as ``diag(-1, -1, 1) . D . diag(s)`` with origin ``diag(-1, -1, 1) . o``.

    Raises:
        UserFacingError: no series in the folder.
    """
    import SimpleITK as sitk  # bundled with Slicer; imported here so the rest needs only numpy and VTK

    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    if not files:
        raise UserFacingError(f"No DICOM series in {folder}.")
    image = sitk.ReadImage(files)
    flip = np.diag([-1.0, -1.0, 1.0])
    matrix = np.eye(4)
    matrix[:3, :3] = flip @ np.reshape(image.GetDirection(), (3, 3)) @ np.diag(image.GetSpacing())
    matrix[:3, 3] = flip @ np.asarray(image.GetOrigin())
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    node.CreateDefaultDisplayNodes()
    return node
