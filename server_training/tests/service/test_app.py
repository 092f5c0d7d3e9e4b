"""The HTTP API end to end: a real uvicorn server, real SQLite, real files, talked to with covidal.client."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from service_testing import lung_ct, new_project, raw_request, unique_name, write_volume

from covidal.activelearning.query import PoolPart, QueryOptions, cycle_seed, query_regions
from covidal.activelearning.selection import SelectionRule
from covidal.activelearning.strategies import InfectionDensity, SliceStack
from covidal.client import ClientError
from covidal.data.io import read_volume
from covidal.regions.grid import RegionGrid
from covidal.service.defaults import CPU_DEFAULTS
from covidal.service.store.store import Store

OCTET_STREAM = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def lung_case(service, tmp_path_factory) -> tuple[dict, dict, Path]:
    """``(project, volume, file)``: a 4-region project with the hand-made oblique lung CT uploaded."""
    path = write_volume(lung_ct(), tmp_path_factory.mktemp("lung") / "lung.nrrd")
    project = new_project(service.client)
    volume, created = service.client.upload_volume(project["id"], path, "lung")
    assert created
    return project, volume, path


def assert_client_error(status: int, *words: str):
    """Context: the block raises ClientError with ``status`` and a detail naming each of ``words``."""
    return _ErrorCheck(status, words)


class _ErrorCheck:
    def __init__(self, status: int, words: tuple[str, ...]) -> None:
        self.status, self.words = status, words

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        assert isinstance(error, ClientError), f"expected HTTP {self.status}, got {error!r}"
        assert error.status == self.status, (error.status, error.detail)
        for word in self.words:
            assert word.lower() in error.detail.lower(), (word, error.detail)
        return True


def assert_store_clean(service, project_id: int, volumes: int) -> None:
    with Store(service.settings.project_dir) as store:
        assert store.integrity_check() == []
        assert len(store.list_volumes(project_id)) == volumes


def test_projects_create_list_get_and_patch_settings(service):
    client = service.client
    project = new_project(client, grid_k=16)
    assert {key: project[key] for key in ("grid_k", "strategy", "mc_samples", "loss", "model_kind")} == {
        "grid_k": 16,
        "strategy": "entropy",
        "mc_samples": 4,
        "loss": "point",
        "model_kind": "unet",
    }
    assert client.get_project(project["id"]) == project
    assert project in client.list_projects()
    assert project["settings"] == CPU_DEFAULTS.training_settings()  # recorded at creation
    changed = client.update_project_settings(project["id"], {"window": [-600, 1500]})
    assert changed["settings"] == {**CPU_DEFAULTS.training_settings(), "window": [-600, 1500]}
    with assert_client_error(409, "already exists"):
        client.create_project(
            project["name"], model_kind="unet", grid_k=16, strategy="entropy", mc_samples=4, loss="point"
        )


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("grid_k", 10, ["grid_k", "perfect square"]),
        ("strategy", "psychic", ["strategy", "entropy"]),
        ("loss", "l9", ["loss", "point"]),
        ("model_kind", "resnet", ["model_kind"]),
        ("mc_samples", 0, ["mc_samples"]),
        ("name", "../etc", ["project name", "plain name"]),
        ("settings", {"strategy_params": {"beta": -1}}, ["beta"]),
        ("settings", {"strategy_params": {"crop": 10}}, ["crop"]),
        ("settings", {"strategy_params": {"gamma": 1}}, ["gamma", "strategy params"]),
        ("settings", {"strategy_params": [1, 2]}, ["strategy params", "object"]),
    ],
)
def test_bad_project_fields_are_422(service, field, value, words):
    body = {
        "name": unique_name("p"),
        "model_kind": "unet",
        "grid_k": 4,
        "strategy": "entropy",
        "mc_samples": 2,
        "loss": "point",
        field: value,
    }
    status, answer = raw_request(
        service.base_url, "POST", "/projects", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 422
    for word in words:
        assert word in json.dumps(answer), answer


def test_volume_metadata_has_the_files_geometry_and_ijk_to_ras(service, lung_case):
    project, volume, path = lung_case
    expected = read_volume(path)
    assert volume["dims"] == [8, 8, 3] and volume["format"] == "nrrd"
    np.testing.assert_allclose(volume["spacing"], expected.spacing)
    np.testing.assert_allclose(volume["origin"], expected.origin)
    np.testing.assert_allclose(volume["direction"], expected.direction)
    np.testing.assert_allclose(volume["ijk_to_ras"], expected.ijk_to_ras(), atol=1e-12)
    assert service.client.get_volume(project["id"], volume["id"]) == volume
    assert service.client.list_volumes(project["id"]) == [volume]


def test_same_content_returns_the_existing_volume_and_download_round_trips(service, lung_case, tmp_path):
    project, volume, path = lung_case
    again, created = service.client.upload_volume(project["id"], path, "another name")
    assert not created and again == volume
    copy = service.client.download_volume(project["id"], volume["id"], tmp_path / "copy.nrrd")
    assert copy.read_bytes() == path.read_bytes()
    assert_store_clean(service, project["id"], volumes=1)


def test_nifti_upload_is_read(service, tmp_path):
    project = new_project(service.client)
    path = write_volume(lung_ct(), tmp_path / "lung.nii.gz")
    volume, created = service.client.upload_volume(project["id"], path)
    assert created and volume["format"] == "nifti" and volume["name"] == "lung" and volume["dims"] == [8, 8, 3]


def test_cycle_suggests_the_regions_of_the_ct_prior_in_voxel_boxes(service, lung_case):
    """Before any model the service ranks by the CT prior; on this 8 x 8 x 3 CT no lungs are found, so the prior
    sees the whole CT, and the cycle is the core's query of it (scores, order) with boxes in voxels."""
    project, volume, _ = lung_case
    cycle = service.client.create_cycle(project["id"], count=4)
    assert cycle["number"] >= 1 and cycle["status"] == "open"
    assert {s["volume_id"] for s in cycle["suggestions"]} == {volume["id"]}
    grid = RegionGrid(4)
    stack = SliceStack(((8, 8),) * 3, lambda: None, lambda: lung_ct())
    expected = query_regions(
        [PoolPart(stack, np.ones((3, 4), dtype=bool))],
        InfectionDensity(),
        None,
        QueryOptions(grid, SelectionRule(4)),
        cycle_seed(0, cycle["number"]),
    )
    got = [(s["k"], s["region"], s["rank"]) for s in cycle["suggestions"]]
    assert got == [(q.slice, q.region, rank) for rank, q in enumerate(expected, start=1)]
    np.testing.assert_allclose([s["score"] for s in cycle["suggestions"]], [q.score for q in expected])
    for suggestion in cycle["suggestions"]:
        box = grid.boxes((8, 8))[suggestion["region"]]
        assert suggestion["box"] == {"i0": box.col0, "i1": box.col1, "j0": box.row0, "j1": box.row1}
    assert service.client.get_cycle(project["id"], cycle["id"])["suggestions"] == cycle["suggestions"]


