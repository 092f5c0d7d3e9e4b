"""``/projects/{p}/jobs``: start a training job, follow its progress and log, cancel it, resume it.

Kinds (:class:`covidal.service.jobs.job_config.JobKind`): ``train`` trains a 2D project's point model on the
answered regions; ``noisy-teacher`` trains a ``unet3d`` project's 3D model (a teacher on the volumes with
an expert label, pseudo-labels of the others, a student); ``clicks-to-3d`` trains a 2D project's 3D model from its
answers. Jobs run one at a time per device
(:class:`covidal.service.jobs.runner.JobRunner`), each in a child process. A job that the service was
stopped in the middle of is ``interrupted``; resuming queues it again and it continues from its last
checkpoint.
"""

from __future__ import annotations

from fastapi.responses import PlainTextResponse

from covidal.service.project import training
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import LayoutDep, SettingsDep, StoreDep
from covidal.service.schemas import JobCreate, JobOut

router = api_router("jobs")


@router.post(
    "/projects/{project_id}/jobs",
    status_code=201,
    responses={
        422: {
            "description": "an unknown kind or one that does not train the project's model, no "
            "answers or expert labels yet, a loss that needs masks, a bad option"
        }
    },
)
def start_job(project_id: int, body: JobCreate, store: StoreDep, settings: SettingsDep) -> JobOut:
    """Queue a job of ``kind`` for the project's model (it starts when the device is free)."""
    job = training.enqueue_job(store, project_id, body.kind, body.config, body.steps, settings.device)
    return JobOut.model_validate(job)


@router.get("/projects/{project_id}/jobs")
def list_jobs(project_id: int, store: StoreDep) -> list[JobOut]:
    return [JobOut.model_validate(job) for job in store.list_jobs(project_id)]


@router.get("/projects/{project_id}/jobs/{job_id}")
def get_job(project_id: int, job_id: int, store: StoreDep) -> JobOut:
    """Status, progress (step, loss, validation Dice, ETA) and the error of a failed job."""
    return JobOut.model_validate(store.get_job(project_id, job_id))


@router.get("/projects/{project_id}/jobs/{job_id}/log", response_class=PlainTextResponse)
def job_log(project_id: int, job_id: int, store: StoreDep, layout: LayoutDep) -> PlainTextResponse:
    """The job's output so far (its last MiB); empty before it starts."""
    return PlainTextResponse(training.job_log(store, layout, project_id, job_id))


@router.post(
    "/projects/{project_id}/jobs/{job_id}/cancel", responses={409: {"description": "the job already finished"}}
)
def cancel_job(project_id: int, job_id: int, store: StoreDep) -> JobOut:
    """Cancel a queued or interrupted job at once; a running one stops at its next progress report."""
    return JobOut.model_validate(store.cancel_job(project_id, job_id))


@router.post(
    "/projects/{project_id}/jobs/{job_id}/resume", responses={409: {"description": "the job is not interrupted"}}
)
def resume_job(project_id: int, job_id: int, store: StoreDep) -> JobOut:
    """Queue an interrupted job again; it continues from its last checkpoint."""
    return JobOut.model_validate(training.resume_job(store, project_id, job_id))
