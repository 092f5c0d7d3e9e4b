"""The frozen records the store returns, the specs it takes, and their validation.

Coordinates: ``i`` runs along a slice's columns, ``j`` along its rows, ``k``
across axial slices (the order of :class:`covidal.data.volume.Volume`'s
spacing); a region is the half-open box ``[i0, i1) x [j0, j1)`` of slice ``k``.
Times are epoch seconds (UTC).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from covidal.service.store.errors import Invalid
from covidal.validation import check_int, check_real, is_integer, is_real

Point = tuple[int, int, int]
"""``(i, j, k)`` voxel indices."""


class Answer(StrEnum):
    """A clinician's answer for a region (same values as :class:`covidal.annotation.state.Answer`)."""

    BACKGROUND = "background"
    INFECTION = "infection"


class CycleStatus(StrEnum):
    """Only the latest cycle of a project is open for leasing; creating a cycle closes the earlier ones."""

    OPEN = "open"
    CLOSED = "closed"


class VolumeFormat(StrEnum):
    """How an uploaded volume is kept on disk (as received)."""

    NIFTI = "nifti"
    NRRD = "nrrd"
    DICOM_ZIP = "dicom-zip"


class LabelFormat(StrEnum):
    """How an uploaded label volume is kept on disk (as received): the volume formats with one file."""

    NIFTI = "nifti"
    NRRD = "nrrd"


class JobStatus(StrEnum):
    """Life of a job: queued -> running -> done | failed | cancelled; running -> interrupted (service restart)
    -> queued again when resumed; queued or interrupted -> cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Project:
    """A project: one model being trained by active learning, with its settings."""

    id: int
    name: str
    model_kind: str
    grid_k: int
    strategy: str
    mc_samples: int
    loss: str
    settings: Mapping[str, Any]
    created_at: float


@dataclass(frozen=True)
class VolumeGeometry:
    """Voxel grid of a volume, as read from its header.

    Attributes:
        dims: ``(i, j, k)`` voxel counts, each >= 1.
        spacing: ``(i, j, k)`` mm, each > 0.
        origin: LPS mm of voxel ``(0, 0, 0)``.
        direction: 9 values, the 3x3 matrix row-major; its columns are the i, j, k axes in LPS.

    Raises:
        Invalid: a value of the wrong count, type or sign, or not finite.
    """

    dims: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    def __post_init__(self) -> None:
        dims = tuple(self.dims)
        if len(dims) != 3 or not all(is_integer(d) and d >= 1 for d in dims):
            raise Invalid(f"volume dims must be three positive integers (i, j, k), got {self.dims!r}")
        object.__setattr__(self, "dims", tuple(int(d) for d in dims))
        object.__setattr__(self, "spacing", _floats("volume spacing", self.spacing, 3, positive=True))
        object.__setattr__(self, "origin", _floats("volume origin", self.origin, 3))
        object.__setattr__(self, "direction", _floats("volume direction", self.direction, 9))


@dataclass(frozen=True)
class Volume:
    """An uploaded CT volume; ``path`` is relative to the store's file root."""

    id: int
    project_id: int
    name: str
    sha256: str
    format: VolumeFormat
    path: str
    size: int
    geometry: VolumeGeometry
    created_at: float


@dataclass(frozen=True)
class Label:
    """An expert label volume of a volume (at most one per volume; a new upload replaces it).

    Attributes:
        volume_id: the labelled volume; the label has its exact geometry.
        path: relative to the store's file root.
        foreground_voxels: voxels with a label above 0 (infection).
    """

    volume_id: int
    project_id: int
    format: LabelFormat
    path: str
    sha256: str
    size: int
    foreground_voxels: int
    created_at: float


@dataclass(frozen=True)
class Cycle:
    """One round of suggestions of a project, numbered 1, 2, ... per project."""

    id: int
    project_id: int
    number: int
    status: CycleStatus
    created_at: float


@dataclass(frozen=True)
class RegionBox:
    """Half-open voxel rectangle ``[i0, i1) x [j0, j1)`` of one axial slice.

    Raises:
        Invalid: not integers with ``0 <= i0 < i1`` and ``0 <= j0 < j1``.
    """

    i0: int
    i1: int
    j0: int
    j1: int

    def __post_init__(self) -> None:
        values = (self.i0, self.i1, self.j0, self.j1)
        if not all(is_integer(v) for v in values) or not (0 <= self.i0 < self.i1 and 0 <= self.j0 < self.j1):
            raise Invalid(f"region box must satisfy 0 <= i0 < i1 and 0 <= j0 < j1 (integers), got {values}")

    def contains(self, i: int, j: int) -> bool:
        """Whether voxel column ``i``, row ``j`` lies in the box."""
        return self.i0 <= i < self.i1 and self.j0 <= j < self.j1


