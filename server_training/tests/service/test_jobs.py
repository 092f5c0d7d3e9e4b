"""Training jobs, cycles with a model, predictions and the learning curve, against a real server on loopback.

The project is tiny (2D U-Net width 8 on a 32 x 32 grid, a 4 x 32 x 32 CT) so a job takes seconds,
most of them the child process importing torch.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from job_testing import answer_slices, finished, tiny_project, wait_for_job
from service_testing import VOLUME_SPACING, raw_request
from test_app import assert_client_error

from covidal.data.io import read_volume
from covidal.service.project.models.slices import predict_labels
from covidal.service.store.store import Store
from covidal.training.checkpoint import load_run


@pytest.fixture(scope="module")
def trained(service, tmp_path_factory) -> tuple[dict, dict, list[dict], dict]:
    """``(project, volume, answered suggestions, finished job)``: slices 0 and 1 answered, then 6 steps trained."""
    client = service.client
    project, volume = tiny_project(client, tmp_path_factory.mktemp("ct") / "lesion.nrrd")
    answered = answer_slices(client, project["id"], {0, 1})
    job = client.start_training(project["id"], steps=6)
    assert job["status"] == "queued" and job["config"]["steps"] == 6 and job["config"]["width"] == 8
    return project, volume, answered, wait_for_job(client, project["id"], job["id"], finished)


def test_job_trains_and_reports_progress(service, trained):
    project, _, answered, job = trained
    assert len(answered) == 8  # every region of slices 0 and 1
    assert job["status"] == "done", job
    progress = job["progress"]
    assert progress["step"] == progress["steps"] == 6
    assert np.isfinite(progress["loss"]) and progress["eta_seconds"] == 0
    # The answered slices hold clicks and background regions: a Dice on their known pixels exists.
    assert 0 <= progress["val_dice"] <= 1
    log = service.client.job_log(project["id"], job["id"])
    assert "step 6/6" in log and "job" in log
    assert (service.settings.project_dir / "models" / str(project["id"]) / "current" / "model.pt").is_file()


def test_cycle_with_the_model_suggests_only_unanswered_regions(service, trained):
    project, _, answered, _ = trained
    cycle = service.client.create_cycle(project["id"], count=16)
    places = {(s["volume_id"], s["k"], s["region"]) for s in cycle["suggestions"]}
    assert len(places) == 8  # 16 regions, 8 answered
    assert places.isdisjoint({(s["volume_id"], s["k"], s["region"]) for s in answered})
    assert {k for _, k, _ in places} == {2, 3}
    scores = [s["score"] for s in cycle["suggestions"]]
    assert all(score >= 0 for score in scores)  # entropy of MC-dropout samples


def test_prediction_has_the_volume_geometry_and_stats(service, trained, tmp_path):
    project, volume, _, _ = trained
    stats = service.client.predict_volume(project["id"], volume["id"])
    path = service.client.download_prediction(project["id"], volume["id"], tmp_path / "prediction.nrrd")
    labels = read_volume(path)
    assert labels.shape_ijk == (32, 32, 4)
    assert np.allclose(labels.spacing, VOLUME_SPACING)
    assert np.allclose(labels.origin, volume["origin"]) and np.allclose(labels.direction, volume["direction"])
    assert set(np.unique(labels.array)) <= {0, 1}
    assert stats["voxels"] == int(labels.array.sum())
    assert stats["infected_ml"] == pytest.approx(stats["voxels"] * np.prod(VOLUME_SPACING) / 1000)
    assert set(stats) == {
        "volume_id",
        "voxels",
        "infected_ml",
        "lungs",
        "lung_ml",
        "lung_percent",
        "right_lung_percent",
        "left_lung_percent",
    }


def test_learning_curve_json_and_png(service, trained, tmp_path):
    project, _, answered, job = trained
    curve = service.client.learning_curve(project["id"])
    assert curve == [
        {
            "job_id": job["id"],
            "finished_at": job["finished_at"],
            "answers": len(answered),
            "effort_seconds": 3.0 * len(answered),
            "val_dice": job["progress"]["val_dice"],
            "unseen_agreement": None,  # no answer was given after it yet
            "unseen_answers": 0,
            "steps": 6,
            "pseudo_labels": None,  # an entropy project adds none
        }
    ]
    png = service.client.download_learning_curve(project["id"], tmp_path / "curve.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_the_next_job_scores_the_last_model_on_the_answers_given_after_it(service, tmp_path):
    client = service.client
    project, _ = tiny_project(client, tmp_path / "lesion.nrrd")
    answer_slices(client, project["id"], {0, 1})
    first = wait_for_job(client, project["id"], client.start_training(project["id"], steps=6)["id"], finished)
    later = answer_slices(client, project["id"], {2, 3})
    second = wait_for_job(client, project["id"], client.start_training(project["id"], steps=6)["id"], finished)
    assert first["status"] == second["status"] == "done"
    curve = client.learning_curve(project["id"])
    assert [point["job_id"] for point in curve] == [first["id"], second["id"]]
    assert curve[0]["unseen_answers"] == len(later) == 8
    assert curve[1]["unseen_answers"] == 0 and curve[1]["unseen_agreement"] is None
    # The first job's own model on slices 2 and 3: it agrees with the infection answer (region 0) when it calls
    # the click at the lesion's centre infected, with a background answer (regions 1-3, the other 16 x 16 boxes)
    # when it calls none of its pixels infected.
    model = service.settings.project_dir / "jobs" / str(first["id"]) / "checkpoint" / "model.pt"
    labels = predict_labels(load_run(model, torch.device("cpu")), read_volume(tmp_path / "lesion.nrrd"))[2:4]
    boxes = [(slice(0, 16), slice(16, 32)), (slice(16, 32), slice(0, 16)), (slice(16, 32), slice(16, 32))]
    agreed = sum(int(k_labels[8, 8]) + sum(not k_labels[box].any() for box in boxes) for k_labels in labels)
    assert curve[0]["unseen_agreement"] == pytest.approx(agreed / 8)


def test_job_errors_are_clear(service, trained, tmp_path):
    client = service.client
    project, volume = tiny_project(client, tmp_path / "lesion.nrrd")
    with assert_client_error(422, "no answered regions"):
        client.start_training(project["id"])
    with assert_client_error(409, "no trained model"):
        client.predict_volume(project["id"], volume["id"])
    with assert_client_error(404, "no prediction"):
        client.download_prediction(project["id"], volume["id"], tmp_path / "p.nrrd")
    with assert_client_error(404, "job 999999"):
        client.get_job(project["id"], 999999)
    answer_slices(client, project["id"], {0})
    status, answer = raw_request(
        service.base_url,
        "POST",
        f"/projects/{project['id']}/jobs",
        json.dumps({"kind": "segment"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 422 and "'train'" in answer["detail"]
    with assert_client_error(422, "image_size", "multiple of 32"):
        client.start_training(project["id"], config={"image_size": 40})
    with assert_client_error(422, "unknown job config keys"):
        client.start_training(project["id"], config={"epochs": 3})
    trained_project, _, _, done = trained
    with assert_client_error(409, "only an interrupted job"):
        client.resume_job(trained_project["id"], done["id"])
    with assert_client_error(409, "done"):
        client.cancel_job(trained_project["id"], done["id"])
    with assert_client_error(404, "not part of project"):
        client.get_job(project["id"], done["id"])


def test_queued_job_waits_while_another_runs_and_a_running_job_cancels(service, tmp_path):
    client = service.client
    project, _ = tiny_project(client, tmp_path / "lesion.nrrd")
    answer_slices(client, project["id"], {0})
    first = client.start_training(project["id"], steps=100_000)
    second = client.start_training(project["id"], steps=2)
    wait_for_job(client, project["id"], first["id"], lambda j: j["progress"] is not None and j["progress"]["step"] >= 2)
    assert client.get_job(project["id"], second["id"])["status"] == "queued"  # one job per device at a time
    assert client.cancel_job(project["id"], first["id"])["cancel_requested"] is True
    second = wait_for_job(client, project["id"], second["id"], finished)
    first = client.get_job(project["id"], first["id"])
    assert first["status"] == "cancelled" and first["progress"]["step"] < 100_000
    assert "cancel asked" in client.job_log(project["id"], first["id"])
    assert second["status"] == "done" and second["started_at"] >= first["finished_at"]


def test_a_crashing_worker_fails_the_job_and_the_service_goes_on(service, tmp_path):
    client = service.client
    project, _ = tiny_project(client, tmp_path / "lesion.nrrd")
    answer_slices(client, project["id"], {0})
    with Store(service.settings.project_dir) as store:  # a config the route would refuse: the worker raises
        job = store.enqueue_job(project["id"], "train", {"steps": 0})
    failed = wait_for_job(client, project["id"], job.id, finished)
    assert failed["status"] == "failed"
    assert "ConfigError" in failed["error"] and "steps" in failed["error"]
    assert "Traceback" in client.job_log(project["id"], job.id)
    assert client.health()["status"] == "ok"


@pytest.mark.parametrize("prior", ["intensity", "none"])
def test_a_background_prior_labels_the_air_the_answers_left_open(service, tmp_path, prior):
    client = service.client
    project, _ = tiny_project(client, tmp_path / "lesion.nrrd", background_prior=prior)
    answer_slices(client, project["id"], {0})
    job = wait_for_job(client, project["id"], client.start_training(project["id"], steps=2)["id"], finished)
    log = client.job_log(project["id"], job["id"])
    assert job["status"] == "done" and job["config"]["background_prior"] == prior, log
    found = re.search(r"(\d+) pixels of certain background \(intensity prior\)", log)
    if prior == "none":
        assert found is None, log
        return
    # Slice 0's background regions are answered in full, its infection region (0, the top-left 16 x 16 box) by
    # one click: the rest of that box is open. Its air (-1000 HU, the 60 pixels outside the lung square of rows
    # and columns 2..29) is certain background, and so is the lung's edge, blurred below -800 HU (at most two
    # pixels deep along the box's 28 pixels of edge); the rest of the lung (-800 HU) is not.
    air = np.ones((16, 16), dtype=bool)
    air[2:, 2:] = False
    assert found is not None and air.sum() <= int(found.group(1)) <= air.sum() + 2 * 28, log
