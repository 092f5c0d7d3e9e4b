"""Which regions the clinician has answered, and the label maps partially labelled slices train with.

A clinician answers a suggested region (:class:`~covidal.regions.grid.RegionId`)
with one click on infection or a "background" tag for the whole region; answers
are final. A slice trains with its answered regions only:

* pixels outside answered regions are ignored by the loss (:data:`IGNORE_INDEX`, -1);
* a background-tagged region contributes its pixels (or a seeded sample of
  them) as background (0);
* an infection region contributes only its clicked point(s) (1); the rest of
  the region stays -1.

File format (JSON, written atomically by :meth:`AnnotationState.save`)::

    {
      "format": "covidal.annotations",
      "version": 1,
      "regions": 64,
      "labels": [
        {"case": "ct1", "slice": "ct1:40", "region": 17, "answer": "infection", "points": [[120, 88]]},
        {"case": "ct1", "slice": "ct1:40", "region": 18, "answer": "background", "points": []}
      ]
    }

``regions`` is ``K`` of the :class:`~covidal.regions.grid.RegionGrid` the
region indices refer to; points are ``[row, col]`` on the slice's NATIVE pixel
grid. Labels are written in :class:`RegionId` order; unknown keys are ignored. A label of the simulated
``mask`` answer protocol also has ``"outlined": true``: its points are all the region's infected pixels, and
the rest of the region trains as background.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from covidal.data.points import IGNORE_INDEX, PointClass
from covidal.data.resizing import GridMapping
from covidal.errors import CovidalError
from covidal.regions.grid import Box, RegionGrid, RegionId
from covidal.utils.atomic import atomic_write_json
from covidal.utils.documents import check_document, read_document
from covidal.validation import check_int, is_integer

FORMAT_NAME = "covidal.annotations"
FORMAT_VERSION = 1

SliceKey = tuple[str, str]
"""``(case, slice)`` of one axial slice, e.g. ``("12", "12")`` or ``("ct1", "ct1:40")``."""


class Answer(StrEnum):
    """The clinician's answer for one region."""

    BACKGROUND = "background"
    INFECTION = "infection"


@dataclass(frozen=True)
class RegionLabel:
    """The answer for one region.

    Attributes:
        region: the answered region.
        answer: background tag or infection (a plain ``"infection"`` string is accepted).
        points: native ``(row, col)`` clicks on infection; empty for a background tag.
        outlined: the region was delineated in full (the simulated ``mask`` answer protocol): ``points`` are
            all its infected pixels and every other pixel of it is background.

    Raises:
        ValueError: ``region`` is not a :class:`RegionId`, an unknown answer,
            an infection without points, a background tag with points or outlined, or a
            point that is not a pair of distinct non-negative integers.
    """

    region: RegionId
    answer: Answer
    points: tuple[tuple[int, int], ...] = ()
    outlined: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.region, RegionId):
            raise ValueError(f"region must be a RegionId, got {self.region!r}")
        object.__setattr__(self, "answer", Answer(self.answer))
        points = tuple(_checked_point(point) for point in self.points)
        if len(set(points)) != len(points):
            raise ValueError(f"{describe(self.region)}: the same pixel is clicked twice in {points}")
        if self.answer is Answer.INFECTION and not points:
            raise ValueError(f"{describe(self.region)}: an infection answer needs at least one clicked point")
        if self.answer is Answer.BACKGROUND and (points or self.outlined):
            raise ValueError(
                f"{describe(self.region)}: a background tag covers the whole region and has no points or outline"
            )
        if not isinstance(self.outlined, bool):
            raise ValueError(f"{describe(self.region)}: outlined must be true or false, got {self.outlined!r}")
        object.__setattr__(self, "points", points)

    @property
    def key(self) -> SliceKey:
        """``(case, slice)`` of the region's slice."""
        return (self.region.case, self.region.slice)


def describe(region: RegionId) -> str:
    """Human-readable name of a region for messages."""
    return f"region {region.region} of case {region.case!r} slice {region.slice!r}"


def check_seed(seed: int) -> int:
    """``seed`` as an int; ConfigError unless it is a non-negative integer."""
    return check_int("seed", seed, minimum=0)


