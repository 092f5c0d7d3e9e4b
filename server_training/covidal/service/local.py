"""Run ``covidal serve`` as a child process on loopback for the length of a ``with`` block (the demo's and the
service benchmark's server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covidal.client import BackendUnreachable, CovidalClient
from covidal.errors import CovidalError
from covidal.utils.process import stop_process

HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0  # the child imports torch and FastAPI before it answers
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class LocalService:
    """A running ``covidal serve`` child: its process, a client of it, and the file its output goes to."""

    process: subprocess.Popen
    client: CovidalClient
    log_path: Path


@contextmanager
def local_service(project_dir: Path, log_path: Path, *args: Any, **options: Any) -> Iterator[CovidalClient]:
    """:func:`running_service` (same arguments), yielding only its client."""
    with running_service(project_dir, log_path, *args, **options) as running:
        yield running.client


@contextmanager
def running_service(
    project_dir: Path,
    log_path: Path,
    device: str = "cpu",
    start_timeout: float = START_TIMEOUT_S,
    environment: Mapping[str, str] | None = None,
    serve_options: Sequence[str] = (),
    cwd: Path | None = None,
) -> Iterator[LocalService]:
    """Start ``covidal serve --project-dir project_dir`` on 127.0.0.1 and a free port; yield it as a LocalService.

    The server's output goes to ``log_path``; ``environment`` is added to this process's environment
    for it, and ``serve_options`` to its command line (e.g. ``("--cache-mb", "0")``). ``cwd``: the folder it
    runs in (its ``covidal`` package is imported from there first: a ``server_training`` folder of another
    checkout runs that checkout's service). On leaving the block,
    normally or by an error, the server is asked to stop (SIGTERM) and killed if it has not stopped after a
    while (nothing happens to one the block killed already).

    Raises:
        CovidalError: the server exited or did not answer within ``start_timeout`` s (its log's tail is shown).
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "covidal.cli.main",
        "serve",
        "--project-dir",
        str(Path(project_dir).absolute()),
        "--host",
        HOST,
        "--port",
        str(port),
        "--device",
        device,
        *serve_options,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(environment or {})},
            cwd=cwd,
        )
        try:
            client = CovidalClient(f"http://{HOST}:{port}", timeout=120)
            _wait_until_healthy(client, process, log_path, start_timeout)
            yield LocalService(process, client, log_path)
        finally:
            if process.poll() is None:
                stop_process(process, STOP_TIMEOUT_S)


def _wait_until_healthy(client: CovidalClient, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.health()
            return
        except BackendUnreachable:
            if process.poll() is not None:
                raise CovidalError(
                    f"`covidal serve` exited with status {process.returncode} before answering; "
                    f"its log {log_path} ends with:\n{_tail(log_path)}"
                ) from None
            if time.monotonic() > deadline:
                raise CovidalError(
                    f"`covidal serve` did not answer within {timeout:g} s; "
                    f"its log {log_path} ends with:\n{_tail(log_path)}"
                ) from None
            time.sleep(0.2)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
