"""The service's in-process cache: decoded volumes and what cycles derive from them, and loaded models.

A cycle needs every pool volume's voxels and, once the project has a model, the volume's network input
(windowed, resized, standardised slices) and the model. Reading a gzipped NRRD and preparing its slices
takes seconds for a 512 x 512 x 300 CT, so the service keeps them:

* Volumes and derived arrays share one byte budget, least recently used out first. Their keys hold the
  volume's sha256: uploads are content-addressed and never change, so an entry never goes stale.
* A model is kept per file path with the file's identity (inode, mtime, size) read *before* loading it.
  A job publishes a new model by an atomic rename, which changes that identity, so the next request
  loads the new file; reading the identity first means a file replaced during a load is loaded again.

FastAPI runs sync endpoints in a thread pool: one lock guards the tables, and a lock per key being
loaded makes a second request for the same entry wait for the first load instead of loading it twice.
Cached arrays are made read-only, so no request can change what the next one reads.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from covidal.data.volume import Volume
from covidal.validation import check_int

Value = TypeVar("Value")


@dataclass(frozen=True)
class VolumeKey:
    """An uploaded volume's content: its id and the sha256 of its stored file."""

    volume_id: int
    sha256: str


@dataclass(frozen=True)
class FileStamp:
    """What changes when a file is replaced or rewritten: inode, modification time (ns) and size."""

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        """The stamp of the file at ``path``. OSError if it cannot be read (e.g. missing)."""
        status = os.stat(path)
        return cls(status.st_ino, status.st_mtime_ns, status.st_size)


@dataclass
class _KeyLock:
    lock: threading.Lock = field(default_factory=threading.Lock)
    holders: int = 0


class _KeyLocks:
    """One lock per key while some thread loads or waits for it; dropped when no thread holds it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, _KeyLock] = {}

    @contextmanager
    def holding(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(key, _KeyLock())
            entry.holders += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.holders -= 1
                if entry.holders == 0:
                    del self._locks[key]


@dataclass
class _Entry:
    value: object
    nbytes: int


class ByteBudgetCache:
    """Values by key, at most ``budget_bytes`` in all, least recently used evicted first; thread-safe.

    A value larger than the whole budget is returned but not kept; a budget of 0 keeps nothing.

    Raises:
        ValueError: a negative or non-integer budget.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = check_int("the cache budget (bytes)", budget_bytes, minimum=0)
        self._lock = threading.Lock()
        self._loading = _KeyLocks()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._nbytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now (at most ``budget_bytes``)."""
        with self._lock:
            return self._nbytes

    def keys(self) -> list[Hashable]:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._entries)

    def get_or_load(self, key: Hashable, load: Callable[[], Value], nbytes: Callable[[Value], int]) -> Value:
        """The value kept under ``key``, or ``load()``'s, kept when it fits the budget.

        Concurrent calls for one missing key run ``load`` once; the others wait and get its value.
        An exception of ``load`` reaches the caller and nothing is kept.

        Args:
            nbytes: the memory a loaded value holds, counted against the budget.
        """
        if self.budget_bytes == 0:
            return load()
        with self._loading.holding(key):
            found = self._lookup(key)
            if found is not None:
                return found.value  # type: ignore[return-value]
            value = load()
            self._keep(key, _Entry(value, nbytes(value)))
            return value

    def _lookup(self, key: Hashable) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def _keep(self, key: Hashable, entry: _Entry) -> None:
        if entry.nbytes > self.budget_bytes:
            return
        with self._lock:
            self._entries[key] = entry
            self._nbytes += entry.nbytes
            while self._nbytes > self.budget_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._nbytes -= evicted.nbytes


@dataclass
class _LoadedModel:
    stamp: FileStamp
    model: object


class ServiceCache:
    """The service's volumes, derived arrays and models (see the module docstring).

    Args:
        budget_bytes: memory for volumes and derived arrays; 0 turns the whole cache off (models too),
            so every request reads its files again.

    Raises:
        ValueError: a negative or non-integer budget.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.arrays = ByteBudgetCache(budget_bytes)
        self._lock = threading.Lock()
        self._loading = _KeyLocks()
        self._models: dict[Path, _LoadedModel] = {}

    @property
    def enabled(self) -> bool:
        return self.arrays.budget_bytes > 0

    def volume(self, key: VolumeKey, load: Callable[[], Volume]) -> Volume:
        """The volume of ``key``, read by ``load`` on a miss; its array is read-only (it may be shared)."""
        return self.arrays.get_or_load(key, lambda: _read_only_volume(load()), lambda volume: volume.array.nbytes)

    def derived(self, key: Hashable, load: Callable[[], Value], nbytes: Callable[[Value], int]) -> Value:
        """An array derived from a volume (e.g. its network input), computed by ``load`` on a miss.

        ``key`` must hold the volume's :class:`VolumeKey` and everything else the value depends on.
        """
        return self.arrays.get_or_load(key, load, nbytes)

    def model(self, path: Path, load: Callable[[Path], Value]) -> Value:
        """The model in the file at ``path``: the kept one while the file is unchanged, else ``load(path)``.

        Errors of ``load`` (e.g. a missing or damaged file) reach the caller.
        """
        path = Path(path)
        if not self.enabled:
            return load(path)
        with self._loading.holding(path):
            try:
                stamp = FileStamp.of(path)
            except OSError:
                return load(path)  # gone or unreadable: ``load`` says so in its own words
            with self._lock:
                kept = self._models.get(path)
            if kept is not None and kept.stamp == stamp:
                return kept.model  # type: ignore[return-value]
            model = load(path)
            with self._lock:
                self._models[path] = _LoadedModel(stamp, model)
            return model


def _read_only_volume(volume: Volume) -> Volume:
    volume.array.setflags(write=False)
    return volume
