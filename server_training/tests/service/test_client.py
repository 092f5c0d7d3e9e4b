"""covidal.client against a real server: stdlib only, DICOM folders, errors, the size limit and the token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from service_testing import free_port, lung_ct, new_project, raw_request, write_volume

from covidal.client import BackendUnreachable, ClientError, CovidalClient
from covidal.data.io import read_volume
from covidal.service.settings import ServiceSettings
from covidal.service.store.store import Store

DICOM_SERIES = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "dicom" / "tcia_chest_ct_48"


def test_client_imports_no_ml_module():
    code = (
        "import sys, covidal.client; heavy = {'torch', 'numpy', 'SimpleITK', 'monai'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_unreachable_backend_is_backend_unreachable():
    with pytest.raises(BackendUnreachable, match="cannot reach"):
        CovidalClient(f"http://127.0.0.1:{free_port()}", timeout=5).list_projects()


@pytest.mark.skipif(not DICOM_SERIES.is_dir(), reason=f"real DICOM series not found at {DICOM_SERIES} (../shared)")
def test_real_dicom_series_folder_is_zipped_and_read(service, tmp_path):
    project = new_project(service.client, grid_k=64)
    volume, created = service.client.upload_volume(project["id"], DICOM_SERIES)
    expected = read_volume(DICOM_SERIES)
    assert created and volume["format"] == "dicom-zip" and volume["name"] == "tcia_chest_ct_48"
    assert volume["dims"] == list(expected.shape_ijk)
    np.testing.assert_allclose(volume["ijk_to_ras"], expected.ijk_to_ras(), atol=1e-6)
    cycle = service.client.create_cycle(project["id"], count=3)
    assert len({s["k"] for s in cycle["suggestions"]}) == 3  # one region per slice first
    zipped = service.client.download_volume(project["id"], volume["id"], tmp_path / "series.zip")
    assert zipped.stat().st_size == volume["size"]


def test_upload_over_the_limit_is_413_and_leaves_nothing(service_starter, tmp_path):
    running = service_starter(ServiceSettings(tmp_path / "project", max_upload_bytes=1000))
    project = new_project(running.client)
    big = write_volume(np.arange(3 * 20 * 20, dtype=np.int16).reshape(3, 20, 20), tmp_path / "big.nrrd")
    assert big.stat().st_size > 1000
    with pytest.raises(ClientError, match="limit of 1000 bytes") as raised:
        running.client.upload_volume(project["id"], big)
    assert raised.value.status == 413
    # Without a Content-Length (chunked), the limit is enforced while streaming.
    chunks = (big.read_bytes()[start : start + 300] for start in range(0, big.stat().st_size, 300))
    status, answer = raw_request(
        running.base_url,
        "POST",
        f"/projects/{project['id']}/volumes?name=b&format=nrrd",
        chunks,
        {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"},
    )
    assert status == 413 and "limit" in answer["detail"]
    with Store(running.settings.project_dir) as store:
        assert store.integrity_check() == [] and store.list_volumes(project["id"]) == []


def test_with_a_token_every_request_needs_it(service_starter, tmp_path):
    running = service_starter(ServiceSettings(tmp_path / "project", token="s3cret"))
    project = new_project(running.client)
    path = write_volume(lung_ct(), tmp_path / "lung.nrrd")
    assert running.client.upload_volume(project["id"], path)[1]
    for method, route, body in [
        ("GET", "/projects", None),
        ("GET", "/openapi.json", None),
        ("POST", f"/projects/{project['id']}/volumes?name=x&format=nrrd", path.read_bytes()),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            status, answer = raw_request(running.base_url, method, route, body, headers)
            assert status == 401 and "Authorization: Bearer" in answer["detail"], (route, headers, answer)
    assert raw_request(running.base_url, "GET", "/openapi.json", None, {"Authorization": "Bearer s3cret"})[0] == 200
    with pytest.raises(ClientError) as raised:
        CovidalClient(running.base_url).list_projects()
    assert raised.value.status == 401
