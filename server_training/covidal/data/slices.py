"""Axial slices for 2D training and evaluation, from folders of PNG/JPG files or from CT volumes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidal.data.case_files import (
    case_name,
    cases_by_name,
    files_with_suffixes,
    natural_sorted,
    require_same_names,
    unique_by_name,
)
from covidal.data.io import (
    IMAGE_SUFFIXES,
    VOLUME_SUFFIXES,
    check_mask_class,
    geometry_difference,
    is_dicom_series_dir,
    labels_to_binary,
    read_image_2d,
    read_label_volume,
    read_mask_2d,
    read_volume,
)
from covidal.data.volume import Volume
from covidal.data.window import LUNG_WINDOW, HUWindow, ImageKind, image_kind, to_unit_intensity
from covidal.errors import CovidalError


@dataclass
class SliceRecord:
    """One axial slice ready for 2D training or evaluation."""

    slice_id: str  # folder data: the file stem ("12"); volumes: f"{case_id}:{k}"
    image: np.ndarray  # float32 [H, W] in [0, 1] (windowed HU, or 8-bit / 255)
    mask: np.ndarray | None  # uint8 [H, W] in {0, 1}, or None when no reference mask
    case_id: str  # folder data: the file stem; volumes: file name without suffixes, or DICOM folder name
    slice_index: int | None  # k for volume slices, None for 2D files
    kind: ImageKind | None = None  # the intensities the image came from; None when not known (made by hand)


def records_kind(records: Iterable[SliceRecord]) -> ImageKind | None:
    """The one :class:`ImageKind` of ``records``; None when they mix kinds, one is not known, or there are none."""
    kinds = {record.kind for record in records}
    return kinds.pop() if len(kinds) == 1 else None


def load_slices(
    images: Path,
    masks: Path | None,
    window: HUWindow = LUNG_WINDOW,
    mask_class: int | None = None,
) -> list[SliceRecord]:
    """Load every axial slice the CLI is pointed at.

    Dispatch on ``images``, first rule that applies:

    1. a file: one volume (NIfTI/NRRD/MetaImage); ``masks`` is its label volume file, or None.
    2. a folder holding a DICOM series: one volume; ``masks`` as in 1.
    3. a folder holding PNG/JPG files: 2D slices; ``masks`` is the folder of
       masks with the same file stems, or None (see :func:`load_slice_folder`).
    4. a folder of volume files and/or DICOM series subfolders (other
       subfolders are ignored): one case each, in natural order of name;
       ``masks`` is a folder of label volumes named like the cases
       (``case.nii.gz`` or ``case.nrrd`` for ``case.nii.gz`` or DICOM folder
       ``case``), or None.

    Args:
        images: see above.
        masks: see above; when given, every image or case needs its mask and every mask its image.
        window: HU window for volumes and non-8-bit images.
        mask_class: keep only this label as foreground (default: any non-zero label).

    Raises:
        CovidalError: missing paths, a folder matching no rule, masks of the
            wrong kind for the rule, or any problem of the loaders below.
    """
    images = Path(images)
    check_mask_class(mask_class)
    if not images.exists():
        raise CovidalError(f"images path {images} does not exist")
    if masks is not None and not Path(masks).exists():
        raise CovidalError(f"masks path {masks} does not exist")
    if images.is_file() or is_dicom_series_dir(images):
        return _load_one_case(images, masks, window, mask_class)
    if files_with_suffixes(images, IMAGE_SUFFIXES):
        return load_slice_folder(images, masks, mask_class, window)
    return _load_case_folder(images, masks, window, mask_class)


def load_slice_folder(
    images_dir: Path,
    masks_dir: Path | None,
    mask_class: int | None = None,
    window: HUWindow = LUNG_WINDOW,
) -> list[SliceRecord]:
    """Load 2D slices from ``images_dir`` and their masks from ``masks_dir`` (matched by file stem).

    Image 12.jpg pairs with mask 12.png (any of the PNG/JPG suffixes); files
    whose names start with "." are ignored. Records come in natural order of
    stem ("2" before "10"). Masks are read with :func:`read_mask_2d`.

    Args:
        images_dir: folder of PNG/JPG slices.
        masks_dir: folder of masks, or None for slices without reference masks.
        mask_class: keep only this label as foreground.
        window: HU window for images that are not 8-bit.

    Raises:
        CovidalError: missing or empty folder, a stem used by two files, an
            image without a mask or a mask without an image (up to 5 stems
            listed), a mask whose size differs from its image, an unreadable file.
    """
    image_files = _files_by_stem(images_dir, IMAGE_SUFFIXES, "PNG/JPG images")
    mask_files = None if masks_dir is None else _files_by_stem(masks_dir, IMAGE_SUFFIXES, "PNG/JPG masks")
    if mask_files is not None:
        require_same_names(image_files, mask_files, f"images in {images_dir}", f"masks in {masks_dir}")
    records = []
    for stem in natural_sorted(image_files):
        pixels = read_image_2d(image_files[stem])
        image = to_unit_intensity(pixels, window)
        mask = None if mask_files is None else read_mask_2d(mask_files[stem], mask_class)
        if mask is not None and mask.shape != image.shape:
            raise CovidalError(
                f"mask {mask_files[stem]} is {_size(mask)} pixels but image {image_files[stem]} is {_size(image)}"
            )
        records.append(SliceRecord(stem, image, mask, stem, None, image_kind(pixels)))
    return records


def load_volume_slices(
    image: Volume,
    label: Volume | None,
    case_id: str,
    window: HUWindow = LUNG_WINDOW,
    mask_class: int | None = None,
) -> list[SliceRecord]:
    """One record per axial slice ``k`` (``image.array[k]``), in order of ``k``.

    Args:
        image: CT volume, ``array`` ``[K, J, I]`` in HU (or uint8, used as is).
        label: label volume on the same grid, or None.
        case_id: name of the case, used in ``slice_id`` ``f"{case_id}:{k}"``.
        window: HU window.
        mask_class: keep only this label as foreground (default: any non-zero label).

    Raises:
        CovidalError: ``label``'s grid differs from ``image``'s, bad ``mask_class``, NaN/inf voxels.
    """
    check_mask_class(mask_class)
    if label is not None:
        difference = geometry_difference(label, image)
        if difference:
            raise CovidalError(f"the label volume of case {case_id} does not match its image: {difference}")
    unit = to_unit_intensity(image.array, window)
    masks = None if label is None else labels_to_binary(label.array, mask_class)
    kind = image_kind(image.array)
    return [
        SliceRecord(f"{case_id}:{k}", unit[k], None if masks is None else masks[k], case_id, k, kind)
        for k in range(unit.shape[0])
    ]


def _load_one_case(
    image_path: Path, label_path: Path | None, window: HUWindow, mask_class: int | None
) -> list[SliceRecord]:
    if label_path is not None and Path(label_path).is_dir():
        raise CovidalError(
            f"masks {label_path} is a folder; for the single volume {image_path} give its label volume file"
        )
    image = read_volume(image_path)
    label = None if label_path is None else read_label_volume(Path(label_path), image)
    return load_volume_slices(image, label, case_name(image_path), window, mask_class)


def _load_case_folder(
    folder: Path, labels_dir: Path | None, window: HUWindow, mask_class: int | None
) -> list[SliceRecord]:
    cases = cases_by_name(folder)
    if not cases:
        raise CovidalError(
            f"{folder} holds no PNG/JPG slices, DICOM series or volume files ({', '.join(VOLUME_SUFFIXES)})"
        )
    labels = None
    if labels_dir is not None:
        if not Path(labels_dir).is_dir():
            raise CovidalError(f"masks {labels_dir} must be a folder of label volumes named like the cases in {folder}")
        labels = unique_by_name(files_with_suffixes(Path(labels_dir), VOLUME_SUFFIXES), labels_dir)
        require_same_names(cases, labels, f"cases in {folder}", f"label volumes in {labels_dir}")
    records = []
    for name in natural_sorted(cases):
        records += _load_one_case(cases[name], None if labels is None else labels[name], window, mask_class)
    return records


def _files_by_stem(folder: Path | str, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.exists():
        raise CovidalError(f"folder of {what} {folder} does not exist")
    if not folder.is_dir():
        raise CovidalError(f"{folder} is not a folder of {what}")
    by_stem: dict[str, Path] = {}
    for path in sorted(files_with_suffixes(folder, suffixes)):
        if path.stem in by_stem:
            raise CovidalError(
                f"{folder} holds two files with stem {path.stem!r}: {by_stem[path.stem].name} and {path.name}"
            )
        by_stem[path.stem] = path
    if not by_stem:
        raise CovidalError(f"{folder} holds no {what} ({', '.join(suffixes)})")
    return by_stem


def _size(array: np.ndarray) -> str:
    height, width = array.shape
    return f"{width}x{height}"
