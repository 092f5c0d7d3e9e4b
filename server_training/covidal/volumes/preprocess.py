"""Bring CT volumes onto the 3D training grid: a fixed voxel spacing and a fixed HU window.

Every case is resampled to :data:`TARGET_SPACING_MM` so the network sees
lesions at one physical scale whatever the scanner's slice thickness, and
windowed with :data:`CT_WINDOW` into ``[0, 1]``. Geometry (origin, direction)
is kept, so predictions made on the training grid map back exactly onto the
grid the volume was read on (:func:`resample_to_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import SimpleITK as sitk

from covidal.data.io import read_label_volume, read_volume
from covidal.data.volume import Volume
from covidal.data.window import HUWindow
from covidal.volumes.cases import CaseSource

TARGET_SPACING_MM: tuple[float, float, float] = (1.6, 1.6, 3.2)  # (i, j, k)

# Clips HU to [-1000, 400]: air (-1000), aerated lung (about -900 to -700), ground-glass opacity
# (about -700 to -300) and consolidation (about -100 to 100) all keep distinct values, while bone
# and contrast (> 400) saturate at 1, as they carry nothing for infection segmentation.
CT_WINDOW = HUWindow(level=-300.0, width=1400.0)


class Interpolation(StrEnum):
    """How voxel values are taken between grid points."""

    LINEAR = "linear"  # intensities and probabilities
    NEAREST = "nearest"  # labels: never invents a value between two classes


_SITK_INTERPOLATORS = {Interpolation.LINEAR: sitk.sitkLinear, Interpolation.NEAREST: sitk.sitkNearestNeighbor}


@dataclass
class PreparedCase:
    """One case on the training grid, with the geometry needed to map predictions back.

    Attributes:
        name: case name.
        image: float32 ``[K, J, I]`` in ``[0, 1]`` on the training grid.
        label: uint8 ``[K, J, I]`` in {0, 1} on the training grid, or None.
        grid: the training grid's geometry (``grid.array`` is ``image``).
        source: the volume as read (HU), whose grid predictions go back to.
    """

    name: str
    image: np.ndarray
    label: np.ndarray | None
    grid: Volume
    source: Volume


def resample_to_spacing(
    volume: Volume,
    spacing: tuple[float, float, float],
    interpolation: Interpolation,
    default_value: float = 0.0,
    extrapolate: bool = False,
) -> Volume:
    """Resample ``volume`` to ``spacing`` (mm, ``(i, j, k)``), keeping its origin and direction.

    The size along each axis is ``max(1, round(n * old_spacing / new_spacing))``,
    so the new grid covers the same extent to within half a new voxel.

    Args:
        volume: any 3D volume (oblique directions included).
        spacing: new voxel size in mm, ``(i, j, k)``.
        interpolation: LINEAR for intensities, NEAREST for labels.
        default_value: value of output voxels outside the input's extent.
        extrapolate: instead, continue the input beyond its extent with copies of its edge voxels
            (interpolation along the other axes still applies; see :func:`_with_edge_margin`).

    Returns:
        The resampled volume, ``array`` ``[K', J', I']``: float32 for LINEAR, the input dtype for NEAREST.

    Raises:
        ValueError: ``spacing`` is not three positive finite numbers.
    """
    spacing = _checked_spacing(spacing)
    size = tuple(max(1, round(n * old / new)) for n, old, new in zip(volume.shape_ijk, volume.spacing, spacing))
    return _resample(volume, size, spacing, volume.origin, volume.direction, interpolation, default_value, extrapolate)


def resample_to_grid(
    volume: Volume,
    reference: Volume,
    interpolation: Interpolation,
    default_value: float = 0.0,
    extrapolate: bool = False,
) -> Volume:
    """Resample ``volume`` onto ``reference``'s grid (size, spacing, origin and direction copied exactly).

    Args and returns as in :func:`resample_to_spacing`; ``reference``'s voxel values are not used.
    """
    return _resample(
        volume,
        reference.shape_ijk,
        reference.spacing,
        reference.origin,
        reference.direction,
        interpolation,
        default_value,
        extrapolate,
    )


def prepare_case(
    case: CaseSource,
    spacing: tuple[float, float, float] = TARGET_SPACING_MM,
    window: HUWindow = CT_WINDOW,
) -> PreparedCase:
    """Read a case and put it on the training grid.

    The image is resampled in HU (LINEAR) and windowed afterwards: a coarse
    voxel then holds the mean HU of the tissue it covers, as a scan with that
    voxel size would measure, before the window maps it to ``[0, 1]``.
    (Windowing first would average clipped values: a voxel half bone (+1000 HU)
    and half lung (-900 HU) would get (1 + 0.07) / 2 = 0.54 instead of the
    window value of its mean, 50 HU -> 0.75.) The
    label is binarised (any label > 0 is infection) and resampled NEAREST onto
    exactly the image's new grid. Voxels of the new grid up to half a voxel
    beyond the scan's extent copy the nearest edge voxel.

    Raises:
        CovidalError: anything :func:`read_volume` / :func:`read_label_volume`
            refuse (missing or unreadable files, 2D files, a label whose grid
            differs from its image's, non-integer labels).
        ValueError: ``spacing`` is not three positive finite numbers.
    """
    source = read_volume(case.image)
    hu = resample_to_spacing(source, spacing, Interpolation.LINEAR, extrapolate=True)
    grid = hu.with_array(window.apply(hu.array))
    label = None
    if case.label is not None:
        labels = read_label_volume(case.label, source)
        binary = labels.with_array((labels.array > 0).astype(np.uint8))
        label = resample_to_grid(binary, grid, Interpolation.NEAREST, extrapolate=True).array
    return PreparedCase(case.name, grid.array, label, grid, source)


def prepare_cases(
    cases: Iterable[CaseSource],
    spacing: tuple[float, float, float] = TARGET_SPACING_MM,
    window: HUWindow = CT_WINDOW,
) -> list[PreparedCase]:
    """:func:`prepare_case` for each case, in order."""
    return [prepare_case(case, spacing, window) for case in cases]


def _checked_spacing(spacing: tuple[float, float, float]) -> tuple[float, float, float]:
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be three positive millimetre values (i, j, k), got {tuple(spacing)}")
    return values  # type: ignore[return-value]


def _resample(
    volume: Volume,
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    direction: np.ndarray,
    interpolation: Interpolation,
    default_value: float,
    extrapolate: bool,
) -> Volume:
    interpolation = Interpolation(interpolation)
    dtype = volume.array.dtype
    # SimpleITK has no bool pixel type; uint8 carries the same values.
    source = volume.with_array(volume.array.astype(np.uint8)) if dtype == bool else volume
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in size])
    resampler.SetOutputSpacing([float(s) for s in spacing])
    resampler.SetOutputOrigin([float(o) for o in origin])
    resampler.SetOutputDirection([float(d) for d in np.asarray(direction, dtype=float).ravel()])
    resampler.SetInterpolator(_SITK_INTERPOLATORS[interpolation])
    resampler.SetDefaultPixelValue(float(default_value))
    if interpolation is Interpolation.LINEAR:
        resampler.SetOutputPixelType(sitk.sitkFloat32)
    if extrapolate:
        source = _with_edge_margin(source)
        resampler.SetUseNearestNeighborExtrapolator(True)
    resampled = Volume.from_sitk(resampler.Execute(source.to_sitk()))
    if interpolation is Interpolation.NEAREST and resampled.array.dtype != dtype:
        resampled = resampled.with_array(resampled.array.astype(dtype))
    return resampled


def _with_edge_margin(volume: Volume) -> Volume:
    """``volume`` grown by one copy of its edge voxels on every side (origin moved one voxel back per axis).

    ITK interpolates only within half a voxel of the outer voxel centres and its
    nearest-neighbour extrapolator then drops linear interpolation along every
    axis at once. With the margin, points up to 1.5 voxels outside are still
    interpolated linearly along the axes where they lie inside, and constant
    along the axis where they lie outside.
    """
    origin = np.asarray(volume.origin) - volume.direction @ np.asarray(volume.spacing)
    return Volume(np.pad(volume.array, 1, mode="edge"), volume.spacing, tuple(origin), volume.direction)
