"""Content files of the store (volumes, predictions, checkpoints) under one root folder.

A file is written to a temporary name in its target folder, fsynced, renamed to
its final name and the folder fsynced, so after a crash a final name always
holds a complete file; a crash mid-write leaves only a temporary name
(``.tmp-*``), which :meth:`FileStore.remove_temporaries` clears at startup.
Final names are random (uuid4), never derived from client input, so a client
can neither traverse paths nor overwrite another file; paths read back from the
database are checked to stay inside the root all the same.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from covidal.service.store.errors import Invalid

TEMPORARY_PREFIX = ".tmp-"
CHUNK_BYTES = 1 << 20
_KIND = re.compile(r"[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*")
_SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,10}){0,3}")


@dataclass(frozen=True)
class StoredFile:
    """A complete file in the store.

    Attributes:
        relative_path: POSIX path relative to the store's root, e.g. ``"volumes/1/3f2a....nii.gz"``.
        sha256: hex digest of the content.
        size: bytes.
    """

    relative_path: str
    sha256: str
    size: int


class FileStore:
    """Files under ``root`` (created if missing), in folders named by the server (``kind``), never by clients."""

    def __init__(self, root: Path) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(root).resolve()

    def put_stream(
        self, kind: str, suffix: str, stream: BinaryIO | Iterable[bytes], max_bytes: int, synced: bool = True
    ) -> StoredFile:
        """Store the content of ``stream`` durably under ``kind/<uuid><suffix>``.

        Args:
            kind: folder, e.g. ``"volumes/3"``: lowercase letters, digits, ``-``, ``_``, parts joined by ``/``.
            suffix: extension kept on the name so readers can tell the format, e.g. ``".nii.gz"``, ``".zip"``, ``""``.
            stream: a binary file object (read in chunks) or an iterable of bytes-like chunks.
            max_bytes: the largest accepted content.
            synced: False: the file is written and named but not yet durable; the caller calls :meth:`sync`
                before any row references it (a crash before that leaves a file no row references, which
                :meth:`Store.recover <covidal.service.store.store.Store.recover>` removes).

        Raises:
            Invalid: the content exceeds ``max_bytes`` (nothing is left on disk), or a bad ``suffix``.
            ValueError: a bad ``kind`` or ``max_bytes`` (programming errors, not client input).
        """
        if not _SUFFIX.fullmatch(suffix):
            raise Invalid(f"file suffix {suffix!r} is not accepted: use up to three parts like '.nii.gz'")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
        folder = self._make_folder(kind)
        name = f"{uuid.uuid4().hex}{suffix}"
        temporary = folder / f"{TEMPORARY_PREFIX}{name}"
        try:
            sha256, size = _write(temporary, _chunks(stream), max_bytes, synced)
            os.replace(temporary, folder / name)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        if synced:
            _fsync_folder(folder)
        return StoredFile(f"{kind}/{name}", sha256, size)

    def sync(self, relative: str) -> None:
        """Make the file stored as ``relative`` (by ``put_stream(..., synced=False)``) durable: its content, then its
        name. Errors: as :meth:`path`, OSError."""
        path = self.path(relative)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        _fsync_folder(path.parent)

    def path(self, relative: str) -> Path:
        """Absolute path of the file stored as ``relative``.

        Raises:
            Invalid: ``relative`` is empty, absolute, has ``..`` or a drive, or resolves outside the root.
        """
        candidate = PurePosixPath(relative)
        if not relative or candidate.is_absolute() or ".." in candidate.parts or "\\" in relative or ":" in relative:
            raise Invalid(f"file path {relative!r} is outside the file store")
        resolved = (self.root / candidate).resolve()
        if resolved == self.root or not resolved.is_relative_to(self.root):
            raise Invalid(f"file path {relative!r} is outside the file store")
        return resolved

    def sha256(self, relative: str) -> str:
        """Hex sha256 of the stored file's content.

        Raises:
            Invalid: as :meth:`path`. OSError: the file cannot be read.
        """
        digest = hashlib.sha256()
        with open(self.path(relative), "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest()

    def remove(self, relative: str) -> None:
        """Delete the stored file durably (no error if it is already gone).

        Raises:
            Invalid: as :meth:`path`.
        """
        path = self.path(relative)
        path.unlink(missing_ok=True)
        _fsync_folder(path.parent)

    def files(self, folder: str) -> list[str]:
        """Relative paths of the complete files under ``folder`` (recursively; none if it does not exist), sorted.

        Raises:
            Invalid: as :meth:`path`.
        """
        base = self.path(folder)
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(TEMPORARY_PREFIX)
        )

    def temporaries(self) -> list[str]:
        """Relative paths of the temporary files that writers left behind (interrupted writes), sorted."""
        return sorted(
            path.relative_to(self.root).as_posix() for path in self.root.rglob(f"{TEMPORARY_PREFIX}*") if path.is_file()
        )

    def remove_temporaries(self) -> list[str]:
        """Delete the leftovers of interrupted writes and return their relative paths.

        Call it at startup only: it would also delete the files that another live writer is writing.
        """
        removed = self.temporaries()
        for relative in removed:
            self.remove(relative)
        return removed

    def _make_folder(self, kind: str) -> Path:
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise ValueError(f"file kind must be lowercase parts joined by '/', e.g. 'volumes/3', got {kind!r}")
        folder = self.root
        for part in kind.split("/"):
            child = folder / part
            if not child.is_dir():
                child.mkdir(exist_ok=True)
                _fsync_folder(folder)  # the new folder's entry must survive a crash too
            folder = child
        return folder


def _chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(stream, "read", None)
    if read is None:
        yield from stream
        return
    while chunk := read(CHUNK_BYTES):
        yield chunk


def _write(path: Path, chunks: Iterable[bytes], max_bytes: int, synced: bool) -> tuple[str, int]:
    """Write ``chunks`` to a new file ``path``, fsync it if ``synced``, return ``(sha256, size)``; Invalid past
    ``max_bytes``."""
    digest, size = hashlib.sha256(), 0
    # os.open applies the user's umask (mkstemp would make the file owner-only), and O_EXCL never follows a link.
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as handle:
        for chunk in chunks:
            view = memoryview(chunk)
            size += view.nbytes
            if size > max_bytes:
                raise Invalid(f"the upload exceeds the limit of {max_bytes} bytes")
            digest.update(view)
            handle.write(view)
        handle.flush()
        if synced:
            os.fsync(handle.fileno())
    return digest.hexdigest(), size


def _fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a rename, a new or deleted file) durable; Windows cannot open folders."""
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
