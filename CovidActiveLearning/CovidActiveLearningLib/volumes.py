"""Scalar volumes of the scene: checks, content hash, NRRD files for the backend, DICOM series reading.

Hashing and writing the upload file take seconds for a 512 x 512 x 300 CT, so they work on a
:class:`VolumeSnapshot` (numpy and the grid, read on the GUI thread without a copy) and touch no
MRML node: the logic runs them in a worker thread like a backend request.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import ijk_to_ras_matrix, volume_dims

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
        raise UserFacingError(
            f"'{volume_node.GetName()}' is a 2D image ({dims[0]} x {dims[1]} x {dims[2]} voxels); "
            "the backend needs a CT volume of several axial slices."
        )
    if volume_node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise UserFacingError(f"'{volume_node.GetName()}' has several components per voxel; use a CT volume.")
    ijk_to_ras_matrix(volume_node)  # refuses a volume under a transform


@dataclass(frozen=True)
class VolumeSnapshot:
    """What hashing and uploading a volume need, read from the node on the GUI thread (cheap: no copy).

    Attributes:
        voxels: ``[K, J, I]`` view of the node's image data (valid while the array lives, even if the node
            gets other image data meanwhile).
        ijk_to_ras: ``[4, 4]`` IJK-to-RAS matrix.
        key: identifies this content of this node within the session (node id, image data and its
            modification time, rounded matrix): equal keys mean the hash is still valid.
    """

    voxels: np.ndarray
    ijk_to_ras: np.ndarray
    key: tuple


def snapshot(volume_node) -> VolumeSnapshot:
    """The node's voxels and grid for :func:`content_hash` and :func:`write_nrrd` (which then need no MRML).

    Raises:
        UserFacingError: as :func:`check_annotatable` (no image data, a transform).
    """
    image = volume_node.GetImageData()
    matrix = ijk_to_ras_matrix(volume_node)
    voxels = slicer.util.arrayFromVolume(volume_node)
    key = (
        volume_node.GetID(),
        image.GetAddressAsString("vtkImageData"),
        image.GetMTime(),
        voxels.shape,
        np.round(matrix, 3).tobytes(),
    )
    return VolumeSnapshot(voxels, matrix, key)


def content_hash(volume: VolumeSnapshot) -> str:
    """SHA-256 of the voxels (their dtype and values) and the grid (dims and IJK-to-RAS to 1 µm).

    The same CT loaded twice (from a file or from the DICOM database) hashes the same, so it is
    uploaded once. Touches no MRML node, so it runs in a worker thread (hashlib releases the GIL).
    """
    voxels = np.ascontiguousarray(volume.voxels)
    digest = hashlib.sha256()
    digest.update(f"{voxels.dtype.str}{voxels.shape}".encode())
    digest.update(np.round(volume.ijk_to_ras, 3).tobytes())
    digest.update(memoryview(voxels).cast("B"))
    return digest.hexdigest()


class HashCache:
    """Content hashes of this session's volumes, so an unchanged CT is hashed once, not at every request."""

    def __init__(self) -> None:
        self._hashes: dict[tuple, str] = {}

    def get(self, volume: VolumeSnapshot) -> str | None:
        return self._hashes.get(volume.key)

    def put(self, volume: VolumeSnapshot, digest: str) -> None:
        self._hashes = {key: value for key, value in self._hashes.items() if key[0] != volume.key[0]}
        self._hashes[volume.key] = digest


_NRRD_TYPES = {
    "i1": "signed char",
    "u1": "uchar",
    "i2": "short",
    "u2": "ushort",
    "i4": "int",
    "u4": "uint",
    "i8": "longlong",
    "u8": "ulonglong",
    "f4": "float",
    "f8": "double",
}
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
_CHUNK_BYTES = 1 << 22


def write_nrrd(volume: VolumeSnapshot, path: Path, level: int = 1) -> Path:
    """Write the voxels as a gzip NRRD (geometry in LPS, as NRRD files hold it) to ``path``.

    Touches no MRML node, so it runs in a worker thread (zlib releases the GIL while it compresses).

    Args:
        level: gzip level (1: fastest; the upload goes to the backend once).

    Raises:
        UserFacingError: a voxel type NRRD has no name for, or the file could not be written.
    """
    voxels = np.ascontiguousarray(volume.voxels)
    kind = f"{voxels.dtype.kind}{voxels.dtype.itemsize}"
    if kind not in _NRRD_TYPES or voxels.ndim != 3:
        raise UserFacingError(
            f"Cannot send voxels of type {voxels.dtype} x {voxels.ndim}D; convert the volume to a "
            "scalar CT volume first."
        )
    voxels = voxels.astype(voxels.dtype.newbyteorder("<"), copy=False)
    lps = _LPS_FROM_RAS @ volume.ijk_to_ras[:3, :]
    columns = " ".join("(" + ",".join(repr(float(value)) for value in lps[:, axis]) + ")" for axis in range(3))
    header = (
        f"NRRD0004\ntype: {_NRRD_TYPES[kind]}\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {voxels.shape[2]} {voxels.shape[1]} {voxels.shape[0]}\nspace directions: {columns}\n"
        f"kinds: domain domain domain\nendian: little\nencoding: gzip\n"
        f"space origin: ({','.join(repr(float(value)) for value in lps[:, 3])})\n\n"
    )
    path = Path(path).resolve()
    data = memoryview(voxels).cast("B")
    try:
        with path.open("wb") as file:
            file.write(header.encode("ascii"))
            compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: a gzip stream
            for start in range(0, len(data), _CHUNK_BYTES):
                file.write(compressor.compress(data[start : start + _CHUNK_BYTES]))
            file.write(compressor.flush())
    except OSError as error:
        raise UserFacingError(f"Could not write the volume to {path} ({error.strerror or error}).") from None
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
