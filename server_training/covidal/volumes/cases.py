"""The cases of a 3D data set: CT volumes (files or DICOM series) paired with label volume files by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from covidal.data.case_files import (
    case_name,
    cases_by_name,
    files_with_suffixes,
    natural_sorted,
    require_same_names,
    unique_by_name,
)
from covidal.data.io import VOLUME_SUFFIXES, is_dicom_series_dir, volume_suffix
from covidal.errors import CovidalError


@dataclass(frozen=True)
class CaseSource:
    """Where one case's files are; nothing is read yet.

    Attributes:
        name: case name (file name without its volume suffix, or the DICOM folder's name).
        image: CT volume file, or folder holding one DICOM series.
        label: label volume file on the image's grid, or None.
    """

    name: str
    image: Path
    label: Path | None


def list_volume_cases(images: Path, labels: Path | None = None) -> list[CaseSource]:
    """List the cases at ``images``, each with its label file when ``labels`` is given.

    ``images`` is one of:

    * a volume file (NIfTI/NRRD/MetaImage, see ``VOLUME_SUFFIXES``) or a folder
      holding one DICOM series: a single case. ``labels`` is then its label
      volume file, or a folder of label files matched by name as below.
    * a folder of volume files and/or DICOM series subfolders (hidden entries
      and other subfolders are ignored): one case each. ``labels`` must be a
      folder of label volume files named like the cases (``p1.nrrd`` or
      ``p1.nii.gz`` for ``p1.nii.gz`` or DICOM folder ``p1``).

    With a labels folder, every case needs its label and every label its case.

    Returns:
        The cases in natural order of name ("p2" before "p10").

    Raises:
        CovidalError: a missing path; a file without a volume suffix; a folder
            holding no volume files or DICOM series; two entries with one name;
            a case without a label or a label without a case (names listed);
            a label file given for a folder of cases.
    """
    images = Path(images)
    if not images.exists():
        raise CovidalError(f"images path {images} does not exist")
    if labels is not None and not Path(labels).exists():
        raise CovidalError(f"labels path {labels} does not exist")
    single = images.is_file() or is_dicom_series_dir(images)
    cases = {case_name(images): _single_case(images)} if single else _case_folder(images)
    label_files = None if labels is None else _label_files(cases, images, Path(labels), single)
    return [
        CaseSource(name, cases[name], None if label_files is None else label_files[name])
        for name in natural_sorted(cases)
    ]


def _single_case(image: Path) -> Path:
    if image.is_file() and volume_suffix(image) is None:
        raise CovidalError(
            f"{image} is not a volume file; give a file ending in one of {', '.join(VOLUME_SUFFIXES)}, "
            "a folder holding one DICOM series, or a folder of such cases"
        )
    return image


def _case_folder(folder: Path) -> dict[str, Path]:
    cases = cases_by_name(folder)
    if not cases:
        raise CovidalError(
            f"{folder} holds no volume files or DICOM series (volume files end in {', '.join(VOLUME_SUFFIXES)}; "
            "give each DICOM series its own subfolder)"
        )
    return cases


def _label_files(cases: dict[str, Path], images: Path, labels: Path, single: bool) -> dict[str, Path]:
    """The label file of each case, by case name."""
    if labels.is_file():
        if not single:
            raise CovidalError(f"labels {labels} must be a folder of label volumes named like the cases in {images}")
        return {name: labels for name in cases}
    by_name = unique_by_name(files_with_suffixes(labels, VOLUME_SUFFIXES), labels)
    require_same_names(cases, by_name, f"cases in {images}", f"label volumes in {labels}")
    return by_name