def region_rng(seed: int, region: RegionId) -> np.random.Generator:
    """A generator that depends on ``seed`` and ``region`` only.

    Seeded with ``[seed, crc32(case), crc32(slice), region]`` (UTF-8 strings),
    so a draw depends neither on call order nor on the interpreter (Python's
    ``hash`` of a string is salted per process).

    Raises:
        ValueError: ``seed`` is not a non-negative integer.
    """
    entropy = [check_seed(seed), zlib.crc32(region.case.encode("utf-8")), zlib.crc32(region.slice.encode("utf-8"))]
    return np.random.default_rng(entropy + [region.region])


class AnnotationState:
    """The answered regions of a pool of slices.

    Args:
        grid: how every slice is cut into ``K`` regions.
        slice_shapes: native ``(H, W)`` of every slice in the pool, by ``(case, slice)``.

    Raises:
        ValueError: a key that is not two strings, or a shape that is not two
            integers of at least ``grid.side``.
    """

    def __init__(self, grid: RegionGrid, slice_shapes: Mapping[SliceKey, tuple[int, int]]) -> None:
        self.grid = grid
        self._boxes: dict[SliceKey, list[Box]] = {}
        self._shapes: dict[SliceKey, tuple[int, int]] = {}
        for key, shape in slice_shapes.items():
            if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(part, str) for part in key)):
                raise ValueError(f"slice keys must be (case, slice) string pairs, got {key!r}")
            self._boxes[key] = grid.boxes(shape)
            self._shapes[key] = (int(shape[0]), int(shape[1]))
        self._labels: dict[RegionId, RegionLabel] = {}
        # Answers per slice, so building one slice's label map does not scan the whole pool.
        self._by_slice: dict[SliceKey, list[RegionLabel]] = {}

    # --- adding answers ------------------------------------------------------

    def add(self, label: RegionLabel) -> None:
        """Record one answer.

        Raises:
            ValueError: unknown slice, region index ``>= K``, region already
                answered, or a point outside the region's native box.
        """
        self.add_many([label])

    def add_many(self, labels: Iterable[RegionLabel]) -> None:
        """Record several answers, all or none: every label is checked before any is stored.

        Raises:
            ValueError: as :meth:`add`, or the same region twice in ``labels``.
        """
        labels = list(labels)
        batch: set[RegionId] = set()
        for label in labels:
            self._check(label)
            if label.region in batch:
                raise ValueError(f"{describe(label.region)} is answered twice in this batch; answer each region once")
            batch.add(label.region)
        for label in labels:
            self._labels[label.region] = label
            self._by_slice.setdefault(label.key, []).append(label)

    def _check(self, label: RegionLabel) -> None:
        """ValueError unless ``label`` may be added to the current state."""
        if not isinstance(label, RegionLabel):
            raise ValueError(f"expected a RegionLabel, got {label!r}")
        region = label.region
        if label.key not in self._boxes:
            raise ValueError(
                f"{describe(region)} is on a slice that is not in the pool; add the slice's shape to slice_shapes"
            )
        if region.region >= self.grid.regions:
            raise ValueError(
                f"{describe(region)}: the index is out of range for a grid of {self.grid.regions} regions "
                f"(0 to {self.grid.regions - 1})"
            )
        if region in self._labels:
            raise ValueError(
                f"{describe(region)} is already answered ({self._labels[region].answer}); "
                "answers are final and cannot be changed or repeated"
            )
        box = self._boxes[label.key][region.region]
        for row, col in label.points:
            if not (box.row0 <= row < box.row1 and box.col0 <= col < box.col1):
                raise ValueError(
                    f"point ({row}, {col}) lies outside {describe(region)}, whose native box is "
                    f"rows [{box.row0}, {box.row1}) x cols [{box.col0}, {box.col1})"
                )

    # --- queries -------------------------------------------------------------

    @property
    def labelled(self) -> frozenset[RegionId]:
        """Every answered region."""
        return frozenset(self._labels)

    def labels(self) -> list[RegionLabel]:
        """Every answer, in :class:`RegionId` order (case, slice, region)."""
        return [self._labels[region] for region in sorted(self._labels)]

    def label_of(self, region: RegionId) -> RegionLabel | None:
        """The answer for ``region``, or None if it is not answered."""
        return self._labels.get(region)

    def labelled_slices(self) -> list[SliceKey]:
        """Sorted ``(case, slice)`` of slices with at least one answered region."""
        return sorted({(region.case, region.slice) for region in self._labels})

    def __len__(self) -> int:
        return len(self._labels)

    def counts(self) -> dict[str, int]:
        """``{"background": n, "infection": n}``: answered regions by answer."""
        counts = {answer.value: 0 for answer in Answer}
        for label in self._labels.values():
            counts[label.answer.value] += 1
        return counts

    def shape_of(self, key: SliceKey) -> tuple[int, int]:
        """Native ``(H, W)`` of a pool slice.

        Raises:
            ValueError: ``key`` is not in the pool.
        """
        if key not in self._shapes:
            raise ValueError(f"slice {key!r} is not in the pool")
        return self._shapes[key]

    # --- label maps ----------------------------------------------------------

    def label_map(self, key: SliceKey) -> np.ndarray:
        """The answers of one slice as a per-pixel target on its native grid.

        Returns:
            int64 ``[H, W]``: 0 on background-tagged (and outlined) regions, 1 on clicked
            points, :data:`IGNORE_INDEX` (-1) everywhere else.

        Raises:
            ValueError: ``key`` is not in the pool.
        """
        target = np.full(self.shape_of(key), IGNORE_INDEX, dtype=np.int64)
        boxes = self._boxes[key]
        for label in self._labels_of(key):
            if label.answer is Answer.BACKGROUND or label.outlined:
                target[boxes[label.region.region].slices] = int(PointClass.BACKGROUND)
            for row, col in label.points:
                target[row, col] = int(PointClass.INFECTION)
        return target

    def label_map_on_grid(
        self, key: SliceKey, train_size: int, background_sample: int | None = None, seed: int = 0
    ) -> np.ndarray:
        """The answers of one slice as a per-pixel target on the ``(S, S)`` training grid.

        A background region (and an outlined one, before its infected pixels) fills its box on the training grid
        (:meth:`RegionGrid.boxes_on_training_grid`, possibly empty) with 0, or,
        with ``background_sample``, that many of its pixels drawn without
        replacement (all of them if the box is smaller), from
        :func:`region_rng` ``(seed, region)``: the sample does not depend on
        the order in which regions were answered. Each infection point is
        mapped with :meth:`GridMapping.native_to_train` and set to 1, after the
        background: when the training grid is coarser than the native one, a
        click next to a band edge can land on a training pixel of the
        neighbouring region's box, and infection then wins, as in
        :func:`~covidal.data.points.point_label_map`.

        Args:
            key: ``(case, slice)`` of a pool slice.
            train_size: ``S`` (at least 8).
            background_sample: pixels per background region, or None for all.
            seed: source of the background sample.

        Returns:
            int64 ``[S, S]`` with values in {-1, 0, 1}.

        Raises:
            ValueError: unknown slice, ``train_size`` below 8, a
                ``background_sample`` that is not a positive integer, or a negative seed.
        """
        if background_sample is not None:
            check_int("background_sample", background_sample, minimum=1)
        check_seed(seed)
        shape = self.shape_of(key)
        mapping = GridMapping(shape, train_size)
        boxes = self.grid.boxes_on_training_grid(shape, train_size)
        target = np.full((train_size, train_size), IGNORE_INDEX, dtype=np.int64)
        labels = self._labels_of(key)
        for label in labels:
            if label.answer is Answer.BACKGROUND or label.outlined:
                box = boxes[label.region.region]
                _fill_background(target, box, background_sample, label.region, seed)
        train_rows, train_cols = mapping.native_to_train_indices()
        for label in labels:
            if label.points:
                points = np.asarray(label.points)
                target[train_rows[points[:, 0]], train_cols[points[:, 1]]] = int(PointClass.INFECTION)
        return target

    def _labels_of(self, key: SliceKey) -> list[RegionLabel]:
        """Answers on one slice (ValueError if it is not in the pool)."""
        self.shape_of(key)
        return self._by_slice.get(key, [])

    # --- persistence ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The state as a JSON-ready document (format in the module docstring)."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "regions": self.grid.regions,
            "labels": [
                {
                    "case": label.region.case,
                    "slice": label.region.slice,
                    "region": label.region.region,
                    "answer": label.answer.value,
                    "points": [[row, col] for row, col in label.points],
                    **({"outlined": True} if label.outlined else {}),
                }
                for label in self.labels()
            ],
        }

    @classmethod
    def from_dict(
        cls, data: Any, grid: RegionGrid, slice_shapes: Mapping[SliceKey, tuple[int, int]]
    ) -> AnnotationState:
        """Rebuild a state from :meth:`to_dict` output.

        Raises:
            CovidalError: wrong format or version, ``regions`` differing from
                ``grid.regions``, a malformed label, or a label that cannot be
                added (unknown slice, out of range, duplicate, point outside).
        """
        return _parse_document(data, grid, slice_shapes, source="annotations")

    def save(self, path: Path) -> None:
        """Write the state as JSON, atomically (temp file + rename).

        Raises:
            OSError: the file cannot be written.
        """
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path, grid: RegionGrid, slice_shapes: Mapping[SliceKey, tuple[int, int]]) -> AnnotationState:
        """Read a file written by :meth:`save`.

        Raises:
            CovidalError: naming the file: missing, unreadable or not JSON, or
                any problem listed in :meth:`from_dict`.
        """
        document = read_document(path, FORMAT_NAME, FORMAT_VERSION, "annotations file", "check the path")
        return _parse_document(document, grid, slice_shapes, source=str(path))


