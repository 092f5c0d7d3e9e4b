"""The child process that runs one training job: ``python -m covidal.service.jobs.worker``.

It trains the project's 2D model on every answered slice for the job's
``steps`` optimiser steps, reports progress through the store (at most once a
second, and at every checkpoint), writes a checkpoint every
``checkpoint_every`` steps, and stops cleanly when a cancel is asked. A job
queued again after an interruption starts from its checkpoint's weights and
runs the steps left (the optimiser's state starts afresh). At the end the
model becomes the project's current model and the job is done. Any error
marks the job failed with the message (the traceback goes to the job's log).
If the service that started it is gone, the worker stops without touching the
store: the restarted service has marked the job interrupted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from covidal.data.window import HUWindow
from covidal.errors import CovidalError
from covidal.inference import predict_probabilities
from covidal.losses.base import Batch, SegmentationLoss
from covidal.losses.registry import LossConfig, build_loss
from covidal.models.base import SegmentationNet
from covidal.models.registry import ModelConfig, build_model
from covidal.service.jobs.annotations import (
    ProjectAnnotations,
    dice_of,
    known_pixel_counts,
    project_annotations,
    project_window,
)
from covidal.service.jobs.config import JobPaths, TrainJobConfig, current_model_path
from covidal.service.store.errors import Conflict
from covidal.service.store.records import Job, JobProgress, JobStatus, Project
from covidal.service.store.store import Store
from covidal.training.checkpoint import load_run, save_checkpoint
from covidal.training.config import TrainConfig
from covidal.training.dataset import TrainingSlices, network_input
from covidal.training.trainer import train_step
from covidal.utils.atomic import atomic_write, atomic_write_json

PROGRESS_INTERVAL_S = 1.0
PARENT_GONE_EXIT = 3


class ParentGone(Exception):
    """The service that started this worker has stopped."""


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
            status = run_job(store, args.project_dir, job, args.parent_pid)
        except ParentGone:
            print("the service stopped: leaving the job to the restarted service", flush=True)
            return PARENT_GONE_EXIT
        except Exception as error:  # noqa: BLE001 - any error fails the job with its message, never the service
            traceback.print_exc()
            _finish(store, job.id, JobStatus.FAILED, f"{type(error).__name__}: {error}")
            return 1
    print(f"job {job.id} {status.value}", flush=True)
    return 0


def run_job(store: Store, project_dir: Path, job: Job, parent_pid: int) -> JobStatus:
    """Train (or resume) ``job`` to the end or to a cancel; returns how it ended (already recorded).

    Raises:
        CovidalError: a bad config, no answered region, a loss that needs full masks, a 3D project.
        ParentGone: the service stopped.
    """
    project = store.get_project(job.project_id)
    config = TrainJobConfig.from_dict(job.config)
    device = torch.device(job.device or "cpu")
    window = project_window(project.settings)
    data = project_annotations(store, project, window)
    if not data.slices:
        raise CovidalError(f"project {project.id} has no answered regions to train on")
    train_config = _train_config(project, config, device, window)
    loss_fn = build_loss(train_config.loss, generator=torch.Generator().manual_seed(config.seed))
    if loss_fn.requires_masks:
        raise CovidalError(f"the {project.loss!r} loss needs full masks; answered regions give points only")
    paths = JobPaths(project_dir, job.id)
    model, done = _start_model(project_dir, job, train_config, device)
    print(f"job {job.id}: {len(data.slices)} slices, {data.answers} answers, steps {done + 1}..{config.steps} "
          f"on {device}", flush=True)
    trainer = _Trainer(store, job, config, data, model, loss_fn, device, parent_pid)
    if not trainer.run(done, train_config, paths):
        return _finish(store, job.id, JobStatus.CANCELLED)
    _publish(paths, current_model_path(project_dir, project.id))
    atomic_write_json(paths.result, {"job_id": job.id, "steps": config.steps, "answers": data.answers,
                                     "effort_seconds": data.effort_seconds, "val_dice": trainer.val_dice,
                                     "finished_at": time.time()})
    return _finish(store, job.id, JobStatus.DONE)


class _Trainer:
    """The training loop of one job, with its progress reports and checkpoints."""

    def __init__(self, store: Store, job: Job, config: TrainJobConfig, data: ProjectAnnotations,
                 model: SegmentationNet, loss_fn: SegmentationLoss, device: torch.device, parent_pid: int) -> None:
        self.store, self.job, self.config, self.data = store, job, config, data
        self.model, self.loss_fn, self.device, self.parent_pid = model, loss_fn, device, parent_pid
        # Every answered slice: its known pixels (background regions and clicks) score the model, so the curve
        # has a point per job even though region suggestions seldom answer a whole slice.
        self.validation = data.slices
        self.val_dice: float | None = None

    def run(self, done: int, train_config: TrainConfig, paths: JobPaths) -> bool:
        """Steps ``done + 1 .. steps``; False if a cancel stopped it."""
        config = self.config
        batches = _endless_batches(self._training_slices(), config.batch_size,
                                   torch.Generator().manual_seed(config.seed * 1_000_003 + done), self.device)
        optimiser = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        started, first, last_report = time.monotonic(), done, 0.0
        self.val_dice = None if done == 0 else self._validate()
        while done < config.steps:
            self.model.train()
            loss = train_step(self.model, self.loss_fn, next(batches), optimiser, self.device).total.item()
            done += 1
            if os.getppid() != self.parent_pid:
                raise ParentGone()
            checkpoint = done % config.checkpoint_every == 0 or done == config.steps
            if not checkpoint and time.monotonic() - last_report < PROGRESS_INTERVAL_S:
                continue
            if checkpoint:
                self.val_dice = self._validate()
                save_checkpoint(paths.checkpoint, self.model, train_config, done, self.val_dice)
            eta = (time.monotonic() - started) / (done - first) * (config.steps - done)
            progress = JobProgress(done, config.steps, loss, self.val_dice, eta)
            relative = paths.checkpoint.relative_to(paths.project_dir).as_posix() if checkpoint else None
            job = self.store.update_job_progress(self.job.id, progress, relative)
            last_report = time.monotonic()
            print(f"step {done}/{config.steps} loss {loss:.4f} val_dice {_text(self.val_dice)} eta {eta:.0f}s",
                  flush=True)
            if job.cancel_requested:
                print("cancel asked: stopping", flush=True)
                return False
        return True

    def _training_slices(self) -> TrainingSlices:
        config, state = self.config, self.data.state
        maps = [state.label_map_on_grid((s.case_id, s.slice_id), config.image_size, config.background_sample,
                                        config.seed) for s in self.data.slices]
        return TrainingSlices(network_input(self.data.slices, config.image_size), torch.from_numpy(np.stack(maps)),
                              None)

    def _validate(self) -> float | None:
        """Dice on the known pixels of the answered slices (training slices: nothing is held out)."""
        if not self.validation:
            return None
        predictions = (probability >= 0.5 for _, probability in
                       predict_probabilities(self.model, self.validation, self.config.image_size, self.device))
        return dice_of(*known_pixel_counts(self.data.state, self.validation, predictions))


def _train_config(project: Project, config: TrainJobConfig, device: torch.device, window: HUWindow) -> TrainConfig:
    """The :class:`TrainConfig` saved in checkpoints (so :func:`load_run` rebuilds the model)."""
    if project.model_kind not in ("unet", "fcn8"):
        raise CovidalError(f"project {project.id} uses the {project.model_kind!r} model; service jobs train the 2D "
                           "models (unet, fcn8) for now")
    model = ModelConfig(project.model_kind, config.dropout, width=config.width)
    return TrainConfig(loss=LossConfig(project.loss), model=model, epochs=config.steps, batch_size=config.batch_size,
                       learning_rate=config.learning_rate, image_size=config.image_size, val_fraction=0.0,
                       seed=config.seed, device=device.type, window=window)


def _start_model(project_dir: Path, job: Job, train_config: TrainConfig,
                 device: torch.device) -> tuple[SegmentationNet, int]:
    """``(model, steps done)``: from the job's checkpoint when it has one, else a seeded fresh network."""
    if job.checkpoint_path is not None and (Path(project_dir) / job.checkpoint_path).is_file():
        run = load_run(Path(project_dir) / job.checkpoint_path, device)
        print(f"resuming from {job.checkpoint_path} after {run.epoch} steps", flush=True)
        return run.model, run.epoch
    torch.manual_seed(train_config.seed)
    return build_model(train_config.model).to(device), 0


def _endless_batches(data: TrainingSlices, batch_size: int, generator: torch.Generator,
                     device: torch.device) -> Iterator[Batch]:
    while True:
        yield from data.batches(batch_size, generator, device)


def _publish(paths: JobPaths, current: Path) -> None:
    """Copy the job's final checkpoint over the project's current model, atomically."""
    atomic_write(current, lambda temporary: shutil.copyfile(paths.checkpoint, temporary))


def _finish(store: Store, job_id: int, status: JobStatus, error: str | None = None) -> JobStatus:
    try:
        store.finish_job(job_id, status, error)
    except Conflict as conflict:  # the service already ended it (e.g. marked it interrupted)
        print(f"could not record the job as {status.value}: {conflict}", file=sys.stderr, flush=True)
    return status


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
