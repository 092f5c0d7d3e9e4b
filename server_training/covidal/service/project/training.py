"""A project's training jobs: the options a new job of a kind gets from the project (refused when the project
cannot train that way yet), and a job's log."""

from __future__ import annotations

from typing import Any

from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.service.defaults import clicks_to_3d_defaults
from covidal.service.jobs.job_config import JobKind, TrainJobConfig
from covidal.service.jobs.training_data import answered_regions
from covidal.service.project.layout import ProjectLayout
from covidal.service.store.errors import Conflict
from covidal.service.store.records import Job, JobStatus, Project
from covidal.service.store.store import Store

MAX_LOG_BYTES = 1 << 20


def enqueue_job(
    store: Store, project_id: int, kind: str, config: dict[str, Any], steps: int | None, device: str = "cpu"
) -> Job:
    """Queue a job of ``kind`` for the project's model with the project's settings overridden by ``config`` (and
    ``steps``, a 'train' job's shorthand); it starts when the device is free. A 'clicks-to-3d' job starts from the
    options served for ``device`` (:func:`~covidal.service.defaults.clicks_to_3d_defaults`).

    Raises:
        NotFound: an unknown project. CovidalError: an unknown kind or one that does not train the project's
            model, no answers or expert labels yet, a loss that needs masks, a bad option.
    """
    project = store.get_project(project_id)
    job_kind = JobKind.parse(kind)
    job_kind.check_model_kind(project_id, project.model_kind)
    if job_kind is JobKind.TRAIN:
        options = _train_config(store, project, {**config, **({} if steps is None else {"steps": steps})})
    else:
        if steps is not None:
            raise CovidalError(
                f"'steps' is an option of 'train' jobs; a {job_kind.value!r} job trains config epochs x "
                "steps_per_epoch steps per network"
            )
        if job_kind is JobKind.CLICKS_TO_3D:
            options = _clicks_to_3d_config(store, project, {**clicks_to_3d_defaults(device), **config})
        else:
            options = _noisy_teacher_config(store, project, config)
    return store.enqueue_job(project_id, job_kind.value, options)


def resume_job(store: Store, project_id: int, job_id: int) -> Job:
    """Queue an interrupted job again; it continues from its last checkpoint.

    Raises:
        NotFound: an unknown job. Conflict: the job is not interrupted.
    """
    job = store.get_job(project_id, job_id)
    if job.status is not JobStatus.INTERRUPTED:
        raise Conflict(f"job {job_id} is {job.status.value}; only an interrupted job can be resumed")
    return store.requeue_job(project_id, job_id)


def job_log(store: Store, layout: ProjectLayout, project_id: int, job_id: int) -> str:
    """The job's output so far (its last MiB); empty before it starts."""
    store.get_job(project_id, job_id)
    path = layout.job(job_id).log
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - MAX_LOG_BYTES))
        return handle.read().decode("utf-8", errors="replace")


def _train_config(store: Store, project: Project, overrides: dict[str, Any]) -> dict[str, Any]:
    """The options of a ``train`` job of the project. CovidalError when it cannot train yet or a bad option."""
    if project.loss == LossName.FULL:
        raise CovidalError("the 'full' loss needs complete masks, but answers give background regions and points")
    if not answered_regions(store, project.id):
        raise CovidalError(f"project {project.id} has no answered regions yet: answer some suggestions before training")
    return TrainJobConfig.for_project(project.settings, overrides).to_dict()


def _noisy_teacher_config(store: Store, project: Project, overrides: dict[str, Any]) -> dict[str, Any]:
    """The options of a ``noisy-teacher`` job of the project. CovidalError when it lacks volumes or a bad option."""
    # The 3D training modules load only once a 3D job is started.
    from covidal.noisyteacher.student_modes import StudentMode
    from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig
    from covidal.service.jobs.noisy_teacher_job import check_volumes, project_volumes_3d

    config = NoisyTeacherJobConfig.for_project(project.settings, overrides)
    for mode in (StudentMode.SUPERVISED, config.mode):
        config.train_config(mode, "cpu")  # refuses what Train3DConfig refuses; the device comes at the start
    check_volumes(project.id, project_volumes_3d(store, project.id), config)
    return config.to_dict()


def _clicks_to_3d_config(store: Store, project: Project, options: dict[str, Any]) -> dict[str, Any]:
    """The options of a ``clicks-to-3d`` job of the project. CovidalError when it cannot train one yet."""
    from covidal.service.jobs.clicks_to_3d_job import check_2d_model, check_clicks_volumes
    from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig
    from covidal.service.jobs.noisy_teacher_job import project_volumes_3d

    config = NoisyTeacherJobConfig.from_dict(options)
    config.train_config(config.mode, "cpu")  # refuses what Train3DConfig refuses; the device comes at the start
    check_2d_model(ProjectLayout(store.root).current_model(project.id), project.id)
    answers = len(answered_regions(store, project.id))
    check_clicks_volumes(project.id, project_volumes_3d(store, project.id), answers, config.trains_student)
    return config.to_dict()
