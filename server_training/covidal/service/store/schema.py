"""The store's schema as an ordered list of migrations, and :func:`migrate`.

The database records the last applied migration in ``PRAGMA user_version``
(0 for a new file). Opening a database applies the pending migrations in order,
each in its own ``BEGIN IMMEDIATE`` transaction together with the version bump,
so a crash leaves the database at a whole version, and two processes opening a
new file at once apply each migration once. A database written by a newer
covidal (a version above :data:`SCHEMA_VERSION`) is refused rather than misread.

Never edit a released migration: append a new one.

Conventions: times are epoch seconds (REAL, UTC); JSON columns hold standard
JSON text; boxes are half-open voxel ranges ``[i0, i1) x [j0, j1)`` on axial
slice ``k``; points are ``[[i, j, k], ...]``. Child tables reference
``(id, project_id)`` of their parents, so a row can never point into another
project.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from covidal.service.store.errors import StoreError


@dataclass(frozen=True)
class Migration:
    """One schema step: ``statements`` run in order, in one transaction, then ``user_version = version``."""

    version: int
    description: str
    statements: tuple[str, ...]


_INITIAL = (
    """CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        model_kind TEXT NOT NULL,
        grid_k INTEGER NOT NULL CHECK (grid_k >= 1),
        strategy TEXT NOT NULL,
        mc_samples INTEGER NOT NULL CHECK (mc_samples >= 1),
        loss TEXT NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE volumes (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects (id),
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        format TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL CHECK (size >= 0),
        dim_i INTEGER NOT NULL CHECK (dim_i >= 1),
        dim_j INTEGER NOT NULL CHECK (dim_j >= 1),
        dim_k INTEGER NOT NULL CHECK (dim_k >= 1),
        spacing TEXT NOT NULL,
        origin TEXT NOT NULL,
        direction TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (project_id, sha256),
        UNIQUE (id, project_id)
    )""",
    """CREATE TABLE cycles (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects (id),
        number INTEGER NOT NULL CHECK (number >= 1),
        status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
        created_at REAL NOT NULL,
        UNIQUE (project_id, number),
        UNIQUE (id, project_id)
    )""",
    """CREATE TABLE suggestions (
        id INTEGER PRIMARY KEY,
        cycle_id INTEGER NOT NULL,
        project_id INTEGER NOT NULL,
        volume_id INTEGER NOT NULL,
        k INTEGER NOT NULL CHECK (k >= 0),
        region INTEGER NOT NULL CHECK (region >= 0),
        i0 INTEGER NOT NULL,
        i1 INTEGER NOT NULL,
        j0 INTEGER NOT NULL,
        j1 INTEGER NOT NULL,
        score REAL NOT NULL,
        rank INTEGER NOT NULL CHECK (rank >= 1),
        lease_holder TEXT,
        lease_expires_at REAL,
        CHECK (0 <= i0 AND i0 < i1 AND 0 <= j0 AND j0 < j1),
        CHECK ((lease_holder IS NULL) = (lease_expires_at IS NULL)),
        FOREIGN KEY (cycle_id, project_id) REFERENCES cycles (id, project_id),
        FOREIGN KEY (volume_id, project_id) REFERENCES volumes (id, project_id),
        UNIQUE (cycle_id, volume_id, k, region),
        UNIQUE (cycle_id, rank),
        UNIQUE (id, project_id)
    )""",
    """CREATE TABLE annotations (
        id INTEGER PRIMARY KEY,
        suggestion_id INTEGER NOT NULL UNIQUE,
        project_id INTEGER NOT NULL,
        answer TEXT NOT NULL CHECK (answer IN ('background', 'infection')),
        points TEXT NOT NULL,
        annotator TEXT NOT NULL,
        effort_seconds REAL NOT NULL CHECK (effort_seconds >= 0),
        idempotency_key TEXT NOT NULL,
        created_at REAL NOT NULL,
        FOREIGN KEY (suggestion_id, project_id) REFERENCES suggestions (id, project_id),
        UNIQUE (project_id, idempotency_key)
    )""",
    "CREATE INDEX annotations_by_time ON annotations (project_id, created_at, id)",
    """CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects (id),
        kind TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
        device TEXT,
        config TEXT NOT NULL,
        progress TEXT,
        checkpoint_path TEXT,
        log_path TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        error TEXT
    )""",
    # The database itself refuses a second running job on one device, whatever the code does.
    "CREATE UNIQUE INDEX one_running_job_per_device ON jobs (device) WHERE status = 'running'",
    "CREATE INDEX jobs_by_status ON jobs (status, created_at, id)",
)

_LABELS = (
    # One expert label volume per volume (a new upload replaces the row); its file has the volume's geometry.
    """CREATE TABLE labels (
        volume_id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        format TEXT NOT NULL CHECK (format IN ('nrrd', 'nifti')),
        path TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        foreground_voxels INTEGER NOT NULL CHECK (foreground_voxels >= 0),
        created_at REAL NOT NULL,
        FOREIGN KEY (volume_id, project_id) REFERENCES volumes (id, project_id)
    )""",
    "CREATE INDEX labels_by_project ON labels (project_id, volume_id)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "projects, volumes, cycles, suggestions with leases, annotations, jobs", _INITIAL),
    Migration(2, "expert label volumes", _LABELS),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def user_version(connection: sqlite3.Connection) -> int:
    """The schema version recorded in the database (0 for a new file)."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def migrate(connection: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the pending ``migrations`` and return the resulting schema version.

    Args:
        connection: an autocommit connection (``isolation_level=None``), outside any transaction.
        migrations: versions ``1, 2, ..., N`` in order.

    Raises:
        ValueError: ``connection`` is not in autocommit mode, or ``migrations`` are not numbered 1..N.
        StoreError: the database was written by a newer schema than ``N``.
        sqlite3.Error: a migration failed (it is rolled back; the earlier ones stay applied).
    """
    if connection.isolation_level is not None or connection.in_transaction:
        raise ValueError("migrate needs an autocommit connection (isolation_level=None) outside any transaction")
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, ... in order, got {versions}")
    latest = len(versions)
    _refuse_newer(connection, latest)
    for migration in migrations:
        if migration.version > user_version(connection):
            _apply(connection, migration, latest)
    return user_version(connection)


def _apply(connection: sqlite3.Connection, migration: Migration, latest: int) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have applied it while this one waited for the write lock.
        _refuse_newer(connection, latest)
        if user_version(connection) < migration.version:
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {int(migration.version)}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _refuse_newer(connection: sqlite3.Connection, latest: int) -> None:
    found = user_version(connection)
    if found > latest:
        name = connection.execute("PRAGMA database_list").fetchone()[2] or "the database"
        raise StoreError(
            f"{name} has schema version {found}, but this covidal reads versions up to {latest}: "
            "it was written by a newer covidal; upgrade covidal to open it"
        )
