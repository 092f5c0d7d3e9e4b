"""A ``noisy-teacher`` job, run by the worker process: the 3D model of a ``unet3d`` project.

The expert volumes are the project's volumes with an uploaded label; the pool is the others. Stages,
each in a folder under ``jobs/<job id>/``:

* ``teacher/``: :func:`~covidal.noisyteacher.trainer.train_3d` in mode ``supervised`` on the expert volumes;
* ``pseudo/<volume id>.nrrd``: the teacher's label of each pool volume on the volume's grid
  (:func:`~covidal.volumes.sliding_window.predict_on_source_grid`);
* ``student/``: ``train_3d`` in the job's mode on the expert volumes and the pseudo-labelled pool.

Mode ``supervised`` stops after the teacher. The last network becomes the project's current model.
The job's volumes are fixed when it first starts (``volumes.json``): volumes uploaded later are not used
by it, and a resume refuses expert labels that changed meanwhile.
Progress counts the steps of both networks; after each network, its Dice on the expert volumes (on the
training grid, pooled over the volumes: they are trained on, so it shows fit, not generalisation).

Resume: every network keeps its training state after each epoch (weights, Adam's state, summaries) and a
resumed job continues after the last finished epoch of the stage it was in, with the patch streams
replayed, so it ends with exactly the weights of an uninterrupted job. A finished network is not trained
again, and pseudo-labels already written are kept (each is written atomically).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch

from covidal.data.io import write_volume
from covidal.errors import CovidalError
from covidal.noisyteacher.run import MODEL_FILE, load_model
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.noisyteacher.student_modes import StudentMode
from covidal.noisyteacher.trainer import STATE_FILE, StepProgress, train_3d
from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig
from covidal.service.jobs.progress import JobReporter, publish_model
from covidal.service.jobs.training_data import dice_of
from covidal.service.project.layout import JobPaths, ProjectLayout
from covidal.service.project.models.volumes import case_sources
from covidal.service.store import records
from covidal.service.store.store import Store
from covidal.utils.atomic import atomic_write_json
from covidal.volumes.cases import CaseSource
from covidal.volumes.preprocess import PreparedCase, prepare_case, prepare_cases
from covidal.volumes.sliding_window import (
    FOREGROUND_THRESHOLD,
    predict_on_source_grid,
    predict_probability,
)

VALIDATION_FILE = "validation.json"
VOLUMES_FILE = "volumes.json"


class Stage(StrEnum):
    """The parts of a noisy-teacher job, in order (the ``stage`` of its progress)."""

    TEACHER = "teacher"
    PSEUDO_LABEL = "pseudo-label"
    STUDENT = "student"


@dataclass(frozen=True)
class NoisyTeacherPaths:
    """The stage folders of a job (see the module docstring)."""

    job: JobPaths

    @property
    def teacher(self) -> Path:
        return self.job.stage("teacher")

    @property
    def pseudo(self) -> Path:
        return self.job.stage("pseudo")

    @property
    def student(self) -> Path:
        return self.job.stage("student")

    def pseudo_label(self, volume_id: int) -> Path:
        return self.pseudo / f"{int(volume_id)}.nrrd"

    @property
    def volumes(self) -> Path:
        return self.job.folder / VOLUMES_FILE


@dataclass(frozen=True)
class ProjectVolumes3D:
    """A project's volumes split for 3D training: ``expert`` with their ``labels`` (by volume id), and the
    unlabelled ``pool``, each by volume id."""

    expert: list[records.Volume]
    labels: dict[int, records.Label]
    pool: list[records.Volume]

    def label_files(self, store: Store) -> dict[int, Path]:
        return {volume_id: store.files.path(label.path) for volume_id, label in self.labels.items()}


def project_volumes_3d(store: Store, project_id: int) -> ProjectVolumes3D:
    """The project's volumes with an expert label, their labels, and the others."""
    labels = {label.volume_id: label for label in store.list_labels(project_id)}
    volumes = store.list_volumes(project_id)
    return ProjectVolumes3D([v for v in volumes if v.id in labels], labels, [v for v in volumes if v.id not in labels])


