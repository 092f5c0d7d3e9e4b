"""A CEAL project's training jobs against a real server on loopback: after cycle ``t``'s answers, a job trains on
the pool's pixels that the previous job's model is sure of (above ``delta_t``), made afresh each cycle, and they
count as neither answers nor effort."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from job_testing import answer_slices, finished, lesion_ct, tiny_project, wait_for_job

from covidal.activelearning.seeds import derived_seed
from covidal.data.window import HUWindow
from covidal.service.project.layout import ProjectLayout
from covidal.service.project.models.slices import network_input_of
from covidal.training.checkpoint import load_run

CEAL_PARAMS = {"delta": 0.6, "delta_decay": 0.05, "pseudo_weight": 1.0}  # every confident pixel joins


@pytest.fixture(scope="module")
def ceal_jobs(service, tmp_path_factory) -> tuple[dict, list[dict], list[dict]]:
    """``(project, answered suggestions, jobs)``: cycle 1 answers slices 0 and 1, cycle 2 slice 2, cycle 3
    slice 3, each followed by a 6-step job."""
    client = service.client
    project, _ = tiny_project(
        client, tmp_path_factory.mktemp("ct") / "lesion.nrrd", strategy="ceal", strategy_params=CEAL_PARAMS
    )
    answered, jobs = [], []
    for slices in ({0, 1}, {2}, {3}):
        answered += answer_slices(client, project["id"], slices)
        job = client.start_training(project["id"], steps=6)
        jobs.append(wait_for_job(client, project["id"], job["id"], finished))
    assert [job["status"] for job in jobs] == ["done"] * 3, jobs
    return project, answered, jobs


def saved_pseudo_labels(service, job: dict) -> np.ndarray:
    with np.load(ProjectLayout(service.settings.project_dir).job(job["id"]).pseudo_labels) as saved:
        return saved["labels"]


def confidence_of(service, job: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(class probability, class)`` ``[K, S, S]`` of the model ``job`` made, on the lesion CT as jobs see it."""
    run = load_run(ProjectLayout(service.settings.project_dir).job(job["id"]).model, torch.device("cpu"))
    with torch.no_grad():
        probabilities = run.model(network_input_of(lesion_ct(), HUWindow(), 32)).softmax(dim=1)
    confidence, classes = probabilities.max(dim=1)
    return confidence.numpy(), classes.numpy()


def test_the_first_job_has_no_model_to_pseudo_label_with(service, ceal_jobs):
    project, _, jobs = ceal_jobs
    assert service.client.learning_curve(project["id"])[0]["pseudo_labels"] is None
    assert not ProjectLayout(service.settings.project_dir).job(jobs[0]["id"]).pseudo_labels.exists()


def test_cycle_twos_training_holds_the_pixels_above_delta_and_none_below(service, ceal_jobs):
    project, _, jobs = ceal_jobs
    labels = saved_pseudo_labels(service, jobs[1])
    confidence, classes = confidence_of(service, jobs[0])  # the model that made cycle 2's query
    threshold = CEAL_PARAMS["delta"] - CEAL_PARAMS["delta_decay"]
    clear = np.abs(confidence - threshold) > 1e-5  # pixels on the threshold may round either way between processes
    labelled = labels != -1
    assert labelled.sum() > 0 and (~labelled).sum() > 0
    assert np.all(confidence[labelled & clear] > threshold) and np.all(confidence[~labelled & clear] <= threshold)
    np.testing.assert_array_equal(labels[labelled & clear], classes[labelled & clear])
    point = service.client.learning_curve(project["id"])[1]
    assert point["pseudo_labels"] == {
        "cycle": 2,
        "threshold": pytest.approx(threshold),
        "seed": derived_seed(0, "ceal-pseudo-labels", 2),
        "pixels": int(labelled.sum()),
        "slices": int(labelled.any(axis=(1, 2)).sum()),
    }
    log = service.client.job_log(project["id"], jobs[1]["id"])
    # Slices 0..2 are answered; slice 3 has no answer and trains only because it holds pseudo-labels.
    assert point["pseudo_labels"]["slices"] == 4 and re.search(r"3 answered slices.*, 4 training slices", log)


def test_pseudo_labels_count_as_neither_answers_nor_effort(service, ceal_jobs):
    project, answered, _ = ceal_jobs
    curve = service.client.learning_curve(project["id"])
    assert [point["answers"] for point in curve] == [8, 12, 16] == [8, 12, len(answered)]
    assert [point["effort_seconds"] for point in curve] == [24.0, 36.0, 48.0]  # 3 s per answer, nothing more


def test_each_cycle_makes_its_own_with_the_decayed_threshold(service, ceal_jobs):
    project, _, jobs = ceal_jobs
    third = service.client.learning_curve(project["id"])[2]["pseudo_labels"]
    assert third["cycle"] == 3 and third["threshold"] == pytest.approx(0.5)  # 0.6 - 2 x 0.05
    confidence, _ = confidence_of(service, jobs[1])  # made by the second job's model, not kept from cycle 2
    labels = saved_pseudo_labels(service, jobs[2])
    clear = np.abs(confidence - 0.5) > 1e-5
    assert np.array_equal(labels[clear] != -1, confidence[clear] > 0.5)
    assert not np.array_equal(labels, saved_pseudo_labels(service, jobs[1]))
