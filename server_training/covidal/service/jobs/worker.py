"""The child process that runs one job: ``python -m covidal.service.jobs.worker``.

A ``train`` job trains the project's 2D model on every answered slice (and, for a CEAL project, the pool's
pseudo-labels: :mod:`covidal.service.jobs.training_set`) for the job's ``steps`` optimiser steps; a ``noisy-teacher`` job trains a ``unet3d`` project's 3D model
(:mod:`covidal.service.jobs.noisy_teacher_job`); a ``clicks-to-3d`` job trains a 2D project's 3D model from its
answers (:mod:`covidal.service.jobs.clicks_to_3d_job`). Progress goes to the store (at most once a second, and at
every checkpoint) through a :class:`~covidal.service.jobs.progress.JobReporter`, and a job stops cleanly
when a cancel is asked.

A ``train`` job writes a training state every ``checkpoint_every`` steps: the weights, Adam's moments and
the random states (dropout, the consistency losses' transforms). Queued again after an interruption, it
restores them and replays the batch order up to its step, so it ends exactly as an uninterrupted job
would. At the end the model becomes the project's current model and the job is done. Any error marks the
job failed with the message (the traceback goes to the job's log). If the service that started it is gone,
the worker stops without touching the store: the restarted service has marked the job interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from covidal.data.slices import records_kind
from covidal.data.window import HUWindow, ImageKind
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, build_loss
from covidal.models.slices.build import ModelConfig, build_model
from covidal.models.slices.network import SegmentationNet
from covidal.service.jobs.job_config import JobKind, TrainJobConfig
from covidal.service.jobs.progress import (
    Cancelled,
    JobReporter,
    ParentGone,
    finish,
    publish_model,
)
from covidal.service.jobs.training_data import (
    ProjectAnnotations,
    answer_agreement,
    dice_of,
    known_pixel_counts,
    project_annotations,
    project_window,
)
from covidal.service.jobs.training_set import job_training_set
from covidal.service.project.layout import ProjectLayout
from covidal.service.project.learning_curve import curve_points, record_job_result, record_unseen_agreement
from covidal.service.store.records import Job, JobStatus, Project
from covidal.service.store.store import Store
from covidal.training.augment import BatchAugmentation
from covidal.training.background_prior import BackgroundPrior
from covidal.training.checkpoint import load_run, save_checkpoint
from covidal.training.dataset import TrainingSlices
from covidal.training.inference import predict_probabilities
from covidal.training.steps import StepReport, StepTrainer
from covidal.training.train_config import TrainConfig, measured_threshold

PARENT_GONE_EXIT = 3
BATCH_SEED_FACTOR = 1_000_003  # the batch order's seed is seed * this, apart from the other draws of the seed


def main(argv: list[str] | None = None) -> int:
    """Run the job; exit 0 when it ended (done, cancelled), 1 when it failed, 3 when the service is gone."""
    parser = argparse.ArgumentParser(prog="python -m covidal.service.jobs.worker", description=__doc__)
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("--project-id", type=int, required=True)
    parser.add_argument("--job-id", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    with Store(args.project_dir) as store:
        job = store.get_job(args.project_id, args.job_id)
        try:
            status = run_job(store, args.project_dir, job, JobReporter(store, job.id, args.parent_pid))
        except ParentGone:
            print("the service stopped: leaving the job to the restarted service", flush=True)
            return PARENT_GONE_EXIT
        except Exception as error:  # noqa: BLE001 - any error fails the job with its message, never the service
            traceback.print_exc()
            finish(store, job.id, JobStatus.FAILED, f"{type(error).__name__}: {error}")
            return 1
    print(f"job {job.id} {status.value}", flush=True)
    return 0


def run_job(store: Store, project_dir: Path, job: Job, reporter: JobReporter) -> JobStatus:
    """Run (or resume) ``job`` of its kind to the end or to a cancel; returns how it ended (already recorded).

    Raises:
        CovidalError: an unknown kind, a kind that does not train the project's model, a bad config, no data.
        ParentGone: the service stopped.
    """
    kind = JobKind.parse(job.kind)
    project = store.get_project(job.project_id)
    kind.check_model_kind(project.id, project.model_kind)
    try:
        if kind is JobKind.NOISY_TEACHER:
            from covidal.service.jobs.noisy_teacher_job import (
                run_noisy_teacher_job,  # imports MONAI's 3D networks
            )

            run_noisy_teacher_job(store, Path(project_dir), project, job, reporter)
        elif kind is JobKind.CLICKS_TO_3D:
            from covidal.service.jobs.clicks_to_3d_job import run_clicks_to_3d_job

            run_clicks_to_3d_job(store, Path(project_dir), project, job, reporter)
        else:
            run_train_job(store, Path(project_dir), project, job, reporter)
    except Cancelled:
        return finish(store, job.id, JobStatus.CANCELLED)
    return finish(store, job.id, JobStatus.DONE)


def run_train_job(store: Store, project_dir: Path, project: Project, job: Job, reporter: JobReporter) -> None:
    """Train (or resume) a ``train`` job to its last step and publish its model.

    Raises:
        CovidalError: a bad config, no answered region, a loss that needs full masks.
        ParentGone, Cancelled: as :meth:`JobReporter.report`.
    """
    config = TrainJobConfig.from_dict(job.config)
    device = torch.device(job.device or "cpu")
    window = project_window(project.settings)
    data = project_annotations(store, project, window)
    if not data.slices:
        raise CovidalError(f"project {project.id} has no answered regions to train on")
    train_config = _train_config(project, config, device, window, records_kind(data.slices))
    loss_generator = torch.Generator().manual_seed(config.seed)
    loss_fn = build_loss(train_config.loss, generator=loss_generator)
    if loss_fn.requires_masks:
        raise CovidalError(f"the {project.loss!r} loss needs full masks; answered regions give points only")
    layout = ProjectLayout(project_dir)
    paths = layout.job(job.id)
    _score_last_model_on_later_answers(store, layout, project, data, device)
    torch.manual_seed(train_config.seed)  # the initial weights (a resumed job then loads its own)
    model = build_model(train_config.model).to(device)
    warm = config.warm_start and _warm_start(model, train_config, layout.current_model(project.id), device)
    training = job_training_set(store, project, config, data, window, layout.current_model(project.id), paths, device)
    trainer = StepTrainer(
        model,
        loss_fn,
        training.slices,
        config.batch_size,
        config.learning_rate,
        config.seed * BATCH_SEED_FACTOR,
        device,
        loss_generator=loss_generator,
        augmentation=BatchAugmentation(train_config.augment, config.seed),
    )
    val_dice = None
    if job.checkpoint_path is not None and (Path(project_dir) / job.checkpoint_path).is_file():
        val_dice = trainer.restore(Path(project_dir) / job.checkpoint_path)["val_dice"]
        print(
            f"resuming from {job.checkpoint_path} after {trainer.step} steps (weights, Adam state and random "
            "states restored)",
            flush=True,
        )
    pseudo = training.pseudo
    print(
        f"job {job.id}: {len(data.slices)} answered slices, {data.answers} answers"
        + ("" if pseudo is None else f", {pseudo.pixels} pseudo-labelled pixels (threshold {pseudo.threshold:g})")
        + _prior_note(training.slices, config.background_prior)
        + f", {len(training.slices.images)} training slices, steps {trainer.step + 1}..{config.steps} on {device}, "
        + ("from the project's current model" if warm else "from fresh weights"),
        flush=True,
    )

    def on_step(report: StepReport) -> None:
        nonlocal val_dice
        checkpoint = report.step % config.checkpoint_every == 0 or report.step == config.steps
        if checkpoint:
            # Every answered slice's known pixels (background regions and clicks) score the model, so the
            # curve has a point per job even though region suggestions seldom answer a whole slice.
            val_dice = _known_pixel_dice(model, data, config.image_size, device, train_config.prediction.threshold)
            trainer.save(paths.checkpoint, val_dice=val_dice)
        reporter.report(
            report.step, config.steps, report.loss, val_dice, checkpoint=paths.checkpoint if checkpoint else None
        )

    trainer.run(config.steps, on_step)
    save_checkpoint(paths.model, model, train_config, config.steps, val_dice, records_kind(data.slices))
    publish_model(paths.model, layout.current_model(project.id))
    record_job_result(
        paths,
        job.id,
        config.steps,
        data.answers,
        data.effort_seconds,
        val_dice,
        None if pseudo is None else pseudo.record(),
    )


def _prior_note(slices: TrainingSlices, prior: str) -> str:
    """How many pixels the job's background prior labelled, for its log."""
    if slices.derived_labels is None:
        return ""
    return f", {int((slices.derived_labels == 0).sum())} pixels of certain background ({prior} prior)"


