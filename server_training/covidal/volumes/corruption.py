"""Deliberately corrupted pseudo-labels at a controlled rate, to test re-weighting of noisy teachers.

A re-weighting of pseudo-labels can only be judged when some of them are known to be wrong.
:func:`corrupt_label_folder` copies a folder of label volumes and corrupts a chosen share of
them in one of these ways (:class:`Corruption`):

* ``erase``: no lesion at all (the label is all 0);
* ``dilate``: every lesion grown by ``DILATE_MM`` (a physical ball, so anisotropic spacing counts);
* ``shift``: the label translated by ``SHIFT_MM`` in a random in-plane (axial) direction, so it
  no longer lies on the lesions; what is pushed past the border is dropped, nothing wraps round;
* ``swap``: the label of another case of the same size;
* ``mixed``: one of the above, drawn per corrupted volume.

Corrupted labels are binary: any non-zero value counts as lesion, the result is {0, 1} in the
input's dtype. ``corruption.json`` beside the copies says which cases were corrupted and how,
with the Dice of each corrupted label against its original (1.0 when both are empty).
"""

from __future__ import annotations

import math
import shutil
from enum import StrEnum
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from covidal.data.case_files import (
    case_name,
    files_with_suffixes,
    natural_sorted,
    unique_by_name,
)
from covidal.data.io import VOLUME_SUFFIXES, read_volume, volume_suffix, write_volume
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.utils.atomic import atomic_write, atomic_write_json
from covidal.validation import check_int, check_real

CORRUPTION_FILE = "corruption.json"
DILATE_MM = 6.0
SHIFT_MM = 15.0
DETACHED_SUFFIXES = (".mhd", ".nhdr")  # a header naming a separate data file
# Distances between voxel centres are sums of squares of spacings: allow rounding at the ball's rim.
_DISTANCE_TOLERANCE_MM = 1e-6


class Corruption(StrEnum):
    ERASE = "erase"
    DILATE = "dilate"
    SHIFT = "shift"
    SWAP = "swap"
    MIXED = "mixed"


SINGLE_VOLUME_KINDS = (Corruption.ERASE, Corruption.DILATE, Corruption.SHIFT)


def dilate_label(label: np.ndarray, radius_mm: float, spacing_ijk) -> np.ndarray:
    """Voxels within ``radius_mm`` (between voxel centres) of a lesion voxel, inside the volume.

    Args:
        label: ``[K, J, I]``; non-zero is lesion.
        radius_mm: growth in mm (>= 0).
        spacing_ijk: voxel size ``(i, j, k)`` in mm.

    Returns:
        bool ``[K, J, I]``, containing ``label != 0``.
    """
    lesion = np.asarray(label) != 0
    if not lesion.any():
        return lesion
    distance = ndimage.distance_transform_edt(~lesion, sampling=tuple(spacing_ijk)[::-1])
    return distance <= radius_mm + _DISTANCE_TOLERANCE_MM


def shift_label(label: np.ndarray, offset_mm_ijk, spacing_ijk) -> np.ndarray:
    """``label != 0`` translated by ``offset_mm_ijk`` rounded to whole voxels; what leaves the volume is dropped.

    Args:
        label: ``[K, J, I]``; non-zero is lesion.
        offset_mm_ijk: translation ``(i, j, k)`` in mm.
        spacing_ijk: voxel size ``(i, j, k)`` in mm.

    Returns:
        bool ``[K, J, I]``: ``shifted[k + dk, j + dj, i + di] = label[k, j, i] != 0`` with
        ``(di, dj, dk)`` = :func:`offset_in_voxels`.
    """
    lesion = np.asarray(label) != 0
    shifted = np.zeros_like(lesion)
    offset_kji = offset_in_voxels(offset_mm_ijk, spacing_ijk)[::-1]
    target, source = zip(*(_shift_slices(int(d), n) for d, n in zip(offset_kji, lesion.shape)))
    shifted[target] = lesion[source]
    return shifted


def offset_in_voxels(offset_mm_ijk, spacing_ijk) -> np.ndarray:
    """``(di, dj, dk)``: the offset in mm rounded to the nearest whole number of voxels per axis."""
    return np.rint(np.asarray(offset_mm_ijk, dtype=float) / np.asarray(spacing_ijk, dtype=float)).astype(int)


def _shift_slices(offset: int, size: int) -> tuple[slice, slice]:
    """``(target, source)`` slices of one axis of length ``size`` for a translation by ``offset``."""
    offset = max(-size, min(size, offset))
    if offset >= 0:
        return slice(offset, size), slice(0, size - offset)
    return slice(0, size + offset), slice(-offset, size)


