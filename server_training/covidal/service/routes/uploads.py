"""Receiving a raw request body as a file of the store: sent as ``application/octet-stream``, at most
``max_concurrent_uploads`` at once, streamed, refused past the size limit (413).

The media type rule keeps web pages out: a page can post a form or ``text/plain`` to the loopback service
without the browser asking first, but not ``application/octet-stream``. The bound on concurrent uploads keeps
uploads that stall (each holds a worker thread while its body trickles in, until the body timeout of
:mod:`covidal.service.edge`) from taking the threads the rest of the API answers with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio.from_thread
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from covidal.service.store.errors import Busy, Invalid
from covidal.service.store.files import FileStore, StoredFile
from covidal.service.volumes import UploadTooLarge

UPLOAD_MEDIA_TYPE = "application/octet-stream"
PART_BYTES = 1 << 20


class UnsupportedMediaType(Invalid):
    """An upload sent as another media type than ``application/octet-stream`` (415)."""


class UploadSlots:
    """Counts the uploads in progress (received or decoded); one past ``size`` is refused with Busy (503).

    Used from the event loop only, so the count needs no lock.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.taken = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self.taken >= self.size:
            raise Busy(
                f"{self.taken} uploads are in progress, the most this service takes at once (covidal serve "
                "--max-uploads): send it again in a moment"
            )
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1


@asynccontextmanager
async def upload_slot(request: Request) -> AsyncIterator[None]:
    """Check the request's media type, then hold one of the app's upload slots for the block.

    Raises:
        UnsupportedMediaType: not ``application/octet-stream``. Busy: every slot is taken.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != UPLOAD_MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"send the file as the request body with 'Content-Type: {UPLOAD_MEDIA_TYPE}'"
            f"{f' (got {media_type!r})' if media_type else ''}"
        )
    with request.app.state.upload_slots.hold():
        yield


async def receive_upload(
    request: Request,
    files: FileStore,
    kind: str,
    suffix_of: Callable[[bytes], str],
    limit: int,
    what: str,
    synced: bool = True,
) -> StoredFile:
    """Store the request body under ``kind`` (see :meth:`FileStore.put_stream`).

    Args:
        suffix_of: the stored file's suffix, from the body's first bytes (e.g. gzip or not).
        limit: the largest body accepted, in bytes.
        what: the body in messages, e.g. ``"the volume file"``.
        synced: False: not yet durable, the caller makes it so (:meth:`FileStore.sync`) before recording it.

    Raises:
        UploadTooLarge: a declared or actual body over ``limit`` (nothing is kept). Invalid: an empty body.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the upload of {declared} bytes exceeds the limit of {limit} bytes")
    chunks = _non_empty(request.stream())
    first = await anext(chunks, b"")
    if not first:
        raise Invalid(f"the upload is empty: send {what} as the request body")
    return await run_in_threadpool(
        files.put_stream, kind, suffix_of(first), _blocking_chunks(first, chunks, limit), limit, synced
    )


async def _non_empty(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        if chunk:
            yield chunk


def _blocking_chunks(first: bytes, chunks: AsyncIterator[bytes], limit: int) -> Iterator[bytes]:
    """The body's parts for a worker thread (each fetched from the event loop); UploadTooLarge past ``limit``."""
    size, part = 0, first
    while True:
        size += len(part)
        if size > limit:
            raise UploadTooLarge(f"the upload exceeds the limit of {limit} bytes")
        yield part
        part = anyio.from_thread.run(_next_part, chunks)
        if not part:
            return


async def _next_part(chunks: AsyncIterator[bytes]) -> bytes:
    """The next :data:`PART_BYTES` or so of the body (less at its end, empty after it). One trip from the worker
    thread to the event loop per part, not per network read (about 64 KiB): a 10 MB upload took 160 trips, about
    10 ms of its time."""
    parts, size = [], 0
    while size < PART_BYTES:
        chunk = await anext(chunks, b"")
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)
