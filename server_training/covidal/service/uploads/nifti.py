"""The header of an uploaded NIfTI (NIfTI-1 or NIfTI-2, one file, plain or gzipped), read in Python, and the scan
for NaN and infinite voxels that ITK's reader would turn into 0 without a word.

Refused (Invalid, 422): a header that is neither NIfTI-1 nor NIfTI-2 (either byte order), a header of a
``.hdr``/``.img`` pair, fewer than 3 dimensions or more than one volume (a 4D series), a size below 1, a
datatype that is not an integer or float scalar (complex, RGB, 128-bit), a ``bitpix`` that does not match it,
a voxel offset before the header's end or beyond :data:`MAX_EXTENSION_BYTES` of extensions.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidal.service.store.errors import Invalid
from covidal.service.uploads.limits import VoxelLayout

HEADER_BYTES = 544  # a NIfTI-2 header plus its extension flag; a NIfTI-1 header is 348 + 4
MAX_EXTENSION_BYTES = 1 << 20
# NIfTI datatype code -> numpy type (without byte order)
DATATYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}
_SCAN_BYTES = 16 << 20
_SINGLE_FILE = "upload one single-file .nii or .nii.gz"


@dataclass(frozen=True)
class NiftiHeader:
    """An accepted NIfTI header.

    Attributes:
        layout: dims ``(i, j, k)`` and bytes per voxel.
        dtype: the voxels' numpy type with byte order, e.g. ``"<f4"``.
        data_offset: where the voxels start in the (decompressed) file.
        gzipped: whether the file is gzip-compressed.
    """

    layout: VoxelLayout
    dtype: str
    data_offset: int
    gzipped: bool

    @property
    def float_voxels(self) -> bool:
        return np.dtype(self.dtype).kind == "f"


def read_nifti_head(path: Path) -> tuple[bytes, bool]:
    """``(first HEADER_BYTES bytes, gzipped)`` of the file at ``path``, decompressed if it is gzipped.

    Raises:
        Invalid: a gzip stream that cannot be read.
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as stream:
            return stream.read(HEADER_BYTES), gzipped
    except (OSError, EOFError, zlib.error) as error:
        raise Invalid(f"not a readable gzip file: {error}") from None


def parse_nifti_header(head: bytes, gzipped: bool) -> NiftiHeader:
    """The NIfTI header at the start of ``head`` (see :func:`read_nifti_head`).

    Raises:
        Invalid: as the module docstring lists.
    """
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:
            return _header(order, head, gzipped, nifti2=False)
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:
            return _header(order, head, gzipped, nifti2=True)
    raise Invalid("not a NIfTI-1 or NIfTI-2 file (its first 4 bytes are not the header size)")


def _header(order: str, head: bytes, gzipped: bool, nifti2: bool) -> NiftiHeader:
    if nifti2:
        magic, single = head[4:8], b"n+2\x00"
        datatype, bitpix = struct.unpack(order + "2h", head[12:16])
        ndim, *dims = struct.unpack(order + "8q", head[16:80])
        offset, minimum = struct.unpack(order + "q", head[168:176])[0], 544
    else:
        magic, single = head[344:348], b"n+1\x00"
        ndim, *dims = struct.unpack(order + "8h", head[40:56])
        datatype, bitpix = struct.unpack(order + "2h", head[70:74])
        offset, minimum = struct.unpack(order + "f", head[108:112])[0], 352
    if magic != single:
        pair = magic in (b"ni1\x00", b"ni2\x00")
        raise Invalid(
            f"the NIfTI header {'belongs to a .hdr/.img pair' if pair else 'has no NIfTI magic'}: {_SINGLE_FILE}"
        )
    return NiftiHeader(
        VoxelLayout(_dims(ndim, dims), _bytes_per_voxel(datatype, bitpix)),
        order + DATATYPES[datatype],
        _offset(offset, minimum),
        gzipped,
    )


def _dims(ndim: int, dims: list[int]) -> tuple[int, int, int]:
    if not 1 <= ndim <= 7:
        raise Invalid(f"the NIfTI header's dimension count is {ndim}; expected 3")
    if ndim < 3:
        raise Invalid(f"the NIfTI holds a {ndim}D image; expected a 3D volume")
    if min(dims[:ndim]) < 1:
        raise Invalid(f"the NIfTI header's sizes {tuple(dims[:ndim])} must all be >= 1")
    if math.prod(dims[3:ndim]) != 1:
        raise Invalid(
            f"the NIfTI holds {math.prod(dims[3:ndim])} volumes (sizes {tuple(dims[:ndim])}); expected one 3D volume"
        )
    return dims[0], dims[1], dims[2]


def _bytes_per_voxel(datatype: int, bitpix: int) -> int:
    if datatype not in DATATYPES:
        raise Invalid(
            f"NIfTI datatype {datatype} is not accepted: expected integer or float intensities "
            "(not complex, RGB or 128-bit)"
        )
    size = np.dtype(DATATYPES[datatype]).itemsize
    if bitpix != size * 8:
        raise Invalid(f"the NIfTI header's bitpix {bitpix} does not match its datatype {datatype} ({size * 8} bits)")
    return size


def _offset(offset: float, minimum: int) -> int:
    if not (math.isfinite(offset) and offset == int(offset) and minimum <= offset <= minimum + MAX_EXTENSION_BYTES):
        raise Invalid(
            f"the NIfTI voxel offset {offset} must be a whole number from {minimum} to {minimum + MAX_EXTENSION_BYTES}"
        )
    return int(offset)


def check_finite_voxels(path: Path, header: NiftiHeader) -> None:
    """Invalid when the float voxels of the NIfTI at ``path`` hold NaN or infinity (read chunk by chunk, as stored).

    Raises:
        Invalid: a non-finite voxel (naming its index), or a file that ends before its voxels do.
    """
    dtype = np.dtype(header.dtype)
    left, index = header.layout.nbytes, 0
    step = _SCAN_BYTES - _SCAN_BYTES % dtype.itemsize
    with gzip.open(path, "rb") if header.gzipped else open(path, "rb") as stream:
        stream.seek(header.data_offset)
        while left:
            chunk = stream.read(min(step, left))
            if not chunk or len(chunk) % dtype.itemsize:
                raise Invalid("the NIfTI file ends before its voxels do (truncated)")
            values = np.frombuffer(chunk, dtype)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise Invalid(
                    f"the upload holds NaN or infinite voxels (the first at voxel {index + int(bad[0])}); "
                    "fix or replace them before uploading"
                )
            left, index = left - len(chunk), index + values.size
