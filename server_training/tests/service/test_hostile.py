"""Hostile uploads and stalled clients against a real ``covidal serve`` process on loopback.

A reader that crashes takes the process with it, so these run the service as a child process and check
after every request that it is still alive. Each hostile body (:mod:`covidal.bench.hostile_inputs`) gets
its expected 4xx with a one-line detail, never a server file's content, and leaves no file and no row;
random bodies drawn by hypothesis get a 201 or a 4xx, never a 5xx; 40 uploads that stall after 4 KiB
leave the rest of the API answering.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from process_testing import serve
from service_testing import new_project, raw_request
from upload_strategies import fuzz_settings, upload_bodies
from volume3d_testing import unet3d_project

from covidal.bench.hostile_inputs import (
    HostileUpload,
    bomb_uploads,
    crash_uploads,
    file_reading_uploads,
    nan_uploads,
)
from covidal.bench.raw_http import stalled_upload
from covidal.service.store.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a POSIX service process")

DEFAULT_MAX_VOXELS = 2**28  # covidal serve's defaults, which these bodies must exceed
DEFAULT_MAX_ZIP_BYTES = 4 * DEFAULT_MAX_VOXELS
STALLED_UPLOADS = 40
# Examples of the random-body fuzz in CI (about 20 s); set COVIDAL_FUZZ_EXAMPLES for a longer hunt.
FUZZ_EXAMPLES = int(os.environ.get("COVIDAL_FUZZ_EXAMPLES", "150"))


@dataclass(frozen=True)
class Served:
    """The service process, a client, its project folder, a 2D project and a unet3d project with one volume."""

    process: object
    client: object
    project_dir: Path
    log: Path
    project_id: int
    project3d_id: int
    volume3d_id: int

    def alive(self) -> None:
        assert self.process.poll() is None, f"covidal serve died ({self.process.returncode}): {self.log_tail()}"

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    folder = tmp_path_factory.mktemp("hostile")
    log = folder / "serve.log"
    process, client = serve(folder / "project", log=log)
    try:
        project = new_project(client)
        project3d, volumes = unet3d_project(client, folder / "cts", count=1, labelled=0)
        yield Served(process, client, folder / "project", log, project["id"], project3d["id"], volumes[0]["id"])
    finally:
        process.terminate()
        process.wait(30)


def send(served: Served, upload: HostileUpload) -> tuple[int, object]:
    if upload.label:
        path = f"/projects/{served.project3d_id}/volumes/{served.volume3d_id}/label?format={upload.format}"
        return raw_request(served.client.base_url, "PUT", path, upload.make(), OCTET_STREAM)
    path = f"/projects/{served.project_id}/volumes?name={upload.name}&format={upload.format}"
    return raw_request(served.client.base_url, "POST", path, upload.make(), OCTET_STREAM)


OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def stored(project_dir: Path) -> tuple:
    """What the store holds: every file, temporaries included, and the volume and label rows."""
    with Store(project_dir) as store:
        files = tuple(path for path in sorted(store.files.root.rglob("*")) if path.is_file())
        rows = tuple(
            (project.id, len(store.list_volumes(project.id)), len(store.list_labels(project.id)))
            for project in store.list_projects()
        )
        return files, rows


def assert_refused(served: Served, upload: HostileUpload, status: int, answer: object) -> None:
    served.alive()
    assert isinstance(answer, dict) and isinstance(answer.get("detail"), str), (status, answer)
    detail = answer["detail"]
    assert status == upload.status, (upload.name, status, detail)
    assert "\n" not in detail and "Traceback" not in detail, detail
    for word in upload.words:
        assert word.lower() in detail.lower(), (upload.name, word, detail)
    for text in upload.never:
        assert text not in json.dumps(answer), (upload.name, text, detail)


def _check_all(served: Served, uploads: list[HostileUpload]) -> None:
    before = stored(served.project_dir)
    for upload in uploads:
        status, answer = send(served, upload)
        assert_refused(served, upload, status, answer)
        assert stored(served.project_dir) == before, upload.name


def test_a_reader_crash_costs_one_422_not_the_server(served):
    _check_all(served, crash_uploads())


def test_data_file_headers_read_no_server_file(served):
    _check_all(served, file_reading_uploads(served.project_dir / "store.sqlite3"))


def test_bodies_that_decode_past_the_limits_are_413_before_decoding(served):
    _check_all(served, bomb_uploads(DEFAULT_MAX_VOXELS, DEFAULT_MAX_ZIP_BYTES))


def test_non_finite_voxels_are_422(served, tmp_path):
    _check_all(served, nan_uploads(tmp_path))


@given(body=upload_bodies())
@fuzz_settings(FUZZ_EXAMPLES)
def test_random_upload_bodies_get_a_201_or_a_4xx_and_the_server_lives(served, body):
    volume_format, content = body
    status, answer = raw_request(
        served.client.base_url,
        "POST",
        f"/projects/{served.project_id}/volumes?name=fuzz&format={volume_format}",
        content,
        OCTET_STREAM,
    )
    served.alive()
    assert status in (200, 201) or 400 <= status < 500, (status, answer)
    if status >= 400:
        assert isinstance(answer, dict) and "\n" not in str(answer["detail"]), answer


def test_stalled_uploads_leave_the_rest_of_the_api_answering(served):
    path = f"/projects/{served.project_id}/volumes?name=stalled&format=nrrd"
    stalled = [stalled_upload(served.client.base_url, path) for _ in range(STALLED_UPLOADS)]
    try:
        time.sleep(1.0)  # every stalled request has reached its route
        for path in ("/health", "/projects", f"/projects/{served.project_id}/volumes"):
            start = time.monotonic()
            status, _ = raw_request(served.client.base_url, "GET", path, timeout=10)
            assert status == 200 and time.monotonic() - start < 5, (path, status)
    finally:
        for connection in stalled:
            connection.close()
    served.alive()
    deadline = time.monotonic() + 20
    with Store(served.project_dir) as store:  # the stalled uploads' partial files go with their connections
        while store.files.temporaries():
            assert time.monotonic() < deadline, store.files.temporaries()
            time.sleep(0.2)
