"""The NRRD header check: what real writers produce is accepted with the right layout, every refused construct
is a one-line Invalid, and thousands of drawn headers never get past it with anything a reader should not see."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given
from hypothesis import strategies as st
from upload_strategies import fuzz_settings, nrrd_bodies, nrrd_headers

from covidal.bench.hostile_inputs import nrrd
from covidal.service.store.errors import Invalid
from covidal.service.uploads.nrrd import MAX_FIELD_LINE_BYTES, MAX_HEADER_BYTES, parse_nrrd_header

FIELDS = "type: short\ndimension: 3\nsizes: 5 6 4\nencoding: gzip"
PARSER_EXAMPLES = 2000


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("compress", [False, True])
def test_simpleitk_nrrds_are_accepted_with_their_layout(tmp_path, dtype, compress):
    path = tmp_path / "v.nrrd"
    image = sitk.GetImageFromArray(np.zeros((4, 6, 5), dtype))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    sitk.WriteImage(image, str(path), compress)
    content = path.read_bytes()
    header = parse_nrrd_header(content[:MAX_HEADER_BYTES])
    assert header.layout.dims == (5, 6, 4) and header.layout.bytes_per_voxel == np.dtype(dtype).itemsize
    assert header.encoding == ("gzip" if compress else "raw")
    assert content[header.header_bytes - 2 : header.header_bytes] == b"\n\n"


def test_comments_key_values_and_crlf_are_accepted():
    slicer = (
        "# Complete NRRD file format specification at:\n"
        + FIELDS
        + "\nspace: left-posterior-superior\nspace directions: (0.7,0,0) (0,0.8,0) (0,0,2.5)\nkinds: domain domain "
        "domain\nendian: little\nspace origin: (-12.5,30,-100)\nSegment0_Name:=Infection\nSegment0_Tags:="
        + "Segmentation.Status:inprogress|"
        * 20
    )
    assert parse_nrrd_header(nrrd(slicer, b"data")).layout.dims == (5, 6, 4)
    crlf = b"NRRD0004\r\n" + FIELDS.replace("\n", "\r\n").encode() + b"\r\n\r\ndata"
    assert parse_nrrd_header(crlf).layout.voxels == 120


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"P5\n5 6\n255\n", ["not a NRRD"]),
        (nrrd(FIELDS + "\ndata file: /etc/passwd"), ["data file"]),
        (nrrd(FIELDS + "\nDATA FILE: ../../../store.sqlite3"), ["data file"]),
        (nrrd(FIELDS + "\ndatafile: LIST"), ["data file"]),
        (nrrd(FIELDS + "\nk:=v\ndata  file: x"), ["data file"]),
        (nrrd(FIELDS.replace("gzip", "ascii")), ["ascii"]),
        (nrrd(FIELDS.replace("gzip", "text")), ["text"]),
        (nrrd(FIELDS.replace("gzip", "hex")), ["hex"]),
        (nrrd(FIELDS.replace("gzip", "bzip2")), ["bzip2"]),
        (nrrd(FIELDS + "\ncontent: " + "x" * MAX_FIELD_LINE_BYTES), ["line", "content", "256"]),
        (nrrd(FIELDS + "\n# " + "c" * 5000), ["line", "4096"]),
        (b"NRRD0004\n" + FIELDS.encode() + b"\n" + b"# filler\n" * 8000, ["blank line", "detached"]),
        (nrrd(FIELDS + "\ncolour: red"), ["unknown field", "colour"]),
        (nrrd(FIELDS + "\nno separator here"), ["neither"]),
        (nrrd(FIELDS + "\ntype: uchar"), ["repeats", "type"]),
        (nrrd(FIELDS + "\nline skip: 1"), ["lineskip", "0"]),
        (nrrd(FIELDS + "\nbyte skip: -1"), ["byteskip", "0"]),
        (nrrd(FIELDS.replace("short", "block") + "\nblock size: 4"), ["block"]),
        (nrrd(FIELDS.replace("short", "banana")), ["type", "banana"]),
        (nrrd(FIELDS.replace("dimension: 3", "dimension: 2").replace("5 6 4", "5 6")), ["2D"]),
        (nrrd(FIELDS.replace("5 6 4", "5 0 4")), ["sizes", ">= 1"]),
        (nrrd(FIELDS.replace("5 6 4", "5 6")), ["sizes"]),
        (nrrd(FIELDS.replace("5 6 4", "5 6 1e3")), ["whole numbers"]),
        (
            nrrd(
                FIELDS.replace("dimension: 3", "dimension: 4").replace("5 6 4", "2 5 6 4") + "\nkinds: vector "
                "domain domain domain"
            ),
            ["'vector' voxels"],
        ),
        (nrrd("dimension: 3\nsizes: 1 1 1\nencoding: raw"), ["lacks", "type"]),
    ],
)
def test_refused_headers_are_one_line_invalid(body, words):
    with pytest.raises(Invalid) as raised:
        parse_nrrd_header(body[:MAX_HEADER_BYTES])
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@given(drawn=nrrd_headers(), data=st.binary(max_size=32))
@fuzz_settings(PARSER_EXAMPLES)
def test_drawn_headers_are_refused_cleanly_or_accepted_as_safe(drawn, data):
    text, _, _, _ = drawn
    try:
        header = parse_nrrd_header(b"NRRD0004\n" + text.encode("utf-8") + b"\n\n" + data)
    except Invalid as error:
        assert str(error) and "\n" not in str(error)
        return
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert header.encoding in ("raw", "gzip") and len(header.layout.dims) == 3 and min(header.layout.dims) >= 1
    assert all(len(line.encode()) <= MAX_FIELD_LINE_BYTES or ":=" in line for line in lines)
    assert not any("data file" in line.lower() or "datafile" in line.lower() for line in lines)
    assert not any(
        line.split(":")[0].strip().lower() in ("encoding",)
        and line.split(":", 1)[1].strip().lower() in ("ascii", "text", "txt")
        for line in lines
    )


@given(body=nrrd_bodies())
@fuzz_settings(PARSER_EXAMPLES // 4)
def test_drawn_bodies_never_raise_anything_but_invalid(body):
    try:
        parse_nrrd_header(body[:MAX_HEADER_BYTES])
    except Invalid as error:
        assert "\n" not in str(error)
