"""``noisy-teacher`` jobs of unet3d projects through the real HTTP service: teacher, pseudo-labels, student,
progress, the student as the project's model for predictions, clear 422s, cancel.

The networks are tiny (a two-level 3D U-Net on 8^3 patches of a 2 x 2 x 4 mm grid) and the CTs 24 x 24 x 12,
so a job takes seconds, most of them the child process importing torch and MONAI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from job_testing import finished, wait_for_job
from service_testing import VOLUME_SPACING, new_project, raw_request
from test_app import assert_client_error
from volume3d_testing import TINY_3D_CONFIG, start_noisy_teacher, unet3d_project

from covidal.data.io import read_volume

STEPS_PER_NETWORK = TINY_3D_CONFIG["epochs"] * TINY_3D_CONFIG["steps_per_epoch"]


@pytest.fixture(scope="module")
def trained(service, tmp_path_factory) -> tuple[dict, list[dict], dict]:
    """``(project, volumes, finished job)``: 3 CTs, the first labelled, one rgsm-al job (the default mode)."""
    client = service.client
    project, volumes = unet3d_project(client, tmp_path_factory.mktemp("nt"), count=3, labelled=1)
    job = start_noisy_teacher(client, project["id"])
    assert job["status"] == "queued" and job["kind"] == "noisy-teacher" and job["config"]["mode"] == "rgsm-al"
    return project, volumes, wait_for_job(client, project["id"], job["id"], finished, timeout=180)


def job_folder(service, job: dict):
    return service.settings.project_dir / "jobs" / str(job["id"])


def test_the_job_trains_teacher_and_student_and_reports_progress(service, trained):
    project, volumes, job = trained
    assert job["status"] == "done", (job, service.client.job_log(project["id"], job["id"]))
    progress = job["progress"]
    assert progress["step"] == progress["steps"] == 2 * STEPS_PER_NETWORK and progress["stage"] == "student"
    assert np.isfinite(progress["loss"]) and progress["eta_seconds"] == 0
    assert 0 <= progress["val_dice"] <= 1  # the student's Dice on the expert volume
    log = service.client.job_log(project["id"], job["id"])
    for line in ("teacher: epoch 2/2", "pseudo-label 2/2", "student: epoch 2/2", "Dice on the expert volumes"):
        assert line in log, log
    folder = job_folder(service, job)
    result = json.loads((folder / "result.json").read_text())
    assert (result["expert_volumes"], result["pool_volumes"]) == ([volumes[0]["id"]], [v["id"] for v in volumes[1:]])
    assert result["val_dice"] == progress["val_dice"] and result["mode"] == "rgsm-al"
    history = json.loads((folder / "student" / "history.json").read_text())
    assert history["mode"] == "rgsm-al" and set(history["pseudo_weight_by_case"]) == {
        f"volume{v['id']}" for v in volumes[1:]
    }
    current = service.settings.project_dir / "models" / str(project["id"]) / "current" / "model.pt"
    assert current.read_bytes() == (folder / "student" / "model.pt").read_bytes()
    assert service.client.learning_curve(project["id"]) == []  # the curve follows the 2D jobs' answers


def test_pseudo_labels_have_their_volumes_geometry(service, trained):
    _, volumes, job = trained
    for volume in volumes[1:]:
        label = read_volume(job_folder(service, job) / "pseudo" / f"{volume['id']}.nrrd")
        assert label.shape_ijk == tuple(volume["dims"]) and np.allclose(label.spacing, volume["spacing"])
        assert np.allclose(label.origin, volume["origin"]) and np.allclose(label.direction, volume["direction"])
        assert set(np.unique(label.array)) <= {0, 1}


def test_prediction_uses_the_student_on_the_volumes_grid(service, trained, tmp_path):
    project, volumes, _ = trained
    volume = volumes[2]
    stats = service.client.predict_volume(project["id"], volume["id"])
    labels = read_volume(service.client.download_prediction(project["id"], volume["id"], tmp_path / "p.nrrd"))
    assert labels.shape_ijk == (24, 24, 12) and np.allclose(labels.spacing, VOLUME_SPACING)
    assert np.allclose(labels.origin, volume["origin"]) and np.allclose(labels.direction, volume["direction"])
    assert set(np.unique(labels.array)) <= {0, 1} and stats["voxels"] == int(labels.array.sum())
    assert stats["infected_ml"] == pytest.approx(stats["voxels"] * np.prod(VOLUME_SPACING) / 1000)


def test_cycles_of_a_unet3d_project_keep_the_first_cycle_prior(service, trained):
    project, _, _ = trained
    cycle = service.client.create_cycle(project["id"], count=4)
    assert len(cycle["suggestions"]) == 4
    assert all(0 <= s["score"] <= 1 + 1e-5 for s in cycle["suggestions"])  # shares of voxels (plus a tie-break jitter)


def test_supervised_mode_trains_the_teacher_alone(service, tmp_path):
    client = service.client
    project, volumes = unet3d_project(client, tmp_path, count=1, labelled=1)  # nothing to pseudo-label
    job = wait_for_job(
        client,
        project["id"],
        start_noisy_teacher(client, project["id"], mode="supervised")["id"],
        finished,
        timeout=180,
    )
    assert job["status"] == "done", (job, client.job_log(project["id"], job["id"]))
    assert (job["progress"]["step"], job["progress"]["steps"], job["progress"]["stage"]) == (
        STEPS_PER_NETWORK,
        STEPS_PER_NETWORK,
        "teacher",
    )
    assert not (job_folder(service, job) / "student").exists()
    assert client.predict_volume(project["id"], volumes[0]["id"])["volume_id"] == volumes[0]["id"]


def test_job_kinds_and_configs_are_checked(service, trained, tmp_path):
    client = service.client
    project, _, _ = trained
    pid = project["id"]
    flat = new_project(client)
    with assert_client_error(422, "'unet3d'", "'noisy-teacher' job"):
        client.start_training(pid)  # kind 'train'
    with assert_client_error(422, "'unet'", "'train' job"):
        client.start_training(flat["id"], kind="noisy-teacher")
    status, answer = raw_request(
        service.base_url,
        "POST",
        f"/projects/{pid}/jobs",
        json.dumps({"kind": "segment"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 422 and "'train', 'noisy-teacher'" in answer["detail"]
    with assert_client_error(422, "'steps'", "epochs"):
        client.start_training(pid, steps=5, kind="noisy-teacher")
    for config, words in [
        ({"mode": "psychic"}, ["mode", "rgsm-al"]),
        ({"patch_size": [9, 8, 8]}, ["patch_size", "multiples of 2"]),
        ({"epochs": 0}, ["epochs", ">= 1"]),
        ({"lam": 2}, ["lam", "[0, 1]"]),
        ({"spacing": [1, 1]}, ["spacing"]),
        ({"steps": 3}, ["unknown job config keys"]),
    ]:
        with assert_client_error(422, *words):
            start_noisy_teacher(client, pid, **config)
    unlabelled, _ = unet3d_project(client, tmp_path / "none", count=1, labelled=0)
    with assert_client_error(422, "no volume with an expert label", "/label"):
        start_noisy_teacher(client, unlabelled["id"])
    all_labelled, _ = unet3d_project(client, tmp_path / "all", count=1, labelled=1)
    with assert_client_error(422, "nothing to pseudo-label", "'supervised'"):
        start_noisy_teacher(client, all_labelled["id"])


def test_a_queued_3d_job_waits_and_a_running_one_cancels(service, tmp_path):
    client = service.client
    project, _ = unet3d_project(client, tmp_path, count=2, labelled=1)
    first = start_noisy_teacher(client, project["id"], epochs=10_000)
    second = start_noisy_teacher(client, project["id"], mode="supervised")
    wait_for_job(client, project["id"], first["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 2, timeout=120)
    assert client.get_job(project["id"], second["id"])["status"] == "queued"  # one job per device at a time
    client.cancel_job(project["id"], first["id"])
    first = wait_for_job(client, project["id"], first["id"], finished)
    assert first["status"] == "cancelled" and first["progress"]["stage"] == "teacher"
    assert "cancel asked" in client.job_log(project["id"], first["id"])
    assert wait_for_job(client, project["id"], second["id"], finished, timeout=180)["status"] == "done"
