"""The demo's ``covidal serve`` child process: it answers inside the block, is gone after it, and a server
that cannot start is a clear CovidalError with the end of its log."""

from __future__ import annotations

import pytest

from covidal.client import BackendUnreachable
from covidal.errors import CovidalError
from covidal.service.local import local_service


def test_service_answers_inside_the_block_and_stops_after_it(tmp_path):
    with local_service(tmp_path / "project", tmp_path / "serve.log") as client:
        assert client.base_url.startswith("http://127.0.0.1:")
        assert client.health()["status"] == "ok" and client.list_projects() == []
    with pytest.raises(BackendUnreachable):
        client.health()
    assert (tmp_path / "project" / "store.sqlite3").is_file()


def test_service_stops_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError, match="inside"), local_service(tmp_path / "p", tmp_path / "serve.log") as client:
        raise RuntimeError("inside")
    with pytest.raises(BackendUnreachable):
        client.health()


def test_a_service_that_cannot_start_is_a_clear_error(tmp_path):
    with (
        pytest.raises(CovidalError, match=r"exited with status 2 before answering(.|\n)*--device"),
        local_service(tmp_path / "p", tmp_path / "serve.log", device="tpu"),
    ):
        pass


def test_serve_options_reach_the_command_line(tmp_path):
    with (
        pytest.raises(CovidalError, match=r"exited with status 2 before answering(.|\n)*--cache-mb"),
        local_service(tmp_path / "p", tmp_path / "serve.log", serve_options=("--cache-mb", "-1")),
    ):
        pass
