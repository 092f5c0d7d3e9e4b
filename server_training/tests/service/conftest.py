"""Fixtures of the HTTP service tests: a real uvicorn server on 127.0.0.1 (free port) over a real project folder."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

sys.path.insert(
    0, str(Path(__file__).parent)
)  # tests import service_testing (pytest runs with --import-mode=importlib)

from service_testing import free_port

from covidal.client import CovidalClient
from covidal.service.app import create_app
from covidal.service.settings import ServiceSettings


@dataclass(frozen=True)
class RunningService:
    """A server running in this process: its address, settings, a client, the app (to look at its state), and
    ``stop()`` (the fixtures call it too; a second call does nothing)."""

    base_url: str
    settings: ServiceSettings
    client: CovidalClient
    app: FastAPI
    stop: Callable[[], None]


def start_service(settings: ServiceSettings) -> tuple[RunningService, Callable[[], None]]:
    """Start uvicorn in a thread and wait until it serves; returns the service and a function that stops it."""
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    base_url = f"http://127.0.0.1:{port}"
    client = CovidalClient(base_url, settings.token, timeout=60)
    return RunningService(base_url, settings, client, app, stop), stop


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A server over a fresh project folder, shared by the tests of one module (64 MiB upload limit)."""
    settings = ServiceSettings(tmp_path_factory.mktemp("project"), max_upload_bytes=64 * 2**20)
    running, stop = start_service(settings)
    yield running
    stop()


@pytest.fixture
def service_starter() -> Iterator[Callable[[ServiceSettings], RunningService]]:
    """``service_starter(settings)``: a server of its own for one test, stopped afterwards."""
    stops: list[Callable[[], None]] = []

    def start(settings: ServiceSettings) -> RunningService:
        running, stop = start_service(settings)
        stops.append(stop)
        return running

    yield start
    for stop in stops:
        stop()
