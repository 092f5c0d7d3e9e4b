"""Uploaded volumes: names, file suffixes, DICOM zips, and reading a stored file back as a :class:`Volume`.

A volume is kept exactly as received (NRRD, NIfTI, or a zip of one DICOM
series); it is read again whenever its voxels are needed. Every problem with
an upload is raised as :class:`~covidal.service.store.errors.Invalid` (422)
with a message naming the volume.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np

from covidal.data.io import is_dicom_series_dir, read_volume
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat, VolumeGeometry, check_text

GZIP_MAGIC = b"\x1f\x8b"
# A zip member list beyond this is refused before anything is extracted (the expanded size too: zip bombs).
MAX_ZIP_MEMBERS = 10_000


class UploadTooLarge(Invalid):
    """The upload exceeds the service's size limit (413)."""


def check_plain_name(name: object, what: str) -> str:
    """``name`` if it is printable text without path separators and not ``.``/``..``; Invalid otherwise.

    Names are labels (files are stored under random names) but clients save downloads under them.
    """
    text = check_text(name, what, 200)
    if "/" in text or "\\" in text or text.strip() in (".", "..") or "\x00" in text:
        raise Invalid(f"{what} must be a plain name without '/', '\\' or '..', got {text!r}")
    return text


def stored_suffix(volume_format: VolumeFormat, first_bytes: bytes) -> str:
    """The suffix to store an upload under, so SimpleITK recognises it (gzipped NIfTI starts with the gzip magic)."""
    if volume_format is VolumeFormat.NRRD:
        return ".nrrd"
    if volume_format is VolumeFormat.NIFTI:
        return ".nii.gz" if first_bytes.startswith(GZIP_MAGIC) else ".nii"
    return ".zip"


def read_stored_volume(path: Path, volume_format: VolumeFormat, max_expanded_bytes: int) -> Volume:
    """The volume in a stored upload, ``array`` ``[K, J, I]`` of a real (integer or float) dtype.

    Raises:
        Invalid: the file cannot be read as a 3D scalar volume (corrupt, truncated, 2D, NaN, a
            non-numeric dtype), or a zip holds no DICOM series, several, or unsafe member names.
    """
    if volume_format is VolumeFormat.DICOM_ZIP:
        with tempfile.TemporaryDirectory(prefix="covidal-dicom-") as folder:
            volume = read_upload(extract_dicom_zip(path, Path(folder), max_expanded_bytes), "the DICOM series")
    else:
        volume = read_upload(path, "the file")
    check_intensities(volume.array.dtype)
    return volume


def check_intensities(dtype: np.dtype) -> None:
    """Invalid naming ``dtype`` unless voxels of it are integer or float intensities."""
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise Invalid(f"the upload holds {dtype} voxels; expected integer or float intensities (e.g. HU)")


def geometry_of(volume: Volume) -> VolumeGeometry:
    return VolumeGeometry(volume.shape_ijk, volume.spacing, volume.origin, tuple(volume.direction.ravel()))


def extract_dicom_zip(path: Path, folder: Path, max_expanded_bytes: int) -> Path:
    """Extract the zip at ``path`` into ``folder`` and return the one sub-folder holding a DICOM series.

    Raises:
        Invalid: not a zip, a member name that is absolute or has ``..`` (path traversal), too many
            members, no folder with a DICOM series, or several. UploadTooLarge: too many expanded bytes.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            check_zip_members(members, max_expanded_bytes)
            archive.extractall(folder)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as error:
        # an OSError names the extraction folder, a server path: only its reason is the client's business
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise Invalid(f"the upload is not a readable zip file: {reason}") from None
    series = [
        candidate
        for candidate in (folder, *sorted(p for p in folder.rglob("*") if p.is_dir()))
        if is_dicom_series_dir(candidate)
    ]
    if not series:
        raise Invalid("the zip holds no DICOM series: zip the folder of one series' .dcm files")
    if len(series) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in series[:5])
        raise Invalid(f"the zip holds DICOM series in {len(series)} folders ({names}); upload one series per zip")
    return series[0]


def check_zip_members(members: list[zipfile.ZipInfo], max_expanded_bytes: int) -> None:
    """Invalid for too many members or a name that leads out of the extraction folder; UploadTooLarge when the
    members' declared sizes (which extraction holds them to) add up to more than ``max_expanded_bytes``."""
    if len(members) > MAX_ZIP_MEMBERS:
        raise Invalid(f"the zip has {len(members)} members; at most {MAX_ZIP_MEMBERS} are accepted")
    for member in members:
        name = member.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise Invalid(f"the zip member name {name!r} points outside the zip's folder; refused")
    expanded = sum(member.file_size for member in members)
    if expanded > max_expanded_bytes:
        raise UploadTooLarge(
            f"the zip expands to {expanded} bytes, over the limit of {max_expanded_bytes} bytes "
            "(4 per voxel of covidal serve --max-voxels)"
        )


def read_upload(path: Path, label: str) -> Volume:
    """:func:`read_volume`, its errors as :func:`reader_errors` gives them."""
    with reader_errors(path, label):
        return read_volume(path)


@contextmanager
def reader_errors(path: Path, label: str) -> Iterator[None]:
    """A reader's CovidalError inside the block as Invalid, with ``label`` for the server's ``path`` (meaningless
    to a client)."""
    try:
        yield
    except CovidalError as error:
        raise Invalid(f"the upload is not a readable 3D volume: {str(error).replace(str(path), label)}") from error
