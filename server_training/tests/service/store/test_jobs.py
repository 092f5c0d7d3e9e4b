"""Training jobs: one running per device, others queued; progress; cancel; interrupted by a restart, then resumed."""

from __future__ import annotations

import sqlite3

import pytest
from store_testing import T0

from covidal.service.store.errors import Conflict, Invalid, NotFound
from covidal.service.store.records import JobProgress, JobStatus
from covidal.service.store.store import Store


def enqueue(store, project, when, **config):
    return store.enqueue_job(project.id, "train", {"epochs": 3, **config}, log_path=f"logs/{when}.log", now=when)


def test_a_queued_job_round_trips(opened):
    store, project, _, _ = opened
    job = enqueue(store, project, T0, lr=0.01)
    assert (job.status, job.kind, job.config, job.log_path, job.created_at) == (
        JobStatus.QUEUED,
        "train",
        {"epochs": 3, "lr": 0.01},
        f"logs/{T0}.log",
        T0,
    )
    assert (job.device, job.progress, job.started_at, job.cancel_requested) == (None, None, None, False)
    assert store.get_job(project.id, job.id) == job and store.list_jobs(project.id) == [job]


def test_one_job_runs_per_device_oldest_first(opened):
    store, project, _, _ = opened
    second, first, third = (enqueue(store, project, T0 + delay) for delay in (2, 1, 3))
    running = store.claim_next_job("cuda:0", now=T0 + 10)
    assert (running.id, running.status, running.device, running.started_at) == (
        first.id,
        JobStatus.RUNNING,
        "cuda:0",
        T0 + 10,
    )
    assert store.claim_next_job("cuda:0") is None  # the device is busy: the others stay queued
    assert store.claim_next_job("cuda:1").id == second.id
    store.finish_job(first.id, JobStatus.DONE, now=T0 + 20)
    assert store.claim_next_job("cuda:0").id == third.id
    assert store.claim_next_job("cuda:0") is None and store.claim_next_job("cuda:2") is None  # nothing queued


def test_the_database_refuses_two_running_jobs_on_one_device(opened):
    store, project, _, _ = opened
    jobs = [enqueue(store, project, T0 + n) for n in range(2)]
    store.claim_next_job("cuda:0")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"), store.database.transaction() as db:
        db.execute("UPDATE jobs SET status = 'running', device = 'cuda:0' WHERE id = ?", (jobs[1].id,))


def test_progress_and_checkpoints_are_recorded_while_running(opened):
    store, project, _, _ = opened
    job = enqueue(store, project, T0)
    store.claim_next_job("cpu")
    progress = JobProgress(epoch=1, epochs=3, loss=0.5, val_dice=0.25, eta_seconds=40)
    store.update_job_progress(job.id, progress, checkpoint_path="checkpoints/1/epoch1.pt")
    updated = store.update_job_progress(job.id, JobProgress(epoch=2, epochs=3))  # keeps the last checkpoint
    assert (updated.progress, updated.checkpoint_path) == (JobProgress(2, 3), "checkpoints/1/epoch1.pt")
    with Store(store.root) as reopened:
        assert reopened.get_job(project.id, job.id).progress == JobProgress(2, 3)
    with pytest.raises(Invalid, match="job progress must be a JobProgress"):
        store.update_job_progress(job.id, {"epoch": 3})


@pytest.mark.parametrize(
    "status, error", [(JobStatus.DONE, None), (JobStatus.FAILED, "CUDA out of memory"), ("cancelled", None)]
)
def test_a_running_job_finishes(opened, status, error):
    store, project, _, _ = opened
    job = enqueue(store, project, T0)
    store.claim_next_job("cpu")
    finished = store.finish_job(job.id, status, error=error, now=T0 + 9)
    assert (finished.status, finished.error, finished.finished_at) == (JobStatus(status), error, T0 + 9)