def test_heatmap_has_the_volumes_geometry_and_the_scores(service, lung_case, tmp_path):
    project, volume, path = lung_case
    cycle = service.client.create_cycle(project["id"], count=2)
    saved = service.client.download_heatmap(project["id"], cycle["id"], volume["id"], tmp_path / "heat.nrrd")
    heat, expected = read_volume(saved), read_volume(path)
    assert heat.same_geometry(expected, tolerance=1e-9) and heat.array.dtype == np.float32
    want = np.zeros((3, 8, 8), dtype=np.float32)
    want[0, 4:8, 4:8] = cycle["suggestions"][0]["score"]
    want[1, 0:4, 4:8] = cycle["suggestions"][1]["score"]
    np.testing.assert_array_equal(heat.array, want)


def test_two_annotators_never_hold_the_same_region(service, lung_case):
    project, _, _ = lung_case
    cycle = service.client.create_cycle(project["id"], count=6)
    alice = service.client.lease_suggestions(project["id"], cycle["id"], "alice", limit=4)
    bob = service.client.lease_suggestions(project["id"], cycle["id"], "bob", limit=4)
    assert [s["rank"] for s in alice] == [1, 2, 3, 4] and [s["rank"] for s in bob] == [5, 6]
    assert {s["lease_holder"] for s in alice} == {"alice"} and {s["lease_holder"] for s in bob} == {"bob"}
    assert service.client.lease_suggestions(project["id"], cycle["id"], "carol") == []