@dataclass(frozen=True)
class SuggestionSpec:
    """A region to suggest: slice ``k`` of a volume, region index ``region`` of its grid, its box and score.

    Raises:
        Invalid: negative ``k``/``region``, a box that is not a :class:`RegionBox`, or a non-finite score.
    """

    volume_id: int
    k: int
    region: int
    box: RegionBox
    score: float

    def __post_init__(self) -> None:
        for name in ("volume_id", "k", "region"):
            if not is_integer(getattr(self, name)) or getattr(self, name) < 0:
                raise Invalid(f"suggestion {name} must be a non-negative integer, got {getattr(self, name)!r}")
        if not isinstance(self.box, RegionBox):
            raise Invalid(f"suggestion box must be a RegionBox, got {self.box!r}")
        object.__setattr__(self, "score", _floats("suggestion score", (self.score,), 1)[0])


@dataclass(frozen=True)
class Suggestion:
    """A suggested region of a cycle, its rank (1 = best) and its lease (``None`` when never leased)."""

    id: int
    cycle_id: int
    project_id: int
    volume_id: int
    k: int
    region: int
    box: RegionBox
    score: float
    rank: int
    lease_holder: str | None
    lease_expires_at: float | None
    answered: bool

    def contains(self, point: Point) -> bool:
        """Whether voxel ``(i, j, k)`` lies in the region."""
        i, j, k = point
        return k == self.k and self.box.contains(i, j)


@dataclass(frozen=True)
class Annotation:
    """The answer to one region (answers are final: at most one per region)."""

    id: int
    suggestion_id: int
    project_id: int
    answer: Answer
    points: tuple[Point, ...]
    annotator: str
    effort_seconds: float
    idempotency_key: str
    created_at: float


@dataclass(frozen=True)
class JobProgress:
    """Where a running job is.

    Attributes:
        epoch: epochs finished so far (>= 0).
        epochs: planned epochs, if known.
        loss: last training loss.
        val_dice: last validation Dice in [0, 1].
        eta_seconds: estimated seconds left.
        stage: the part of a job with several (e.g. ``teacher``), or None.

    Raises:
        Invalid: negative counts, ``epoch > epochs``, non-finite values, a Dice outside [0, 1], a negative ETA
            or a stage that is not short text.
    """

    epoch: int
    epochs: int | None = None
    loss: float | None = None
    val_dice: float | None = None
    eta_seconds: float | None = None
    stage: str | None = None

    def __post_init__(self) -> None:
        check_int("job progress epoch", self.epoch, minimum=0, error=Invalid)
        if self.epochs is not None:
            check_int("job progress epochs", self.epochs, minimum=self.epoch, error=Invalid)
        for name, bounds in (
            ("loss", {}),
            ("val_dice", {"minimum": 0.0, "maximum": 1.0}),
            ("eta_seconds", {"minimum": 0.0}),
        ):
            if getattr(self, name) is not None:
                object.__setattr__(
                    self, name, check_real(f"job progress {name}", getattr(self, name), **bounds, error=Invalid)
                )
        if self.stage is not None:
            check_text(self.stage, "job progress stage", 50)


@dataclass(frozen=True)
class Job:
    """A background job (training) of a project; ``device`` is where it runs or ran."""

    id: int
    project_id: int
    kind: str
    status: JobStatus
    device: str | None
    config: Mapping[str, Any]
    progress: JobProgress | None
    checkpoint_path: str | None
    log_path: str | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None


