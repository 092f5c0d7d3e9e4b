"""Tests of CovidActiveLearningLib/training.py: the backend's job JSON (2D and 3D jobs) to one progress line."""

import pytest

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.training import MODES_3D, JobStatus, TrainingStatus, clicks_to_3d_config


def job(status="running", **progress):
    return {"id": 4, "status": status, "progress": progress or None, "error": None}


@pytest.mark.parametrize(
    "data, text, fraction, finished",
    [
        (job("queued"), "Queued", 0.0, False),
        (
            job(step=5, steps=20, loss=0.4321, val_dice=None, eta_seconds=75.2),
            "Running, step 5 of 20, loss 0.432, about 1 min 15 s left",
            0.25,
            False,
        ),
        (
            job(step=20, steps=20, loss=0.1, val_dice=0.6789, eta_seconds=0.0),
            "Running, step 20 of 20, loss 0.100, Dice on training pixels 0.679, about 0 s left",
            1.0,
            False,
        ),
        (
            job("done", step=20, steps=20, loss=0.1, val_dice=0.5, eta_seconds=0.0),
            "Done, step 20 of 20, loss 0.100, Dice on training pixels 0.500",
            1.0,
            True,
        ),
        (
            {**job("failed", step=3, steps=20), "error": "out of memory"},
            "Failed, step 3 of 20, out of memory",
            0.15,
            True,
        ),
        (job("interrupted", step=7, steps=20), "Interrupted, step 7 of 20", 0.35, False),
    ],
)
def test_progress_line(data, text, fraction, finished):
    status = TrainingStatus.from_json(data)
    assert status.text == text
    assert status.fraction == pytest.approx(fraction)
    assert status.finished is finished


def test_statuses_are_the_backends():
    assert TrainingStatus.from_json(job("cancelled")).status is JobStatus.CANCELLED


@pytest.mark.parametrize("bad", [{"status": "running"}, {"id": 1, "status": "exploded"}])
def test_malformed_jobs_are_value_errors(bad):
    with pytest.raises(ValueError):
        TrainingStatus.from_json(bad)


def job_3d(status="running", **progress):
    return {**job(status, **progress), "kind": "clicks-to-3d"}


@pytest.mark.parametrize(
    "data, text",
    [
        (job_3d("queued"), "3D model: Queued"),
        (
            job_3d(step=3, steps=120, stage="pseudo-label", loss=None, val_dice=None, eta_seconds=None),
            "3D model: Running, pseudo-labels from the 2D model, step 3 of 120",
        ),
        (
            job_3d(step=40, steps=120, stage="student", loss=0.25, val_dice=0.4, eta_seconds=30),
            "3D model: Running, student, step 40 of 120, loss 0.250, Dice on the expert labels 0.400, about 30 s left",
        ),
        (job_3d("done", step=120, steps=120, stage="student", loss=0.2), "3D model: Done, step 120 of 120, loss 0.200"),
    ],
)
def test_a_3d_jobs_line_says_its_model_and_stage(data, text):
    status = TrainingStatus.from_json(data)
    assert status.is_3d and status.text == text


def test_a_2d_jobs_stage_and_kind_default_to_none_and_train():
    status = TrainingStatus.from_json(job(step=1, steps=2))
    assert (status.kind, status.stage, status.is_3d) == ("train", None, False)


def test_the_3d_config_sends_a_chosen_mode_and_leaves_the_default_to_the_backend():
    assert clicks_to_3d_config(None, {"epochs": 1}) == {"epochs": 1}
    assert clicks_to_3d_config("", None) == {}
    assert clicks_to_3d_config("rgs", {"epochs": 1}) == {"epochs": 1, "mode": "rgs"}
    from covidal.noisyteacher.student_modes import StudentMode  # the module cannot import covidal; the test can

    assert MODES_3D == tuple(StudentMode)  # the panel offers exactly the backend's modes
    with pytest.raises(UserFacingError, match="'fancy' is not a 3D training mode"):
        clicks_to_3d_config("fancy")