def _fill_background(target: np.ndarray, box: Box, sample: int | None, region: RegionId, seed: int) -> None:
    """Set a background region's training-grid ``box`` of ``target`` ``[S, S]`` to 0, all or a sample."""
    window = target[box.slices]  # a view: writing it writes target
    if sample is None or sample >= window.size:
        window[...] = int(PointClass.BACKGROUND)
        return
    chosen = region_rng(seed, region).choice(window.size, size=sample, replace=False)
    # Index rows and columns: reshaping a window of a larger array would write to a copy.
    window[np.unravel_index(chosen, window.shape)] = int(PointClass.BACKGROUND)


def _parse_document(
    data: Any, grid: RegionGrid, slice_shapes: Mapping[SliceKey, tuple[int, int]], source: str
) -> AnnotationState:
    """An :class:`AnnotationState` from a document; CovidalError prefixed with ``source``."""
    data = check_document(data, FORMAT_NAME, FORMAT_VERSION, source)
    regions = data.get("regions")
    if not is_integer(regions) or regions != grid.regions:
        raise CovidalError(
            f"{source} was written for {regions!r} regions per slice but the grid has {grid.regions}; "
            "use the same number of regions as when the answers were recorded"
        )
    entries = data.get("labels")
    if not isinstance(entries, list):
        raise CovidalError(f'{source}: "labels" must be a list of label objects')
    labels = [_parse_label(entry, f"{source}: label #{position}") for position, entry in enumerate(entries)]
    state = AnnotationState(grid, slice_shapes)
    try:
        state.add_many(labels)
    except ValueError as error:
        raise CovidalError(f"{source}: {error}") from error
    return state


