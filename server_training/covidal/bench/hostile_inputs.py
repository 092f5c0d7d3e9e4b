"""Hostile uploads for ``covidal serve``: one per known way a file has hurt the service, and random mutations.

Each :class:`HostileUpload` is a request body with the answer the service must give. The fixed set
reproduces what was seen against an unhardened service: a reader crash from one long ASCII value
(the process died), header fields that make the reader open server files (``data file``), headers whose
voxels decode to far more than the upload (gzip NRRD, NIfTI, zip bombs), and NaN voxels that a reader
turned into zeros. :func:`mutated_uploads` damages small valid files at random (seeded), for
``covidal bench-hostile``; the tests draw theirs with hypothesis.

Nothing here talks to a server: the benchmark and the tests send the bodies.
"""

from __future__ import annotations

import gzip
import io
import locale
import random
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

# A zip bomb's member: zeros in steps of this size, so no bomb is ever whole in memory.
_ZERO_CHUNK = bytes(1 << 20)
NIFTI_DATATYPES = {
    np.dtype(np.uint8): 2,
    np.dtype(np.int16): 4,
    np.dtype(np.int32): 8,
    np.dtype(np.float32): 16,
    np.dtype(np.float64): 64,
    np.dtype(np.int8): 256,
    np.dtype(np.uint16): 512,
}


@dataclass(frozen=True)
class HostileUpload:
    """One request body and what the service must answer.

    Attributes:
        name: what it tries, e.g. ``"nrrd-ascii-long-value"``.
        format: the upload's ``format`` query value (``nrrd``, ``nifti``, ``dicom-zip``).
        make: builds the body (some are large to build, so they are built when sent).
        status: the status the service must answer, or None when any 201 or 4xx will do (random mutations).
        words: words the error detail must contain.
        never: text the answer must not contain (e.g. the content of a server file).
        label: sent to a volume's label route (``PUT``) instead of the volume route.
    """

    name: str
    format: str
    make: Callable[[], bytes]
    status: int | None = 422
    words: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    label: bool = False


def nrrd(fields: str, data: bytes = b"") -> bytes:
    """A NRRD with an attached header of ``fields`` (lines without the magic) and ``data`` after the blank line."""
    return b"NRRD0004\n" + fields.encode() + b"\n\n" + data


