"""Migrations: from an empty file, idempotent reopen, all-or-nothing steps, refusal of newer schemas."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from covidal.service.store.database import Database
from covidal.service.store.errors import StoreError
from covidal.service.store.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    migrate,
    user_version,
)

TABLES = {"projects", "volumes", "cycles", "suggestions", "annotations", "jobs", "labels"}


def connect(path):
    return sqlite3.connect(path, isolation_level=None)


def tables(connection):
    return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrations_are_numbered_one_to_n_and_the_schema_version_is_the_last():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == len(MIGRATIONS)


def test_an_empty_file_gets_every_table_and_the_current_version(tmp_path):
    connection = connect(tmp_path / "db.sqlite3")
    assert user_version(connection) == 0
    assert migrate(connection) == SCHEMA_VERSION
    assert user_version(connection) == SCHEMA_VERSION
    assert tables(connection) == TABLES


def test_reopening_applies_nothing_and_keeps_the_data(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Database(path) as database, database.transaction() as db:
        db.execute(
            "INSERT INTO projects (name, model_kind, grid_k, strategy, mc_samples, loss, created_at) "
            "VALUES ('p', 'unet3d', 16, 'entropy', 4, 'point', 0)"
        )
    for _ in range(2):
        with Database(path) as database, database.read() as db:
            assert [row["name"] for row in db.execute("SELECT name FROM projects")] == ["p"]
            assert user_version(db) == SCHEMA_VERSION


def test_only_pending_migrations_run_in_order(tmp_path):
    connection = connect(tmp_path / "db.sqlite3")
    first = Migration(1, "a", ("CREATE TABLE a (x INTEGER)",))
    second = Migration(2, "b", ("CREATE TABLE b (x INTEGER)", "INSERT INTO b SELECT x FROM a"))
    assert migrate(connection, [first]) == 1
    connection.execute("INSERT INTO a VALUES (7)")
    assert migrate(connection, [first, second]) == 2  # would fail on "table a already exists" if 1 ran again
    assert connection.execute("SELECT x FROM b").fetchall() == [(7,)]


def test_a_failing_migration_is_rolled_back_whole(tmp_path):
    connection = connect(tmp_path / "db.sqlite3")
    good = Migration(1, "a", ("CREATE TABLE a (x INTEGER)",))
    bad = Migration(2, "b", ("CREATE TABLE b (x INTEGER)", "INSERT INTO missing VALUES (1)"))
    with pytest.raises(sqlite3.OperationalError, match="missing"):
        migrate(connection, [good, bad])
    assert user_version(connection) == 1
    assert tables(connection) == {"a"}  # b's CREATE TABLE was undone with the version bump
    assert not connection.in_transaction


def test_a_database_from_a_newer_covidal_is_refused(tmp_path):
    path = tmp_path / "db.sqlite3"
    connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 3}.*up to {SCHEMA_VERSION}.*upgrade"):
        Database(path)
    assert user_version(connect(path)) == SCHEMA_VERSION + 3  # untouched


def test_openers_racing_on_new_files_all_succeed_and_apply_each_migration_once(tmp_path):
    """3 threads open each of 20 new files at once (switching a new file to WAL races: see Database)."""
    errors, versions = [], []

    def open_(path, barrier):
        barrier.wait()
        try:
            with Database(path) as database, database.read() as db:
                versions.append(user_version(db))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    for number in range(20):
        barrier = threading.Barrier(3)
        threads = [threading.Thread(target=open_, args=(tmp_path / f"db{number}.sqlite3", barrier)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == [] and versions == [SCHEMA_VERSION] * 60


@pytest.mark.parametrize(
    "migrations, message",
    [
        ([Migration(2, "b", ())], r"numbered 1, 2, \.\.\. in order, got \[2\]"),
        ([Migration(1, "a", ()), Migration(1, "a", ())], r"got \[1, 1\]"),
    ],
)
def test_badly_numbered_migrations_are_refused(tmp_path, migrations, message):
    with pytest.raises(ValueError, match=message):
        migrate(connect(tmp_path / "db.sqlite3"), migrations)


def test_migrate_needs_an_autocommit_connection(tmp_path):
    with pytest.raises(ValueError, match="autocommit"):
        migrate(sqlite3.connect(tmp_path / "db.sqlite3"))
