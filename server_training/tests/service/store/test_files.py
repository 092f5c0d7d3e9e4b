"""The file store: durable, hashed, size-limited writes under random names; nothing escapes the root."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat

import pytest

from covidal.service.store.errors import Invalid
from covidal.service.store.files import TEMPORARY_PREFIX, FileStore


def listing(folder):
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize(
    "stream_of", [io.BytesIO, lambda data: [data[:1000], bytearray(data[1000:2500]), memoryview(data[2500:])]]
)
def test_a_stream_round_trips_with_its_sha256_and_size(tmp_path, stream_of):
    data = os.urandom(3000)
    files = FileStore(tmp_path / "files")
    stored = files.put_stream("volumes/1", ".nii.gz", stream_of(data), max_bytes=3000)
    assert re.fullmatch(r"volumes/1/[0-9a-f]{32}\.nii\.gz", stored.relative_path)
    assert (stored.sha256, stored.size) == (hashlib.sha256(data).hexdigest(), 3000)
    assert files.path(stored.relative_path).read_bytes() == data
    assert files.sha256(stored.relative_path) == stored.sha256
    assert listing(tmp_path / "files" / "volumes" / "1") == [stored.relative_path.split("/")[-1]]  # no temporary


def test_the_same_content_twice_gets_two_names(tmp_path):
    files = FileStore(tmp_path)
    first, second = (files.put_stream("volumes/1", ".nrrd", [b"same"], 10) for _ in range(2))
    assert first.sha256 == second.sha256 and first.relative_path != second.relative_path
    assert files.files("volumes") == sorted([first.relative_path, second.relative_path])


@pytest.mark.parametrize("chunks", [[b"x" * 11], [b"x" * 6, b"x" * 5], [b"x" * 10, b"y"]])
def test_content_over_the_limit_is_refused_and_nothing_is_left(tmp_path, chunks):
    files = FileStore(tmp_path / "files")
    with pytest.raises(Invalid, match="the upload exceeds the limit of 10 bytes"):
        files.put_stream("volumes/1", ".nrrd", chunks, max_bytes=10)
    assert listing(tmp_path / "files" / "volumes" / "1") == []
    assert files.put_stream("volumes/1", ".nrrd", [b"x" * 10], max_bytes=10).size == 10  # exactly the limit is fine


def test_a_stream_failing_midway_leaves_nothing(tmp_path):
    def chunks():
        yield b"half a volume"
        raise ConnectionResetError("client went away")

    files = FileStore(tmp_path)
    with pytest.raises(ConnectionResetError):
        files.put_stream("volumes/1", ".nrrd", chunks(), max_bytes=100)
    assert listing(tmp_path / "volumes" / "1") == []


def test_files_get_the_users_umask_not_owner_only(tmp_path):
    previous = os.umask(0o022)
    try:
        stored = FileStore(tmp_path).put_stream("volumes/1", "", [b"v"], 10)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / stored.relative_path).stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "relative",
    [
        "",
        ".",
        "..",
        "../outside",
        "/etc/passwd",
        "volumes/../../outside",
        "volumes/1/../../..",
        "a\\..\\b",
        "C:/Windows",
        "link/secret",
    ],
)
def test_paths_outside_the_root_are_refused(tmp_path, relative):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    files = FileStore(tmp_path / "files")
    (tmp_path / "files" / "link").symlink_to(tmp_path / "outside")
    for call in (files.path, files.remove, files.sha256):
        with pytest.raises(Invalid, match="is outside the file store"):
            call(relative)
    assert (tmp_path / "outside" / "secret").exists()


def test_remove_deletes_and_tolerates_a_missing_file(tmp_path):
    files = FileStore(tmp_path)
    stored = files.put_stream("volumes/1", ".nrrd", [b"v"], 10)
    files.remove(stored.relative_path)
    files.remove(stored.relative_path)
    assert files.files("volumes") == []


def test_leftover_temporaries_are_listed_and_removed(tmp_path):
    files = FileStore(tmp_path)
    kept = files.put_stream("volumes/1", ".nrrd", [b"v"], 10)
    (tmp_path / "volumes" / "1" / f"{TEMPORARY_PREFIX}abc.nrrd").write_bytes(b"half")
    assert files.temporaries() == [f"volumes/1/{TEMPORARY_PREFIX}abc.nrrd"]
    assert files.files("volumes") == [kept.relative_path]  # a temporary is not a stored file
    assert files.remove_temporaries() == [f"volumes/1/{TEMPORARY_PREFIX}abc.nrrd"]
    assert files.temporaries() == [] and files.files("volumes") == [kept.relative_path]


@pytest.mark.parametrize("kind", ["", "../volumes", "/volumes", "Volumes", "volumes//1", "volumes/", "a b"])
def test_a_bad_kind_is_a_programming_error(tmp_path, kind):
    with pytest.raises(ValueError, match="file kind must be lowercase parts"):
        FileStore(tmp_path).put_stream(kind, ".nrrd", [b"v"], 10)


@pytest.mark.parametrize("suffix", ["nrrd", "/x", ".nii/..", ". nrrd", ".a.b.c.d", ".verylongsuffix"])
def test_a_bad_suffix_is_refused(tmp_path, suffix):
    with pytest.raises(Invalid, match="file suffix .* is not accepted"):
        FileStore(tmp_path).put_stream("volumes/1", suffix, [b"v"], 10)
    assert not (tmp_path / "volumes").exists()


def test_a_bad_limit_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="max_bytes must be a non-negative integer, got -1"):
        FileStore(tmp_path).put_stream("volumes/1", "", [b"v"], -1)


def test_an_unsynced_put_is_made_durable_by_sync(tmp_path, monkeypatch):
    """Durability cannot be watched without pulling the plug: the test records which inodes are fsynced."""
    files = FileStore(tmp_path)
    files.put_stream("volumes/1", ".nrrd", [b"an earlier upload"], 100)  # the folder exists (made durably) before
    synced_inodes = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced_inodes.append(os.fstat(fd).st_ino), real_fsync(fd))[1])
    stored = files.put_stream("volumes/1", ".nrrd", [b"voxels"], 10, synced=False)
    path = files.path(stored.relative_path)
    assert path.read_bytes() == b"voxels" and synced_inodes == []
    files.sync(stored.relative_path)
    assert synced_inodes == [path.stat().st_ino, path.parent.stat().st_ino]  # its content, then its name
    with pytest.raises(Invalid):
        files.sync("../outside.nrrd")
