"""Decoding one upload, in a child process forked by :mod:`.forkserver`: limits first, then the readers.

The child sends its pid, sets its resource limits, decodes the upload and sends back either
``("volume", shape, dtype, spacing, origin, direction)`` followed by the voxels' bytes, or
``("refused", error class name, message)``. A reader that crashes or is killed by a limit sends nothing more:
the service (:mod:`.sandbox`) reads the missing answer as a refusal.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import tempfile
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.data.io import dicom_series_files
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.headers import UploadHeader
from covidal.service.uploads.limits import DecodeLimits, VoxelLayout
from covidal.service.uploads.nifti import check_finite_voxels
from covidal.service.volumes import UploadTooLarge, check_intensities, extract_dicom_zip, read_upload

REFUSALS = {cls.__name__: cls for cls in (Invalid, UploadTooLarge)}


@dataclass(frozen=True)
class DecodeRequest:
    """One upload to decode: the stored file, its checked header, the limits, and the address space (bytes)
    the child may add to what it has when it starts."""

    path: str
    header: UploadHeader
    limits: DecodeLimits
    memory_bytes: int


def decode_upload(path: Path, header: UploadHeader, limits: DecodeLimits) -> Volume:
    """The volume of the upload at ``path``, ``array`` ``[K, J, I]`` of integer or float intensities.

    Raises:
        Invalid: not a readable 3D scalar volume, NaN or infinite voxels (NIfTI floats are scanned as stored,
            since ITK's reader turns them into 0), a zip without exactly one DICOM series.
        UploadTooLarge: a DICOM series of more voxels than ``limits.max_voxels`` (counted from its headers).
    """
    if header.format is VolumeFormat.DICOM_ZIP:
        with tempfile.TemporaryDirectory(prefix="covidal-decode-") as folder:
            series = extract_dicom_zip(path, Path(folder), limits.max_zip_bytes)
            _check_series_voxels(series, limits)
            volume = read_upload(series, "the DICOM series")
    else:
        volume = read_upload(path, "the file")
        if header.nifti is not None and header.nifti.float_voxels:
            check_finite_voxels(path, header.nifti)
    return check_intensities(volume)


def serve_request(connection: Connection, request: DecodeRequest) -> None:
    """The child's whole life: pid, limits, decode, answer (see the module docstring)."""
    connection.send(os.getpid())
    limit_resources(request.memory_bytes, request.limits)
    array = None
    try:
        volume = decode_upload(Path(request.path), request.header, request.limits)
        array = np.ascontiguousarray(volume.array)
        answer = ("volume", array.shape, array.dtype.str, volume.spacing, volume.origin, volume.direction.tolist())
    except tuple(REFUSALS.values()) as error:
        answer = ("refused", type(error).__name__, str(error))
    except MemoryError:
        answer = ("refused", "Invalid", "decoding the upload needs more memory than its limit allows")
    except (CovidalError, OSError, ValueError, RuntimeError) as error:
        answer = ("refused", "Invalid", f"the upload could not be decoded: {type(error).__name__}: {error}")
    connection.send(answer)
    if array is not None:
        connection.send_bytes(array.reshape(-1).view(np.uint8))


def limit_resources(memory_bytes: int, limits: DecodeLimits) -> None:
    """Hold this process to ``memory_bytes`` more address space, ``limits.timeout_s`` of CPU time, files of at
    most ``limits.max_zip_bytes`` (a zip's members) and no core dump; the hard limits too, for good."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    seconds = math.ceil(limits.timeout_s)
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails (EFBIG) rather than killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_zip_bytes + 1,) * 2)
    address_space = _address_space_bytes()
    if address_space is not None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space + memory_bytes,) * 2)


def _address_space_bytes() -> int | None:
    """This process's address space now (Linux: /proc), or None where it cannot be known (no memory limit then)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _check_series_voxels(folder: Path, limits: DecodeLimits) -> None:
    """UploadTooLarge before reading a DICOM series of more voxels than allowed (slices x the first's size)."""
    try:
        files = dicom_series_files(folder)
    except CovidalError as error:
        raise Invalid(f"the zip holds no single DICOM series: {str(error).replace(str(folder), 'the zip')}") from None
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return  # the series reader reports what is wrong with the file
    width, height, *depth = reader.GetSize()
    limits.check_voxels(VoxelLayout((width, height, math.prod(depth) * len(files)), 2), "the DICOM series")