def corrupt_label(label: np.ndarray, kind: Corruption, spacing_ijk, rng: np.random.Generator) -> np.ndarray:
    """One corrupted copy of ``label`` (single-volume kinds: erase, dilate, shift or mixed among them).

    Args:
        label: ``[K, J, I]``; non-zero is lesion.
        kind: any :class:`Corruption` but ``swap``.
        spacing_ijk: voxel size ``(i, j, k)`` in mm.
        rng: draws the shift direction and, for ``mixed``, the kind.

    Returns:
        ``[K, J, I]`` {0, 1} in ``label``'s dtype.

    Raises:
        ValueError: ``label`` is not 3D, the spacing is not three positive numbers, or
            ``kind`` is ``swap`` (it needs other cases: see :func:`corrupt_label_folder`).
    """
    return _corrupt_single(np.asarray(label), Corruption(kind), spacing_ijk, rng)[0]


def _corrupt_single(
    label: np.ndarray, kind: Corruption, spacing_ijk, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """The corrupted label and its ``corruption.json`` entry (kind and parameters)."""
    spacing = np.asarray(spacing_ijk, dtype=float)
    if label.ndim != 3:
        raise ValueError(f"label must be a 3D [K, J, I] array, got shape {label.shape}")
    if spacing.shape != (3,) or not (spacing > 0).all():
        raise ValueError(f"spacing must be three positive numbers (i, j, k), got {spacing_ijk}")
    if kind is Corruption.SWAP:
        raise ValueError("swap needs the labels of other cases; use corrupt_label_folder")
    if kind is Corruption.MIXED:
        kind = SINGLE_VOLUME_KINDS[int(rng.integers(len(SINGLE_VOLUME_KINDS)))]
    if kind is Corruption.ERASE:
        return np.zeros_like(label), {"kind": kind.value}
    if kind is Corruption.DILATE:
        grown = dilate_label(label, DILATE_MM, spacing)
        return grown.astype(label.dtype), {"kind": kind.value, "radius_mm": DILATE_MM}
    angle = rng.uniform(0.0, 2.0 * math.pi)
    offset_mm = SHIFT_MM * np.array([math.cos(angle), math.sin(angle), 0.0])
    voxels = offset_in_voxels(offset_mm, spacing)
    detail = {
        "kind": kind.value,
        "offset_voxels_ijk": voxels.tolist(),
        "offset_mm_ijk": [round(float(v), 3) for v in voxels * spacing],
    }
    return shift_label(label, offset_mm, spacing).astype(label.dtype), detail


def corrupt_label_folder(labels: Path, out: Path, rate: float, kind: Corruption, seed: int) -> dict:
    """Copy every label volume of ``labels`` to ``out``, corrupting ``round(rate * N)`` of them.

    Files keep their names (so they still match their images) and their geometry. Unchosen
    files are copied unchanged without being read (byte for byte; detached-header formats are
    rewritten so their data file comes along); corrupted ones are written in the same format.
    The cases to corrupt are drawn with ``numpy.random.default_rng(seed)`` (Python's ``round``:
    an exact half goes to the even count), which then draws each corruption in natural order
    of name. ``out/corruption.json`` holds the returned record.

    Args:
        labels: folder of label volumes (any of ``VOLUME_SUFFIXES``; hidden files and subfolders are ignored).
        out: output folder; must not be ``labels``.
        rate: share of the volumes to corrupt, in [0, 1].
        kind: how to corrupt them (module docstring).
        seed: seeds the choice and the corruptions.

    Returns:
        ``{"labels", "rate", "kind", "seed", "cases", "corrupted": [{"name", "file", "kind",
        ...parameters, "dice_to_original"}], "unchanged": [names]}``.

    Raises:
        CovidalError: ``labels`` is missing, not a folder or holds no label volumes; two files
            share a case name; ``out`` is ``labels``, a file, or holds volumes of other cases;
            ``rate`` is outside [0, 1]; a negative ``seed``; an unknown ``kind``; ``swap`` with
            fewer than 2 cases or a chosen case without another case of the same size; a chosen
            label with non-integer values.
    """
    labels, out = Path(labels), Path(out)
    kind = _corruption_kind(kind)
    _check_rate_and_seed(rate, seed)
    files = _label_files(labels)
    _check_output_folder(out, labels, files)
    names = natural_sorted(files)
    rng = np.random.default_rng(seed)
    chosen = {names[index] for index in rng.choice(len(names), size=round(rate * len(names)), replace=False)}
    partners = _swap_partners(files, names, chosen, kind)
    (out / CORRUPTION_FILE).unlink(missing_ok=True)  # a stale record must not describe the new copies
    corrupted = []
    for name in names:
        target = out / files[name].name
        if name not in chosen:
            _copy_volume(files[name], target)
            continue
        volume = _read_label(files[name])
        array, detail = _corrupt_case(volume, kind, files, partners[name], rng)
        write_volume(volume.with_array(array), target)
        entry = {"name": name, "file": files[name].name, **detail}
        corrupted.append({**entry, "dice_to_original": _dice(array, volume.array)})
    record = {
        "labels": str(labels),
        "rate": rate,
        "kind": kind.value,
        "seed": seed,
        "cases": len(names),
        "corrupted": corrupted,
        "unchanged": [name for name in names if name not in chosen],
    }
    atomic_write_json(out / CORRUPTION_FILE, record)
    return record


def _check_rate_and_seed(rate: float, seed: int) -> None:
    check_real("corruption rate", rate, minimum=0.0, maximum=1.0)
    check_int("seed", seed, minimum=0)


def _corruption_kind(kind) -> Corruption:
    try:
        return Corruption(kind)
    except ValueError:
        raise CovidalError(
            f"unknown corruption {kind!r}; choose one of {', '.join(k.value for k in Corruption)}"
        ) from None


def _label_files(folder: Path) -> dict[str, Path]:
    if not folder.exists():
        raise CovidalError(f"labels folder {folder} does not exist")
    if not folder.is_dir():
        raise CovidalError(f"labels {folder} is not a folder of label volumes")
    files = unique_by_name(files_with_suffixes(folder, VOLUME_SUFFIXES), folder)
    if not files:
        raise CovidalError(f"{folder} holds no label volumes ({', '.join(VOLUME_SUFFIXES)})")
    return files


def _check_output_folder(out: Path, labels: Path, files: dict[str, Path]) -> None:
    if out.exists() and not out.is_dir():
        raise CovidalError(f"output folder {out} is a file")
    if out.resolve() == labels.resolve():
        raise CovidalError(f"output folder {out} is the labels folder; the originals must stay as they are")
    if out.is_dir():
        foreign = sorted(p.name for p in files_with_suffixes(out, VOLUME_SUFFIXES) if case_name(p) not in files)
        if foreign:
            raise CovidalError(
                f"{out} holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}, "
                f"which are not among the label volumes of {labels}; use an empty output folder"
            )


def _swap_partners(
    files: dict[str, Path], names: list[str], chosen: set[str], kind: Corruption
) -> dict[str, list[str]]:
    """For each case, the other cases of the same size (whose labels it may receive); empty unless swapping."""
    if kind not in (Corruption.SWAP, Corruption.MIXED):
        return {name: [] for name in names}
    if kind is Corruption.SWAP and len(names) < 2:
        raise CovidalError(f"swap needs at least 2 label volumes, {files[names[0]].parent} holds 1")
    sizes = {name: _size_of(files[name]) for name in names}
    partners = {name: [other for other in names if other != name and sizes[other] == sizes[name]] for name in names}
    lonely = [name for name in natural_sorted(chosen) if not partners[name]]
    if kind is Corruption.SWAP and lonely:
        raise CovidalError(
            f"cannot swap the label of {lonely[0]} (size {sizes[lonely[0]]}): no other label volume has that size"
        )
    return partners


def _size_of(path: Path) -> tuple[int, ...]:
    """Size ``(i, j, k)`` of a volume file from its header alone."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise CovidalError(f"cannot read volume {path}: {str(error).strip().splitlines()[-1]}") from None
    return reader.GetSize()


def _copy_volume(source: Path, target: Path) -> None:
    """Copy a volume file byte for byte (so its geometry is exactly kept, even in NIfTI's float32 header).

    Detached-header formats are read and written instead, so their data file comes along.
    """
    if volume_suffix(source) in DETACHED_SUFFIXES:
        write_volume(read_volume(source), target)
    else:
        atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def _read_label(path: Path) -> Volume:
    volume = read_volume(path)
    array = volume.array
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.rint(array)):
        raise CovidalError(f"label volume {path} holds non-integer values; corrupt-labels needs hard labels")
    return volume


def _corrupt_case(
    volume: Volume, kind: Corruption, files: dict[str, Path], partners: list[str], rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """The corrupted array of one case and its entry; ``mixed`` includes swap when the case has partners."""
    if kind is Corruption.MIXED:
        kinds = SINGLE_VOLUME_KINDS + ((Corruption.SWAP,) if partners else ())
        kind = kinds[int(rng.integers(len(kinds)))]
    if kind is not Corruption.SWAP:
        return _corrupt_single(volume.array, kind, volume.spacing, rng)
    source = partners[int(rng.integers(len(partners)))]
    swapped = (_read_label(files[source]).array != 0).astype(volume.array.dtype)
    return swapped, {"kind": kind.value, "label_of": source}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of ``a != 0`` and ``b != 0``; 1.0 when both are empty."""
    a, b = a != 0, b != 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else round(2.0 * int((a & b).sum()) / total, 6)