def nifti1_header(dims_ijk: tuple[int, int, int], dtype: np.dtype | type, vox_offset: int = 352) -> bytes:
    """A little-endian single-file NIfTI-1 header (348 bytes plus the 4-byte extension flag): voxel sizes 1 mm,
    identity orientation (qform code 1)."""
    dtype = np.dtype(dtype)
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, *dims_ijk, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, NIFTI_DATATYPES[dtype], dtype.itemsize * 8)
    struct.pack_into("<8f", header, 76, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<f", header, 108, float(vox_offset))
    struct.pack_into("<ff", header, 112, 1.0, 0.0)  # scl_slope, scl_inter
    struct.pack_into("<hh", header, 252, 1, 0)  # qform_code, sform_code
    header[344:348] = b"n+1\x00"
    return bytes(header)


def crash_uploads() -> list[HostileUpload]:
    """Bodies that crashed the unhardened reader inside the service (SIGSEGV): long ASCII values, long fields."""
    ascii_value = nrrd("type: uchar\ndimension: 3\nsizes: 1 1 1\nencoding: ascii", b"A" * 1100 + b"\n")
    long_type = nrrd("type: " + "u" * 5000 + "\ndimension: 3\nsizes: 2 2 2\nencoding: raw", bytes(8))
    long_direction = nrrd(
        "type: uchar\ndimension: 3\nsizes: 2 2 2\nencoding: raw\nspace: left-posterior-superior\n"
        "space directions: (1" + "0" * 2000 + ",0,0) (0,1,0) (0,0,1)",
        bytes(8),
    )
    return [
        HostileUpload("nrrd-ascii-long-value", "nrrd", lambda: ascii_value, words=("ascii",)),
        HostileUpload("nrrd-ascii-long-value-label", "nrrd", lambda: ascii_value, words=("ascii",), label=True),
        HostileUpload("nrrd-long-type-field", "nrrd", lambda: long_type, words=("line",)),
        HostileUpload("nrrd-long-space-directions", "nrrd", lambda: long_direction, words=("line",)),
    ]


def file_reading_uploads(database: Path) -> list[HostileUpload]:
    """Headers that make a NRRD reader open a file of the server: ``/etc/passwd`` quoted back in the error, the
    service's own SQLite file (``database``, absolute and relative to the stored upload) read as voxels."""
    passwd = nrrd("type: uchar\ndimension: 3\nsizes: 1 1 1\nencoding: ascii\ndata file: /etc/passwd\nline skip: 1")
    raw_fields = "type: uchar\ndimension: 3\nsizes: 16 16 16\nencoding: raw\ndata file: {}"
    absolute = nrrd(raw_fields.format(database))
    relative = nrrd(raw_fields.format(f"../../../{database.name}"))  # from files/volumes/<project>/
    zero = nrrd("type: uchar\ndimension: 3\nsizes: 1024 1024 400\nencoding: raw\ndata file: /dev/zero")
    never = ("root:", "/bin/", "SQLite")
    return [
        HostileUpload("nrrd-data-file-passwd", "nrrd", lambda: passwd, words=("data file",), never=never),
        HostileUpload("nrrd-data-file-database", "nrrd", lambda: absolute, words=("data file",), never=never),
        HostileUpload("nrrd-data-file-relative", "nrrd", lambda: relative, words=("data file",), never=never),
        HostileUpload("nrrd-data-file-dev-zero", "nrrd", lambda: zero, words=("data file",), never=never),
        HostileUpload("nrrd-data-file-label", "nrrd", lambda: passwd, words=("data file",), never=never, label=True),
    ]


def bomb_uploads(max_voxels: int, max_zip_bytes: int) -> list[HostileUpload]:
    """Small bodies that decode to more voxels than ``max_voxels`` (413), or a DICOM zip that expands past
    ``max_zip_bytes`` (413): gzip NRRD, gzip NIfTI, a zip of zeros."""
    i, j = 512, 512
    k = max_voxels // (i * j) + 1
    return [
        HostileUpload(
            "nrrd-gzip-bomb",
            "nrrd",
            status=413,
            words=("voxels", "--max-voxels"),
            make=lambda: nrrd(f"type: uchar\ndimension: 3\nsizes: {i} {j} {k}\nencoding: gzip", _gzip_zeros(i * j * k)),
        ),
        HostileUpload(
            "nifti-gzip-bomb",
            "nifti",
            status=413,
            words=("voxels", "--max-voxels"),
            make=lambda: _gzip_zeros(i * j * k, prefix=nifti1_header((i, j, k), np.uint8)),
        ),
        HostileUpload(
            "dicom-zip-bomb",
            "dicom-zip",
            status=413,
            words=("expands", "bytes"),
            make=lambda: _zip_of_zeros(max_zip_bytes + 1),
        ),
    ]


def nan_uploads(folder: Path) -> list[HostileUpload]:
    """Float volumes with NaN or infinite voxels (a NIfTI reader turns them into 0 silently): 422 naming NaN."""
    volume = np.zeros((3, 4, 5), np.float32)
    volume[1, 2, 3], volume[0, 0, 1] = np.nan, np.inf
    bodies = {suffix: _written(volume, folder / f"nan{suffix}") for suffix in (".nii", ".nii.gz", ".nrrd")}
    return [
        HostileUpload(
            f"non-finite-voxels{suffix}",
            "nrrd" if suffix == ".nrrd" else "nifti",
            lambda body=body: body,
            words=("NaN",),
        )
        for suffix, body in bodies.items()
    ]


def mutated_uploads(seed: int, count: int) -> Iterator[HostileUpload]:
    """``count`` random damages of small valid NRRD, NIfTI and DICOM-zip files (any 201 or 4xx will do)."""
    rng = random.Random(seed)
    bases = _valid_bases()
    for number in range(count):
        volume_format, base = rng.choice(bases)
        body = _mutate(base, rng)
        yield HostileUpload(f"mutation-{number}", volume_format, lambda body=body: body, status=None)


def _valid_bases() -> list[tuple[str, bytes]]:
    """Small valid uploads: NRRD raw and gzip, NIfTI plain and gzip, a zip of a 2-slice DICOM series."""
    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 400, (4, 6, 5)).astype(np.int16)
    with tempfile.TemporaryDirectory(prefix="covidal-hostile-") as folder:
        folder = Path(folder)
        bases = [
            ("nrrd", _written(volume, folder / "a.nrrd", compress=False)),
            ("nrrd", _written(volume, folder / "b.nrrd")),
            ("nifti", _written(volume, folder / "c.nii", compress=False)),
            ("nifti", _written(volume, folder / "d.nii.gz")),
            ("dicom-zip", _zip(dicom_series(volume[:2], folder))),
        ]
    return bases


_NASTY_VALUES = [
    "0",
    "-1",
    "3",
    "99999999999",
    "1e400",
    "nan",
    "inf",
    "",
    " ",
    "x" * 300,
    "ascii",
    "hex",
    "bzip2",
    "/etc/passwd",
    "../../../store.sqlite3",
    "1 1",
    "1 1 1 1",
    "1.5 2 2",
    "block",
    "uchar",
    "double",
    "(nan,0,0) (0,1,0) (0,0,1)",
    "(1,0,0) (0,1,0)",
    "none",
    "\x00",
    "\xff",
]
_NASTY_LINES = [
    "data file: /etc/passwd",
    "encoding: ascii",
    "line skip: 5",
    "byte skip: -1",
    "dimension: 2",
    "sizes: 0 1 1",
    "space directions: (1e308,0,0) (0,1,0) (0,0,1)",
    "type: block",
    "block size: 9",
    "k" * 2000 + ":=v",
    "# " + "c" * 5000,
    "unknown field: 1",
    "space origin: (nan,nan,nan)",
]