def check_text(value: object, field: str, max_length: int = 200) -> str:
    """``value`` if it is a string of 1..``max_length`` printable characters, not blank; Invalid otherwise."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length or not value.isprintable():
        raise Invalid(f"{field} must be 1 to {max_length} printable characters, not blank, got {value!r}")
    return value


def check_points(points: object) -> tuple[Point, ...]:
    """``points`` as distinct ``(i, j, k)`` tuples of integers; Invalid naming the bad point otherwise."""
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
        raise Invalid(f"points must be a list of [i, j, k] voxel indices, got {points!r}")
    checked: list[Point] = []
    for number, point in enumerate(points, start=1):
        if (
            isinstance(point, (str, bytes))
            or not isinstance(point, Sequence)
            or len(point) != 3
            or not all(is_integer(value) for value in point)
        ):
            raise Invalid(f"point #{number} must be three integers [i, j, k], got {point!r}")
        i, j, k = (int(value) for value in point)
        if (i, j, k) in checked:
            raise Invalid(f"point #{number} [{i}, {j}, {k}] is given twice")
        checked.append((i, j, k))
    return tuple(checked)


def to_json(value: object, field: str) -> str:
    """Standard JSON text of ``value``; Invalid if it is not a JSON object with string keys or has NaN."""
    if not isinstance(value, Mapping):
        raise Invalid(f"{field} must be a JSON object, got {type(value).__name__}")
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise Invalid(f"{field} is not valid JSON: {error}") from error


def format_time(seconds: float) -> str:
    """ISO 8601 UTC text of epoch ``seconds``, for messages."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def project_from_row(row: sqlite3.Row) -> Project:
    return Project(
        row["id"],
        row["name"],
        row["model_kind"],
        row["grid_k"],
        row["strategy"],
        row["mc_samples"],
        row["loss"],
        json.loads(row["settings"]),
        row["created_at"],
    )


def volume_from_row(row: sqlite3.Row) -> Volume:
    geometry = VolumeGeometry(
        (row["dim_i"], row["dim_j"], row["dim_k"]),
        json.loads(row["spacing"]),
        json.loads(row["origin"]),
        json.loads(row["direction"]),
    )
    return Volume(
        row["id"],
        row["project_id"],
        row["name"],
        row["sha256"],
        VolumeFormat(row["format"]),
        row["path"],
        row["size"],
        geometry,
        row["created_at"],
    )


def label_from_row(row: sqlite3.Row) -> Label:
    return Label(
        row["volume_id"],
        row["project_id"],
        LabelFormat(row["format"]),
        row["path"],
        row["sha256"],
        row["size"],
        row["foreground_voxels"],
        row["created_at"],
    )


def cycle_from_row(row: sqlite3.Row) -> Cycle:
    return Cycle(row["id"], row["project_id"], row["number"], CycleStatus(row["status"]), row["created_at"])


def suggestion_from_row(row: sqlite3.Row) -> Suggestion:
    """``row`` of ``suggestions`` plus an ``answered`` column."""
    box = RegionBox(row["i0"], row["i1"], row["j0"], row["j1"])
    return Suggestion(
        row["id"],
        row["cycle_id"],
        row["project_id"],
        row["volume_id"],
        row["k"],
        row["region"],
        box,
        row["score"],
        row["rank"],
        row["lease_holder"],
        row["lease_expires_at"],
        bool(row["answered"]),
    )


def annotation_from_row(row: sqlite3.Row) -> Annotation:
    points = tuple((int(i), int(j), int(k)) for i, j, k in json.loads(row["points"]))
    return Annotation(
        row["id"],
        row["suggestion_id"],
        row["project_id"],
        Answer(row["answer"]),
        points,
        row["annotator"],
        row["effort_seconds"],
        row["idempotency_key"],
        row["created_at"],
    )


def job_from_row(row: sqlite3.Row) -> Job:
    progress = None if row["progress"] is None else JobProgress(**json.loads(row["progress"]))
    return Job(
        row["id"],
        row["project_id"],
        row["kind"],
        JobStatus(row["status"]),
        row["device"],
        json.loads(row["config"]),
        progress,
        row["checkpoint_path"],
        row["log_path"],
        bool(row["cancel_requested"]),
        row["created_at"],
        row["started_at"],
        row["finished_at"],
        row["error"],
    )


def _floats(field: str, values: object, count: int, positive: bool = False) -> tuple[float, ...]:
    """``values`` as ``count`` finite floats (positive ones if asked); Invalid otherwise (strings and bools too)."""
    items = tuple(values) if isinstance(values, Sequence) and not isinstance(values, str) else ()
    if len(items) != count or not all(is_real(v) and (v > 0 or not positive) for v in items):
        kind = "positive finite numbers" if positive else "finite numbers"
        raise Invalid(f"{field} must be {count} {kind}, got {values!r}")
    return tuple(float(v) for v in items)
