"""``/projects/{p}/jobs``: start a training job, follow its progress and log, cancel it, resume it.

Kinds (:class:`covidal.service.jobs.config.JobKind`): ``train`` trains a 2D project's point model on the
answered regions; ``noisy-teacher`` trains a ``unet3d`` project's 3D model (a teacher on the volumes with
an expert label, pseudo-labels of the others, a student). Jobs run one at a time per device
(:class:`covidal.service.jobs.runner.JobRunner`), each in a child process. A job that the service was
stopped in the middle of is ``interrupted``; resuming queues it again and it continues from its last
checkpoint.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import PlainTextResponse

from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.service.jobs.annotations import answered_regions
from covidal.service.jobs.config import JobKind, JobPaths, TrainJobConfig
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import SettingsDep, StoreDep
from covidal.service.schemas import JobCreate, JobOut, job_out
from covidal.service.store.errors import Conflict, Invalid
from covidal.service.store.records import JobStatus, Project
from covidal.service.store.store import Store

router = api_router("jobs")
MAX_LOG_BYTES = 1 << 20


@router.post("/projects/{project_id}/jobs", status_code=201,
             responses={422: {"description": "an unknown kind or one that does not train the project's model, no "
                                             "answers or expert labels yet, a loss that needs masks, a bad option"}})
def start_job(project_id: int, body: JobCreate, store: StoreDep) -> JobOut:
    """Queue a job of ``kind`` for the project's model (it starts when the device is free)."""
    project = store.get_project(project_id)
    try:
        kind = JobKind.parse(body.kind)
        kind.check_model_kind(project_id, project.model_kind)
        config = _train_config(store, project, body) if kind is JobKind.TRAIN else _noisy_teacher_config(
            store, project, body)
    except CovidalError as error:
        raise Invalid(str(error)) from None
    return job_out(store.enqueue_job(project_id, kind.value, config))


def _train_config(store: Store, project: Project, body: JobCreate) -> dict[str, Any]:
    """The options of a ``train`` job of the project. CovidalError when it cannot train yet or a bad option."""
    if project.loss == LossName.FULL:
        raise CovidalError("the 'full' loss needs complete masks, but answers give background regions and points")
    if not answered_regions(store, project.id):
        raise CovidalError(f"project {project.id} has no answered regions yet: answer some suggestions before "
                           "training")
    overrides = {**body.config, **({} if body.steps is None else {"steps": body.steps})}
    return TrainJobConfig.for_project(project.settings, overrides).to_dict()


def _noisy_teacher_config(store: Store, project: Project, body: JobCreate) -> dict[str, Any]:
    """The options of a ``noisy-teacher`` job of the project. CovidalError when it lacks volumes or a bad option."""
    # The 3D training modules load only once a 3D job is started.
    from covidal.noisyteacher.weighting import StudentMode
    from covidal.service.jobs.noisy_teacher import check_volumes, project_volumes_3d
    from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig

    if body.steps is not None:
        raise CovidalError("'steps' is an option of 'train' jobs; a 'noisy-teacher' job trains config epochs x "
                           "steps_per_epoch steps per network")
    config = NoisyTeacherJobConfig.for_project(project.settings, body.config)
    for mode in (StudentMode.SUPERVISED, config.mode):
        config.train_config(mode, "cpu")  # refuses what Train3DConfig refuses; the device comes at the start
    check_volumes(project.id, project_volumes_3d(store, project.id), config)
    return config.to_dict()


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
