"""Reading an upload safely: the header checked in Python, the voxels decoded in a limited child process.

:func:`read_upload_safely` is what the routes call. The child is forked by the fork server of
:mod:`.forkserver`, which this module starts on first use (or at the service's start, :func:`start_decoder`)
and starts again if it has died. The child gets :data:`MEMORY_MARGIN_BYTES` plus :data:`READER_COPIES`
times the decoded size of address space, ``limits.timeout_s`` of CPU time and the same of wall-clock time
(then it is killed); whatever happens to it, the service answers one 4xx.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from covidal.data.volume import Volume
from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.decode import REFUSALS, DecodeRequest
from covidal.service.uploads.headers import UploadHeader, check_upload_header
from covidal.service.uploads.limits import DecodeLimits

MEMORY_MARGIN_BYTES = 512 * 2**20  # the interpreter's own allocations while it decodes (zip and gzip buffers)
READER_COPIES = 3  # a reader's buffer, its numpy copy, and a check's temporary
MAX_MESSAGE_CHARS = 500
_STARTUP_TIMEOUT_S = 60.0  # the fork server imports SimpleITK and numpy before it reads a request


def read_upload_safely(path: Path, volume_format: VolumeFormat, limits: DecodeLimits) -> Volume:
    """The volume of the stored upload at ``path``: header checked here, voxels decoded in a limited child.

    Raises:
        Invalid: anything :func:`~.headers.check_upload_header` or :func:`~.decode.decode_upload` refuses,
            a reader that crashed or went past a limit, a decoding that took longer than ``limits.timeout_s``.
        UploadTooLarge: more voxels than ``limits.max_voxels``, a zip that expands too far.
    """
    header = check_upload_header(path, volume_format, limits)
    return DECODER.decode(path, header, limits)


class Decoder:
    """The fork server process and the socket requests go to; :meth:`decode` is safe to call from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None

    def start(self) -> None:
        """Start the fork server unless it runs (it then imports the readers while nothing waits for it)."""
        with self._lock:
            self._start_locked()

    def stop(self) -> None:
        """Close the socket (the fork server exits) and wait for it; decodes in progress finish."""
        with self._lock:
            if self._control is not None:
                self._control.close()
                self._control = None
            if self._process is not None:
                self._process.wait(_STARTUP_TIMEOUT_S)
                self._process = None

    def decode(self, path: Path, header: UploadHeader, limits: DecodeLimits) -> Volume:
        """Decode the upload at ``path`` in a child; errors as :func:`read_upload_safely`."""
        memory = MEMORY_MARGIN_BYTES + READER_COPIES * header.decoded_bytes(limits)
        request = pickle.dumps(DecodeRequest(str(Path(path).resolve()), header, limits, memory))
        ours, theirs = socket.socketpair()
        try:
            self._send(request, theirs.fileno())
        finally:
            theirs.close()
        with Connection(ours.detach()) as connection:
            return _receive(connection, limits, memory)

    def _send(self, request: bytes, fd: int) -> None:
        with self._lock:
            for attempt in (1, 2):  # a fork server that died is started again once
                self._start_locked()
                try:
                    socket.send_fds(self._control, [request], [fd])
                    return
                except OSError:
                    if attempt == 2:
                        raise
                    self._control.close()
                    self._control = None

    def _start_locked(self) -> None:
        if self._control is not None and self._process is not None and self._process.poll() is None:
            return
        if self._control is not None:
            self._control.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        environment = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
        }
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "covidal.service.uploads.forkserver", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=environment,
            )
        self._control = ours


DECODER = Decoder()


def start_decoder() -> None:
    """Start the fork server now, so the first upload does not wait for it to import its readers."""
    DECODER.start()


def _receive(connection: Connection, limits: DecodeLimits, memory: int) -> Volume:
    """The child's answer as a Volume (or its refusal raised); a missing or late answer is Invalid."""
    deadline = time.monotonic() + limits.timeout_s
    pid = _next(connection, deadline + _STARTUP_TIMEOUT_S, None, limits, memory)
    answer = _next(connection, deadline, pid, limits, memory)
    if answer[0] == "refused":
        raise REFUSALS.get(answer[1], Invalid)(_one_line(answer[2]))
    _, shape, dtype, spacing, origin, direction = answer
    array = np.empty(shape, np.dtype(dtype))
    try:
        connection.recv_bytes_into(array.reshape(-1).view(np.uint8))
    except (EOFError, OSError):
        raise Invalid(_no_answer(limits, memory)) from None
    return Volume(array, spacing, origin, direction)


def _next(connection: Connection, deadline: float, pid: int | None, limits: DecodeLimits, memory: int):
    """The child's next message; Invalid when it ends without one or sends none before ``deadline`` (then it is
    killed)."""
    if not connection.poll(max(deadline - time.monotonic(), 0)):
        if pid is not None:
            _kill(pid)
        raise Invalid(f"decoding the upload took longer than {limits.timeout_s:g} s (covidal serve --decode-timeout)")
    try:
        return connection.recv()
    except (EOFError, OSError):
        raise Invalid(_no_answer(limits, memory)) from None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _no_answer(limits: DecodeLimits, memory: int) -> str:
    return (
        f"the upload could not be decoded: the reader stopped without an answer (it crashed on the file, or went "
        f"past its limits of {memory // 2**20} MiB of memory or {limits.timeout_s:g} s)"
    )


def _one_line(message: str) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."
