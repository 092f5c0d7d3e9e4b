"""Decoding in a limited child process: the same volume as the in-process reader, and a reader that crashes,
balloons past its memory or hangs costs one Invalid while this process, and the next decode, go on.

The crash, memory and hang cases hand the decoder a header the header check would refuse (or a FIFO), on
purpose: they test the second line of defence, for a reader fault the header check does not know of.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import signal
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from covidal.bench.hostile_inputs import crash_uploads, nrrd
from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.headers import UploadHeader
from covidal.service.uploads.limits import DecodeLimits
from covidal.service.uploads.sandbox import DECODER, read_upload_safely
from covidal.service.volumes import UploadTooLarge, read_stored_volume

pytestmark = pytest.mark.skipif(os.name != "posix", reason="fork, rlimits and signals are POSIX")

DICOM_SERIES = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "dicom" / "tcia_chest_ct_48"
LIMITS = DecodeLimits(max_voxels=2**28, timeout_s=60)


def _volume_file(tmp_path: Path, name: str, dtype=np.int16) -> Path:
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(-1000, 1000, (7, 9, 11)).astype(dtype))
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-12.5, 30.0, -100.0))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    path = tmp_path / name
    sitk.WriteImage(image, str(path), True)
    return path


def _assert_same(decoded, expected) -> None:
    assert decoded.array.dtype == expected.array.dtype
    np.testing.assert_array_equal(decoded.array, expected.array)
    assert decoded.spacing == expected.spacing and decoded.origin == expected.origin
    np.testing.assert_array_equal(decoded.direction, expected.direction)


@pytest.mark.parametrize(
    ("name", "volume_format", "dtype"),
    [
        ("v.nrrd", VolumeFormat.NRRD, np.int16),
        ("v.nii.gz", VolumeFormat.NIFTI, np.float32),
        ("v.nii", VolumeFormat.NIFTI, np.uint8),
    ],
)
def test_the_child_decodes_what_the_in_process_reader_reads(tmp_path, name, volume_format, dtype):
    path = _volume_file(tmp_path, name, dtype)
    _assert_same(read_upload_safely(path, volume_format, LIMITS), read_stored_volume(path, volume_format, 2**30))


@pytest.mark.skipif(not DICOM_SERIES.is_dir(), reason=f"real DICOM series not found at {DICOM_SERIES} (../shared)")
def test_a_real_dicom_zip_decodes_as_in_process(tmp_path):
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        for path in sorted(DICOM_SERIES.glob("*.dcm")):
            writer.write(path, path.name)
    decoded = read_upload_safely(archive, VolumeFormat.DICOM_ZIP, LIMITS)
    assert decoded.shape_ijk == (512, 512, 48)
    _assert_same(decoded, read_stored_volume(archive, VolumeFormat.DICOM_ZIP, 2**30))
    # 25 MB expand within 4 bytes per voxel of the limit; the series' headers then count its voxels
    with pytest.raises(UploadTooLarge, match=r"12582912 voxels \(512 x 512 x 48\), over the limit of 10000000"):
        read_upload_safely(archive, VolumeFormat.DICOM_ZIP, DecodeLimits(max_voxels=10_000_000, timeout_s=60))


def _forged(volume_format: VolumeFormat = VolumeFormat.NRRD) -> UploadHeader:
    """A header for a 1-voxel volume, whatever the file holds."""
    return UploadHeader(volume_format, 1)


def test_a_reader_crash_is_invalid_and_the_next_decode_works(tmp_path):
    """The ASCII NRRD that made ITK's reader crash (SIGSEGV), past the header check."""
    crash = tmp_path / "crash.nrrd"
    crash.write_bytes(crash_uploads()[0].make())
    with pytest.raises(Invalid, match="stopped without an answer .*crashed"):
        DECODER.decode(crash, _forged(), LIMITS)
    good = _volume_file(tmp_path, "good.nrrd")
    assert read_upload_safely(good, VolumeFormat.NRRD, LIMITS).shape_ijk == (11, 9, 7)


def test_a_reader_past_its_memory_limit_is_invalid(tmp_path):
    """A NRRD of 2**30 zero bytes (1 MiB gzipped) sold as 1 voxel: the child has about 512 MiB to spare."""
    bomb = tmp_path / "bomb.nrrd"
    with gzip.open(tmp_path / "zeros.gz", "wb", compresslevel=1) as stream:
        for _ in range(1024):
            stream.write(bytes(2**20))
    bomb.write_bytes(
        nrrd("type: uchar\ndimension: 3\nsizes: 1024 1024 1024\nencoding: gzip", (tmp_path / "zeros.gz").read_bytes())
    )
    with pytest.raises(Invalid) as raised:
        DECODER.decode(bomb, _forged(), LIMITS)
    assert any(words in str(raised.value) for words in ("memory", "allocate", "bad_alloc")), str(raised.value)


def test_a_hanging_reader_is_killed_after_the_timeout(tmp_path):
    """The child opens a FIFO nobody writes to: it would wait forever."""
    fifo = tmp_path / "hang.nrrd"
    os.mkfifo(fifo)
    with pytest.raises(Invalid, match=r"took longer than 1 s .*--decode-timeout"):
        DECODER.decode(fifo, _forged(), DecodeLimits(max_voxels=2**28, timeout_s=1))


def test_a_dead_fork_server_is_started_again(tmp_path):
    DECODER.start()
    os.kill(DECODER._process.pid, signal.SIGKILL)
    DECODER._process.wait(10)
    path = _volume_file(tmp_path, "v.nrrd")
    assert read_upload_safely(path, VolumeFormat.NRRD, LIMITS).shape_ijk == (11, 9, 7)


def test_decodes_that_hang_do_not_hold_up_the_next_upload(tmp_path):
    """Three children wait on FIFOs (more than the fork server keeps spare); a good upload sent meanwhile is
    decoded while they still wait, by a spare forked at once."""
    fifos = [tmp_path / f"hang{number}.nrrd" for number in range(3)]
    refusals: list[Invalid] = []
    hangs = []
    for fifo in fifos:
        os.mkfifo(fifo)
        hangs.append(threading.Thread(target=_decode_into, args=(fifo, refusals), daemon=True))
        hangs[-1].start()
    path = _volume_file(tmp_path, "v.nrrd")
    assert read_upload_safely(path, VolumeFormat.NRRD, LIMITS).shape_ijk == (11, 9, 7)
    assert all(hang.is_alive() for hang in hangs)
    for fifo in fifos:  # a writer that opens and closes a FIFO ends its reader's wait (the file is empty)
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    for hang in hangs:
        hang.join(30)
    assert len(refusals) == 3  # each refused (Invalid), none hung past its writer


def _decode_into(path: Path, refusals: list[Invalid]) -> None:
    try:
        DECODER.decode(path, _forged(), DecodeLimits(max_voxels=2**28, timeout_s=20))
    except Invalid as error:
        refusals.append(error)


@pytest.mark.parametrize("good", [True, False])
def test_the_work_given_for_meanwhile_runs_once_whatever_the_answer(tmp_path, good):
    path = _volume_file(tmp_path, "v.nrrd")
    if not good:
        path.write_bytes(path.read_bytes()[:-20])  # truncated voxels: the child refuses it
    calls = []
    try:
        read_upload_safely(path, VolumeFormat.NRRD, LIMITS, meanwhile=lambda: calls.append(1))
    except Invalid:
        assert not good
    assert calls == [1]