def job_volumes(
    store: Store, project_id: int, record: Path, check: Callable[[ProjectVolumes3D], None]
) -> ProjectVolumes3D:
    """The job's volumes: the project's now, written to ``record`` at the job's first start (after ``check``,
    which raises when the job cannot run on them); at a resume, the recorded ones, whose expert labels must be
    unchanged.

    Raises:
        CovidalError: as ``check``, or an expert label replaced since the job started.
    """
    current = project_volumes_3d(store, project_id)
    if not record.is_file():
        check(current)
        atomic_write_json(
            record,
            {
                "expert": {str(v.id): current.labels[v.id].sha256 for v in current.expert},
                "pool": [v.id for v in current.pool],
            },
        )
        return current
    recorded = json.loads(record.read_text())
    changed = [
        int(v)
        for v, sha256 in recorded["expert"].items()
        if int(v) not in current.labels or current.labels[int(v)].sha256 != sha256
    ]
    if changed:
        raise CovidalError(
            f"the expert label of volume(s) {changed} was replaced since this job started, and its "
            "checkpoints learnt from the old one: start a new job"
        )
    by_id = {volume.id: volume for volume in store.list_volumes(project_id)}
    expert = [by_id[int(v)] for v in recorded["expert"]]
    return ProjectVolumes3D(expert, {v.id: current.labels[v.id] for v in expert}, [by_id[v] for v in recorded["pool"]])


def check_volumes(project_id: int, volumes: ProjectVolumes3D, config: NoisyTeacherJobConfig) -> None:
    """Raises CovidalError (saying what to upload) when the project lacks the volumes the job needs."""
    if not volumes.expert:
        raise CovidalError(
            f"project {project_id} has no volume with an expert label yet: upload one with "
            f"PUT /projects/{project_id}/volumes/<volume id>/label"
        )
    if config.trains_student and not volumes.pool:
        raise CovidalError(
            f"every volume of project {project_id} has an expert label, so there is nothing to "
            f"pseudo-label for a {config.mode.value!r} student: upload unlabelled volumes, or use "
            f"mode 'supervised' (the teacher alone)"
        )


def run_noisy_teacher_job(
    store: Store, project_dir: Path, project: records.Project, job: records.Job, reporter: JobReporter
) -> None:
    """Train (or resume) the job's teacher, pseudo-labels and student, and publish the last network.

    Raises:
        CovidalError: a bad config, no expert volume, no pool for a student, an unreadable volume or label.
        ParentGone, Cancelled: as :meth:`JobReporter.report`.
    """
    config = NoisyTeacherJobConfig.from_dict(job.config)
    paths = NoisyTeacherPaths(JobPaths(project_dir, job.id))
    volumes = job_volumes(store, project.id, paths.volumes, lambda found: check_volumes(project.id, found, config))
    device = job.device or "cpu"
    teacher = config.train_config(StudentMode.SUPERVISED, device)
    steps = config.steps_per_network * (2 if config.trains_student else 1)
    print(
        f"job {job.id}: {len(volumes.expert)} expert volume(s) {[v.id for v in volumes.expert]}, pool "
        f"{[v.id for v in volumes.pool]}, mode {config.mode.value}, {steps} steps on {device}",
        flush=True,
    )
    with case_sources(store, volumes.expert, volumes.label_files(store)) as expert_sources:
        expert = prepare_cases(expert_sources, teacher.spacing, teacher.window)
        stage = StageRunner(reporter, expert, steps)
        dice = stage.train(Stage.TEACHER, teacher, (), paths.teacher, first_step=0, val_dice=None)
        final = paths.teacher
        if config.trains_student:
            with case_sources(store, volumes.pool) as pool_sources:
                _pseudo_label(paths, volumes.pool, pool_sources, teacher, reporter)
                labelled = [
                    replace(source, label=paths.pseudo_label(volume.id))
                    for volume, source in zip(volumes.pool, pool_sources, strict=True)
                ]
                pseudo = prepare_cases(labelled, teacher.spacing, teacher.window)
            student = config.train_config(config.mode, device)
            dice = stage.train(
                Stage.STUDENT, student, pseudo, paths.student, first_step=config.steps_per_network, val_dice=dice
            )
            final = paths.student
    publish_model(final / MODEL_FILE, ProjectLayout(project_dir).current_model(project.id))
    atomic_write_json(
        paths.job.result,
        {
            "job_id": job.id,
            "mode": config.mode.value,
            "steps": steps,
            "val_dice": dice,
            "expert_volumes": [v.id for v in volumes.expert],
            "pool_volumes": [v.id for v in volumes.pool] if config.trains_student else [],
            "finished_at": time.time(),
        },
    )


