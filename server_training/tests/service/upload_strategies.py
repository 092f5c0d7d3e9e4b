"""Hypothesis strategies of upload bodies: NRRD and NIfTI headers built field by field (valid values mixed with
hostile ones) with fitting, short, long or random voxel data, and zips of hostile member names and contents."""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from covidal.bench.hostile_inputs import dicom_series, nifti1_header

NRRD_TYPES = {
    "uchar": 1,
    "signed char": 1,
    "short": 2,
    "ushort": 2,
    "int": 4,
    "uint": 4,
    "float": 4,
    "double": 8,
    "int16": 2,
    "uint8_t": 1,
    "longlong": 8,
}
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "nan",
        "-1",
        "0",
        "1e400",
        "99999999999999999999",
        "\x00",
        "x" * 300,
        "/etc/passwd",
        "../../store.sqlite3",
        "(nan,0,0) (0,1,0) (0,0,1)",
        "\u00e9",
    ]
)
# Whitespace-separated values as an ASCII NRRD holds them; one of about 1,000 characters crashed ITK's reader.
ASCII_VALUES = st.lists(
    st.one_of(
        st.integers(-1000, 1000).map(str),
        st.text("0123456789.eE+-naifA", min_size=1, max_size=20),
        st.text("0123456789A", min_size=900, max_size=1300),
    ),
    min_size=1,
    max_size=8,
).map(lambda values: " ".join(values).encode() + b"\n")
SMALL_SIZES = st.lists(st.integers(1, 6), min_size=3, max_size=3)
NIFTI_DTYPES = [np.uint8, np.int16, np.int32, np.float32, np.float64, np.int8, np.uint16]


def _series() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        return dicom_series(np.arange(3 * 6 * 5, dtype=np.int16).reshape(3, 6, 5), Path(folder))


DICOM_SLICES = _series()  # a valid 3-slice series: zips of it are accepted, damaged ones refused


