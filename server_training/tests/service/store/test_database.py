"""The database wrapper: durable settings, all-or-nothing transactions, writers that wait their turn."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from covidal.service.store.database import Database
from covidal.service.store.errors import Busy, StoreError

INSERT_PROJECT = (
    "INSERT INTO projects (name, model_kind, grid_k, strategy, mc_samples, loss, created_at) "
    "VALUES (?, 'unet3d', 1, 'entropy', 4, 'point', 0)"
)


def names(path):
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT name FROM projects ORDER BY id")]


def test_the_connection_is_durable_wal_with_foreign_keys(tmp_path):
    with Database(tmp_path / "db.sqlite3", busy_timeout_s=2.5) as database, database.read() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: each commit fsyncs the log
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 2500


def test_a_transaction_commits_when_the_block_ends_and_rolls_back_when_it_raises(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Database(path) as database:
        with database.transaction() as db:
            db.execute(INSERT_PROJECT, ("kept",))
        assert names(path) == ["kept"]  # visible to another connection: committed
        with pytest.raises(KeyError), database.transaction() as db:
            db.execute(INSERT_PROJECT, ("dropped",))
            raise KeyError("boom")
        assert names(path) == ["kept"]
        with database.transaction() as db:  # the connection is usable again after the rollback
            db.execute(INSERT_PROJECT, ("next",))
    assert names(path) == ["kept", "next"]


def test_transactions_do_not_nest(tmp_path):
    with (
        Database(tmp_path / "db.sqlite3") as database,
        database.transaction(),
        pytest.raises(RuntimeError, match="do not nest"),
        database.transaction(),
    ):
        pass


def test_foreign_keys_are_enforced(tmp_path):
    with (
        Database(tmp_path / "db.sqlite3") as database,
        database.transaction() as db,
        pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"),
    ):
        db.execute("INSERT INTO cycles (project_id, number, status, created_at) VALUES (99, 1, 'open', 0)")


def test_concurrent_read_modify_write_transactions_lose_no_update(tmp_path):
    """Two connections (as two processes would have) x 3 threads each increment a counter 10 times.

    Each increment reads, sleeps a little, then writes: without BEGIN IMMEDIATE the writers would
    either fail with SQLITE_BUSY or overwrite each other.
    """
    path = tmp_path / "db.sqlite3"
    databases = [Database(path), Database(path)]
    with databases[0].transaction() as db:
        db.execute(INSERT_PROJECT, ("counter",))
    errors = []

    def increment(database):
        try:
            for _ in range(10):
                with database.transaction() as db:
                    value = db.execute("SELECT grid_k FROM projects").fetchone()[0]
                    time.sleep(0.001)
                    db.execute("UPDATE projects SET grid_k = ?", (value + 1,))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=increment, args=(databases[n % 2],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT grid_k FROM projects").fetchone()[0] == 1 + 6 * 10
    for database in databases:
        database.close()


def test_a_writer_locked_out_past_the_busy_timeout_gets_busy(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Database(path) as holder, Database(path, busy_timeout_s=0.2) as waiter:
        with holder.transaction():
            started = time.monotonic()
            busy = r"db\.sqlite3 stayed locked by another writer for 0\.2 s; retry later"
            with pytest.raises(Busy, match=busy), waiter.transaction():
                pass
            assert time.monotonic() - started >= 0.15  # it waited for the lock before giving up
        with waiter.transaction() as db:  # free again
            db.execute(INSERT_PROJECT, ("after",))
    assert names(path) == ["after"]


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"cannot open the store database .*db\.sqlite3"):
        Database(path)


def test_a_non_positive_busy_timeout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="busy_timeout_s must be positive, got 0"):
        Database(tmp_path / "db.sqlite3", busy_timeout_s=0)
