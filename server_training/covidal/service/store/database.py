"""One SQLite database file: durable settings, serialised write transactions, migrations on open.

Settings, and why:

* ``journal_mode=WAL``: readers never block the writer and the writer never
  blocks readers; a crash leaves the committed transactions in the log;
* ``synchronous=FULL``: every commit fsyncs the log, so a transaction that
  returned is still there after SIGKILL or power loss (NORMAL may lose the last
  commits on power loss);
* ``foreign_keys=ON``: SQLite enforces the schema's references only when asked;
* a busy timeout, and ``BEGIN IMMEDIATE`` for every write transaction: a writer
  takes the write lock before reading, so concurrent writers (threads or
  processes) wait their turn instead of failing on a stale snapshot.

Threads: a :class:`Database` holds ONE connection guarded by a lock, so the
threads of one process take turns (SQLite serialises writers anyway, and the
store's reads are short). Processes: each opens its own :class:`Database` on
the same file; WAL and the busy timeout coordinate them. Never share one across
``fork``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from covidal.service.store.errors import Busy, StoreError
from covidal.service.store.schema import MIGRATIONS, Migration, migrate

DEFAULT_BUSY_TIMEOUT_S = 30.0


class Database:
    """An open, migrated store database.

    Args:
        path: the SQLite file (created with its folder if missing).
        busy_timeout_s: how long a transaction waits for another writer's lock before :class:`Busy`.
        migrations: the schema (tests pass their own).

    Raises:
        ValueError: ``busy_timeout_s`` is not positive.
        StoreError: the file is not a database, its schema is newer than this covidal's,
            or it cannot use WAL (e.g. some network filesystems).
    """

    def __init__(
        self, path: Path, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S, migrations: Sequence[Migration] = MIGRATIONS
    ) -> None:
        if not busy_timeout_s > 0:
            raise ValueError(f"busy_timeout_s must be positive, got {busy_timeout_s!r}")
        self.path = Path(path)
        self.busy_timeout_s = float(busy_timeout_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            self._configure()
            migrate(self._connection, migrations)
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise StoreError(f"cannot open the store database {self.path}: {error}") from error
        except BaseException:
            self._connection.close()
            raise

    def _configure(self) -> None:
        connection = self._connection
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        mode = self._switch_to_wal()
        if str(mode).lower() != "wal":
            raise StoreError(
                f"the store database {self.path} cannot use write-ahead logging (journal mode "
                f"stayed {mode!r}); put the store on a local disk"
            )
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")

    def _switch_to_wal(self) -> str:
        """Set WAL mode (a no-op once the file is WAL) and return the journal mode now in force.

        Two connections switching a new file at once can get SQLITE_BUSY at once, without the busy
        handler (SQLite's deadlock avoidance), so this retries until the busy timeout.
        """
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                return str(self._connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed when the block ends, rolled back if it raises.

        When the block returns, the commit is on disk.

        Raises:
            Busy: another writer held the lock longer than the busy timeout.
            RuntimeError: called inside another transaction of this database (they do not nest).
        """
        with self._lock, self._begun("BEGIN IMMEDIATE") as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the block sees the same snapshot.

        Raises:
            Busy, RuntimeError: as :meth:`transaction`.
        """
        with self._lock, self._begun("BEGIN DEFERRED") as connection:
            yield connection

    @contextmanager
    def _begun(self, begin: str) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        if connection.in_transaction:
            raise RuntimeError("store transactions do not nest")
        try:
            connection.execute(begin)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise Busy(
                    f"the store database {self.path} stayed locked by another writer for "
                    f"{self.busy_timeout_s:g} s; retry later"
                ) from error
            raise
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # some errors (e.g. SQLITE_FULL) already rolled it back
                connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
