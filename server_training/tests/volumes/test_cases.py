import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from covidal.data.io import read_volume
from covidal.errors import CovidalError
from covidal.volumes.cases import CaseSource, list_volume_cases

SHAPE = (3, 4, 5)  # [K, J, I]


def write_nifti_or_nrrd(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.full(SHAPE, value, dtype=np.int16)), str(path))
    return path


def write_dicom_series(array: np.ndarray, folder: Path, spacing=(0.7, 0.8, 2.5), origin=(-10.0, 20.0, -30.0)) -> Path:
    """One CT series, one file per axial slice ``array[k]``, with the tags GDCM needs to order and place them."""
    folder.mkdir(parents=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    series = "1.2.826.0.1.3680043.2.1125.1.42"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(array.shape[0]):
        slice_ = image[:, :, k]
        position = "\\".join(str(x) for x in image.TransformIndexToPhysicalPoint((0, 0, k)))
        tags = {
            "0008|0060": "CT",
            "0020|000d": series + ".1",
            "0020|000e": series,
            "0020|0013": str(k + 1),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0032": position,
            "0018|0050": str(spacing[2]),
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(slice_)
    return folder


def dicom_array() -> np.ndarray:
    return (np.arange(np.prod(SHAPE)).reshape(SHAPE) * 10 - 1000).astype(np.int16)


def data_set(root: Path) -> tuple[Path, Path]:
    """images/{p10.nii.gz, p2.nrrd, scan/ (DICOM)} plus clutter, labels/{p10.nrrd, p2.nii.gz, scan.mha}."""
    images, labels = root / "images", root / "labels"
    write_nifti_or_nrrd(images / "p10.nii.gz")
    write_nifti_or_nrrd(images / "p2.nrrd")
    write_dicom_series(dicom_array(), images / "scan")
    (images / "not_a_series").mkdir()  # a folder without DICOM is no case
    (images / "notes.txt").write_text("not a volume")
    (images / "._p2.nrrd").write_bytes(b"macOS companion file")
    for name in ("p10.nrrd", "p2.nii.gz", "scan.mha"):
        write_nifti_or_nrrd(labels / name)
    return images, labels


def test_folder_of_cases_pairs_labels_by_name_in_natural_order(tmp_path):
    images, labels = data_set(tmp_path)
    assert list_volume_cases(images, labels) == [
        CaseSource("p2", images / "p2.nrrd", labels / "p2.nii.gz"),
        CaseSource("p10", images / "p10.nii.gz", labels / "p10.nrrd"),
        CaseSource("scan", images / "scan", labels / "scan.mha"),
    ]


def test_folder_of_cases_without_labels(tmp_path):
    images, _ = data_set(tmp_path)
    cases = list_volume_cases(images)
    assert [(case.name, case.label) for case in cases] == [("p2", None), ("p10", None), ("scan", None)]
    np.testing.assert_array_equal(read_volume(cases[2].image).array, dicom_array())  # the DICOM case reads back


def test_single_volume_file_with_its_label_file(tmp_path):
    image, label = write_nifti_or_nrrd(tmp_path / "ct.nii.gz"), write_nifti_or_nrrd(tmp_path / "seg.nrrd")
    assert list_volume_cases(image, label) == [CaseSource("ct", image, label)]
    assert list_volume_cases(image) == [CaseSource("ct", image, None)]


def test_single_case_with_a_labels_folder_matches_by_name(tmp_path):
    image = write_nifti_or_nrrd(tmp_path / "ct.nii.gz")
    label = write_nifti_or_nrrd(tmp_path / "labels" / "ct.nrrd")
    assert list_volume_cases(image, tmp_path / "labels") == [CaseSource("ct", image, label)]


def test_single_dicom_series_folder_is_one_case_named_after_it(tmp_path):
    series = write_dicom_series(dicom_array(), tmp_path / "chest")
    assert list_volume_cases(series) == [CaseSource("chest", series, None)]


# ---------------------------------------------------------------- bad input


def test_missing_paths_are_refused(tmp_path):
    images, _ = data_set(tmp_path)
    with pytest.raises(CovidalError, match=r"images path .*nope does not exist"):
        list_volume_cases(tmp_path / "nope")
    with pytest.raises(CovidalError, match=r"labels path .*gone does not exist"):
        list_volume_cases(images, tmp_path / "gone")


def test_folder_without_volumes_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CovidalError, match=r"holds no volume files or DICOM series \(volume files end in \.nii"):
        list_volume_cases(tmp_path)


def test_case_without_label_is_refused_listing_it(tmp_path):
    images, labels = data_set(tmp_path)
    (labels / "p2.nii.gz").unlink()
    (labels / "scan.mha").unlink()
    with pytest.raises(CovidalError, match=r"2 cases in .*images have no match among the label volumes .*: p2, scan$"):
        list_volume_cases(images, labels)


def test_label_without_case_is_refused_listing_it(tmp_path):
    images, labels = data_set(tmp_path)
    shutil.copy(labels / "p2.nii.gz", labels / "p7.nii.gz")
    with pytest.raises(CovidalError, match=r"1 label volumes in .*labels have no match among the cases .*: p7$"):
        list_volume_cases(images, labels)


@pytest.mark.parametrize(("folder", "extra"), [("images", "p2.mha"), ("labels", "p10.nii.gz")])
def test_two_entries_with_one_name_are_refused(tmp_path, folder, extra):
    images, labels = data_set(tmp_path)
    write_nifti_or_nrrd(tmp_path / folder / extra)
    with pytest.raises(CovidalError, match=rf"{folder} holds two entries named '{extra.split('.')[0]}'"):
        list_volume_cases(images, labels)


def test_label_file_for_a_folder_of_cases_is_refused(tmp_path):
    images, labels = data_set(tmp_path)
    with pytest.raises(
        CovidalError, match=r"labels .*p2\.nii\.gz must be a folder of label volumes named like the cases"
    ):
        list_volume_cases(images, labels / "p2.nii.gz")


def test_file_that_is_no_volume_is_refused(tmp_path):
    (tmp_path / "slice.png").write_bytes(b"")
    with pytest.raises(CovidalError, match=r"slice\.png is not a volume file; give a file ending in one of \.nii"):
        list_volume_cases(tmp_path / "slice.png")
