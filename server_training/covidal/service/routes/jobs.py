"""``/projects/{p}/jobs``: start a training job, follow its progress and log, cancel it, resume it.

Jobs run one at a time per device (:class:`covidal.service.jobs.runner.JobRunner`),
each in a child process. A job that the service was stopped in the middle of is
``interrupted``; resuming queues it again and it continues from its last checkpoint.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.service.jobs.annotations import answered_regions
from covidal.service.jobs.config import TRAIN_KIND, JobPaths, TrainJobConfig
from covidal.service.routes.deps import SettingsDep, StoreDep
from covidal.service.schemas import JobCreate, JobOut, job_out
from covidal.service.store.errors import Conflict, Invalid
from covidal.service.store.records import JobStatus

router = APIRouter(tags=["jobs"])
MAX_LOG_BYTES = 1 << 20


@router.post("/projects/{project_id}/jobs", status_code=201,
             responses={422: {"description": "no answers yet, a 3D project, a loss that needs masks, a bad option"}})
def start_job(project_id: int, body: JobCreate, store: StoreDep) -> JobOut:
    """Queue a training job of the project's 2D model on every answered region (it starts when the device is free)."""
    project = store.get_project(project_id)
    if body.kind != TRAIN_KIND:
        raise Invalid(f"job kind must be {TRAIN_KIND!r}, got {body.kind!r}")
    if project.model_kind not in ("unet", "fcn8"):
        raise Invalid(f"project {project_id} uses the {project.model_kind!r} model; jobs train the 2D models "
                      "(unet, fcn8) for now")
    if project.loss == LossName.FULL:
        raise Invalid("the 'full' loss needs complete masks, but answers give background regions and points")
    if not answered_regions(store, project_id):
        raise Invalid(f"project {project_id} has no answered regions yet: answer some suggestions before training")
    overrides = {**body.config, **({} if body.steps is None else {"steps": body.steps})}
    try:
        config = TrainJobConfig.for_project(project.settings, overrides)
    except CovidalError as error:
        raise Invalid(str(error)) from None
    return job_out(store.enqueue_job(project_id, TRAIN_KIND, config.to_dict()))


@router.get("/projects/{project_id}/jobs")
def list_jobs(project_id: int, store: StoreDep) -> list[JobOut]:
    return [job_out(job) for job in store.list_jobs(project_id)]


@router.get("/projects/{project_id}/jobs/{job_id}")
def get_job(project_id: int, job_id: int, store: StoreDep) -> JobOut:
    """Status, progress (step, loss, validation Dice, ETA) and the error of a failed job."""
    return job_out(store.get_job(project_id, job_id))


@router.get("/projects/{project_id}/jobs/{job_id}/log", response_class=PlainTextResponse)
def job_log(project_id: int, job_id: int, store: StoreDep, settings: SettingsDep) -> PlainTextResponse:
    """The job's output so far (its last MiB); empty before it starts."""
    store.get_job(project_id, job_id)
    path = JobPaths(settings.project_dir, job_id).log
    if not path.is_file():
        return PlainTextResponse("")
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - MAX_LOG_BYTES))
        return PlainTextResponse(handle.read().decode("utf-8", errors="replace"))


@router.post("/projects/{project_id}/jobs/{job_id}/cancel",
             responses={409: {"description": "the job already finished"}})
def cancel_job(project_id: int, job_id: int, store: StoreDep) -> JobOut:
    """Cancel a queued or interrupted job at once; a running one stops at its next progress report."""
    return job_out(store.cancel_job(project_id, job_id))


@router.post("/projects/{project_id}/jobs/{job_id}/resume",
             responses={409: {"description": "the job is not interrupted"}})
def resume_job(project_id: int, job_id: int, store: StoreDep) -> JobOut:
    """Queue an interrupted job again; it continues from its last checkpoint."""
    job = store.get_job(project_id, job_id)
    if job.status is not JobStatus.INTERRUPTED:
        raise Conflict(f"job {job_id} is {job.status.value}; only an interrupted job can be resumed")
    return job_out(store.requeue_job(project_id, job_id))
