"""Helpers of the training-job tests: a tiny CT with a lesion, answering a cycle like a clinician, polling a job."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from service_testing import unique_name, write_volume

AIR, LUNG, LESION = -1000, -800, 40  # HU
LESION_BOX = (slice(4, 12), slice(4, 12))  # rows j, columns i of the lesion, on every slice: inside region 0
TINY_SETTINGS = {"image_size": 32, "width": 8, "checkpoint_every": 2, "batch_size": 2}
FINISHED = ("done", "failed", "cancelled")


def lesion_ct() -> np.ndarray:
    """int16 ``[4, 32, 32]`` HU: a lung square on rows/cols 2..30 with an 8x8 lesion in region 0 (grid of 4)."""
    ct = np.full((4, 32, 32), AIR, dtype=np.int16)
    ct[:, 2:30, 2:30] = LUNG
    ct[(slice(None), *LESION_BOX)] = LESION
    return ct


def tiny_project(client, path: Path, strategy: str = "entropy", **settings) -> tuple[dict, dict]:
    """``(project, volume)``: a unet project of 4 regions with tiny training settings and the lesion CT uploaded."""
    project = client.create_project(
        unique_name("jobs"),
        model_kind="unet",
        grid_k=4,
        strategy=strategy,
        mc_samples=2,
        loss="point",
        settings={**TINY_SETTINGS, **settings},
    )
    if not path.exists():
        write_volume(lesion_ct(), path)
    volume, _ = client.upload_volume(project["id"], path, "lesion")
    return project, volume


def answer_slices(client, project_id: int, slices: set[int], annotator: str = "dr-a") -> list[dict]:
    """Open a cycle of every region, lease them all, and answer the ones on ``slices`` like a clinician:
    region 0 (the lesion) as infection with a click at the lesion's centre, the others as background.
    Returns the answered suggestions."""
    cycle = client.create_cycle(project_id, count=16)
    leased = client.lease_suggestions(project_id, cycle["id"], annotator, limit=16)
    answered = []
    for suggestion in leased:
        k = suggestion["k"]
        if k not in slices:
            continue
        if suggestion["region"] == 0:
            client.submit_annotation(
                project_id,
                suggestion["id"],
                annotator=annotator,
                answer="infection",
                points=[[8, 8, k]],
                effort_seconds=3.0,
            )
        else:
            client.submit_annotation(
                project_id, suggestion["id"], annotator=annotator, answer="background", effort_seconds=3.0
            )
        answered.append(suggestion)
    return answered


def wait_for_job(client, project_id: int, job_id: int, until, timeout: float = 90.0) -> dict:
    """Poll the job until ``until(job)`` holds; AssertionError with the job and its log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(project_id, job_id)
        if until(job):
            return job
        assert time.monotonic() < deadline, (job, client.job_log(project_id, job_id))
        time.sleep(0.1)


def finished(job: dict) -> bool:
    return job["status"] in FINISHED