def _warm_start(model: SegmentationNet, train_config: TrainConfig, current: Path, device: torch.device) -> bool:
    """Load the project's current model's weights into ``model`` when it has the same network; True if loaded.

    Each job then continues from the last one, as ``covidal simulate`` does by default (BENCHMARKS.md, "Warm
    start against retraining from scratch"), so a project's steps add up over its cycles. A current model of
    another network (the project's width or kind changed) or an unreadable one is not used.
    """
    if not current.is_file():
        return False
    try:
        previous = load_run(current, device)
    except CovidalError:
        return False
    if previous.config.model != train_config.model or previous.config.image_size != train_config.image_size:
        return False
    model.load_state_dict(previous.model.state_dict())
    return True


def _score_last_model_on_later_answers(
    store: Store, layout: ProjectLayout, project: Project, data: ProjectAnnotations, device: torch.device
) -> None:
    """Test, then train: score the model of the project's last finished ``train`` job on the answers given after
    it (which it never trained on) and record it with that job (the learning curve's point)."""
    points = curve_points(store, layout, project.id)
    if not points:
        return
    last = layout.job(points[-1].job_id)
    unseen = data.since(points[-1].answers)
    if not (unseen.slices and last.model.is_file()):
        return
    try:
        run = load_run(last.model, device)
    except CovidalError as error:  # the curve goes without this point; training does not depend on it
        print(f"the last model could not be scored on later answers: {error}", flush=True)
        return
    predictions = _predicted(run.model, unseen, run.config.image_size, device, run.config.prediction.threshold)
    agreed = answer_agreement(unseen, predictions)
    record_unseen_agreement(last, agreed, unseen.answers, unseen.effort_seconds)
    print(f"the last model agreed with {agreed} of the {unseen.answers} answers given after it", flush=True)