def _mutate(base: bytes, rng: random.Random) -> bytes:
    """One random damage of ``base``: header field swaps and insertions, byte flips, cuts, splices, nesting."""
    body = bytearray(base)
    kind = rng.randrange(9)
    if kind == 0 and base.startswith(b"NRRD"):  # replace one field's value
        head, _, data = base.partition(b"\n\n")
        lines = head.split(b"\n")
        index = rng.randrange(1, len(lines))
        name = lines[index].split(b":", 1)[0]
        lines[index] = name + b": " + rng.choice(_NASTY_VALUES).encode("latin-1")
        return b"\n".join(lines) + b"\n\n" + data
    if kind == 1 and base.startswith(b"NRRD"):  # add a line
        head, _, data = base.partition(b"\n\n")
        return head + b"\n" + rng.choice(_NASTY_LINES).encode("latin-1") + b"\n\n" + data
    if kind == 2:  # flip bytes (header-heavy: most flips land in the first 400 bytes)
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(min(len(body), 400) if rng.random() < 0.8 else len(body))
            body[position] = rng.randrange(256)
        return bytes(body)
    if kind == 3:  # cut
        return bytes(body[: rng.randrange(len(body))])
    if kind == 4:  # overwrite a NIfTI-1 field with an extreme value (dims, datatype, bitpix, vox_offset, pixdim)
        offset, fmt = rng.choice(
            [
                (40, "<h"),
                (42, "<h"),
                (46, "<h"),
                (70, "<h"),
                (72, "<h"),
                (108, "<f"),
                (80, "<f"),
                (112, "<f"),
                (0, "<i"),
            ]
        )
        value = rng.choice([0, -1, 7, 32767, -32768] if fmt != "<f" else [0.0, -1.0, 1e38, float("nan"), float("inf")])
        raw = bytearray(gzip.decompress(base)) if base[:2] == b"\x1f\x8b" else body
        if len(raw) >= offset + 4:
            struct.pack_into(fmt, raw, offset, value)
        return gzip.compress(bytes(raw)) if base[:2] == b"\x1f\x8b" else bytes(raw)
    if kind == 5:  # random bytes
        return rng.randbytes(rng.randrange(1, 2048))
    if kind == 6:  # a zip with the base under a hostile name, or the base twice
        name = rng.choice(["../x.dcm", "/abs.dcm", "a/../../b.dcm", "C:/x.dcm", "ok.dcm", "d/" * 50 + "x.dcm"])
        return _zip({name: base, "second/" + name.lstrip("/"): base})
    if kind == 7:  # a header that promises more data than follows
        return bytes(body) + rng.randbytes(rng.randrange(64))
    return bytes(body[: len(body) // 2]) + bytes(body[len(body) // 2 :])[::-1]  # scrambled second half


def _written(volume: np.ndarray, path: Path, compress: bool = True) -> bytes:
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(path), compress)
    return path.read_bytes()


def dicom_series(volume: np.ndarray, folder: Path) -> dict[str, bytes]:
    """``volume`` ``[K, J, I]`` (int16) as the files of a DICOM series written by SimpleITK (GDCM), by file name;
    ``folder`` holds them while they are written."""
    series = folder / "series"
    series.mkdir()
    image = sitk.GetImageFromArray(volume)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        _write_slices(writer, image, series)
    finally:  # GDCM's writer sets this process's locale to "C" (text files would then be read as ASCII)
        locale.setlocale(locale.LC_ALL, saved_locale)
    return {path.name: path.read_bytes() for path in sorted(series.iterdir())}


def _write_slices(writer: sitk.ImageFileWriter, image: sitk.Image, series: Path) -> None:
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        for key, value in (
            ("0020|000e", "1.2.826.0.1.3680043.2.1125.1"),
            ("0020|0013", str(k + 1)),
            ("0020|0032", f"0\\0\\{k}"),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0008|0060", "CT"),
        ):
            plane.SetMetaData(key, value)
        writer.SetFileName(str(series / f"{k:03d}.dcm"))
        writer.Execute(plane)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _gzip_zeros(size: int, prefix: bytes = b"") -> bytes:
    """A gzip stream of ``prefix`` followed by ``size`` zero bytes, compressed chunk by chunk."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    parts = [compressor.compress(prefix)]
    left = size
    while left:
        step = min(left, len(_ZERO_CHUNK))
        parts.append(compressor.compress(_ZERO_CHUNK[:step]))
        left -= step
    parts.append(compressor.flush())
    return b"".join(parts)


def _zip_of_zeros(size: int) -> bytes:
    """A zip holding one member of ``size`` zero bytes (deflated: about a thousandth of that)."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("series/zeros.dcm", "w", force_zip64=True) as member,
    ):
        left = size
        while left:
            step = min(left, len(_ZERO_CHUNK))
            member.write(_ZERO_CHUNK[:step])
            left -= step
    return buffer.getvalue()
