"""Stopping a child process: politely first, then by force."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM ``process``, and SIGKILL it if it has not exited after ``grace_seconds``; then reap it."""
    process.terminate()
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
