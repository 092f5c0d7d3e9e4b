"""Project store: SQLite (WAL) metadata plus files on disk, no HTTP.

* :mod:`.database`: one SQLite file, ``BEGIN IMMEDIATE`` transactions, durable commits;
* :mod:`.schema`: versioned migrations (``PRAGMA user_version``);
* :mod:`.files`: content files written to a temporary name, fsynced, then renamed;
* :mod:`.records`: the frozen records the store returns and the specs it takes;
* :mod:`.store`: :class:`~.store.Store`, projects, volumes, suggestion cycles with
  leases, annotations (idempotent), training jobs and an integrity check;
* :mod:`.errors`: the errors the HTTP layer maps to status codes.
"""
