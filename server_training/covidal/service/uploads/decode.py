"""Decoding one upload, in a child process forked by :mod:`.forkserver`: limits first, then the readers.

The child sets its resource limits (memory, CPU time, file size, and an alarm that ends it after the wall-clock
timeout), decodes the upload and answers on a ``SOCK_SEQPACKET`` socket with one JSON message (JSON, not
pickle: what a child that read hostile bytes says is data, never code): either ``{"volume": {"shape", "dtype",
"spacing", "origin", "direction"}}`` with one file descriptor attached, an anonymous file holding the voxels
(the service maps it, no copy through the socket), or ``{"refused": [error class name, message]}``. A reader
that crashes or is ended by a limit sends nothing: the service reads the missing answer as a refusal.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.data.io import dicom_series_files, read_dicom_image, read_image
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.headers import UploadHeader
from covidal.service.uploads.limits import DecodeLimits, VoxelLayout
from covidal.service.uploads.nifti import check_finite_voxels
from covidal.service.volumes import UploadTooLarge, check_intensities, extract_dicom_zip, reader_errors

REFUSALS = {cls.__name__: cls for cls in (Invalid, UploadTooLarge)}
MAX_MESSAGE_BYTES = 1 << 16


@dataclass(frozen=True)
class DecodeRequest:
    """One upload to decode.

    Attributes:
        path: the stored file.
        header: what :func:`~.headers.check_upload_header` found.
        limits: the voxel, zip and time limits.
        memory_bytes: address space the child may add to what it has when it starts.
        file_bytes: the largest file the child may write (a zip's member, the decoded voxels).
    """

    path: str
    header: UploadHeader
    limits: DecodeLimits
    memory_bytes: int
    file_bytes: int


def decode_upload(path: Path, header: UploadHeader, limits: DecodeLimits) -> Volume:
    """The volume of the upload at ``path``, ``array`` ``[K, J, I]`` of integer or float intensities.

    Raises:
        as :func:`decode_image`.
    """
    return Volume.from_sitk(decode_image(path, header, limits))


def decode_image(path: Path, header: UploadHeader, limits: DecodeLimits) -> sitk.Image:
    """The 3D scalar image of the upload at ``path`` (what :func:`decode_upload` makes a Volume of).

    Raises:
        Invalid: not a readable 3D scalar volume, NaN or infinite voxels (NIfTI floats are scanned as stored,
            since ITK's reader turns them into 0), a zip without exactly one DICOM series, voxels that are not
            integer or float intensities.
        UploadTooLarge: a DICOM series of more voxels than ``limits.max_voxels`` (counted from its headers).
    """
    if header.format is VolumeFormat.DICOM_ZIP:
        with tempfile.TemporaryDirectory(prefix="covidal-decode-") as folder:
            series = extract_dicom_zip(path, Path(folder), limits.max_zip_bytes)
            with reader_errors(series, "the DICOM series"):
                files = dicom_series_files(series)
            _check_series_voxels(files, limits)
            with reader_errors(series, "the DICOM series"):
                image = read_dicom_image(files, series)
    else:
        with reader_errors(path, "the file"):
            image = read_image(path)
        if header.nifti is not None and header.nifti.float_voxels:
            check_finite_voxels(path, header.nifti)
    check_intensities(sitk.GetArrayViewFromImage(image).dtype)
    return image


def serve_request(channel: socket.socket, request: DecodeRequest, voxels_file: int | None = None) -> None:
    """The child's whole life: limits, decode, answer (see the module docstring). ``voxels_file``: the anonymous
    file the voxels go in, made (and being allocated) by the service; None: the child makes one."""
    limit_resources(request)
    try:
        image = decode_image(Path(request.path), request.header, request.limits)
        voxels = sitk.GetArrayViewFromImage(image)  # no copy: written straight from the reader's buffer
        voxels_file = _write_voxels(voxels, voxels_file)
        answer = {
            "volume": {
                "shape": voxels.shape,
                "dtype": voxels.dtype.str,
                "spacing": image.GetSpacing(),
                "origin": image.GetOrigin(),
                "direction": np.reshape(image.GetDirection(), (3, 3)).tolist(),
            }
        }
    except tuple(REFUSALS.values()) as error:
        answer = {"refused": [type(error).__name__, str(error)]}
    except MemoryError:
        answer = {"refused": ["Invalid", "decoding the upload needs more memory than its limit allows"]}
    except (CovidalError, OSError, ValueError, RuntimeError) as error:
        answer = {"refused": ["Invalid", f"the upload could not be decoded: {type(error).__name__}: {error}"]}
    send(channel, answer, [voxels_file] if "volume" in answer else [])


def send(channel: socket.socket, message: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    """One JSON message (and ``fds``) on a SOCK_SEQPACKET socket."""
    socket.send_fds(channel, [json.dumps(message).encode()], list(fds))


def limit_resources(request: DecodeRequest) -> None:
    """Hold this process to ``request.memory_bytes`` more address space, ``limits.timeout_s`` of CPU time and of
    wall-clock time (SIGXCPU, SIGALRM: either ends it), files of at most ``request.file_bytes`` and no core dump;
    the hard limits too, for good."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    seconds = math.ceil(request.limits.timeout_s)
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(seconds)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails (EFBIG) rather than killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (request.file_bytes, request.file_bytes))
    address_space = _address_space_bytes()
    if address_space is not None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space + request.memory_bytes,) * 2)


def voxel_file() -> int:
    """A descriptor of a new anonymous file (memfd; an unlinked temporary file where there is none)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("covidal-voxels", os.MFD_CLOEXEC)
    fd, name = tempfile.mkstemp(prefix="covidal-voxels-")
    os.unlink(name)
    return fd


def _write_voxels(array: np.ndarray, fd: int | None) -> int:
    """Write the C-ordered ``array``'s bytes at the start of the anonymous file ``fd`` (a new one if None); its
    descriptor."""
    fd = voxel_file() if fd is None else fd
    with open(fd, "wb", closefd=False) as stream:
        stream.write(memoryview(array.reshape(-1).view(np.uint8)))
    return fd


def _address_space_bytes() -> int | None:
    """This process's address space now (Linux: /proc), or None where it cannot be known (no memory limit then)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _check_series_voxels(files: tuple[str, ...], limits: DecodeLimits) -> None:
    """UploadTooLarge before reading a DICOM series of more voxels than allowed (slices x the first's size)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return  # the series reader reports what is wrong with the file
    width, height, *depth = reader.GetSize()
    limits.check_voxels(VoxelLayout((width, height, math.prod(depth) * len(files)), 2), "the DICOM series")
