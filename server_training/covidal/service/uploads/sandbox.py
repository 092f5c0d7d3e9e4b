"""Reading an upload safely: the header checked in Python, the voxels decoded in a limited child process.

:func:`read_upload_safely` is what the routes call. The child is forked by the fork server of
:mod:`.forkserver`, which this module starts on first use (or at the service's start, :func:`start_decoder`)
and starts again if it has died. The child gets :data:`MEMORY_MARGIN_BYTES` plus :data:`READER_COPIES`
times the decoded size of address space, and ``limits.timeout_s`` of CPU time and of wall-clock time (it ends
itself then); whatever happens to it, the service answers one 4xx. The voxels come back in an anonymous file
the service maps (:mod:`.decode`), so a large volume is not copied through a socket; where the header gives
their size, the service makes that file and allocates it while the child decodes.

Where processes cannot be forked or descriptors passed (not POSIX), the upload is decoded in this process
after the header check, with a warning in the log: the header check still stops what it knows of.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import mmap
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from covidal.data.volume import Volume
from covidal.service.store.errors import Invalid
from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.decode import MAX_MESSAGE_BYTES, REFUSALS, DecodeRequest, decode_upload, voxel_file
from covidal.service.uploads.headers import UploadHeader, check_upload_header
from covidal.service.uploads.limits import DECODED_BYTES_PER_VOXEL, DecodeLimits

LOG = logging.getLogger("covidal.service")
MEMORY_MARGIN_BYTES = 512 * 2**20  # the interpreter's own allocations while it decodes (zip and gzip buffers)
READER_COPIES = 3  # a reader's buffer, its numpy copy, and the file the voxels go back in
MAX_MESSAGE_CHARS = 500
_STOP_TIMEOUT_S = 10.0
_GRACE_S = 5.0  # past the child's own alarm: time for it to end and for its end to be seen


def _can_sandbox() -> bool:
    """Whether this platform forks and passes descriptors over SOCK_SEQPACKET sockets (Linux does; not Windows)."""
    if os.name != "posix" or not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        return False
    try:
        for end in socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET):
            end.close()
    except (OSError, AttributeError):
        return False
    return True


SANDBOXED = _can_sandbox()


def read_upload_safely(
    path: Path, volume_format: VolumeFormat, limits: DecodeLimits, meanwhile: Callable[[], object] | None = None
) -> Volume:
    """The volume of the stored upload at ``path``: header checked here, voxels decoded in a limited child.
    ``meanwhile``: work for this thread while the child decodes (e.g. making the upload durable).

    Raises:
        Invalid: anything :func:`~.headers.check_upload_header` or :func:`~.decode.decode_upload` refuses,
            a reader that crashed or went past a limit, a decoding that took longer than ``limits.timeout_s``.
        UploadTooLarge: more voxels than ``limits.max_voxels``, a zip that expands too far.
    """
    header = check_upload_header(path, volume_format, limits)
    return DECODER.decode(path, header, limits, meanwhile)


class Decoder:
    """The fork server process and the socket requests go to; :meth:`decode` is safe to call from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None

    def start(self) -> None:
        """Start the fork server unless it runs (it then imports the readers while nothing waits for it)."""
        if SANDBOXED:
            with self._lock:
                self._start_locked()

    def stop(self) -> None:
        """Close the socket (the fork server exits) and wait for it; decodes in progress finish."""
        with self._lock:
            if self._control is not None:
                self._control.close()
                self._control = None
            if self._process is not None:
                self._process.wait(_STOP_TIMEOUT_S)
                self._process = None

    def decode(
        self, path: Path, header: UploadHeader, limits: DecodeLimits, meanwhile: Callable[[], object] | None = None
    ) -> Volume:
        """Decode the upload at ``path`` in a child, calling ``meanwhile`` while it decodes; errors as
        :func:`read_upload_safely`, and what ``meanwhile`` raises."""
        if not SANDBOXED:
            LOG.warning("decoding an upload in the service's own process: this platform cannot fork a decoder")
            if meanwhile is not None:
                meanwhile()
            return decode_upload(path, header, limits)
        decoded = header.decoded_bytes(limits)
        memory = MEMORY_MARGIN_BYTES + READER_COPIES * decoded
        request = DecodeRequest(
            str(Path(path).resolve()), header, limits, memory, max(limits.max_zip_bytes, decoded) + 1
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        voxels = None if header.stored_bytes is None else voxel_file()
        with ours:
            start = time.monotonic()  # before the child can start its clock
            try:
                self._send(pickle.dumps(request), [theirs.fileno()] + ([] if voxels is None else [voxels]))
            finally:
                theirs.close()
            try:
                if voxels is not None:
                    _allocate(voxels, header.stored_bytes)  # while the child decodes, not after it
                if meanwhile is not None:
                    meanwhile()
                return _receive(ours, limits, memory, start)
            finally:
                if voxels is not None:
                    os.close(voxels)

    def _send(self, request: bytes, fds: list[int]) -> None:
        with self._lock:
            for attempt in (1, 2):  # a fork server that died is started again once
                self._start_locked()
                try:
                    socket.send_fds(self._control, [request], fds)
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
            # a reader's large buffers in huge pages where the kernel offers them (glibc 2.35+; ignored elsewhere):
            # a 15 MB volume decodes about 10% faster in a fresh child, which would fault in 4 KiB pages
            "GLIBC_TUNABLES": ":".join(filter(None, [os.environ.get("GLIBC_TUNABLES"), "glibc.malloc.hugetlb=1"])),
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


def _allocate(fd: int, size: int) -> None:
    """Allocate ``size`` bytes of the anonymous file ``fd`` ahead of the child's write, which then only copies
    (allocating 15 MB of memory-file pages takes about 5 ms); where this fails or cannot be done, the write
    allocates them itself."""
    if hasattr(os, "posix_fallocate"):
        with contextlib.suppress(OSError):
            os.posix_fallocate(fd, 0, size)


def _receive(channel: socket.socket, limits: DecodeLimits, memory: int, start: float) -> Volume:
    """The child's answer as a Volume (or its refusal raised); a missing, malformed or late answer is Invalid.
    ``start``: when the request was sent (monotonic clock)."""
    answer, fds = _answer(channel, start + limits.timeout_s + _GRACE_S)
    try:
        if answer is None:
            raise Invalid(_no_answer(limits, memory, time.monotonic() - start))
        if "refused" in answer:
            kind, message = answer["refused"]
            raise REFUSALS.get(kind, Invalid)(_one_line(message))
        return _mapped_volume(answer["volume"], fds)
    except (KeyError, TypeError, ValueError, OSError):
        raise Invalid(_no_answer(limits, memory, 0.0)) from None
    finally:
        for fd in fds:
            os.close(fd)


def _answer(channel: socket.socket, deadline: float) -> tuple[dict | None, list[int]]:
    """The child's JSON answer and the descriptors sent with it, or None when it ends (or the deadline passes)
    without one."""
    channel.settimeout(max(deadline - time.monotonic(), 0.001))
    try:
        data, fds, _, _ = socket.recv_fds(channel, MAX_MESSAGE_BYTES, 1)
    except OSError:  # TimeoutError included: the child's own alarm should have ended it before
        return None, []
    try:
        message = json.loads(data) if data else None
    except ValueError:
        message = None
    return (message if isinstance(message, dict) else None), fds


def _mapped_volume(answer: dict, fds: list[int]) -> Volume:
    """The Volume the child described, its voxels mapped from the file it sent; ValueError if they do not fit."""
    shape, dtype = tuple(int(size) for size in answer["shape"]), np.dtype(answer["dtype"])
    if len(shape) != 3 or min(shape) < 1 or dtype.kind not in "iuf" or dtype.itemsize > DECODED_BYTES_PER_VOXEL:
        raise ValueError(f"the decoder answered a {dtype} volume of shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if len(fds) != 1 or os.fstat(fds[0]).st_size < nbytes:
        raise ValueError("the decoder's voxels are missing or short")
    voxels = mmap.mmap(fds[0], nbytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    array = np.frombuffer(voxels, dtype, math.prod(shape)).reshape(shape)
    return Volume(array, answer["spacing"], answer["origin"], answer["direction"])


def _no_answer(limits: DecodeLimits, memory: int, elapsed_s: float) -> str:
    """Why a child ended without an answer: past its time (it ends itself then), or a crash or its memory limit."""
    if elapsed_s >= limits.timeout_s:
        return f"decoding the upload took longer than {limits.timeout_s:g} s (covidal serve --decode-timeout)"
    return (
        f"the upload could not be decoded: the reader stopped without an answer (it crashed on the file, or went "
        f"past its memory limit of {memory // 2**20} MiB)"
    )


def _one_line(message: object) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."
