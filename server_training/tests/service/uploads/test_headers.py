"""The header check of an upload: the voxel budget is applied from the header alone (413 before any byte of voxel
data is read), a DICOM zip's expansion from its member list, and each format's refusals name the upload."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from covidal.bench.hostile_inputs import nifti1_header, nrrd
from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.headers import check_upload_header
from covidal.service.uploads.limits import DECODED_BYTES_PER_VOXEL, DecodeLimits
from covidal.service.volumes import UploadTooLarge

LIMITS = DecodeLimits(max_voxels=1000, timeout_s=10)
NOT_GZIP = b"these bytes are not a gzip stream: a reader that tried to decode them would fail"


def _file(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "volume_format", "content"),
    [
        ("v.nrrd", VolumeFormat.NRRD, nrrd("type: uchar\ndimension: 3\nsizes: 10 10 11\nencoding: gzip", NOT_GZIP)),
        ("v.nii", VolumeFormat.NIFTI, nifti1_header((10, 10, 11), np.uint8) + NOT_GZIP),
    ],
)
def test_too_many_voxels_are_413_from_the_header_alone(tmp_path, name, volume_format, content):
    """The data after the header is not even a valid stream: the refusal cannot have come from decoding it."""
    with pytest.raises(UploadTooLarge, match=r"1100 voxels \(10 x 10 x 11\), over the limit of 1000"):
        check_upload_header(_file(tmp_path, name, content), volume_format, LIMITS)


@pytest.mark.parametrize(
    ("name", "volume_format", "content"),
    [
        ("v.nrrd", VolumeFormat.NRRD, nrrd("type: double\ndimension: 3\nsizes: 10 10 10\nencoding: gzip")),
        ("v.nii", VolumeFormat.NIFTI, nifti1_header((10, 10, 10), np.float64)),
    ],
)
def test_the_limit_itself_is_accepted_with_its_decoded_size(tmp_path, name, volume_format, content):
    header = check_upload_header(_file(tmp_path, name, content), volume_format, LIMITS)
    assert header.voxels == 1000 and header.decoded_bytes(LIMITS) == 1000 * DECODED_BYTES_PER_VOXEL
    assert (header.nifti is not None) == (volume_format is VolumeFormat.NIFTI)


def _zip(members: dict[str, int]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, size in members.items():
            archive.writestr(name, bytes(size))
    return buffer.getvalue()


def test_a_zip_expanding_past_4_bytes_per_voxel_is_413_before_extraction(tmp_path):
    accepted = check_upload_header(
        _file(tmp_path, "a.zip", _zip({"a.dcm": 2000, "b.dcm": 2000})), VolumeFormat.DICOM_ZIP, LIMITS
    )
    assert accepted.voxels is None and accepted.decoded_bytes(LIMITS) == 1000 * DECODED_BYTES_PER_VOXEL
    with pytest.raises(UploadTooLarge, match="expands to 4001 bytes, over the limit of 4000 bytes"):
        check_upload_header(
            _file(tmp_path, "b.zip", _zip({"a.dcm": 2000, "b.dcm": 2001})), VolumeFormat.DICOM_ZIP, LIMITS
        )


@pytest.mark.parametrize(
    ("volume_format", "content", "words"),
    [
        (VolumeFormat.DICOM_ZIP, b"PK\x03\x04 not really", ["not a readable zip"]),
        (VolumeFormat.DICOM_ZIP, _zip({"../x.dcm": 1}), ["outside"]),
        (VolumeFormat.NRRD, b"GIF89a", ["not a readable 3D volume", "not a NRRD"]),
        (VolumeFormat.NIFTI, b"GIF89a", ["not a readable 3D volume", "not a NIfTI"]),
    ],
)
def test_refusals_name_the_upload(tmp_path, volume_format, content, words):
    with pytest.raises(Invalid) as raised:
        check_upload_header(_file(tmp_path, "upload", content), volume_format, LIMITS)
    for word in words:
        assert word in str(raised.value), str(raised.value)
