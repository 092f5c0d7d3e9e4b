"""Naming and matching cases in folders: volume files and DICOM series subfolders paired with label files by name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from covidal.data.io import VOLUME_SUFFIXES, is_dicom_series_dir, volume_suffix
from covidal.errors import CovidalError

LISTED_NAMES = 5  # error messages list at most this many unmatched names


def case_name(path: Path) -> str:
    """A case's name: the file name without its volume suffix (``a.nii.gz`` -> ``a``), or the folder name."""
    path = Path(path)
    suffix = None if path.is_dir() else volume_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def cases_by_name(folder: Path) -> dict[str, Path]:
    """Volume files and DICOM series subfolders of ``folder``, by case name (other entries are ignored).

    Raises:
        CovidalError: two entries share a case name (see :func:`unique_by_name`).
    """
    subfolders = [entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")]
    candidates = files_with_suffixes(folder, VOLUME_SUFFIXES) + [s for s in subfolders if is_dicom_series_dir(s)]
    return unique_by_name(candidates, folder)


def unique_by_name(paths: Iterable[Path], folder: Path) -> dict[str, Path]:
    """``paths`` by :func:`case_name`.

    Raises:
        CovidalError: two paths share a case name (``p1.nrrd`` and ``p1.nii.gz``), naming both.
    """
    by_name: dict[str, Path] = {}
    for path in sorted(paths):
        name = case_name(path)
        if name in by_name:
            raise CovidalError(f"{folder} holds two entries named {name!r}: {by_name[name].name} and {path.name}")
        by_name[name] = path
    return by_name


def files_with_suffixes(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Non-hidden files directly in ``folder`` whose names end with one of ``suffixes`` (case-insensitive)."""
    # Hidden files are skipped: macOS leaves unreadable "._12.jpg" companions beside copied files.
    return [
        entry
        for entry in folder.iterdir()
        if entry.is_file() and not entry.name.startswith(".") and entry.name.lower().endswith(suffixes)
    ]


def require_same_names(first: dict[str, Path], second: dict[str, Path], first_what: str, second_what: str) -> None:
    """Refuse a name found in only one of ``first`` and ``second``.

    Raises:
        CovidalError: "N <first_what> have no match among the <second_what>: a, b, ..." (or the
            other way round), listing at most :data:`LISTED_NAMES` names in natural order.
    """
    pairs = ((first, second, first_what, second_what), (second, first, second_what, first_what))
    for having, lacking, having_what, lacking_what in pairs:
        missing = natural_sorted(set(having) - set(lacking))
        if missing:
            listed = ", ".join(missing[:LISTED_NAMES]) + (", ..." if len(missing) > LISTED_NAMES else "")
            raise CovidalError(f"{len(missing)} {having_what} have no match among the {lacking_what}: {listed}")


def natural_sorted(names: Iterable[str]) -> list[str]:
    """Names in numeric-aware order: "2" before "10", "case2" before "case10"."""

    def key(name: str) -> tuple[list[int | str], str]:
        # re.split with a group alternates text (even positions) and digit runs (odd positions),
        # so the same position always holds the same type and the lists compare safely.
        parts = re.split(r"(\d+)", name)
        return [int(part) if index % 2 else part.lower() for index, part in enumerate(parts)], name

    return sorted(names, key=key)
