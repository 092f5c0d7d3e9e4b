"""Expert label volumes of a ``unet3d`` project: the checks an uploaded label passes before it is recorded.

A label has its volume's exact geometry (size, spacing, origin and direction, within the tolerances of
:meth:`covidal.data.volume.Volume.same_geometry`) and whole, non-negative values: 0 is background and any
value above 0 infection, so a binary mask {0, 1} and a map of lesion classes {0..N} are both accepted (the
3D training binarises them). Every problem is raised as :class:`~covidal.service.store.errors.Invalid` (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat, VolumeGeometry
from covidal.service.uploads.limits import DecodeLimits
from covidal.service.uploads.sandbox import read_upload_safely
from covidal.service.volumes import geometry_of

GEOMETRY_TOLERANCE = 1e-4  # spacing (mm) and direction cosines; origin (mm) gets 100 times more, as same_geometry


@dataclass(frozen=True)
class LabelSummary:
    """What an accepted label holds: voxels above 0, and its largest value."""

    foreground_voxels: int
    max_label: int


def check_label_file(
    path: Path, label_format: VolumeFormat, geometry: VolumeGeometry, volume_id: int, limits: DecodeLimits
) -> LabelSummary:
    """Read the uploaded label at ``path`` (:func:`~covidal.service.uploads.sandbox.read_upload_safely`) and check
    it against its volume's ``geometry``.

    Raises:
        Invalid: anything ``read_upload_safely`` refuses, a geometry other than the volume's (naming the property
            and both values), or values that are not whole numbers >= 0.
        UploadTooLarge: more voxels than ``limits`` allow.
    """
    label = read_upload_safely(path, label_format, limits)
    difference = geometry_difference(geometry_of(label), geometry)
    if difference is not None:
        raise Invalid(
            f"the label does not fit volume {volume_id}: {difference}; a label must have its volume's "
            "exact geometry (resample or re-export it on the volume's grid)"
        )
    values = _whole_values(label.array)
    return LabelSummary(int(np.count_nonzero(values)), int(values.max()))


def geometry_difference(found: VolumeGeometry, expected: VolumeGeometry) -> str | None:
    """The first way ``found`` differs from ``expected`` (the volume's), or None when they match."""
    if found.dims != expected.dims:
        return f"its size (i, j, k) is {found.dims}, the volume's {expected.dims}"
    if not np.allclose(found.spacing, expected.spacing, atol=GEOMETRY_TOLERANCE):
        return f"its spacing is {_numbers(found.spacing)} mm, the volume's {_numbers(expected.spacing)} mm"
    if not np.allclose(found.origin, expected.origin, atol=GEOMETRY_TOLERANCE * 100):
        return f"its origin is {_numbers(found.origin)} mm, the volume's {_numbers(expected.origin)} mm"
    if not np.allclose(found.direction, expected.direction, atol=GEOMETRY_TOLERANCE):
        return f"its direction is {_numbers(found.direction)}, the volume's {_numbers(expected.direction)}"
    return None


def _numbers(values: tuple[float, ...]) -> str:
    """``(0.7, 0.8, 3)`` for messages: 6 significant digits, so float noise (2.9999999999999996) does not show."""
    return "(" + ", ".join(f"{value:.6g}" for value in values) + ")"


def _whole_values(array: np.ndarray) -> np.ndarray:
    """``array`` if its values are whole numbers >= 0 (any real dtype); Invalid naming an offending value."""
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise Invalid(f"the label holds {array.dtype} voxels; expected whole numbers (0 background, > 0 infection)")
    fractional = array != np.rint(array) if np.issubdtype(array.dtype, np.floating) else None
    if fractional is not None and fractional.any():
        raise Invalid(
            f"the label holds values that are not whole numbers (e.g. {array[fractional].flat[0]}); "
            "labels are 0 (background) and whole numbers above 0 (infection)"
        )
    if array.size and array.min() < 0:
        raise Invalid(
            f"the label holds negative values (e.g. {array.min()}); labels are 0 (background) and whole "
            "numbers above 0 (infection)"
        )
    return array