def _known_pixel_dice(
    model: SegmentationNet, data: ProjectAnnotations, image_size: int, device: torch.device, threshold: float
) -> float | None:
    """Dice on the known pixels of the answered slices (training slices: nothing is held out), infection counted
    from ``threshold`` as in the project's predictions."""
    predictions = _predicted(model, data, image_size, device, threshold)
    return dice_of(*known_pixel_counts(data.state, data.slices, predictions))


def _predicted(
    model: SegmentationNet, data: ProjectAnnotations, image_size: int, device: torch.device, threshold: float
) -> Iterator[np.ndarray]:
    """bool ``[H, W]`` per slice of ``data.slices``, on its native grid: infection from ``threshold``."""
    return (
        probability >= threshold for _, probability in predict_probabilities(model, data.slices, image_size, device)
    )


def _train_config(
    project: Project, config: TrainJobConfig, device: torch.device, window: HUWindow, kind: ImageKind | None
) -> TrainConfig:
    """The :class:`TrainConfig` saved with the model (so :func:`load_run` rebuilds it), predicting from the
    threshold measured for the project's loss on images of ``kind``, the kind of the answered slices."""
    model = ModelConfig(project.model_kind, config.dropout, width=config.width)
    return TrainConfig(
        loss=LossConfig(project.loss),
        model=model,
        steps=config.steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        image_size=config.image_size,
        val_fraction=0.0,
        seed=config.seed,
        device=device.type,
        window=window,
        background_prior=BackgroundPrior(config.background_prior),
        threshold=measured_threshold(project.loss, kind),
        augment=config.augment,
    )


if __name__ == "__main__":
    sys.exit(main())
