"""A ``clicks-to-3d`` job, run by the worker process: a 2D project's 3D model, trained from what the clinician gave.

The 2D point model trained on the clicks is the teacher: its lung-restricted prediction of every volume without an
expert label is that volume's pseudo-label. The clean signal is the clinician's own: the answered regions of every
volume (infection clicks and background answers, by the point loss) and the expert label volumes uploaded for the
project (a corrected segmentation sent from Slicer). The student (:func:`~covidal.noisyteacher.trainer.train_3d`
in the job's mode) trains on both; the re-weighting modes weigh each pseudo-labelled patch by how its gradient
agrees with the clean one, so they work before any volume is delineated in full. Mode ``supervised`` trains on the
clean signal alone. Files under ``jobs/<job id>/``:

* ``model2d.pt``: the project's 2D model when the job first started (a resume pseudo-labels with the same one);
* ``volumes.json``: the expert and pool volumes and the number of answers, fixed at the first start;
* ``pseudo/<volume id>.nrrd``: the 2D model's label of each pool volume, on the volume's grid;
* ``student/``: the 3D run (resumable after every epoch, as a noisy-teacher job's networks).

The student becomes the project's 3D model (``models/<project>/current-3d/model.pt``); the project's 2D model is
untouched.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from covidal.data.io import read_volume, write_volume
from covidal.data.window import ImageKind
from covidal.errors import CovidalError
from covidal.noisyteacher.run import MODEL_FILE
from covidal.regions.grid import RegionGrid
from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig
from covidal.service.jobs.noisy_teacher_job import (
    NoisyTeacherPaths,
    ProjectVolumes3D,
    Stage,
    StageRunner,
    job_volumes,
)
from covidal.service.jobs.progress import JobReporter, publish_model
from covidal.service.jobs.training_data import answer_volume, answered_regions
from covidal.service.project.layout import JobPaths, ProjectLayout
from covidal.service.project.models.slices import load_model, predict_labels
from covidal.service.project.models.volumes import case_name, case_sources
from covidal.service.store import records
from covidal.service.store.store import Store
from covidal.training.background_prior import BackgroundPrior, certain_background_thresholds
from covidal.utils.atomic import atomic_write, atomic_write_json
from covidal.volumes.answer_labels import answers_on_grid, with_certain_background
from covidal.volumes.lungs import find_lungs, restrict_to_lungs
from covidal.volumes.preprocess import PreparedCase, prepare_case, prepare_cases

MODEL_2D_FILE = "model2d.pt"
ANSWERS_FILE = "answers.json"


def check_clicks_volumes(project_id: int, volumes: ProjectVolumes3D, answers: int, trains_student: bool) -> None:
    """Raises CovidalError (saying what to do) when the project cannot train a 3D model from its answers yet."""
    if not answers and not volumes.expert:
        raise CovidalError(
            f"project {project_id} has no answered regions and no expert label volume: answer some suggestions "
            "(or upload a corrected segmentation as an expert label) first"
        )
    if trains_student and not volumes.pool:
        raise CovidalError(
            f"every volume of project {project_id} has an expert label, so there is nothing to pseudo-label: use "
            "mode 'supervised'"
        )


def run_clicks_to_3d_job(
    store: Store, project_dir: Path, project: records.Project, job: records.Job, reporter: JobReporter
) -> None:
    """Pseudo-label the pool with the 2D model, train (or resume) the 3D student, and publish it as the 3D model.

    Raises:
        CovidalError: a bad config, no 2D model, no answers nor expert labels, an unreadable volume or label.
        ParentGone, Cancelled: as :meth:`JobReporter.report`.
    """
    config = NoisyTeacherJobConfig.from_dict(job.config)
    paths = NoisyTeacherPaths(JobPaths(project_dir, job.id))
    layout = ProjectLayout(project_dir)
    model_2d = _fixed_2d_model(paths.job.folder, layout.current_model(project.id), project.id)
    answers = _fixed_answers(store, project.id, paths.job.folder / ANSWERS_FILE)
    volumes = job_volumes(
        store,
        project.id,
        paths.volumes,
        lambda found: check_clicks_volumes(project.id, found, len(answers), config.trains_student),
    )
    device = job.device or "cpu"
    student = config.train_config(config.mode, device)
    answered_ids = sorted({a.volume_id for a in answers} - {v.id for v in volumes.expert})
    print(
        f"job {job.id}: {len(answers)} answers on volume(s) {answered_ids}, expert volume(s) "
        f"{[v.id for v in volumes.expert]}, pool {[v.id for v in volumes.pool] if config.trains_student else []}, "
        f"mode {config.mode.value}, {config.steps_per_network} steps on {device}",
        flush=True,
    )
    grid = RegionGrid(project.grid_k)
    prior = BackgroundPrior(project.settings.get("background_prior", BackgroundPrior.NONE.value))
    by_id = {volume.id: volume for volume in store.list_volumes(project.id)}
    with case_sources(store, volumes.expert, volumes.label_files(store)) as expert_sources:
        expert = prepare_cases(expert_sources, student.spacing, student.window)
    with case_sources(store, [by_id[v] for v in answered_ids]) as answered_sources:
        answered = [
            _answered_case(source, answers, volume_id, grid, student, prior)
            for volume_id, source in zip(answered_ids, answered_sources, strict=True)
        ]
    pseudo: list[PreparedCase] = []
    if config.trains_student:
        with case_sources(store, volumes.pool) as pool_sources:
            _pseudo_label(paths, volumes.pool, pool_sources, model_2d, device, reporter)
            labelled = [
                replace(source, label=paths.pseudo_label(volume.id))
                for volume, source in zip(volumes.pool, pool_sources, strict=True)
            ]
            pseudo = prepare_cases(labelled, student.spacing, student.window)
    runner = StageRunner(reporter, expert, config.steps_per_network, answered)
    dice = runner.train(Stage.STUDENT, student, pseudo, paths.student, first_step=0, val_dice=None)
    publish_model(paths.student / MODEL_FILE, layout.current_model_3d(project.id))
    atomic_write_json(
        paths.job.result,
        {
            "job_id": job.id,
            "mode": config.mode.value,
            "steps": config.steps_per_network,
            "val_dice": dice,
            "answers": len(answers),
            "answered_volumes": answered_ids,
            "expert_volumes": [v.id for v in volumes.expert],
            "pool_volumes": [v.id for v in volumes.pool] if config.trains_student else [],
            "finished_at": time.time(),
        },
    )


def check_2d_model(current: Path, project_id: int) -> None:
    """Raises CovidalError when the project's 2D model (``current``), the job's teacher, is not trained yet."""
    if not current.is_file():
        raise CovidalError(
            f"project {project_id} has no trained 2D model yet: run a 'train' job to the end first (its "
            "predictions are the 3D model's pseudo-labels)"
        )


def _fixed_2d_model(folder: Path, current: Path, project_id: int) -> Path:
    """The job's copy of the project's 2D model, made at its first start."""
    copy = folder / MODEL_2D_FILE
    if not copy.is_file():
        check_2d_model(current, project_id)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(copy, lambda temporary: shutil.copyfile(current, temporary))
    return copy


def _fixed_answers(store: Store, project_id: int, record: Path):
    """The answers the job learns from: those given before its first start (answers are kept oldest first)."""
    answers = answered_regions(store, project_id)
    if record.is_file():
        return answers[: json.loads(record.read_text())["answers"]]
    atomic_write_json(record, {"answers": len(answers)})
    return answers


def _answered_case(source, answers, volume_id: int, grid: RegionGrid, config, prior: BackgroundPrior) -> PreparedCase:
    """The volume on the training grid with its answers as its label (:func:`answers_on_grid`) and, with an
    intensity ``prior``, its aerated lung, air and bone as background (:func:`with_certain_background`)."""
    prepared = prepare_case(source, config.spacing, config.window)
    native = answer_volume(answers, volume_id, prepared.source.array.shape, grid)
    label = answers_on_grid(native, prepared.source, prepared.grid)
    if prior in (BackgroundPrior.INTENSITY, BackgroundPrior.BOTH):
        label = with_certain_background(
            label, prepared.image, *certain_background_thresholds(ImageKind.HU, config.window)
        )
    return replace(prepared, name=f"{case_name(volume_id)}-answers", label=label)


def _pseudo_label(
    paths: NoisyTeacherPaths,
    pool: list[records.Volume],
    sources: list,
    model_2d: Path,
    device: str,
    reporter: JobReporter,
) -> None:
    """Write the 2D model's lung-restricted label of every pool volume that has none yet."""
    reporter.amend(stage=Stage.PSEUDO_LABEL.value, eta_seconds=None)
    run = load_model(model_2d, device)
    for number, (volume, source) in enumerate(zip(pool, sources, strict=True), start=1):
        target = paths.pseudo_label(volume.id)
        if target.is_file():
            print(f"pseudo-label {number}/{len(pool)}: volume {volume.id} was labelled before", flush=True)
            continue
        ct = read_volume(source.image)
        labels = predict_labels(run, ct)
        try:
            labels = restrict_to_lungs(labels, find_lungs(ct))
            where = "inside its lungs"
        except CovidalError as error:
            where = f"unrestricted ({error})"
        write_volume(ct.with_array(labels.astype(np.uint8)), target)
        print(
            f"pseudo-label {number}/{len(pool)}: volume {volume.id}, {int(labels.sum())} voxels of infection {where}",
            flush=True,
        )
        reporter.amend(stage=Stage.PSEUDO_LABEL.value)  # a cancel is seen between volumes
