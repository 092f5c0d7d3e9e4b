"""The fork server of the upload decoders: ``python -m covidal.service.uploads.forkserver FD``.

A single-threaded process that imports the readers (SimpleITK, numpy) once, then waits on the socket ``FD``
(``SOCK_SEQPACKET``) for requests: each is a pickled :class:`~covidal.service.uploads.decode.DecodeRequest`
(from the service: trusted) sent with one file descriptor, the socket the answer goes to. For each it forks a child that serves the
request (:func:`~covidal.service.uploads.decode.serve_request`) and exits; forking from this small process is
fast (milliseconds) and safe (no other threads), unlike forking the multi-threaded service. It exits when the
service closes the socket, which happens when the service exits, however it exits.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys

import SimpleITK as sitk

from covidal.service.uploads.decode import MAX_MESSAGE_BYTES, serve_request


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the service's terminal: the service stops us
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # reading is sequential; fewer threads, less memory
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE_BYTES, 1)
        except OSError:
            return
        if not message:
            return
        for fd in fds[1:]:
            os.close(fd)
        if fds and os.fork() == 0:
            _child(control, fds[0], message)
        for fd in fds[:1]:
            os.close(fd)


def _child(control: socket.socket, fd: int, message: bytes) -> None:
    """Serve one request and leave without running the fork server's exit handlers."""
    code = 1
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with socket.socket(fileno=fd) as channel:
            serve_request(channel, pickle.loads(message))
        code = 0
    finally:
        os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