def test_only_running_jobs_take_progress_or_finish(opened):
    store, project, _, _ = opened
    job = enqueue(store, project, T0)
    message = f"job {job.id} is queued, but this needs a job that is running"
    with pytest.raises(Conflict, match=message):
        store.update_job_progress(job.id, JobProgress(epoch=1))
    with pytest.raises(Conflict, match=message):
        store.finish_job(job.id, JobStatus.DONE)
    with pytest.raises(ValueError, match="a job finishes as done, failed or cancelled, not 'interrupted'"):
        store.finish_job(job.id, JobStatus.INTERRUPTED)
    with pytest.raises(NotFound, match="job 99 does not exist"):
        store.update_job_progress(99, JobProgress(epoch=1))


def test_cancelling_a_queued_job_is_immediate_and_a_running_one_is_asked_to_stop(opened):
    store, project, _, _ = opened
    running, queued = enqueue(store, project, T0), enqueue(store, project, T0 + 1)
    store.claim_next_job("cpu")
    assert store.cancel_job(project.id, queued.id, now=T0 + 5).status is JobStatus.CANCELLED
    asked = store.cancel_job(project.id, running.id)
    assert (asked.status, asked.cancel_requested) == (JobStatus.RUNNING, True)
    assert store.update_job_progress(running.id, JobProgress(epoch=1)).cancel_requested  # the runner learns it
    assert store.finish_job(running.id, JobStatus.CANCELLED).status is JobStatus.CANCELLED
    with pytest.raises(
        Conflict, match=f"job {running.id} is cancelled, but this needs a job that is queued or interrupted"
    ):
        store.cancel_job(project.id, running.id)


def test_a_restart_interrupts_running_jobs_and_a_resumed_job_keeps_its_checkpoint_and_place(opened):
    store, project, _, _ = opened
    job = enqueue(store, project, T0)
    store.claim_next_job("cuda:0")
    store.update_job_progress(job.id, JobProgress(epoch=2, epochs=5), checkpoint_path="checkpoints/1/epoch2.pt")
    later = enqueue(store, project, T0 + 100)
    store.close()
    with Store(store.root) as restarted:
        [interrupted] = restarted.recover(now=T0 + 200).interrupted_jobs
        assert (interrupted.id, interrupted.status, interrupted.finished_at) == (
            job.id,
            JobStatus.INTERRUPTED,
            T0 + 200,
        )
        assert interrupted.error == "the service stopped while the job was running"
        assert restarted.claim_next_job("cuda:0").id == later.id  # an interrupted job waits to be resumed
        restarted.finish_job(later.id, JobStatus.DONE)
        resumed = restarted.requeue_job(project.id, job.id)
        assert (resumed.status, resumed.error, resumed.device) == (JobStatus.QUEUED, None, None)
        claimed = restarted.claim_next_job("cuda:0")
        assert (claimed.id, claimed.checkpoint_path, claimed.progress) == (
            job.id,
            "checkpoints/1/epoch2.pt",
            JobProgress(2, 5),
        )
        with pytest.raises(Conflict, match=f"job {job.id} is running, but this needs a job that is interrupted"):
            restarted.requeue_job(project.id, job.id)


def test_a_restart_cancels_a_running_job_whose_cancel_was_asked(opened):
    store, project, _, _ = opened
    job = enqueue(store, project, T0)
    store.claim_next_job("cpu")
    store.cancel_job(project.id, job.id)
    assert [j.status for j in store.mark_running_jobs_interrupted()] == [JobStatus.CANCELLED]
    assert store.mark_running_jobs_interrupted() == []


def test_jobs_of_another_project_are_not_found_and_bad_jobs_are_refused(project_opener):
    store, project, _, _ = project_opener()
    other = project_opener("other", root=store.root)[1]
    job = enqueue(store, project, T0)
    for call in (store.get_job, store.cancel_job, store.requeue_job):
        with pytest.raises(NotFound, match=f"job {job.id} is not part of project {other.id}"):
            call(other.id, job.id)
    with pytest.raises(NotFound, match="project 99 does not exist"):
        store.enqueue_job(99, "train", {})
    with pytest.raises(Invalid, match="job config must be a JSON object, got list"):
        store.enqueue_job(project.id, "train", [])
    with pytest.raises(Invalid, match="job kind must be 1 to 50 printable characters"):
        store.enqueue_job(project.id, "", {})
    assert store.list_jobs(project.id) == [job]