def test_annotation_submit_replay_conflict_and_bad_points(service, lung_case):
    client, (project, _, _) = service.client, lung_case
    pid = project["id"]
    cycle = client.create_cycle(pid, count=3)
    first, second, third = client.lease_suggestions(pid, cycle["id"], "alice", limit=3)
    point = [first["box"]["i0"], first["box"]["j0"], first["k"]]
    answer = {
        "annotator": "alice",
        "answer": "infection",
        "points": [point],
        "effort_seconds": 4.5,
        "idempotency_key": unique_name("key"),
    }
    stored, created = client.submit_annotation(pid, first["id"], **answer)
    assert created and stored["points"] == [point] and stored["effort_seconds"] == 4.5
    replay, created = client.submit_annotation(pid, first["id"], **answer)
    assert not created and replay == stored
    with assert_client_error(409, "already answered"):
        client.submit_annotation(pid, first["id"], annotator="alice", answer="background")
    with assert_client_error(409, "leased to 'alice'"):
        client.submit_annotation(pid, second["id"], annotator="bob", answer="background")
    outside = [second["box"]["i1"], second["box"]["j0"], second["k"]]
    with assert_client_error(422, "outside"):
        client.submit_annotation(pid, second["id"], annotator="alice", answer="infection", points=[outside])
    with assert_client_error(422, "outside volume"):
        client.submit_annotation(pid, third["id"], annotator="alice", answer="infection", points=[[0, 0, 99]])
    history = client.list_annotations(pid)
    assert [(a["id"], a["annotator"], a["effort_seconds"]) for a in history][-1] == (stored["id"], "alice", 4.5)


def test_unknown_ids_and_other_projects_regions_are_404(service, lung_case):
    client, (project, volume, _) = service.client, lung_case
    other = new_project(client)
    cycle = client.create_cycle(project["id"], count=1)
    region = cycle["suggestions"][0]["id"]
    with assert_client_error(404, "not part of project"):
        client.submit_annotation(other["id"], region, annotator="alice", answer="background")
    with assert_client_error(404, "not part of project"):
        client.get_volume(other["id"], volume["id"])
    with assert_client_error(404, "project 999999"):
        client.get_project(999999)
    with assert_client_error(404, "cycle 999999"):
        client.lease_suggestions(project["id"], 999999, "alice")
    with assert_client_error(404, "volume 999999"):
        client.create_cycle(project["id"], count=1, volume_ids=[999999])
    with assert_client_error(422, "no volumes"):
        client.create_cycle(other["id"], count=1)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/projects", b"{not json"),
        ("POST", "/projects/1/cycles", b'{"count": "many"}'),
        ("POST", "/projects/1/cycles", b'{"count": 3, "surprise": 1}'),
        ("POST", "/projects/1/annotations", b'{"suggestion_id": 1}'),
        ("PATCH", "/projects/1/settings", b"[1, 2]"),
        ("GET", "/projects/one", None),
    ],
)
def test_malformed_requests_are_422(service, method, path, body):
    status, answer = raw_request(service.base_url, method, path, body, {"Content-Type": "application/json"})
    assert status == 422 and answer["detail"], answer


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/projects",
            (
                '{"name": "nan", "model_kind": "unet", "grid_k": 4, "strategy": "entropy", '
                '"mc_samples": NaN, "loss": "point"}'
            ),
        ),
        (
            "POST",
            "/projects",
            (
                '{"name": "inf", "model_kind": "unet", "grid_k": 4, "strategy": "entropy", '
                '"mc_samples": 2, "loss": "point", "settings": {"window": [-Infinity, 1e999]}}'
            ),
        ),
        ("PATCH", "/projects/1/settings", '{"window": [NaN, 100]}'),
        ("POST", "/projects/1/cycles", '{"count": Infinity}'),
        ("POST", "/projects/1/jobs", '{"kind": "train", "config": {"learning_rate": NaN}}'),
        (
            "POST",
            "/projects/1/annotations",
            (
                '{"suggestion_id": 1, "annotator": "a", "answer": "background", '
                '"effort_seconds": -Infinity, "idempotency_key": "k"}'
            ),
        ),
    ],
)
def test_non_finite_numbers_in_json_are_422(service, lung_case, method, path, body):
    """JSON has no NaN or Infinity (Python's parser accepts them, and 1e999 overflows to infinity)."""
    status, answer = raw_request(service.base_url, method, path, body.encode(), {"Content-Type": "application/json"})
    assert status == 422, (status, answer)
    assert "finite" in answer["detail"] and "\n" not in answer["detail"], answer


