"""Expert labels in the store: one per volume, a replaced file removed after the commit, a refused one at once,
and leftovers of a crash cleaned at startup."""

from __future__ import annotations

import io

import pytest
from store_testing import T0

from covidal.service.store.errors import Invalid, NotFound
from covidal.service.store.records import LabelFormat
from covidal.service.store.store import Store


def put_label(store: Store, project_id: int, content: bytes = b"label voxels"):
    return store.files.put_stream(store.label_folder(project_id), ".nrrd", io.BytesIO(content), 10**6)


def test_a_label_is_recorded_replaced_and_its_old_file_removed(opened):
    store, project, volume, _ = opened
    first, created = store.set_label(project.id, volume.id, put_label(store, project.id, b"first"), "nrrd", 7, now=T0)
    assert created and (first.volume_id, first.format, first.foreground_voxels, first.created_at) == (
        volume.id,
        LabelFormat.NRRD,
        7,
        T0,
    )
    second, created = store.set_label(project.id, volume.id, put_label(store, project.id, b"second"), "nifti", 3)
    assert not created and store.get_label(project.id, volume.id) == second and second.size == len(b"second")
    assert store.files.files("labels") == [second.path] and store.list_labels(project.id) == [second]
    assert store.integrity_check() == []


def test_a_refused_label_leaves_no_file(opened):
    store, project, volume, _ = opened
    other = store.create_project(
        "other", model_kind="unet3d", grid_k=16, strategy="entropy", mc_samples=4, loss="point"
    )
    with pytest.raises(NotFound, match="not part of project"):
        store.set_label(other.id, volume.id, put_label(store, other.id), "nrrd", 1)
    with pytest.raises(Invalid, match="label format"):
        store.set_label(project.id, volume.id, put_label(store, project.id), "dicom-zip", 1)
    with pytest.raises(Invalid, match="foreground_voxels"):
        store.set_label(project.id, volume.id, put_label(store, project.id), "nrrd", -1)
    with pytest.raises(ValueError, match="was not uploaded to"):
        store.set_label(project.id, volume.id, put_label(store, other.id), "nrrd", 1)
    left = store.files.files("labels")  # only the file of the misdirected call: it is left to its caller
    assert len(left) == 1 and left[0].startswith(f"labels/{other.id}/")
    with pytest.raises(NotFound, match="no expert label"):
        store.get_label(project.id, volume.id)


def test_startup_removes_labels_never_recorded_and_the_check_sees_a_missing_file(opened):
    store, project, volume, _ = opened
    orphan = put_label(store, project.id, b"crashed before the commit").relative_path
    assert store.integrity_check() == [f"file {orphan}: not referenced by any label"]
    assert store.recover().removed_files == (orphan,)
    label, _ = store.set_label(project.id, volume.id, put_label(store, project.id), "nrrd", 1)
    store.files.path(label.path).unlink()
    assert store.integrity_check() == [
        (f"label of volume {volume.id} of project {project.id}: file {label.path} is missing")
    ]
