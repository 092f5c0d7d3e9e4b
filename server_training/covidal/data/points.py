"""Point labels: the paper's click protocol, and the JSON file the server and 3D Slicer share.

A point label is one clicked pixel on one 2D slice, given in that slice's
native pixel grid (``row`` indexes the image height, ``col`` the width).

Protocol (:func:`derive_points`, used to simulate an annotator from a full
mask): one INFECTION point per 8-connected infected region, at the pixel
deepest inside that region, plus as many BACKGROUND points as infection points,
drawn uniformly from the background. A slice without infection gets one
background point, so that every annotated slice carries at least one label.
``min_background`` raises that floor: at least that many background points per
slice (for volumes whose lesions are small, where a handful of background
clicks cannot tell the network how small infection is).

JSON format (version 1)::

    {"format": "covidal.points", "version": 1,
     "points": [{"slice": "12", "row": 40, "col": 17, "label": 1}, ...]}

* ``slice``: the slice id, a non-empty string.
* ``row``, ``col``: non-negative integers in the slice's native pixel grid
  (``row`` along the image height, ``col`` along its width).
* ``label``: 1 = infection, 0 = background.

Other keys are ignored, so later writers may add information without breaking
this reader.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from covidal.errors import CovidalError
from covidal.utils.atomic import atomic_write
from covidal.utils.documents import read_document
from covidal.validation import check_int, is_integer

FORMAT_NAME = "covidal.points"
FORMAT_VERSION = 1
IGNORE_INDEX = -1
"""Value of unlabelled pixels in a point label map (the loss skips them)."""

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class PointClass(IntEnum):
    """What a clicked pixel shows."""

    BACKGROUND = 0
    INFECTION = 1


@dataclass(frozen=True)
class PointLabel:
    """One clicked pixel on one slice, in that slice's NATIVE pixel grid.

    Raises:
        ValueError: empty ``slice_id``, negative or non-integer ``row``/``col``,
            or a ``label`` that is not 0/1.
    """

    slice_id: str
    row: int
    col: int
    label: PointClass

    def __post_init__(self) -> None:
        if not isinstance(self.slice_id, str) or not self.slice_id:
            raise ValueError(f"slice_id must be a non-empty string, got {self.slice_id!r}")
        for name in ("row", "col"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=0))
        # Accept a plain 0/1 so callers need not wrap it; store the enum.
        object.__setattr__(self, "label", PointClass(self.label))


# --- protocol -----------------------------------------------------------------


def derive_points(
    mask: np.ndarray, slice_id: str, rng: np.random.Generator, min_background: int = 1
) -> list[PointLabel]:
    """Simulate the annotator's clicks on one slice from its full infection mask.

    Args:
        mask: ``[H, W]`` infection mask, any dtype; non-zero = infection.
        slice_id: id stored in the returned points.
        rng: source of the background points' positions.
        min_background: at least this many background points (>= 1).

    Returns:
        The infection points (one per 8-connected component, in the order of
        each component's first pixel in row-major order), then the background
        points (row-major order): as many as infection points, but at least
        ``min_background``; fewer only if the background is too small.

    Raises:
        ValueError: ``mask`` is not a non-empty 2D array, or ``min_background < 1``.
    """
    check_int("min_background", min_background, minimum=1)
    infected = _as_2d_bool(mask)
    infection = [PointLabel(slice_id, row, col, PointClass.INFECTION) for row, col in _component_centres(infected)]
    wanted_background = max(len(infection), min_background)
    background = [
        PointLabel(slice_id, row, col, PointClass.BACKGROUND)
        for row, col in _sample_pixels(~infected, wanted_background, rng)
    ]
    return infection + background


def derive_points_for_slices(masks: Mapping[str, np.ndarray], seed: int, min_background: int = 1) -> list[PointLabel]:
    """:func:`derive_points` for many slices, reproducible from ``seed``.

    Each slice draws from its own generator seeded by ``(seed, crc32(slice_id))``,
    so a slice's points depend neither on the mapping's order nor on which
    other slices are present.

    Args:
        masks: slice id -> ``[H, W]`` infection mask.
        seed: non-negative integer.
        min_background: passed to :func:`derive_points`.

    Returns:
        All points, slices in sorted id order.

    Raises:
        ValueError: negative or non-integer ``seed``, or a bad mask.
    """
    check_int("seed", seed, minimum=0)
    points: list[PointLabel] = []
    for slice_id in sorted(masks):
        rng = np.random.default_rng([int(seed), zlib.crc32(slice_id.encode("utf-8"))])
        points.extend(derive_points(masks[slice_id], slice_id, rng, min_background))
    return points


def _as_2d_bool(mask: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool view of a mask; ValueError for anything else."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must be a non-empty 2D array [H, W], got shape {mask.shape}")
    return mask != 0


def _component_centres(infected: np.ndarray) -> list[tuple[int, int]]:
    """The deepest pixel of each 8-connected component of ``infected`` ``[H, W]``.

    Depth is the Euclidean distance to the nearest pixel outside the component,
    computed on the component alone (neighbouring components do not count as
    inside) and with the image border counted as outside. Ties go to the first
    pixel in row-major order.
    """
    labels, _ = ndimage.label(infected, structure=_EIGHT_CONNECTED)
    centres = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        component = labels[box] == index
        # A zero frame makes the image border count as the lesion's edge.
        depth = ndimage.distance_transform_edt(np.pad(component, 1))[1:-1, 1:-1]
        # argmax returns the first maximum in row-major order of the box, which
        # is also row-major order in the full image.
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        centres.append((int(row) + box[0].start, int(col) + box[1].start))
    return centres


def _sample_pixels(allowed: np.ndarray, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Up to ``count`` distinct pixels of ``allowed`` ``[H, W]``, uniformly, in row-major order."""
    candidates = np.flatnonzero(allowed)
    chosen = np.sort(rng.choice(candidates, size=min(count, candidates.size), replace=False))
    rows, cols = np.unravel_index(chosen, allowed.shape)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


# --- grouping and label maps ---------------------------------------------------


def points_by_slice(points: Sequence[PointLabel]) -> dict[str, list[PointLabel]]:
    """Group points by slice id; slices in order of first appearance, points in input order."""
    grouped: dict[str, list[PointLabel]] = {}
    for point in points:
        grouped.setdefault(point.slice_id, []).append(point)
    return grouped


def point_label_map(points: Sequence[PointLabel], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one slice's points.

    Args:
        points: points of a single slice.
        shape: ``(H, W)`` of that slice.

    Returns:
        int64 ``[H, W]``: :data:`IGNORE_INDEX` everywhere except the points,
        which hold 0 (background) or 1 (infection). Where a background and an
        infection point share a pixel, infection wins (a click on a lesion is
        the stronger statement).

    Raises:
        ValueError: points from several slices, a non-positive shape, or a
            point outside ``shape`` (check user input with
            :func:`validate_points_in_bounds` first).
    """
    height, width = shape
    if height <= 0 or width <= 0:
        raise ValueError(f"shape must be positive, got {shape}")
    slice_ids = {point.slice_id for point in points}
    if len(slice_ids) > 1:
        raise ValueError(f"points must come from one slice, got slices {sorted(slice_ids)}")
    label_map = np.full((height, width), IGNORE_INDEX, dtype=np.int64)
    # Background first so that infection overwrites it on shared pixels.
    for point in sorted(points, key=lambda p: p.label):
        if point.row >= height or point.col >= width:
            raise ValueError(f"point ({point.row}, {point.col}) lies outside a slice of shape {shape}")
        label_map[point.row, point.col] = int(point.label)
    return label_map


def validate_points_in_bounds(points: Sequence[PointLabel], shapes: Mapping[str, tuple[int, int]]) -> None:
    """Check that every point lies on a known slice, inside it.

    Args:
        points: points to check.
        shapes: slice id -> native ``(H, W)``.

    Raises:
        CovidalError: a point on a slice missing from ``shapes``, or outside its slice.
    """
    for point in points:
        if point.slice_id not in shapes:
            raise CovidalError(
                f"point label on slice {point.slice_id!r}, which is not in the data set; "
                "remove the point or add the slice"
            )
        height, width = shapes[point.slice_id]
        if point.row >= height or point.col >= width:
            raise CovidalError(
                f"point label (row {point.row}, col {point.col}) lies outside slice {point.slice_id!r} "
                f"of size {height}x{width} (rows x cols); fix or remove the point"
            )


# --- JSON file -----------------------------------------------------------------


def save_points(path: Path, points: Sequence[PointLabel]) -> None:
    """Write ``points`` as a version-1 points file, atomically (temp file + rename).

    Raises:
        OSError: the file cannot be written.
    """
    path = Path(path)
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "points": [{"slice": p.slice_id, "row": p.row, "col": p.col, "label": int(p.label)} for p in points],
    }
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8"))


def load_points(path: Path) -> list[PointLabel]:
    """Read a points file written by :func:`save_points` or the 3D Slicer module.

    Raises:
        CovidalError: missing or unreadable file, invalid JSON, wrong format or
            version, or a point with missing keys, a non-integer or negative
            row/col, an empty slice id, or a label other than 0/1.
    """
    path = Path(path)
    document = read_document(path, FORMAT_NAME, FORMAT_VERSION, "points file", "check the path")
    entries = document.get("points")
    if not isinstance(entries, list):
        raise CovidalError(f'{path}: "points" must be a list of point objects')
    return [_parse_point(entry, position, path) for position, entry in enumerate(entries)]


def _parse_point(entry: Any, position: int, path: Path) -> PointLabel:
    """One ``points`` entry as a :class:`PointLabel`; CovidalError naming the entry when invalid."""
    where = f"{path}: point #{position}"
    if not isinstance(entry, dict):
        raise CovidalError(f"{where} must be an object with keys slice, row, col, label")
    missing = [key for key in ("slice", "row", "col", "label") if key not in entry]
    if missing:
        raise CovidalError(f"{where} lacks key(s) {', '.join(missing)}")
    slice_id = entry["slice"]
    if not isinstance(slice_id, str) or not slice_id:
        raise CovidalError(f'{where}: "slice" must be a non-empty string, got {slice_id!r}')
    for key in ("row", "col"):
        if not is_integer(entry[key]) or entry[key] < 0:
            raise CovidalError(f'{where}: "{key}" must be a non-negative integer, got {entry[key]!r}')
    label = entry["label"]
    if not is_integer(label) or label not in (0, 1):
        raise CovidalError(f'{where}: "label" must be 0 (background) or 1 (infection), got {label!r}')
    return PointLabel(slice_id, entry["row"], entry["col"], PointClass(label))
