from pathlib import Path

import pytest

from covidal.data.case_files import (
    case_name,
    cases_by_name,
    files_with_suffixes,
    natural_sorted,
    require_same_names,
    unique_by_name,
)
from covidal.data.io import VOLUME_SUFFIXES
from covidal.errors import CovidalError


def as_paths(names) -> dict[str, Path]:
    return {name: Path(name) for name in names}


def touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return [folder / name for name in names]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["10", "2", "1"], ["1", "2", "10"]),
        (["case10", "case2", "Case1b", "a"], ["a", "Case1b", "case2", "case10"]),
        (["p1_10", "p1_9", "p01_1"], ["p01_1", "p1_9", "p1_10"]),
    ],
)
def test_natural_sorted(names, expected):
    assert natural_sorted(names) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.nii.gz", "a"),
        ("b.NII", "b"),
        ("c.nrrd", "c"),
        ("d.mha", "d"),
        ("e.f.nii.gz", "e.f"),
        ("notes.txt", "notes.txt"),
    ],
)
def test_case_name_of_files(tmp_path, name, expected):
    (path,) = touch(tmp_path, name)
    assert case_name(path) == expected


def test_case_name_of_a_folder_keeps_dots(tmp_path):
    folder = tmp_path / "scan.nii"  # a folder, not a file: its name is kept whole
    folder.mkdir()
    assert case_name(folder) == "scan.nii"


def test_files_with_suffixes_skips_hidden_files_folders_and_other_suffixes(tmp_path):
    touch(tmp_path, "a.nii.gz", "B.NRRD", "._a.nii.gz", ".hidden.mha", "notes.txt")
    (tmp_path / "sub.nrrd").mkdir()
    assert sorted(p.name for p in files_with_suffixes(tmp_path, VOLUME_SUFFIXES)) == ["B.NRRD", "a.nii.gz"]


def test_unique_by_name_maps_names_and_refuses_duplicates(tmp_path):
    first, second = touch(tmp_path, "p1.nrrd", "p2.nii.gz")
    assert unique_by_name([second, first], tmp_path) == {"p1": first, "p2": second}
    (duplicate,) = touch(tmp_path, "p1.mha")
    with pytest.raises(CovidalError, match=r"holds two entries named 'p1': p1\.mha and p1\.nrrd"):
        unique_by_name([first, second, duplicate], tmp_path)


def test_cases_by_name_takes_volume_files_and_ignores_folders_without_dicom(tmp_path):
    touch(tmp_path, "p1.nii.gz", "p2.nrrd", "readme.txt")
    (tmp_path / "empty_folder").mkdir()
    assert sorted(cases_by_name(tmp_path)) == ["p1", "p2"]


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ({"1", "2", "3"}, {"1"}, r"^2 images have no match among the masks: 2, 3$"),
        ({"1"}, {"1", "9"}, r"^1 masks have no match among the images: 9$"),
        ({str(n) for n in range(7)}, set(), r"^7 images have no match among the masks: 0, 1, 2, 3, 4, \.\.\.$"),
    ],
)
def test_require_same_names_lists_unmatched_names(first, second, message):
    with pytest.raises(CovidalError, match=message):
        require_same_names(as_paths(first), as_paths(second), "images", "masks")


def test_require_same_names_accepts_equal_sets():
    require_same_names({"a": Path("a.png")}, {"a": Path("a.nrrd")}, "images", "masks")
