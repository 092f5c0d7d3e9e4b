"""The fork server of the upload decoders: ``python -m covidal.service.uploads.forkserver FD``.

A single-threaded process that imports the readers (SimpleITK, numpy) once and keeps :data:`SPARES` children
forked from itself, each waiting on the socket ``FD`` (``SOCK_SEQPACKET``) for a request: a pickled
:class:`~covidal.service.uploads.decode.DecodeRequest` (from the service: trusted) sent with the socket the
answer goes to and, where the service knows the voxels' size, the anonymous file they go in. The spare that takes a request serves it
(:func:`~covidal.service.uploads.decode.serve_request`) and exits. So the fork is done before an upload
arrives, and it is safe: this process runs no other threads, unlike the service.

Two things keep the hand-off short, each worth a few milliseconds of a small upload's time:

* a new spare decodes a tiny NRRD and NIfTI before it waits (:func:`_warm_up`), so the copy-on-write faults
  of a first read in a forked child are paid ahead of time, not while the service waits;
* a spare that took a request is replaced :data:`REPLACE_AFTER_S` later, and at once only when no spare is
  left: forking copies this process's page tables and the new spare warms up, work better done when the
  decoding child and the service, which records the upload, no longer need the CPU.

A spare says on its own pipe that it took a request, or that the socket was closed (the service has exited,
however it exited), in which case the fork server exits too.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import SimpleITK as sitk

from covidal.service.store.records import VolumeFormat
from covidal.service.uploads.decode import MAX_MESSAGE_BYTES, decode_image, serve_request
from covidal.service.uploads.headers import check_upload_header
from covidal.service.uploads.limits import DecodeLimits

TOOK_A_REQUEST, SOCKET_CLOSED = b"r", b"c"
SPARES = 2  # two uploads at once start without waiting for a fork
REPLACE_AFTER_S = 0.3  # a small upload has been decoded by then
_DIED_BACKOFF_S = 0.1
_WARM_UP_LIMITS = DecodeLimits(max_voxels=64, timeout_s=10.0)


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the service's terminal: the service stops us
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # reading is sequential; fewer threads, less memory
    with tempfile.TemporaryDirectory(prefix="covidal-forkserver-") as folder:
        samples = _warm_up_samples(Path(folder))
        _serve(control, samples)


def _serve(control: socket.socket, samples: list[tuple[Path, VolumeFormat]]) -> None:
    """Keep :data:`SPARES` spares until one finds the socket closed; at least one always waits."""
    idle: set[int] = set()  # pipes of spares waiting for a request
    replace_at: list[float] = []  # when to replace each spare that took a request
    while True:
        now = time.monotonic()
        replace_at = [when for when in replace_at if when > now]
        while len(idle) + len(replace_at) < SPARES or not idle:
            idle.add(_fork_spare(control, samples))
        ready, _, _ = select.select(list(idle), [], [], min(replace_at) - now if replace_at else None)
        for pipe in ready:
            said = os.read(pipe, 1)  # nothing: the spare died before it took a request; replaced at once
            idle.discard(pipe)
            os.close(pipe)
            if said == SOCKET_CLOSED:
                return
            if said == TOOK_A_REQUEST:
                replace_at.append(time.monotonic() + REPLACE_AFTER_S)
            elif not said:
                time.sleep(_DIED_BACKOFF_S)  # a spare that cannot even wait is not forked again in a tight loop


def _fork_spare(control: socket.socket, samples: list[tuple[Path, VolumeFormat]]) -> int:
    """Fork a spare; the read end of the pipe it speaks on."""
    news, tell = os.pipe()
    if os.fork() == 0:
        os.close(news)
        _spare(control, tell, samples)
    os.close(tell)
    return news


def _spare(control: socket.socket, tell: int, samples: list[tuple[Path, VolumeFormat]]) -> None:
    """Warm up, wait for one request, serve it, and leave without running the fork server's exit handlers."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _warm_up(samples)
        try:
            message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE_BYTES, 1)
        except OSError:
            message, fds = b"", []
        _say(tell, TOOK_A_REQUEST if message else SOCKET_CLOSED)
        os.close(tell)
        control.close()
        for fd in fds[2:]:
            os.close(fd)
        if message and fds:
            with socket.socket(fileno=fds[0]) as channel:
                serve_request(channel, pickle.loads(message), fds[1] if len(fds) > 1 else None)
        code = 0
    finally:
        os._exit(code)


def _say(tell: int, what: bytes) -> None:
    with suppress(OSError):  # the fork server is gone, or stopped listening: the request is served all the same
        os.write(tell, what)


def _warm_up_samples(folder: Path) -> list[tuple[Path, VolumeFormat]]:
    """A tiny gzip NRRD and NIfTI in ``folder``, the files each spare decodes before it waits."""
    image = sitk.Image(4, 4, 4, sitk.sitkInt16)
    samples = [(folder / "warm.nrrd", VolumeFormat.NRRD), (folder / "warm.nii.gz", VolumeFormat.NIFTI)]
    for path, _ in samples:
        sitk.WriteImage(image, str(path), True)
    return samples


def _warm_up(samples: list[tuple[Path, VolumeFormat]]) -> None:
    """Decode each sample as a request would be (the pages a read writes are copied now, not then)."""
    for path, volume_format in samples:
        with suppress(Exception):  # a warm-up that fails costs only its time
            header = check_upload_header(path, volume_format, _WARM_UP_LIMITS)
            pickle.loads(pickle.dumps(header))
            decode_image(path, header, _WARM_UP_LIMITS)


if __name__ == "__main__":
    main(sys.argv[1:])