def _parse_label(entry: Any, where: str) -> RegionLabel:
    """One ``labels`` entry as a :class:`RegionLabel`; CovidalError naming the entry when invalid."""
    keys = ("case", "slice", "region", "answer", "points")
    if not isinstance(entry, dict):
        raise CovidalError(f"{where} must be an object with keys {', '.join(keys)}")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise CovidalError(f"{where} lacks key(s) {', '.join(missing)}")
    for key in ("case", "slice"):
        if not isinstance(entry[key], str):
            raise CovidalError(f'{where}: "{key}" must be a string, got {entry[key]!r}')
    points = entry["points"]
    if not isinstance(points, list) or not all(isinstance(point, list) for point in points):
        raise CovidalError(f'{where}: "points" must be a list of [row, col] pairs, got {points!r}')
    try:
        region = RegionId(entry["case"], entry["slice"], entry["region"])
        points = tuple(tuple(point) for point in points)
        return RegionLabel(region, Answer(entry["answer"]), points, entry.get("outlined", False))
    except ValueError as error:
        raise CovidalError(f"{where}: {error}") from error


def _checked_point(point: Any) -> tuple[int, int]:
    """``point`` as a ``(row, col)`` tuple of ints; ValueError unless two non-negative integers."""
    if not (isinstance(point, (tuple, list)) and len(point) == 2 and all(is_integer(v) and v >= 0 for v in point)):
        raise ValueError(f"a point must be a (row, col) pair of non-negative integers, got {point!r}")
    return (int(point[0]), int(point[1]))
