"""A ``covidal serve`` process killed (SIGKILL) during a training job: restarted, the job is interrupted and resumes
from its last checkpoint to the end, and the store is intact."""

from __future__ import annotations

import os

import pytest
from job_testing import answer_slices, finished, tiny_project, wait_for_job
from process_testing import kill_group, serve

from covidal.service.store.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and SIGKILL are POSIX")


def test_service_killed_mid_job_restarts_with_a_resumable_job(tmp_path):
    project_dir = tmp_path / "project"
    process, client = serve(project_dir)
    try:
        project, _ = tiny_project(client, tmp_path / "lesion.nrrd", checkpoint_every=10)
        answer_slices(client, project["id"], {0})
        job = client.start_training(project["id"], steps=100)
        wait_for_job(client, project["id"], job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 10)
    finally:
        kill_group(process)
    process, client = serve(project_dir)
    try:
        interrupted = client.get_job(project["id"], job["id"])
        assert interrupted["status"] == "interrupted" and "stopped" in interrupted["error"]
        stopped_at = interrupted["progress"]["step"]
        assert 10 <= stopped_at < 100
        assert client.resume_job(project["id"], job["id"])["status"] == "queued"
        done = wait_for_job(client, project["id"], job["id"], finished, timeout=120)
        assert done["status"] == "done" and done["progress"]["step"] == 100, done
        log = client.job_log(project["id"], job["id"])
        resumed = int(log.split("resuming from")[1].split("after ")[1].split()[0])
        assert 10 <= resumed <= stopped_at and resumed % 10 == 0  # the last checkpoint before the kill
        assert client.learning_curve(project["id"])[0]["job_id"] == job["id"]
    finally:
        process.terminate()
        process.wait(30)
    with Store(project_dir) as store:
        assert store.integrity_check() == []
