"""The fork server of the upload decoders: ``python -m covidal.service.uploads.forkserver FD``.

A single-threaded process that imports the readers (SimpleITK, numpy) once and keeps one spare child forked
from itself, waiting on the socket ``FD`` (``SOCK_SEQPACKET``) for a request: a pickled
:class:`~covidal.service.uploads.decode.DecodeRequest` (from the service: trusted) sent with one file
descriptor, the socket the answer goes to. The spare that takes a request tells the fork server, which forks the
next spare, serves the request (:func:`~covidal.service.uploads.decode.serve_request`) and exits. So the fork
is done before an upload arrives, and it is safe: this process runs no other threads, unlike the service.
The spare that finds the socket closed (the service has exited, however it exited) tells the fork server to
exit too.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys

import SimpleITK as sitk

from covidal.service.uploads.decode import MAX_MESSAGE_BYTES, serve_request

TOOK_A_REQUEST, SOCKET_CLOSED = b"r", b"c"


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the service's terminal: the service stops us
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # reading is sequential; fewer threads, less memory
    while True:
        news, tell = os.pipe()
        if os.fork() == 0:
            os.close(news)
            _spare(control, tell)
        os.close(tell)
        with open(news, "rb") as spare:
            said = spare.read(1)  # nothing: the spare died before it took a request; fork another
        if said == SOCKET_CLOSED:
            return


def _spare(control: socket.socket, tell: int) -> None:
    """Wait for one request, say so, serve it, and leave without running the fork server's exit handlers."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE_BYTES, 1)
        except OSError:
            message, fds = b"", []
        try:
            os.write(tell, TOOK_A_REQUEST if message else SOCKET_CLOSED)
        except OSError:
            pass  # the fork server is gone; the request taken is served all the same
        os.close(tell)
        control.close()
        for fd in fds[1:]:
            os.close(fd)
        if message and fds:
            with socket.socket(fileno=fds[0]) as channel:
                serve_request(channel, pickle.loads(message))
        code = 0
    finally:
        os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
