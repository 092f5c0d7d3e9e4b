"""Tests of CovidActiveLearningLib/training.py: the backend's job JSON to one progress line."""

import pytest

from CovidActiveLearningLib.training import JobStatus, TrainingStatus


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