class StageRunner:
    """Trains one network of a 3D job, with progress reports, and scores it on the expert volumes.

    Args:
        expert: the expert-labelled volumes every network trains on.
        steps: the job's steps in all (its progress runs to it).
        answered: volumes labelled by the clinician's answers (a 'clicks-to-3d' job's), trained on by the point loss.
    """

    def __init__(
        self, reporter: JobReporter, expert: list[PreparedCase], steps: int, answered: list[PreparedCase] | None = None
    ) -> None:
        self.reporter, self.expert, self.steps, self.answered = reporter, expert, steps, answered or []

    def train(
        self,
        stage: Stage,
        config: Train3DConfig,
        pseudo: list[PreparedCase] | tuple[()],
        folder: Path,
        first_step: int,
        val_dice: float | None,
    ) -> float | None:
        """Train (or resume, or find finished) the network in ``folder``; returns its Dice on the expert volumes.

        Args:
            first_step: the job's steps before this network's (its progress continues from there).
            val_dice: the Dice to report while it trains (the previous network's).
        """
        self.reporter.restart_clock()

        def on_step(progress: StepProgress) -> None:
            record = progress.record
            self.reporter.report(
                first_step + progress.step,
                self.steps,
                record.clean_loss + (record.pseudo_loss or 0),
                val_dice,
                stage=stage.value,
                checkpoint=folder / STATE_FILE if progress.epoch_done else None,
            )

        train_3d(
            config,
            self.expert,
            folder,
            pseudo,
            log=lambda line: print(f"{stage.value}: {line}", flush=True),
            on_step=on_step,
            resumable=True,
            answered=self.answered,
        )
        dice = _expert_dice(folder, self.expert, config.device.value)
        print(f"{stage.value}: Dice on the expert volumes {'-' if dice is None else f'{dice:.4f}'}", flush=True)
        self.reporter.amend(
            epoch=first_step + config.epochs * config.steps_per_epoch,
            epochs=self.steps,
            val_dice=dice,
            stage=stage.value,
        )
        return dice


def _pseudo_label(
    paths: NoisyTeacherPaths,
    pool: list[records.Volume],
    sources: list[CaseSource],
    teacher: Train3DConfig,
    reporter: JobReporter,
) -> None:
    """Write the teacher's label of every pool volume that has none yet (one volume in memory at a time)."""
    reporter.amend(stage=Stage.PSEUDO_LABEL.value, eta_seconds=None)
    loaded = load_model(paths.teacher, torch.device(teacher.device.value))
    config = loaded.config
    for number, (volume, source) in enumerate(zip(pool, sources, strict=True), start=1):
        target = paths.pseudo_label(volume.id)
        if target.is_file():
            print(f"pseudo-label {number}/{len(pool)}: volume {volume.id} was labelled before", flush=True)
            continue
        prepared = prepare_case(source, config.spacing, config.window)
        label, _ = predict_on_source_grid(
            loaded.model, prepared, config.sliding_window, torch.device(teacher.device.value), config.amp
        )
        write_volume(label, target)
        print(
            f"pseudo-label {number}/{len(pool)}: volume {volume.id}, {int(label.array.sum())} voxels of infection",
            flush=True,
        )
        reporter.amend(stage=Stage.PSEUDO_LABEL.value)  # a cancel is seen between volumes


def _expert_dice(folder: Path, expert: list[PreparedCase], device: str) -> float | None:
    """Dice of the network in ``folder`` on the expert volumes' training grids (tp, fp, fn pooled over them),
    or None when neither prediction nor labels have foreground; computed once and kept in the folder."""
    path = folder / VALIDATION_FILE
    if path.is_file():
        return json.loads(path.read_text())["val_dice"]
    loaded = load_model(folder, torch.device(device))
    tp = fp = fn = 0
    for case in expert:
        probability = predict_probability(
            loaded.model, case.image, loaded.config.sliding_window, torch.device(device), loaded.config.amp
        )
        predicted, truth = probability >= FOREGROUND_THRESHOLD, np.asarray(case.label, dtype=bool)
        tp += int(np.sum(predicted & truth))
        fp += int(np.sum(predicted & ~truth))
        fn += int(np.sum(~predicted & truth))
    dice = dice_of(tp, fp, fn)
    atomic_write_json(path, {"val_dice": dice})
    return dice