@st.composite
def nrrd_headers(draw) -> tuple[str, list[int], str, str]:
    """``(header text without the magic, sizes, type, encoding)``: mostly well-formed, some fields hostile."""
    type_name = draw(st.sampled_from([*NRRD_TYPES, "block", "complex", "ucharr"]))
    sizes = draw(st.one_of(SMALL_SIZES, st.lists(st.integers(-2, 2**40), min_size=0, max_size=5)))
    dimension = draw(st.one_of(st.just(len(sizes)), st.integers(-1, 20)))
    encoding = draw(
        st.sampled_from(["raw", "gzip", "gz", "raw", "gzip", "ascii", "text", "hex", "bzip2", "zrl", "RAW"])
    )
    fields = [
        f"type: {type_name}",
        f"dimension: {dimension}",
        f"sizes: {' '.join(map(str, sizes))}",
        f"encoding: {encoding}",
    ]
    optional = {
        "endian": st.sampled_from(["little", "big", "middle"]),
        "space": st.sampled_from(["left-posterior-superior", "RAS", "scanner-xyz", "3D-right-handed", "nowhere"]),
        "space directions": st.sampled_from(
            [
                "(1,0,0) (0,1,0) (0,0,1)",
                "(0.7,0,0) (0,0.8,0) (0,0,2.5)",
                "none (1,0,0) (0,1,0)",
                "(0,0,0) (0,0,0) (0,0,0)",
            ]
        ),
        "space origin": st.sampled_from(["(0,0,0)", "(-12.5,30,-100)", "(nan,0,0)", "(1,2)"]),
        "spacings": st.sampled_from(["1 1 1", "0.5 0.5 2", "0 0 0", "-1 1 1", "nan 1 1"]),
        "kinds": st.sampled_from(["domain domain domain", "RGB-color domain domain", "vector domain domain"]),
        "byte skip": st.sampled_from(["0", "-1", "10"]),
        "line skip": st.sampled_from(["0", "1", "3"]),
        "data file": st.sampled_from(["/etc/passwd", "/dev/zero", "../../../store.sqlite3", "LIST"]),
        "content": st.text(max_size=40).map(lambda text: text.replace("\n", " ")),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        fields.append(f"{name}: {draw(st.one_of(optional[name], HOSTILE_TEXT))}")
    if draw(st.booleans()):
        fields.append(
            draw(
                st.sampled_from(
                    [
                        "# a comment",
                        "key:=value",
                        "unknown: 1",
                        "k" * 3000 + ":=v",
                        "type: uchar",
                        "no colon here",
                        "# " + "c" * 5000,
                    ]
                )
            )
        )
    order = draw(st.permutations(range(len(fields))))
    return "\n".join(fields[index] for index in order), sizes, type_name, encoding


@st.composite
def nrrd_bodies(draw) -> bytes:
    """A NRRD file: a drawn header, then data that fits it (raw or gzip), or is short, long or random."""
    header, sizes, type_name, encoding = draw(nrrd_headers())
    count = int(np.prod(sizes)) if sizes and all(0 < size <= 64 for size in sizes) else 8
    raw = draw(st.binary(min_size=count * NRRD_TYPES.get(type_name, 1), max_size=count * NRRD_TYPES.get(type_name, 1)))
    text = encoding.lower() in ("ascii", "text")
    data = "text" if text and draw(st.booleans()) else draw(st.sampled_from(["fit", "short", "long", "random"]))
    payload = {
        "fit": raw,
        "short": raw[: len(raw) // 2],
        "long": raw + b"extra",
        "random": draw(st.binary(max_size=64)),
        "text": draw(ASCII_VALUES),  # what ascii/text encodings hold, long values included
    }[data]
    if encoding.startswith("g") and data != "random":
        payload = gzip.compress(payload)
    magic = draw(
        st.sampled_from([b"NRRD0004\n", b"NRRD0005\n", b"NRRD0001\n", b"NRRD0009\n", b"nrrd0004\n", b"NRRD0004\r\n"])
    )
    return magic + header.encode("utf-8") + b"\n\n" + payload


@st.composite
def nifti_bodies(draw) -> bytes:
    """A NIfTI-1 file: a drawn header (dims, datatype, bitpix, vox_offset, pixdim, magic may be hostile), voxel
    data that fits or not, plain or gzipped."""
    dtype = np.dtype(draw(st.sampled_from(NIFTI_DTYPES)))
    dims = draw(SMALL_SIZES)
    header = bytearray(nifti1_header(tuple(dims), dtype))
    for offset, fmt, values in draw(
        st.lists(
            st.sampled_from(
                [
                    (40, "<h", st.integers(-3, 9)),
                    (42, "<h", st.integers(-2, 32767)),
                    (46, "<h", st.integers(-2, 32767)),
                    (48, "<h", st.integers(-2, 4)),
                    (70, "<h", st.sampled_from([0, 1, 32, 128, 1536, 2304, 9999, 2, 16])),
                    (72, "<h", st.sampled_from([0, 1, 7, 8, 16, 128, -8])),
                    (108, "<f", st.sampled_from([0.0, 351.0, 352.0, 1e9, float("nan"), -352.0])),
                    (80, "<f", st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e30])),
                    (112, "<f", st.sampled_from([0.0, 2.0, float("nan"), float("inf")])),
                    (0, "<i", st.sampled_from([348, 540, 0, -348])),
                    (344, "4s", st.sampled_from([b"n+1\x00", b"ni1\x00", b"n+2\x00", b"xxxx"])),
                ]
            ),
            max_size=3,
        )
    ):
        struct.pack_into(fmt, header, offset, draw(values))
    voxels = int(np.prod(dims)) * dtype.itemsize
    data = draw(st.sampled_from(["fit", "short", "random"]))
    if data == "fit":
        array = draw(st.sampled_from(["zeros", "nan", "ramp"]))
        values = (
            np.zeros(int(np.prod(dims)), dtype) if array == "zeros" else np.arange(int(np.prod(dims))).astype(dtype)
        )
        if array == "nan" and dtype.kind == "f":
            values[0] = np.nan
        payload = values.tobytes()
    else:
        payload = bytes(voxels // 2) if data == "short" else draw(st.binary(max_size=64))
    body = bytes(header) + payload
    return gzip.compress(body) if draw(st.booleans()) else body


@st.composite
def zip_bodies(draw) -> bytes:
    """A zip of a valid DICOM series (all, some or none of its slices, maybe one damaged) and of a few members
    with hostile or plain names holding NRRD/NIfTI bodies or random bytes."""
    buffer = io.BytesIO()
    names = st.sampled_from(
        [
            "a.dcm",
            "series/b.dcm",
            "../c.dcm",
            "/d.dcm",
            "C:/e.dcm",
            "f/../../g.dcm",
            "h\\i.dcm",
            "x" * 300,
            "j/" * 40 + "k.dcm",
            "dup.dcm",
        ]
    )
    with zipfile.ZipFile(buffer, "w", draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as archive:
        for name in draw(st.lists(st.sampled_from(sorted(DICOM_SLICES)), unique=True, max_size=len(DICOM_SLICES))):
            content = DICOM_SLICES[name]
            if draw(st.integers(0, 4)) == 0:  # damage one byte (most of a slice is its pixels)
                position = draw(st.integers(0, len(content) - 1))
                content = content[:position] + bytes([draw(st.integers(0, 255))]) + content[position + 1 :]
            archive.writestr(name, content)
        for _ in range(draw(st.integers(0, 2))):
            content = draw(st.one_of(st.binary(max_size=256), nrrd_bodies(), nifti_bodies()))
            with warnings.catch_warnings():  # a name twice is one of the hostile cases
                warnings.simplefilter("ignore", UserWarning)
                archive.writestr(draw(names), content)
    body = buffer.getvalue()
    if draw(st.integers(0, 4)) == 0:  # cut short
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    return body


def upload_bodies() -> st.SearchStrategy[tuple[str, bytes]]:
    """``(format, body)``: NRRD, NIfTI or zip bodies, sometimes sent under the wrong format."""
    bodies = st.one_of(
        nrrd_bodies().map(lambda body: ("nrrd", body)),
        nifti_bodies().map(lambda body: ("nifti", body)),
        zip_bodies().map(lambda body: ("dicom-zip", body)),
    )
    return st.tuples(bodies, st.sampled_from([None] * 6 + ["nrrd", "nifti", "dicom-zip"])).map(
        lambda drawn: (drawn[1] or drawn[0][0], drawn[0][1])
    )


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings of the upload fuzz tests: ``examples`` drawn, repeatable (derandomized), no deadline."""
    return settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