def test_openapi_schema_is_served(service):
    status, schema = raw_request(service.base_url, "GET", "/openapi.json")
    assert status == 200 and "/projects/{project_id}/cycles/{cycle_id}/suggestions" in schema["paths"]


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _bad_uploads(folder: Path) -> dict[str, tuple[str, bytes, tuple[str, ...]]]:
    """name -> (format, body, words of the 422 detail)."""
    good = write_volume(lung_ct(), folder / "good.nrrd").read_bytes()
    nan = lung_ct().astype(np.float32)
    nan[1, 2, 3] = np.nan
    infinite = lung_ct().astype(np.float64)
    infinite[0, 0, 0] = -np.inf
    return {
        "corrupt": ("nrrd", b"NRRD0004\ntype: banana\n\n" + bytes(100), ("NRRD header",)),
        "truncated": ("nrrd", good[: len(good) - 200], ("not a readable 3D volume",)),
        "flat": ("nrrd", write_volume(np.zeros((8, 8), np.int16), folder / "flat.nrrd").read_bytes(), ("2D",)),
        "nan": ("nrrd", write_volume(nan, folder / "nan.nrrd").read_bytes(), ("NaN",)),
        "nan-nifti": ("nifti", write_volume(nan, folder / "nan.nii").read_bytes(), ("NaN",)),
        "inf-nifti-gz": ("nifti", write_volume(infinite, folder / "inf.nii.gz").read_bytes(), ("infinite",)),
        "complex": ("nrrd", write_volume(lung_ct().astype(np.complex64), folder / "c.nrrd").read_bytes(), ("voxel",)),
        "nodicom": ("dicom-zip", _zip_bytes({"notes.txt": b"hello"}), ("no DICOM series",)),
        "traversal": ("dicom-zip", _zip_bytes({"../evil.dcm": b"x"}), ("outside",)),
        "notzip": ("dicom-zip", b"PK\x03\x04 broken", ("zip",)),
        "empty": ("nrrd", b"", ("empty",)),
    }


@pytest.mark.parametrize(
    "case",
    [
        "corrupt",
        "truncated",
        "flat",
        "nan",
        "nan-nifti",
        "inf-nifti-gz",
        "complex",
        "nodicom",
        "traversal",
        "notzip",
        "empty",
    ],
)
def test_bad_uploads_are_422_and_leave_nothing(service, tmp_path, case):
    volume_format, body, words = _bad_uploads(tmp_path)[case]
    project = new_project(service.client)
    status, answer = raw_request(
        service.base_url,
        "POST",
        f"/projects/{project['id']}/volumes?name={case}&format={volume_format}",
        body,
        OCTET_STREAM,
    )
    assert status == 422, answer
    for word in words:
        assert word.lower() in answer["detail"].lower(), answer
    assert str(service.settings.project_dir) not in answer["detail"]
    assert_store_clean(service, project["id"], volumes=0)


@pytest.mark.parametrize(
    ("query", "status", "word"),
    [
        ("name=..&format=nrrd", 422, "plain name"),
        ("name=a%2Fb&format=nrrd", 422, "plain name"),
        ("name=x&format=dicom", 422, "format"),
        ("format=nrrd", 422, "name"),
    ],
)
def test_bad_upload_queries_are_refused_before_storing(service, lung_case, query, status, word):
    project, _, path = lung_case
    code, answer = raw_request(
        service.base_url, "POST", f"/projects/{project['id']}/volumes?{query}", path.read_bytes(), OCTET_STREAM
    )
    assert code == status and word in json.dumps(answer), answer
    assert_store_clean(service, project["id"], volumes=1)


def test_upload_to_an_unknown_project_is_404(service, lung_case):
    _, _, path = lung_case
    code, answer = raw_request(
        service.base_url, "POST", "/projects/999999/volumes?name=x&format=nrrd", path.read_bytes(), OCTET_STREAM
    )
    assert code == 404 and "project 999999" in answer["detail"]
