"""Atomic writes: all or nothing, no temporary file left behind, NaN as JSON null."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest

from covidal.utils.atomic import atomic_write, atomic_write_bytes, atomic_write_json


def test_writes_through_a_temporary_file_with_the_same_suffixes(tmp_path):
    target = tmp_path / "deep" / "er" / "volume.nii.gz"
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert tmp.parent == target.parent and tmp != target
        assert tmp.name.endswith(".nii.gz")  # writers picking a format by extension still work
        tmp.write_bytes(b"data")

    atomic_write(target, write)
    assert target.read_bytes() == b"data"
    assert not seen[0].exists()
    assert [p.name for p in target.parent.iterdir()] == ["volume.nii.gz"]


def test_outputs_are_readable_by_others_not_owner_only(tmp_path):
    """A run folder is ordinary user data (mkstemp-style 0600 files would lock out e.g. 3D Slicer's user)."""
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "model.pt", b"weights")
        atomic_write_json(tmp_path / "train.json", {"epoch": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "model.pt").read_bytes() == b"weights"
    for name in ("model.pt", "train.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


@pytest.mark.parametrize("existing", [None, b"old content"])
def test_a_failing_writer_leaves_no_temporary_file_and_the_old_file_intact(tmp_path, existing):
    target = tmp_path / "model.pt"
    if existing is not None:
        target.write_bytes(existing)

    def half_write(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_write)
    assert [p.name for p in tmp_path.iterdir()] == ([] if existing is None else ["model.pt"])
    if existing is not None:
        assert target.read_bytes() == existing


def test_interrupt_also_cleans_up(tmp_path):
    def interrupted(tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.json", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_writer_that_removes_its_file_is_an_error_not_a_silent_success(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "x.txt", lambda tmp: tmp.unlink())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"dice": math.nan}, {"dice": None}),
        ({"a": [1.0, math.nan, {"b": (math.nan, 2)}]}, {"a": [1.0, None, {"b": [None, 2]}]}),
        ([math.nan, "nan", 0.5, None, True], [None, "nan", 0.5, None, True]),
        ({"ok": 0.25, "n": 3}, {"ok": 0.25, "n": 3}),
    ],
)
def test_json_writes_nan_as_null(tmp_path, data, expected):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, data)
    text = path.read_text()
    assert "NaN" not in text and text.endswith("\n")
    assert json.loads(text) == expected


def test_json_replaces_an_existing_file(tmp_path):
    path = tmp_path / "train.json"
    atomic_write_json(path, {"epoch": 1})
    atomic_write_json(path, {"epoch": 2})
    assert json.loads(path.read_text()) == {"epoch": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["train.json"]
