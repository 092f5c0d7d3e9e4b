"""A ``covidal serve`` process killed (SIGKILL) during a noisy-teacher job's student: restarted, the job is
interrupted, and resumed it keeps the finished teacher and pseudo-labels, continues the student after its last
finished epoch, and ends with exactly the weights of the same job run without interruption."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from job_testing import finished, wait_for_job
from process_testing import kill_group, serve
from volume3d_testing import start_noisy_teacher, unet3d_project

from covidal.data.io import read_volume
from covidal.noisyteacher.run import load_model
from covidal.service.store.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and SIGKILL are POSIX")

EPOCHS, STEPS_PER_EPOCH = 20, 2  # a student long enough (a few seconds) that the kill lands in it
STEPS_PER_NETWORK = EPOCHS * STEPS_PER_EPOCH


def test_service_killed_mid_student_resumes_to_the_weights_of_an_uninterrupted_job(tmp_path):
    project_dir = tmp_path / "project"
    process, client = serve(project_dir)
    try:
        project, volumes = unet3d_project(client, tmp_path / "volumes", count=3, labelled=1)
        pid = project["id"]
        reference = start_noisy_teacher(client, pid, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH)
        assert wait_for_job(client, pid, reference["id"], finished, timeout=300)["status"] == "done"
        job = start_noisy_teacher(client, pid, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH)
        wait_for_job(
            client, pid, job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= STEPS_PER_NETWORK + 4, timeout=300
        )  # two student epochs done
    finally:
        kill_group(process)
    process, client = serve(project_dir)
    try:
        interrupted = client.get_job(pid, job["id"])
        assert interrupted["status"] == "interrupted" and interrupted["progress"]["stage"] == "student"
        assert STEPS_PER_NETWORK + 4 <= interrupted["progress"]["step"] < 2 * STEPS_PER_NETWORK, interrupted
        client.resume_job(pid, job["id"])
        done = wait_for_job(client, pid, job["id"], finished, timeout=300)
        assert done["status"] == "done" and done["progress"]["step"] == 2 * STEPS_PER_NETWORK, done
        log = client.job_log(pid, job["id"])
        assert f"teacher: already trained: {EPOCHS}/{EPOCHS} epochs" in log
        assert log.count("was labelled before") == 2
        resumed = int(re.search(r"student: resuming after epoch (\d+)/", log).group(1))
        assert 2 <= resumed < EPOCHS
    finally:
        process.terminate()
        process.wait(30)
    folders = [project_dir / "jobs" / str(j["id"]) for j in (reference, job)]
    for volume in volumes[1:]:
        first, second = (read_volume(folder / "pseudo" / f"{volume['id']}.nrrd").array for folder in folders)
        assert np.array_equal(first, second)
    uninterrupted, resumed_run = (load_model(folder / "student").model.state_dict() for folder in folders)
    assert all(torch.equal(uninterrupted[key], resumed_run[key]) for key in uninterrupted)
    with Store(project_dir) as store:
        assert store.integrity_check() == []
