"""Expert label volumes through the real HTTP service: upload (checked against the
volume's geometry and values, nothing kept when refused), replace, download, list."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from service_testing import VOLUME_ORIGIN, VOLUME_SPACING, new_project, oblique_direction, raw_request, write_volume
from test_app import assert_client_error
from volume3d_testing import lesion_case, unet3d_project

from covidal.service.settings import ServiceSettings
from covidal.service.store.store import Store


@pytest.fixture(scope="module")
def labelled(service, tmp_path_factory) -> tuple[dict, list[dict]]:
    """A unet3d project with two lesion CTs, the first with its label."""
    return unet3d_project(service.client, tmp_path_factory.mktemp("labels"), count=2, labelled=1)


def write_image(
    array: np.ndarray, path, spacing=VOLUME_SPACING, origin=VOLUME_ORIGIN, direction=None, compress: bool = True
):
    """``array`` ``[K, J, I]`` as a volume file with the given geometry (the test volumes' by default)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(tuple((oblique_direction() if direction is None else direction).ravel()))
    sitk.WriteImage(image, str(path), compress)
    return path


def label_files(service) -> list[str]:
    with Store(service.settings.project_dir) as store:
        assert store.integrity_check() == []
        return store.files.files("labels")


def test_a_label_uploads_replaces_downloads_and_lists(service, labelled, tmp_path):
    client, (project, volumes) = service.client, labelled
    pid, vid = project["id"], volumes[1]["id"]
    _, label = lesion_case(1)
    first, created = client.upload_label(pid, vid, write_image(label, tmp_path / "label.nrrd"))
    assert created and first["volume_id"] == vid and first["format"] == "nrrd"
    assert first["foreground_voxels"] == int(label.sum()) > 0
    classes = label * np.where(np.arange(24) < 12, 1, 2)[None, None, :].astype(np.uint8)  # lesion classes 1 and 2
    nifti = write_image(classes, tmp_path / "classes.nii.gz")
    second, created = client.upload_label(pid, vid, nifti)
    assert not created and second["format"] == "nifti" and second["foreground_voxels"] == int(label.sum())
    assert second["sha256"] != first["sha256"]
    downloaded = client.download_label(pid, vid, tmp_path / "back.nii.gz")
    assert downloaded.read_bytes() == nifti.read_bytes()
    listed = client.list_labels(pid)
    assert [item["volume_id"] for item in listed] == [volumes[0]["id"], vid] and listed[1] == second
    # The replaced file is gone; each labelled volume has one.
    assert sum(path.startswith(f"labels/{pid}/") for path in label_files(service)) == 2


def test_whole_float_labels_are_accepted(service, labelled, tmp_path):
    client, (project, volumes) = service.client, labelled
    _, label = lesion_case(0)
    stored, _ = client.upload_label(
        project["id"], volumes[0]["id"], write_image(label.astype(np.float32), tmp_path / "float.nrrd")
    )
    assert stored["foreground_voxels"] == int(label.sum())


def _with(array: np.ndarray, index: tuple, value) -> np.ndarray:
    changed = array.copy()
    changed[index] = value
    return changed


def _written(path, content: bytes):
    path.write_bytes(content)
    return path


BAD_LABELS = {
    "size": (lambda label, path: write_image(label[:, :, :20], path), ["size", "(20, 24, 12)", "(24, 24, 12)"]),
    "spacing": (
        lambda label, path: write_image(label, path, spacing=(0.7, 0.8, 3.0)),
        ["spacing", "(0.7, 0.8, 3)", "(0.7, 0.8, 2.5)"],
    ),
    "origin": (
        lambda label, path: write_image(label, path, origin=(-12.5, 30.0, -90.0)),
        ["origin", "(-12.5, 30, -90)"],
    ),
    "direction": (lambda label, path: write_image(label, path, direction=np.eye(3)), ["direction"]),
    "negative": (
        lambda label, path: write_image(_with(label.astype(np.int16), (0, 0, 0), -1), path),
        ["negative", "-1"],
    ),
    "fraction": (
        lambda label, path: write_image(_with(label.astype(np.float32), (0, 0, 0), 0.5), path),
        ["not whole numbers", "0.5"],
    ),
    "nan": (
        lambda label, path: write_image(
            _with(label.astype(np.float32), (0, 0, 0), np.nan), path.with_suffix(".nii.gz")
        ),
        ["NaN"],
    ),
    "not a volume": (
        lambda label, path: _written(path, b"NRRD0004\nthis is not a volume\n"),
        ["not a readable 3D volume"],
    ),
    "2D": (lambda label, path: write_volume(label[0], path), ["2D"]),
}


@pytest.mark.parametrize("case", BAD_LABELS, ids=list(BAD_LABELS))
def test_bad_labels_are_422_and_leave_nothing(service, labelled, tmp_path, case):
    client, (project, volumes) = service.client, labelled
    make, words = BAD_LABELS[case]
    before = (client.list_labels(project["id"]), label_files(service))
    _, label = lesion_case(1)
    with assert_client_error(422, *words):
        client.upload_label(project["id"], volumes[1]["id"], make(label, tmp_path / "bad.nrrd"))
    assert (client.list_labels(project["id"]), label_files(service)) == before


def test_a_2d_project_takes_expert_labels_for_its_3d_model(service, tmp_path):
    client = service.client
    image, truth = lesion_case(0)
    flat = new_project(client)
    ct, _ = client.upload_volume(flat["id"], write_volume(image, tmp_path / "ct.nrrd"))
    with assert_client_error(404, "no expert label", "PUT"):
        client.download_label(flat["id"], ct["id"], tmp_path / "none.nrrd")
    label, created = client.upload_label(flat["id"], ct["id"], write_volume(truth, tmp_path / "label.nrrd"))
    assert created and label["foreground_voxels"] == int(truth.sum()) > 0
    assert [item["volume_id"] for item in client.list_labels(flat["id"])] == [ct["id"]]


def test_labels_are_refused_where_they_do_not_belong(service, labelled, tmp_path):
    client, (project, volumes) = service.client, labelled
    pid = project["id"]
    label = write_volume(lesion_case(0)[1], tmp_path / "label.nrrd")
    flat = new_project(client)
    ct, _ = client.upload_volume(flat["id"], write_volume(lesion_case(0)[0], tmp_path / "ct.nrrd"))
    with assert_client_error(404, "not part of project"):
        client.upload_label(pid, ct["id"], label)
    with assert_client_error(404, "volume 999999"):
        client.upload_label(pid, 999999, label)
    with assert_client_error(404, "no expert label", "PUT"):
        client.download_label(flat["id"], ct["id"], tmp_path / "none.nrrd")
    octet_stream = {"Content-Type": "application/octet-stream"}
    status, answer = raw_request(
        service.base_url,
        "PUT",
        f"/projects/{pid}/volumes/{volumes[1]['id']}/label?format=dicom-zip",
        label.read_bytes(),
        octet_stream,
    )
    assert status == 422 and "nrrd" in str(answer)
    status, answer = raw_request(
        service.base_url, "PUT", f"/projects/{pid}/volumes/{volumes[1]['id']}/label?format=nrrd", b"", octet_stream
    )
    assert status == 422 and "empty" in answer["detail"]


def test_a_label_over_the_upload_limit_is_413(service_starter, tmp_path):
    running = service_starter(ServiceSettings(tmp_path / "project", max_upload_bytes=4096))
    project = running.client.create_project(
        "small", model_kind="unet3d", grid_k=4, strategy="entropy", mc_samples=2, loss="point"
    )
    ct = write_image(np.full((12, 24, 24), -850, dtype=np.int16), tmp_path / "ct.nrrd")  # compresses to < 4 KiB
    volume, _ = running.client.upload_volume(project["id"], ct)
    big = write_image(lesion_case(0)[1], tmp_path / "label.nrrd", compress=False)  # 6912 bytes of voxels
    with assert_client_error(413, "limit of 4096 bytes"):
        running.client.upload_label(project["id"], volume["id"], big)
    with Store(running.settings.project_dir) as store:
        assert store.files.files("labels") == [] and store.integrity_check() == []
