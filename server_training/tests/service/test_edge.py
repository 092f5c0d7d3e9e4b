"""The service's edge against a browser page or a stalled client: the Host allow-list, foreign Origins and
form-like uploads without a token, the body read timeout and the bound on concurrent uploads."""

from __future__ import annotations

import socket
import time

import pytest
from service_testing import lung_ct, new_project, raw_request, write_volume

from covidal.bench.raw_http import stalled_upload
from covidal.client import CovidalClient
from covidal.service.settings import ServiceSettings
from covidal.service.store.store import Store

OCTET_STREAM = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def upload(service, tmp_path_factory) -> tuple[str, bytes]:
    """``(path, body)``: an upload route of a new project and a valid NRRD."""
    project = new_project(service.client)
    body = write_volume(lung_ct(), tmp_path_factory.mktemp("edge") / "lung.nrrd").read_bytes()
    return f"/projects/{project['id']}/volumes?name=lung&format=nrrd", body


def volume_files(service) -> list[str]:
    with Store(service.settings.project_dir) as store:
        return store.files.files("volumes") + store.files.temporaries()


# Host: DNS rebinding (a page of evil.example whose name now points at 127.0.0.1 sends its own name);
# Origin without a token: CSRF (a page the clinician opens posts to the loopback service; its browser adds its Origin)
FOREIGN = [
    ("Host", host, 400) for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example", "192.168.1.20")
] + [("Origin", origin, 403) for origin in ("http://evil.example", "null", "http://127.0.0.1:1", "https://localhost")]


@pytest.mark.parametrize(("header", "value", "status"), FOREIGN)
def test_a_foreign_host_or_origin_is_refused_and_leaves_nothing(service, upload, header, value, status):
    before = volume_files(service)
    path, body = upload
    code, answer = raw_request(service.base_url, "POST", path, body, {**OCTET_STREAM, header: value})
    assert code == status and header in answer["detail"], (code, answer)
    assert raw_request(service.base_url, "GET", "/projects", None, {header: value})[0] == status
    assert volume_files(service) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST"])
def test_loopback_host_names_are_answered(service, host):
    port = service.base_url.rsplit(":", 1)[1]
    for value in (host, f"{host}:{port}"):
        assert raw_request(service.base_url, "GET", "/health", None, {"Host": value})[0] == 200, value


def test_the_services_own_origin_is_answered(service):
    assert raw_request(service.base_url, "GET", "/health", None, {"Origin": service.base_url})[0] == 200


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/json"],
)
def test_uploads_must_be_sent_as_octet_stream(service, upload, content_type):
    """A form or text/plain post is what a page can send without a CORS preflight."""
    before = volume_files(service)
    path, body = upload
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, answer = raw_request(service.base_url, "POST", path, body, headers)
    assert status == 415 and "application/octet-stream" in answer["detail"], (status, answer)
    assert volume_files(service) == before


def test_with_a_token_the_host_is_still_checked_and_an_origin_is_allowed(service_starter, tmp_path):
    running = service_starter(ServiceSettings(tmp_path / "project", token="s3cret"))
    token = {"Authorization": "Bearer s3cret"}
    assert raw_request(running.base_url, "GET", "/projects", None, {**token, "Host": "evil.example"})[0] == 400
    assert raw_request(running.base_url, "GET", "/projects", None, {**token, "Origin": "http://app.example"})[0] == 200


def test_configured_extra_hosts_are_answered(service_starter, tmp_path):
    running = service_starter(ServiceSettings(tmp_path / "project", allowed_hosts=("ct-server.local",)))
    assert raw_request(running.base_url, "GET", "/health", None, {"Host": "ct-server.local:8765"})[0] == 200
    assert raw_request(running.base_url, "GET", "/health", None, {"Host": "other.local"})[0] == 400


def _answer(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_a_stalled_upload_is_408_after_the_body_timeout_and_leaves_nothing(service_starter, tmp_path):
    running = service_starter(ServiceSettings(tmp_path / "project", body_timeout_s=1.0))
    project = new_project(running.client)
    start = time.monotonic()
    connection = stalled_upload(running.base_url, f"/projects/{project['id']}/volumes?name=slow&format=nrrd")
    with connection:
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 408") and b"1 s" in answer, answer[:300]
    assert time.monotonic() - start < 10
    with Store(running.settings.project_dir) as store:
        assert store.files.files("volumes") == [] and store.files.temporaries() == []
        assert store.list_volumes(project["id"]) == []


def test_uploads_beyond_the_concurrency_bound_are_503_while_others_answer(service_starter, tmp_path):
    running = service_starter(ServiceSettings(tmp_path / "project", max_concurrent_uploads=2))
    project = new_project(running.client)
    path = f"/projects/{project['id']}/volumes?name=slow&format=nrrd"
    stalled = [stalled_upload(running.base_url, path) for _ in range(2)]
    try:
        time.sleep(0.5)
        body = write_volume(lung_ct(), tmp_path / "lung.nrrd").read_bytes()
        status, answer = raw_request(running.base_url, "POST", path, body, OCTET_STREAM)
        assert status == 503 and "uploads" in answer["detail"], (status, answer)
        assert CovidalClient(running.base_url, timeout=5).list_projects()
    finally:
        for connection in stalled:
            connection.close()
    deadline = time.monotonic() + 10
    while True:  # the slots free as the stalled connections go
        status, _ = raw_request(running.base_url, "POST", path, body, OCTET_STREAM)
        if status == 201:
            break
        assert status == 503 and time.monotonic() < deadline, status
        time.sleep(0.1)
