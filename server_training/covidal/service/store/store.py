"""The project store: projects, volumes, suggestion cycles with leases, annotations and jobs.

Layout of a store folder::

    <root>/store.sqlite3            metadata (see :mod:`.schema`)
    <root>/files/volumes/<project>/ uploaded volumes, kept as received
    <root>/files/labels/<project>/  uploaded expert label volumes, kept as received

Every method that writes runs in one ``BEGIN IMMEDIATE`` transaction and
returns only after the commit is on disk, so what a client is told succeeded
survives a crash. Methods that depend on the time take ``now`` (epoch seconds;
``None`` means the current time), so lease expiry is testable.

Leases: :meth:`Store.lease_suggestions` hands an annotator the best-ranked
unanswered regions that nobody else holds (a lease is held while
``now < lease_expires_at``), so two clinicians never receive the same region
at once. Answers are final: one per region, idempotent by a client-supplied key.

Errors (:mod:`.errors`): :class:`NotFound` for unknown ids or ids of another
project, :class:`Conflict`, :class:`Invalid`, :class:`LeaseError`, :class:`Busy`.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from covidal.service.store.database import DEFAULT_BUSY_TIMEOUT_S, Database
from covidal.service.store.errors import Conflict, Invalid, LeaseError, NotFound
from covidal.service.store.files import FileStore, StoredFile
from covidal.service.store.records import (
    Annotation,
    Answer,
    Cycle,
    CycleStatus,
    Job,
    JobProgress,
    JobStatus,
    Label,
    LabelFormat,
    Point,
    Project,
    Suggestion,
    SuggestionSpec,
    Volume,
    VolumeFormat,
    VolumeGeometry,
    annotation_from_row,
    check_points,
    check_text,
    cycle_from_row,
    format_time,
    job_from_row,
    label_from_row,
    project_from_row,
    suggestion_from_row,
    to_json,
    volume_from_row,
)
from covidal.validation import check_int, check_real

DATABASE_NAME = "store.sqlite3"
FILES_FOLDER = "files"
VOLUMES_FOLDER = "volumes"
LABELS_FOLDER = "labels"
_OWNERS = {VOLUMES_FOLDER: "volume", LABELS_FOLDER: "label"}  # file folder -> the rows that reference its files
_SUGGESTIONS = (
    "SELECT s.*, EXISTS (SELECT 1 FROM annotations a WHERE a.suggestion_id = s.id) AS answered FROM suggestions s"
)
_FINISHED_STATUSES = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)
_E = TypeVar("_E", Answer, VolumeFormat, LabelFormat)


@dataclass(frozen=True)
class Recovery:
    """What :meth:`Store.recover` cleaned up at startup."""

    interrupted_jobs: tuple[Job, ...]
    removed_files: tuple[str, ...]


class Store:
    """A store folder, opened (and migrated) for use by one process; several processes may open the same folder.

    The folder is made (or made again) readable by its owner only (0700).

    Raises:
        StoreError: the database cannot be opened or was written by a newer covidal.
    """

    def __init__(self, root: Path, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # clinicians' data: its user's alone, whatever the folder's mode was before
        self.database = Database(self.root / DATABASE_NAME, busy_timeout_s)
        self.files = FileStore(self.root / FILES_FOLDER)

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Projects

    def create_project(
        self,
        name: str,
        *,
        model_kind: str,
        grid_k: int,
        strategy: str,
        mc_samples: int,
        loss: str,
        settings: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> Project:
        """A new project; Conflict if the name is taken, Invalid for a bad value."""
        values = (
            check_text(name, "project name", 100),
            check_text(model_kind, "model_kind", 100),
            check_int("grid_k", grid_k, minimum=1, error=Invalid),
            check_text(strategy, "strategy", 100),
            check_int("mc_samples", mc_samples, minimum=1, error=Invalid),
            check_text(loss, "loss", 100),
            to_json({} if settings is None else settings, "project settings"),
            _now(now),
        )
        with self.database.transaction() as db:
            taken = db.execute("SELECT id FROM projects WHERE name = ?", (values[0],)).fetchone()
            if taken is not None:
                raise Conflict(f"a project named {values[0]!r} already exists (id {taken['id']})")
            cursor = db.execute(
                "INSERT INTO projects (name, model_kind, grid_k, strategy, mc_samples, loss, settings, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return _project(db, cursor.lastrowid)

    def list_projects(self) -> list[Project]:
        with self.database.read() as db:
            return [project_from_row(row) for row in db.execute("SELECT * FROM projects ORDER BY id")]

    def get_project(self, project_id: int) -> Project:
        with self.database.read() as db:
            return _project(db, project_id)

    def update_project_settings(self, project_id: int, changes: Mapping[str, Any]) -> Project:
        """Merge ``changes`` into the project's settings (top-level keys replaced) and return the project."""
        to_json(changes, "project settings")
        with self.database.transaction() as db:
            settings = {**_project(db, project_id).settings, **changes}
            db.execute(
                "UPDATE projects SET settings = ? WHERE id = ?", (to_json(settings, "project settings"), project_id)
            )
            return _project(db, project_id)

    # Volumes

    @staticmethod
    def volume_folder(project_id: int) -> str:
        """The :class:`FileStore` kind to upload a volume of ``project_id`` to, before :meth:`add_volume`."""
        return f"{VOLUMES_FOLDER}/{int(project_id)}"

    def add_volume(
        self,
        project_id: int,
        name: str,
        stored: StoredFile,
        volume_format: VolumeFormat | str,
        geometry: VolumeGeometry,
        now: float | None = None,
    ) -> tuple[Volume, bool]:
        """Record the uploaded file ``stored`` as a volume of the project: ``(volume, created)``.

        The store owns ``stored`` from here: if the project already has a volume with the
        same content, that volume is returned with ``created`` False and ``stored`` is removed;
        if the volume is refused, ``stored`` is removed too.

        Raises:
            ValueError: ``stored`` is not in :meth:`volume_folder` of the project (it is left alone).
            NotFound: no such project. Invalid: a bad name or format.
        """
        if not stored.relative_path.startswith(self.volume_folder(project_id) + "/"):
            raise ValueError(f"{stored.relative_path!r} was not uploaded to {self.volume_folder(project_id)!r}")
        try:
            volume, created = self._insert_volume(project_id, name, stored, volume_format, geometry, _now(now))
        except BaseException:
            self.files.remove(stored.relative_path)
            raise
        if not created and volume.path != stored.relative_path:
            self.files.remove(stored.relative_path)
        return volume, created

    def _insert_volume(
        self,
        project_id: int,
        name: str,
        stored: StoredFile,
        volume_format: VolumeFormat | str,
        geometry: VolumeGeometry,
        now: float,
    ) -> tuple[Volume, bool]:
        """Insert the volume, or find the project's volume with the same content: ``(volume, created)``."""
        name = check_text(name, "volume name")
        volume_format = _enum(VolumeFormat, volume_format, "volume format")
        if not isinstance(geometry, VolumeGeometry):
            raise Invalid(f"volume geometry must be a VolumeGeometry, got {geometry!r}")
        with self.database.transaction() as db:
            _project(db, project_id)
            existing = db.execute(
                "SELECT * FROM volumes WHERE project_id = ? AND sha256 = ?", (project_id, stored.sha256)
            ).fetchone()
            if existing is not None:
                return volume_from_row(existing), False
            cursor = db.execute(
                "INSERT INTO volumes (project_id, name, sha256, format, path, size, dim_i, dim_j, dim_k, spacing, "
                "origin, direction, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project_id,
                    name,
                    stored.sha256,
                    volume_format.value,
                    stored.relative_path,
                    stored.size,
                    *geometry.dims,
                    json.dumps(geometry.spacing),
                    json.dumps(geometry.origin),
                    json.dumps(geometry.direction),
                    now,
                ),
            )
            return _volume(db, project_id, cursor.lastrowid), True

    def list_volumes(self, project_id: int) -> list[Volume]:
        with self.database.read() as db:
            _project(db, project_id)
            rows = db.execute("SELECT * FROM volumes WHERE project_id = ? ORDER BY id", (project_id,))
            return [volume_from_row(row) for row in rows]

    def get_volume(self, project_id: int, volume_id: int) -> Volume:
        with self.database.read() as db:
            return _volume(db, project_id, volume_id)

    def find_volume_by_sha256(self, project_id: int, sha256: str) -> Volume | None:
        with self.database.read() as db:
            row = db.execute(
                "SELECT * FROM volumes WHERE project_id = ? AND sha256 = ?", (project_id, sha256)
            ).fetchone()
            return None if row is None else volume_from_row(row)

    # Expert labels

    @staticmethod
    def label_folder(project_id: int) -> str:
        """The :class:`FileStore` kind to upload a label of ``project_id`` to, before :meth:`set_label`."""
        return f"{LABELS_FOLDER}/{int(project_id)}"

    def set_label(
        self,
        project_id: int,
        volume_id: int,
        stored: StoredFile,
        label_format: LabelFormat | str,
        foreground_voxels: int,
        now: float | None = None,
    ) -> tuple[Label, bool]:
        """Record the uploaded file ``stored`` as the volume's expert label: ``(label, created)``.

        The caller has checked the file (the volume's geometry, integer labels). An earlier label of the
        volume is replaced (``created`` False) and its file removed once the new row is committed. The
        store owns ``stored`` from here: it is removed if the label is refused.

        Raises:
            ValueError: ``stored`` is not in :meth:`label_folder` of the project (it is left alone).
            NotFound: no such volume in the project. Invalid: a bad format or voxel count.
        """
        if not stored.relative_path.startswith(self.label_folder(project_id) + "/"):
            raise ValueError(f"{stored.relative_path!r} was not uploaded to {self.label_folder(project_id)!r}")
        try:
            label_format = _enum(LabelFormat, label_format, "label format")
            foreground_voxels = check_int("foreground_voxels", foreground_voxels, minimum=0, error=Invalid)
            with self.database.transaction() as db:
                _volume(db, project_id, volume_id)
                previous = db.execute("SELECT path FROM labels WHERE volume_id = ?", (volume_id,)).fetchone()
                db.execute(
                    "INSERT OR REPLACE INTO labels (volume_id, project_id, format, path, sha256, size, "
                    "foreground_voxels, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        volume_id,
                        project_id,
                        label_format.value,
                        stored.relative_path,
                        stored.sha256,
                        stored.size,
                        foreground_voxels,
                        _now(now),
                    ),
                )
                label = _label(db, project_id, volume_id)
        except BaseException:
            self.files.remove(stored.relative_path)
            raise
        if previous is not None:
            self.files.remove(previous["path"])
        return label, previous is None

    def get_label(self, project_id: int, volume_id: int) -> Label:
        """The volume's expert label; NotFound when the volume has none (or is not the project's)."""
        with self.database.read() as db:
            _volume(db, project_id, volume_id)
            return _label(db, project_id, volume_id)

    def list_labels(self, project_id: int) -> list[Label]:
        """The project's expert labels, by volume id."""
        with self.database.read() as db:
            _project(db, project_id)
            rows = db.execute("SELECT * FROM labels WHERE project_id = ? ORDER BY volume_id", (project_id,))
            return [label_from_row(row) for row in rows]

    # Cycles and leases

    def create_cycle(self, project_id: int, specs: Sequence[SuggestionSpec], now: float | None = None) -> Cycle:
        """A new open cycle numbered after the project's last one, with ``specs`` ranked 1, 2, ... in list order.

        The project's earlier cycles are closed (their regions can still be answered, not leased).

        Raises:
            NotFound: no such project, or a volume of another project.
            Invalid: no specs, a region twice, a region index >= the project's ``grid_k``,
                a slice or box outside its volume.
        """
        specs = list(specs)
        if not specs or not all(isinstance(spec, SuggestionSpec) for spec in specs):
            raise Invalid("a cycle needs one or more suggestions (SuggestionSpec)")
        keys = [(spec.volume_id, spec.k, spec.region) for spec in specs]
        if len(set(keys)) != len(keys):
            twice = next(key for key in keys if keys.count(key) > 1)
            raise Invalid(f"region {twice[2]} of slice k={twice[1]} of volume {twice[0]} is suggested twice")
        created = _now(now)
        with self.database.transaction() as db:
            project = _project(db, project_id)
            for spec in specs:
                _check_spec(spec, _volume(db, project_id, spec.volume_id), project)
            number = db.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM cycles WHERE project_id = ?", (project_id,)
            ).fetchone()[0]
            db.execute(
                "UPDATE cycles SET status = ? WHERE project_id = ? AND status = ?",
                (CycleStatus.CLOSED.value, project_id, CycleStatus.OPEN.value),
            )
            cycle_id = db.execute(
                "INSERT INTO cycles (project_id, number, status, created_at) VALUES (?, ?, ?, ?)",
                (project_id, number, CycleStatus.OPEN.value, created),
            ).lastrowid
            db.executemany(
                "INSERT INTO suggestions (cycle_id, project_id, volume_id, k, region, i0, i1, j0, j1, "
                "score, rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cycle_id,
                        project_id,
                        s.volume_id,
                        s.k,
                        s.region,
                        s.box.i0,
                        s.box.i1,
                        s.box.j0,
                        s.box.j1,
                        s.score,
                        rank,
                    )
                    for rank, s in enumerate(specs, start=1)
                ],
            )
            return _cycle(db, project_id, cycle_id)

    def list_cycles(self, project_id: int) -> list[Cycle]:
        with self.database.read() as db:
            _project(db, project_id)
            rows = db.execute("SELECT * FROM cycles WHERE project_id = ? ORDER BY number", (project_id,))
            return [cycle_from_row(row) for row in rows]

    def get_cycle(self, project_id: int, cycle_id: int) -> Cycle:
        with self.database.read() as db:
            return _cycle(db, project_id, cycle_id)

    def list_suggestions(self, project_id: int, cycle_id: int) -> list[Suggestion]:
        """The cycle's suggestions by rank."""
        with self.database.read() as db:
            _cycle(db, project_id, cycle_id)
            rows = db.execute(f"{_SUGGESTIONS} WHERE s.cycle_id = ? ORDER BY s.rank", (cycle_id,))
            return [suggestion_from_row(row) for row in rows]

    def get_suggestion(self, project_id: int, suggestion_id: int) -> Suggestion:
        with self.database.read() as db:
            return _suggestion(db, project_id, suggestion_id)

    def lease_suggestions(
        self,
        project_id: int,
        cycle_id: int,
        annotator: str,
        *,
        limit: int,
        lease_seconds: float,
        now: float | None = None,
    ) -> list[Suggestion]:
        """Lease up to ``limit`` unanswered regions of an open cycle to ``annotator`` until ``now + lease_seconds``.

        The annotator's own unexpired leases come first (renewed), then the best-ranked regions
        that nobody holds or whose lease expired. Never a region another annotator holds, never
        an answered one. Returned by rank; empty when nothing is left.

        Raises:
            NotFound: no such cycle in the project. Conflict: the cycle is closed.
            Invalid: a bad annotator, ``limit`` or ``lease_seconds``.
        """
        annotator = check_text(annotator, "annotator", 100)
        limit = check_int("limit", limit, minimum=1, error=Invalid)
        check_real("lease_seconds", lease_seconds, above=0.0, error=Invalid)
        now = _now(now)
        with self.database.transaction() as db:
            cycle = _cycle(db, project_id, cycle_id)
            if cycle.status is not CycleStatus.OPEN:
                raise Conflict(
                    f"cycle {cycle.number} (id {cycle.id}) of project {project_id} is closed: "
                    "fetch the suggestions of the latest cycle"
                )
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT s.id FROM suggestions s WHERE s.cycle_id = :cycle "
                    "AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.suggestion_id = s.id) "
                    "AND (s.lease_holder IS NULL OR s.lease_expires_at <= :now OR s.lease_holder = :annotator) "
                    "ORDER BY CASE WHEN s.lease_holder = :annotator AND s.lease_expires_at > :now THEN 0 ELSE 1 END, "
                    "s.rank LIMIT :limit",
                    {"cycle": cycle_id, "now": now, "annotator": annotator, "limit": limit},
                )
            ]
            db.executemany(
                "UPDATE suggestions SET lease_holder = ?, lease_expires_at = ? WHERE id = ?",
                [(annotator, now + lease_seconds, suggestion_id) for suggestion_id in ids],
            )
            return sorted(
                (_suggestion(db, project_id, suggestion_id) for suggestion_id in ids),
                key=lambda suggestion: suggestion.rank,
            )

    # Annotations

    def submit_annotation(
        self,
        project_id: int,
        suggestion_id: int,
        *,
        annotator: str,
        answer: Answer | str,
        points: Sequence[Sequence[int]],
        effort_seconds: float,
        idempotency_key: str,
        now: float | None = None,
    ) -> tuple[Annotation, bool]:
        """Record ``annotator``'s answer for a region: ``(annotation, created)``.

        Args:
            points: ``[[i, j, k], ...]`` clicks on infection (one or more); none for a background tag.
            effort_seconds: time the clinician spent on the region.
            idempotency_key: chosen by the client, unique per answer within the project; resending
                the same answer with the same key returns the stored one with ``created`` False.

        Raises:
            NotFound: no such suggestion in the project.
            Conflict: the key was used for a different answer, or the region is already answered.
            LeaseError: another annotator holds an unexpired lease on the region (the caller's
                own lease, if any, expired and was taken over). A region nobody holds is accepted.
            Invalid: bad answer/points/effort/key/annotator, or a point outside the region or volume.
        """
        annotator = check_text(annotator, "annotator", 100)
        key = check_text(idempotency_key, "idempotency key")
        answer = _enum(Answer, answer, "answer")
        points = check_points(points)
        if answer is Answer.INFECTION and not points:
            raise Invalid("an infection answer needs one or more points [i, j, k] on the infection")
        if answer is Answer.BACKGROUND and points:
            raise Invalid("a background tag covers the whole region and takes no points")
        check_real("effort_seconds", effort_seconds, minimum=0.0, error=Invalid)
        content = (suggestion_id, annotator, answer, points, float(effort_seconds))
        now = _now(now)
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT * FROM annotations WHERE project_id = ? AND idempotency_key = ?", (project_id, key)
            ).fetchone()
            if row is not None:
                return _replayed(annotation_from_row(row), content), False
            suggestion = _suggestion(db, project_id, suggestion_id)
            row = db.execute("SELECT * FROM annotations WHERE suggestion_id = ?", (suggestion_id,)).fetchone()
            if row is not None:
                previous = annotation_from_row(row)
                raise Conflict(
                    f"suggestion {suggestion_id} (region {suggestion.region} of slice k={suggestion.k}) "
                    f"was already answered at {format_time(previous.created_at)} by "
                    f"{previous.annotator!r}"
                )
            _check_lease(suggestion, annotator, now)
            _check_inside(points, suggestion, _volume(db, project_id, suggestion.volume_id))
            cursor = db.execute(
                "INSERT INTO annotations (suggestion_id, project_id, answer, points, annotator, "
                "effort_seconds, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    suggestion_id,
                    project_id,
                    answer.value,
                    json.dumps(points),
                    annotator,
                    float(effort_seconds),
                    key,
                    now,
                ),
            )
            row = db.execute("SELECT * FROM annotations WHERE id = ?", (cursor.lastrowid,)).fetchone()
            return annotation_from_row(row), True

    def annotation_history(self, project_id: int) -> list[Annotation]:
        """Every answer of the project (who, when, effort), oldest first."""
        with self.database.read() as db:
            _project(db, project_id)
            rows = db.execute("SELECT * FROM annotations WHERE project_id = ? ORDER BY created_at, id", (project_id,))
            return [annotation_from_row(row) for row in rows]

    # Jobs

    def enqueue_job(
        self,
        project_id: int,
        kind: str,
        config: Mapping[str, Any],
        *,
        log_path: str | None = None,
        now: float | None = None,
    ) -> Job:
        """A queued job; NotFound for an unknown project, Invalid for a bad kind or config."""
        values = (project_id, check_text(kind, "job kind", 50), to_json(config, "job config"), log_path, _now(now))
        with self.database.transaction() as db:
            _project(db, project_id)
            cursor = db.execute(
                "INSERT INTO jobs (project_id, kind, config, log_path, created_at, status) "
                "VALUES (?, ?, ?, ?, ?, 'queued')",
                values,
            )
            return _job(db, cursor.lastrowid)

    def get_job(self, project_id: int, job_id: int) -> Job:
        with self.database.read() as db:
            return _job(db, job_id, project_id)

    def list_jobs(self, project_id: int) -> list[Job]:
        with self.database.read() as db:
            _project(db, project_id)
            return [
                job_from_row(row)
                for row in db.execute("SELECT * FROM jobs WHERE project_id = ? ORDER BY id", (project_id,))
            ]

    def claim_next_job(self, device: str, now: float | None = None) -> Job | None:
        """Start the oldest queued job (of any project) on ``device``, unless a job is already running there.

        A resumed job keeps its creation time, so it goes before jobs queued after it.
        """
        device = check_text(device, "device", 50)
        now = _now(now)
        with self.database.transaction() as db:
            if db.execute("SELECT 1 FROM jobs WHERE status = 'running' AND device = ?", (device,)).fetchone():
                return None
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', device = ?, started_at = ?, finished_at = NULL, "
                "error = NULL WHERE id = ?",
                (device, now, row["id"]),
            )
            return _job(db, row["id"])

    def update_job_progress(self, job_id: int, progress: JobProgress, checkpoint_path: str | None = None) -> Job:
        """Record a running job's progress (and its newest checkpoint, if given).

        The returned job's ``cancel_requested`` tells the runner to stop.

        Raises:
            NotFound: no such job. Conflict: the job is not running.
        """
        if not isinstance(progress, JobProgress):
            raise Invalid(f"job progress must be a JobProgress, got {progress!r}")
        with self.database.transaction() as db:
            _require_status(_job(db, job_id), JobStatus.RUNNING)
            db.execute(
                "UPDATE jobs SET progress = ?, checkpoint_path = COALESCE(?, checkpoint_path) WHERE id = ?",
                (json.dumps(dataclasses.asdict(progress)), checkpoint_path, job_id),
            )
            return _job(db, job_id)

    def finish_job(
        self, job_id: int, status: JobStatus | str, error: str | None = None, now: float | None = None
    ) -> Job:
        """End a running job as done, failed (with ``error``) or cancelled.

        Raises:
            ValueError: ``status`` is not done, failed or cancelled. NotFound, Conflict: as :meth:`update_job_progress`.
        """
        status = JobStatus(status)
        if status not in _FINISHED_STATUSES:
            raise ValueError(f"a job finishes as done, failed or cancelled, not {status.value!r}")
        now = _now(now)
        with self.database.transaction() as db:
            _require_status(_job(db, job_id), JobStatus.RUNNING)
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                (status.value, now, error, job_id),
            )
            return _job(db, job_id)

    def cancel_job(self, project_id: int, job_id: int, now: float | None = None) -> Job:
        """Cancel a queued or interrupted job at once; ask a running one to stop (its runner finishes it).

        Raises:
            NotFound: no such job in the project. Conflict: the job already finished.
        """
        now = _now(now)
        with self.database.transaction() as db:
            job = _job(db, job_id, project_id)
            if job.status is JobStatus.RUNNING:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            else:
                _require_status(job, JobStatus.QUEUED, JobStatus.INTERRUPTED)
                db.execute(
                    "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ? WHERE id = ?",
                    (now, job_id),
                )
            return _job(db, job_id)

    def mark_running_jobs_interrupted(self, now: float | None = None) -> list[Job]:
        """At startup: jobs left running by a stopped service become interrupted (cancelled if a cancel was asked)."""
        now = _now(now)
        with self.database.transaction() as db:
            ids = [row[0] for row in db.execute("SELECT id FROM jobs WHERE status = 'running' ORDER BY id")]
            db.execute(
                "UPDATE jobs SET status = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'interrupted' END, "
                "finished_at = ?, error = 'the service stopped while the job was running' "
                "WHERE status = 'running'",
                (now,),
            )
            return [_job(db, job_id) for job_id in ids]

    def requeue_job(self, project_id: int, job_id: int) -> Job:
        """Queue an interrupted job again; its runner resumes from ``checkpoint_path``.

        Raises:
            NotFound: no such job in the project. Conflict: the job is not interrupted.
        """
        with self.database.transaction() as db:
            _require_status(_job(db, job_id, project_id), JobStatus.INTERRUPTED)
            db.execute(
                "UPDATE jobs SET status = 'queued', device = NULL, started_at = NULL, finished_at = NULL, "
                "error = NULL WHERE id = ?",
                (job_id,),
            )
            return _job(db, job_id)

    # Health

    def recover(self, now: float | None = None) -> Recovery:
        """At startup, before serving: interrupt the jobs left running and delete interrupted writes,
        uploads never recorded as volumes or labels, and replaced labels a crash left behind (another
        live process's upload would be lost)."""
        interrupted = self.mark_running_jobs_interrupted(now)
        removed = self.files.remove_temporaries()
        for relative in self._unreferenced_files():
            self.files.remove(relative)
            removed.append(relative)
        return Recovery(tuple(interrupted), tuple(removed))

    def integrity_check(self) -> list[str]:
        """Problems found, one line each; empty when healthy.

        Checks SQLite's integrity and foreign keys, that every volume's and label's file exists with its
        recorded sha256, and that no leftover temporary or unreferenced volume or label file remains (run it
        on a quiet store: an upload in progress counts as a leftover).
        """
        with self.database.read() as db:
            problems = [f"database: {row[0]}" for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"]
            problems += [
                f"database: row {row[1]} of table {row[0]} references a missing row of {row[2]}"
                for row in db.execute("PRAGMA foreign_key_check")
            ]
            volumes = [volume_from_row(row) for row in db.execute("SELECT * FROM volumes ORDER BY id")]
            labels = [label_from_row(row) for row in db.execute("SELECT * FROM labels ORDER BY volume_id")]
        for volume in volumes:
            where = f"volume {volume.id} ({volume.name!r}) of project {volume.project_id}: file {volume.path}"
            problems += _file_problems(self.files, where, volume.path, volume.sha256)
        for label in labels:
            where = f"label of volume {label.volume_id} of project {label.project_id}: file {label.path}"
            problems += _file_problems(self.files, where, label.path, label.sha256)
        problems += [f"file {relative}: left over by an interrupted write" for relative in self.files.temporaries()]
        problems += [
            f"file {relative}: not referenced by any {_OWNERS[relative.split('/')[0]]}"
            for relative in self._unreferenced_files()
        ]
        return problems

    def _unreferenced_files(self) -> list[str]:
        """Files under the volume and label folders that no row references."""
        with self.database.read() as db:
            referenced = {row[0] for row in db.execute("SELECT path FROM volumes UNION SELECT path FROM labels")}
        return [relative for folder in _OWNERS for relative in self.files.files(folder) if relative not in referenced]


def _file_problems(files: FileStore, where: str, relative: str, sha256: str) -> list[str]:
    try:
        if not files.path(relative).is_file():
            return [f"{where} is missing"]
        if files.sha256(relative) != sha256:
            return [f"{where} does not have the recorded sha256 {sha256}"]
    except (Invalid, OSError) as error:
        return [f"{where} cannot be read: {error}"]
    return []


def _now(now: float | None) -> float:
    if now is None:
        return time.time()
    return check_real("now (epoch seconds)", now)


def _enum(kind: type[_E], value: object, field: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in kind)
        raise Invalid(f"{field} must be one of {allowed}, got {value!r}") from None


def _project(db: sqlite3.Connection, project_id: int) -> Project:
    row = db.execute("SELECT * FROM projects WHERE id = ?", (project_id,)).fetchone()
    if row is None:
        raise NotFound(f"project {project_id} does not exist")
    return project_from_row(row)


def _volume(db: sqlite3.Connection, project_id: int, volume_id: int) -> Volume:
    row = db.execute("SELECT * FROM volumes WHERE id = ?", (volume_id,)).fetchone()
    _check_owner(row, "volume", volume_id, project_id)
    return volume_from_row(row)


def _label(db: sqlite3.Connection, project_id: int, volume_id: int) -> Label:
    row = db.execute("SELECT * FROM labels WHERE volume_id = ? AND project_id = ?", (volume_id, project_id)).fetchone()
    if row is None:
        raise NotFound(
            f"volume {volume_id} of project {project_id} has no expert label yet: upload one with "
            f"PUT /projects/{project_id}/volumes/{volume_id}/label"
        )
    return label_from_row(row)


def _cycle(db: sqlite3.Connection, project_id: int, cycle_id: int) -> Cycle:
    row = db.execute("SELECT * FROM cycles WHERE id = ?", (cycle_id,)).fetchone()
    _check_owner(row, "cycle", cycle_id, project_id)
    return cycle_from_row(row)


def _suggestion(db: sqlite3.Connection, project_id: int, suggestion_id: int) -> Suggestion:
    row = db.execute(f"{_SUGGESTIONS} WHERE s.id = ?", (suggestion_id,)).fetchone()
    _check_owner(row, "suggestion", suggestion_id, project_id)
    return suggestion_from_row(row)


def _job(db: sqlite3.Connection, job_id: int, project_id: int | None = None) -> Job:
    """The job; with ``project_id``, NotFound unless it belongs to that project (the runner passes none)."""
    row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    _check_owner(row, "job", job_id, project_id)
    return job_from_row(row)


def _check_owner(row: sqlite3.Row | None, what: str, item_id: int, project_id: int | None) -> None:
    if row is None:
        raise NotFound(f"{what} {item_id} does not exist")
    if project_id is not None and row["project_id"] != project_id:
        raise NotFound(f"{what} {item_id} is not part of project {project_id}")


def _require_status(job: Job, *allowed: JobStatus) -> None:
    if job.status not in allowed:
        wanted = " or ".join(status.value for status in allowed)
        raise Conflict(f"job {job.id} is {job.status.value}, but this needs a job that is {wanted}")


def _check_spec(spec: SuggestionSpec, volume: Volume, project: Project) -> None:
    di, dj, dk = volume.geometry.dims
    where = f"suggested region {spec.region} of slice k={spec.k} of volume {volume.id}"
    if spec.region >= project.grid_k:
        raise Invalid(f"{where}: the region index must be below the project's grid_k {project.grid_k}")
    if spec.k >= dk or spec.box.i1 > di or spec.box.j1 > dj:
        raise Invalid(
            f"{where}: box i [{spec.box.i0}, {spec.box.i1}), j [{spec.box.j0}, {spec.box.j1}) "
            f"lies outside the volume of {di} x {dj} x {dk} voxels (i, j, k)"
        )


def _replayed(stored: Annotation, content: tuple[object, ...]) -> Annotation:
    """``stored`` if it has ``content`` ``(suggestion_id, annotator, answer, points, effort)``; Conflict otherwise."""
    if (stored.suggestion_id, stored.annotator, stored.answer, stored.points, stored.effort_seconds) == content:
        return stored
    raise Conflict(
        f"idempotency key {stored.idempotency_key!r} was already used for a different answer "
        f"({stored.answer.value} for suggestion {stored.suggestion_id} by {stored.annotator!r} at "
        f"{format_time(stored.created_at)}); send a new key with a new answer"
    )


def _check_lease(suggestion: Suggestion, annotator: str, now: float) -> None:
    holder, expires = suggestion.lease_holder, suggestion.lease_expires_at
    if holder is None or holder == annotator or expires is None or expires <= now:
        return
    raise LeaseError(
        f"suggestion {suggestion.id} is leased to {holder!r} until {format_time(expires)} (your lease "
        "on it, if you had one, has expired): fetch new suggestions"
    )


def _check_inside(points: tuple[Point, ...], suggestion: Suggestion, volume: Volume) -> None:
    di, dj, dk = volume.geometry.dims
    box = suggestion.box
    for number, (i, j, k) in enumerate(points, start=1):
        if not (0 <= i < di and 0 <= j < dj and 0 <= k < dk):
            raise Invalid(
                f"point #{number} [{i}, {j}, {k}] lies outside volume {volume.id} ({volume.name!r}) of "
                f"{di} x {dj} x {dk} voxels (i, j, k)"
            )
        if not suggestion.contains((i, j, k)):
            raise Invalid(
                f"point #{number} [{i}, {j}, {k}] lies outside suggestion {suggestion.id}: its region is "
                f"i in [{box.i0}, {box.i1}), j in [{box.j0}, {box.j1}) on slice k = {suggestion.k}"
            )
