"""The first check of an upload, in Python, before any reader decodes it: its header and its decoded size."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.limits import DECODED_BYTES_PER_VOXEL, DecodeLimits
from covidal.service.uploads.nifti import NiftiHeader, parse_nifti_header, read_nifti_head
from covidal.service.uploads.nrrd import MAX_HEADER_BYTES, parse_nrrd_header
from covidal.service.volumes import check_zip_members


@dataclass(frozen=True)
class UploadHeader:
    """What the header check learned about an upload.

    Attributes:
        format: how the upload is encoded.
        voxels: the voxels its header announces; None for a DICOM zip (its slices are counted when decoded).
        stored_bytes: the bytes its voxels take as stored (voxels x bytes per voxel); None for a DICOM zip.
        nifti: a NIfTI's header (the decoder scans its float voxels for NaN); None for other formats.
    """

    format: VolumeFormat
    voxels: int | None
    stored_bytes: int | None = None
    nifti: NiftiHeader | None = None

    def decoded_bytes(self, limits: DecodeLimits) -> int:
        """The most bytes its decoded voxels may take: its voxels (a DICOM zip: the limit's) at 8 bytes each."""
        return (limits.max_voxels if self.voxels is None else self.voxels) * DECODED_BYTES_PER_VOXEL


def check_upload_header(path: Path, volume_format: VolumeFormat, limits: DecodeLimits) -> UploadHeader:
    """Read the header of the stored upload at ``path`` and check it and its size against ``limits``.

    Raises:
        Invalid: a header the format's module refuses (:mod:`.nrrd`, :mod:`.nifti`), a zip that cannot be read
            or has unsafe member names. UploadTooLarge: more voxels than ``limits.max_voxels``, or a zip that
            expands past ``limits.max_zip_bytes``.
    """
    if volume_format is VolumeFormat.DICOM_ZIP:
        _check_zip(path, limits.max_zip_bytes)
        return UploadHeader(volume_format, None)
    try:
        if volume_format is VolumeFormat.NRRD:
            with open(path, "rb") as stream:
                layout = parse_nrrd_header(stream.read(MAX_HEADER_BYTES)).layout
            nifti = None
        else:
            nifti = parse_nifti_header(*read_nifti_head(path))
            layout = nifti.layout
    except Invalid as error:
        raise Invalid(f"the upload is not a readable 3D volume: {error}") from None
    limits.check_voxels(layout, "the volume")
    return UploadHeader(volume_format, layout.voxels, layout.nbytes, nifti)


def _check_zip(path: Path, max_expanded_bytes: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_members(archive.infolist(), max_expanded_bytes)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, ValueError) as error:
        raise Invalid(f"the upload is not a readable zip file: {error}") from None
