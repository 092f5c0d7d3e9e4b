"""Receiving a raw request body as a file of the store: streamed, refused past the size limit (413)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import anyio.from_thread
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from covidal.service.store.errors import Invalid
from covidal.service.store.files import FileStore, StoredFile
from covidal.service.volumes import UploadTooLarge


async def receive_upload(request: Request, files: FileStore, kind: str, suffix_of: Callable[[bytes], str],
                         limit: int, what: str) -> StoredFile:
    """Store the request body durably under ``kind`` (see :meth:`FileStore.put_stream`).

    Args:
        suffix_of: the stored file's suffix, from the body's first bytes (e.g. gzip or not).
        limit: the largest body accepted, in bytes.
        what: the body in messages, e.g. ``"the volume file"``.

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
    return await run_in_threadpool(files.put_stream, kind, suffix_of(first), _blocking_chunks(first, chunks, limit),
                                   limit)


async def _non_empty(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        if chunk:
            yield chunk


def _blocking_chunks(first: bytes, chunks: AsyncIterator[bytes], limit: int) -> Iterator[bytes]:
    """The body's chunks for a worker thread (each fetched from the event loop); UploadTooLarge past ``limit``."""
    size, chunk = 0, first
    while True:
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(f"the upload exceeds the limit of {limit} bytes")
        yield chunk
        chunk = anyio.from_thread.run(_next_or_empty, chunks)
        if not chunk:
            return


async def _next_or_empty(chunks: AsyncIterator[bytes]) -> bytes:
    return await anext(chunks, b"")
