"""The NIfTI header check and the scan for non-finite voxels: SimpleITK's files accepted with their layout (either
byte order, NIfTI-2 too), every refused header a one-line Invalid, NaN and infinity found where ITK reads 0."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given
from hypothesis import strategies as st
from upload_strategies import fuzz_settings, nifti_bodies

from covidal.bench.hostile_inputs import nifti1_header
from covidal.service.store.errors import Invalid
from covidal.service.uploads.nifti import check_finite_voxels, parse_nifti_header, read_nifti_head

PARSER_EXAMPLES = 2000


def _written(tmp_path, array: np.ndarray, name: str):
    path = tmp_path / name
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_simpleitk_niftis_are_accepted_with_their_layout(tmp_path, dtype, name):
    path = _written(tmp_path, np.zeros((4, 6, 5), dtype), name)
    header = parse_nifti_header(*read_nifti_head(path))
    assert header.layout.dims == (5, 6, 4) and header.layout.bytes_per_voxel == np.dtype(dtype).itemsize
    assert header.gzipped == name.endswith(".gz") and np.dtype(header.dtype) == np.dtype(dtype)
    assert header.data_offset >= 352 and header.float_voxels == (np.dtype(dtype).kind == "f")


def test_a_4d_header_with_one_volume_is_a_3d_volume():
    assert parse_nifti_header(_changed("<h", 40, 4), False).layout.dims == (5, 6, 4)


def test_big_endian_and_nifti2_headers_are_read():
    little = nifti1_header((5, 6, 4), np.int16)
    big = bytearray(little)
    for offset, fmt, count in ((0, "i", 1), (40, "h", 8), (70, "h", 2), (76, "f", 8), (108, "f", 1)):
        values = struct.unpack_from(f"<{count}{fmt}", little, offset)
        struct.pack_into(f">{count}{fmt}", big, offset, *values)
    header = parse_nifti_header(bytes(big), False)
    assert header.layout.dims == (5, 6, 4) and header.dtype == ">i2"
    nifti2 = bytearray(544)
    struct.pack_into("<i8s2h8q", nifti2, 0, 540, b"n+2\x00\r\n\x1a\n", 16, 32, 3, 7, 8, 9, 1, 1, 1, 1)
    struct.pack_into("<q", nifti2, 168, 544)
    header = parse_nifti_header(bytes(nifti2), True)
    assert header.layout.dims == (7, 8, 9) and header.dtype == "<f4" and header.data_offset == 544


def _changed(fmt: str, offset: int, *values) -> bytes:
    header = bytearray(nifti1_header((5, 6, 4), np.int16))
    struct.pack_into(fmt, header, offset, *values)
    return bytes(header)


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"\x00" * 400, ["not a NIfTI-1 or NIfTI-2"]),
        (nifti1_header((5, 6, 4), np.int16)[:300], ["not a NIfTI"]),
        (_changed("4s", 344, b"ni1\x00"), [".hdr/.img pair"]),
        (_changed("4s", 344, b"abcd"), ["no NIfTI magic"]),
        (_changed("<h", 40, 2), ["2D"]),
        (_changed("<h", 40, 9), ["dimension count is 9"]),
        (_changed("<8h", 40, 4, 5, 6, 4, 3, 1, 1, 1), ["3 volumes"]),
        (_changed("<h", 44, 0), ["sizes", ">= 1"]),
        (_changed("<h", 42, -5), ["sizes"]),
        (_changed("<2h", 70, 32, 64), ["datatype 32"]),
        (_changed("<2h", 70, 128, 24), ["datatype 128", "RGB"]),
        (_changed("<2h", 70, 4, 8), ["bitpix 8", "datatype 4"]),
        (_changed("<f", 108, 100.0), ["voxel offset 100"]),
        (_changed("<f", 108, float("nan")), ["voxel offset nan"]),
        (_changed("<f", 108, 352.5), ["voxel offset"]),
        (_changed("<f", 108, 1e9), ["voxel offset"]),
    ],
)
def test_refused_headers_are_one_line_invalid(head, words):
    with pytest.raises(Invalid) as raised:
        parse_nifti_header(head, False)
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_an_unreadable_gzip_stream_is_invalid(tmp_path):
    path = tmp_path / "v.nii.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(100))
    with pytest.raises(Invalid, match="gzip"):
        read_nifti_head(path)


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_found_as_stored(tmp_path, name, value):
    """ITK's reader gives 0 for these; the scan reads the file's own bytes and names the first such voxel."""
    array = np.ones((4, 6, 5), np.float32)
    array[2, 3, 4] = value
    path = _written(tmp_path, array, name)
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).all()  # what the reader alone would give
    with pytest.raises(Invalid, match=f"NaN or infinite voxels .* voxel {np.ravel_multi_index((2, 3, 4), (4, 6, 5))}"):
        check_finite_voxels(path, parse_nifti_header(*read_nifti_head(path)))


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_finite_and_truncated_float_volumes(tmp_path, name):
    path = _written(tmp_path, np.linspace(-1, 1, 120, dtype=np.float64).reshape(4, 6, 5), name)
    header = parse_nifti_header(*read_nifti_head(path))
    check_finite_voxels(path, header)
    content = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    short = content[: len(content) - 16]
    path.write_bytes(gzip.compress(short) if name.endswith(".gz") else short)
    with pytest.raises(Invalid, match="truncated"):
        check_finite_voxels(path, header)


@given(body=nifti_bodies(), cut=st.integers(0, 600))
@fuzz_settings(PARSER_EXAMPLES)
def test_drawn_headers_are_refused_cleanly_or_accepted_within_bounds(body, cut):
    raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    head = raw[: max(cut, 1)] if cut < 544 else raw[:544]
    try:
        header = parse_nifti_header(head, False)
    except Invalid as error:
        assert str(error) and "\n" not in str(error)
        return
    assert len(header.layout.dims) == 3 and min(header.layout.dims) >= 1
    assert header.layout.bytes_per_voxel == np.dtype(header.dtype).itemsize
    assert 352 <= header.data_offset <= 352 + 2**20
