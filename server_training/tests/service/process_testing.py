"""``covidal serve`` as a real process for the crash tests: start it, wait until it answers, SIGKILL its group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service_testing import free_port

from covidal.client import BackendUnreachable, CovidalClient


def serve(project_dir: Path, *options: str, log: Path | None = None) -> tuple[subprocess.Popen, CovidalClient]:
    """``covidal serve`` in a process group of its own (its job's worker joins it); waits until it answers.

    ``options`` go on its command line; its output goes to ``log`` when given."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "covidal.cli.main",
        "serve",
        "--project-dir",
        str(project_dir),
        "--port",
        str(port),
        *options,
    ]
    output = subprocess.DEVNULL if log is None else open(log, "ab")  # noqa: SIM115 - the child holds it
    process = subprocess.Popen(
        command,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    if log is not None:
        output.close()
    client = CovidalClient(f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.health()
            return process, client
        except BackendUnreachable:
            assert process.poll() is None and time.monotonic() < deadline, "covidal serve did not start"
            time.sleep(0.2)


def kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(20)
