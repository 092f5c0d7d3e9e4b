"""``clicks-to-3d`` jobs of 2D projects through the real HTTP service: the 2D model's lung-restricted pseudo-labels,
the answers as the clean signal, the 3D model kept apart from the 2D one, its predictions, clear 4xx.

The networks are tiny (a 32 px 2D U-Net, a two-level 3D U-Net on 8^3 patches), so a job takes seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from job_testing import answer_slices, finished, tiny_project, wait_for_job
from service_testing import VOLUME_SPACING, write_volume
from test_app import assert_client_error
from volume3d_testing import TINY_3D_CONFIG, lesion_case, unet3d_project

from covidal.data.io import read_volume

STEPS = TINY_3D_CONFIG["epochs"] * TINY_3D_CONFIG["steps_per_epoch"]


def start_clicks_to_3d(client, project_id: int, **config) -> dict:
    return client.start_training(project_id, config={**TINY_3D_CONFIG, **config}, kind="clicks-to-3d")


@pytest.fixture(scope="module")
def answered(service, tmp_path_factory) -> tuple[dict, dict, dict]:
    """``(project, answered volume, pool volume)``: a 2D project whose lesion CT is answered on every slice and
    trained once, and a second CT nobody answered."""
    client, folder = service.client, tmp_path_factory.mktemp("clicks3d")
    project, volume = tiny_project(client, folder / "ct.nrrd")
    answer_slices(client, project["id"], {0, 1, 2, 3})
    job = client.start_training(project["id"], steps=4)
    assert wait_for_job(client, project["id"], job["id"], finished, timeout=120)["status"] == "done"
    pool, _ = client.upload_volume(project["id"], write_volume(lesion_case(1)[0], folder / "pool.nrrd"))
    return project, volume, pool


@pytest.fixture(scope="module")
def trained(service, answered) -> tuple[dict, dict, dict, dict]:
    project, volume, pool = answered
    job = start_clicks_to_3d(service.client, project["id"], mode="rgs")
    assert job["kind"] == "clicks-to-3d" and job["config"]["mode"] == "rgs"
    return project, volume, pool, wait_for_job(service.client, project["id"], job["id"], finished, timeout=180)


def model_file(service, project: dict, folder: str):
    return service.settings.project_dir / "models" / str(project["id"]) / folder / "model.pt"


def test_the_job_pseudo_labels_the_pool_and_learns_from_the_answers(service, trained):
    project, volume, pool, job = trained
    log = service.client.job_log(project["id"], job["id"])
    assert job["status"] == "done", (job, log)
    progress = job["progress"]
    assert progress["step"] == progress["steps"] == STEPS and progress["stage"] == "student"
    assert f"answers on volume(s) [{volume['id']}]" in log and "pseudo-label 2/2" in log and "answer loss" in log
    folder = service.settings.project_dir / "jobs" / str(job["id"])
    result = json.loads((folder / "result.json").read_text())
    assert result["answered_volumes"] == [volume["id"]] and result["answers"] == 16
    assert result["pool_volumes"] == [volume["id"], pool["id"]] and result["expert_volumes"] == []
    for member in (volume, pool):  # the 2D model's labels, on each volume's own grid
        label = read_volume(folder / "pseudo" / f"{member['id']}.nrrd")
        assert label.shape_ijk == tuple(member["dims"]) and np.allclose(label.direction, member["direction"])
        assert set(np.unique(label.array)) <= {0, 1}
    history = json.loads((folder / "student" / "history.json").read_text())
    assert history["mode"] == "rgs" and history["epochs"][-1]["answer_loss"] > 0
    assert set(history["pseudo_weight_by_case"]) == {f"volume{volume['id']}", f"volume{pool['id']}"}
    steps = [json.loads(line) for line in (folder / "student" / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == STEPS and all(len(step["weights"]) == TINY_3D_CONFIG["batch_size"] for step in steps)
    # The 3D model is published beside the 2D one, which stays the project's model.
    assert model_file(service, project, "current-3d").read_bytes() == (folder / "student" / "model.pt").read_bytes()
    assert (folder / "model2d.pt").read_bytes() == model_file(service, project, "current").read_bytes()


def test_the_3d_prediction_has_the_volumes_grid_and_lung_figures(service, trained, tmp_path):
    project, volume, _, _ = trained
    client = service.client
    stats = client.predict_volume(project["id"], volume["id"], model="3d")
    labels = read_volume(client.download_prediction(project["id"], volume["id"], tmp_path / "p3d.nrrd", model="3d"))
    assert labels.shape_ijk == tuple(volume["dims"]) and np.allclose(labels.spacing, VOLUME_SPACING)
    assert np.allclose(labels.origin, volume["origin"]) and np.allclose(labels.direction, volume["direction"])
    assert set(np.unique(labels.array)) <= {0, 1} and stats["voxels"] == int(labels.array.sum())
    assert stats["infected_ml"] == pytest.approx(stats["voxels"] * np.prod(VOLUME_SPACING) / 1000)
    # The 2D model's prediction is its own file, untouched by the 3D one.
    with assert_client_error(404, "no prediction yet", "prediction first"):
        client.download_prediction(project["id"], volume["id"], tmp_path / "p2d.nrrd")
    flat = client.predict_volume(project["id"], volume["id"])
    assert (
        read_volume(client.download_prediction(project["id"], volume["id"], tmp_path / "p2d.nrrd")).array.sum()
        == (flat["voxels"])
    )


def test_supervised_mode_trains_on_the_answers_alone(service, answered):
    project, _, _ = answered
    job = start_clicks_to_3d(service.client, project["id"], mode="supervised")
    done = wait_for_job(service.client, project["id"], job["id"], finished, timeout=180)
    log = service.client.job_log(project["id"], job["id"])
    assert done["status"] == "done", (done, log)
    assert "pseudo-label" not in log and "pseudo loss" not in log and "answer loss" in log


def test_the_cli_trains_follows_and_predicts(service, answered, cli, tmp_path):
    project, volume, _ = answered
    config = json.dumps({key: value for key, value in TINY_3D_CONFIG.items()})
    argv = ("clicks-to-3d", "--url", service.base_url, "--project", project["id"], "--config", config)
    result = cli(*argv, "--mode", "supervised", "--predict", volume["id"], "--out", tmp_path)
    assert result.code == 0, result
    assert "student step" in result.out and "(supervised," in result.out and "mL infected" in result.out
    saved = read_volume(tmp_path / f"prediction-3d-volume{volume['id']}.nrrd")
    assert saved.shape_ijk == tuple(volume["dims"]) and np.allclose(saved.direction, volume["direction"])
    cli(*argv, "--mode", "best").assert_user_error("--mode", "invalid choice")
    cli(*argv[:-2], "--config", "[1]").assert_user_error("--config", "JSON object")
    cli(*argv, "--mode", "semi", "--config", '{"epochs": 0}').assert_user_error("refused", "epochs")


def test_an_expert_label_joins_the_clean_data(service, answered, tmp_path):
    """(Runs after the tests that need the pool volume unlabelled.)"""
    project, volume, pool = answered
    client = service.client
    client.upload_label(project["id"], pool["id"], write_volume(lesion_case(1)[1], tmp_path / "label.nrrd"))
    job = start_clicks_to_3d(client, project["id"], mode="semi")
    done = wait_for_job(client, project["id"], job["id"], finished, timeout=180)
    assert done["status"] == "done", client.job_log(project["id"], job["id"])
    folder = service.settings.project_dir / "jobs" / str(job["id"])
    result = json.loads((folder / "result.json").read_text())
    assert result["expert_volumes"] == [pool["id"]] and result["pool_volumes"] == [volume["id"]]
    assert 0 <= done["progress"]["val_dice"] <= 1  # on the expert volume


def test_bad_requests_are_4xx(service, answered, tmp_path):
    client = service.client
    project, volume, _ = answered
    fresh, fresh_volume = tiny_project(client, tmp_path / "fresh.nrrd")
    with assert_client_error(422, "no trained 2D model", "'train' job"):
        start_clicks_to_3d(client, fresh["id"])
    with assert_client_error(409, "no 3D model yet", "clicks-to-3d"):
        client.predict_volume(fresh["id"], fresh_volume["id"], model="3d")
    with assert_client_error(422, "model"):
        client.predict_volume(project["id"], volume["id"], model="4d")
    with assert_client_error(422, "mode"):
        start_clicks_to_3d(client, project["id"], mode="best")
    with assert_client_error(422, "steps"):
        client.start_training(project["id"], steps=3, kind="clicks-to-3d")
    unet3d, _ = unet3d_project(client, tmp_path / "u3d", count=1, labelled=1)
    with assert_client_error(422, "'unet3d'", "noisy-teacher"):
        start_clicks_to_3d(client, unet3d["id"])
