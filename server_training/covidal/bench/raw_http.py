"""One HTTP request with plain urllib, whatever its answer: for benchmarks and tests that send what the client
never would (hostile bodies, foreign headers) and look at every status."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable


def raw_request(
    base_url: str,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, object]:
    """``(status, decoded JSON or bytes)`` of the request, error statuses included.

    Raises:
        OSError (``URLError``, ``ConnectionError``, ``TimeoutError``) or ``http.client.HTTPException``: no answer.
    """
    request = urllib.request.Request(base_url + path, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, content = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, content = error.code, error.read()
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content


def stalled_upload(base_url: str, path: str, declared_bytes: int = 10_000_000) -> socket.socket:
    """An upload (POST of ``path``) that sends its headers and the first 4 KiB of a body of ``declared_bytes``,
    then nothing more: the open connection, for the caller to close."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {declared_bytes}\r\n\r\n"
    )
    connection.sendall(head.encode() + b"NRRD0004\n" + bytes(4096))
    return connection
