"""The child process that runs one job: ``python -m covidal.service.jobs.worker``.

A ``train`` job trains the project's 2D model on every answered slice for the job's ``steps`` optimiser
steps; a ``noisy-teacher`` job trains a ``unet3d`` project's 3D model
(:mod:`covidal.service.jobs.noisy_teacher`). Progress goes to the store (at most once a second, and at
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
from covidal.service.jobs.config import (
    JobKind,
    JobPaths,
    TrainJobConfig,
    current_model_path,
)
from covidal.service.jobs.progress import (
    Cancelled,
    JobReporter,
    ParentGone,
    finish,
    publish_model,
)
from covidal.service.store.records import Job, JobStatus, Project
from covidal.service.store.store import Store
from covidal.training.checkpoint import save_checkpoint
from covidal.training.config import TrainConfig
from covidal.training.dataset import TrainingSlices, network_input
from covidal.training.trainer import train_step
from covidal.utils.atomic import atomic_write, atomic_write_json
from covidal.utils.checkpoint_file import read_checkpoint

PARENT_GONE_EXIT = 3
STATE_FORMAT = "covidal.service.train-job-state"
STATE_VERSION = 1
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
            from covidal.service.jobs.noisy_teacher import (
                run_noisy_teacher_job,  # imports MONAI's 3D networks
            )

            run_noisy_teacher_job(store, Path(project_dir), project, job, reporter)
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
    train_config = _train_config(project, config, device, window)
    loss_generator = torch.Generator().manual_seed(config.seed)
    loss_fn = build_loss(train_config.loss, generator=loss_generator)
    if loss_fn.requires_masks:
        raise CovidalError(f"the {project.loss!r} loss needs full masks; answered regions give points only")
    paths = JobPaths(project_dir, job.id)
    torch.manual_seed(train_config.seed)  # the initial weights (a resumed job then loads its own)
    model = build_model(train_config.model).to(device)
    state = _TrainingState(model, torch.optim.Adam(model.parameters(), lr=config.learning_rate), loss_generator,
                           device)
    done, val_dice = state.restore(project_dir, job)
    print(f"job {job.id}: {len(data.slices)} slices, {data.answers} answers, steps {done + 1}..{config.steps} "
          f"on {device}", flush=True)
    trainer = _Trainer(config, data, state, loss_fn, reporter, val_dice)
    trainer.run(done, paths)
    save_checkpoint(paths.model, model, train_config, config.steps, trainer.val_dice)
    publish_model(paths.model, current_model_path(project_dir, project.id))
    atomic_write_json(paths.result, {"job_id": job.id, "steps": config.steps, "answers": data.answers,
                                     "effort_seconds": data.effort_seconds, "val_dice": trainer.val_dice,
                                     "finished_at": time.time()})


class _TrainingState:
    """What a ``train`` job's checkpoint holds and restores: weights, Adam's state and the random states."""

    def __init__(self, model: SegmentationNet, optimiser: torch.optim.Optimizer, loss_generator: torch.Generator,
                 device: torch.device) -> None:
        self.model, self.optimiser, self.loss_generator, self.device = model, optimiser, loss_generator, device

    def save(self, path: Path, step: int, val_dice: float | None) -> None:
        """Write the state after ``step`` atomically (a crash keeps the previous one)."""
        payload = {
            "format": STATE_FORMAT, "version": STATE_VERSION, "step": step, "val_dice": val_dice,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimiser.state_dict(),
            "rng": torch.get_rng_state(), "loss_rng": self.loss_generator.get_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }
        atomic_write(path, lambda tmp: torch.save(payload, tmp))

    def restore(self, project_dir: Path, job: Job) -> tuple[int, float | None]:
        """``(steps done, validation Dice)`` of the job's checkpoint, loaded into the model, the optimiser and
        the random generators; ``(0, None)`` for a job without one.

        Raises:
            CovidalError: an unreadable or foreign checkpoint.
        """
        if job.checkpoint_path is None or not (Path(project_dir) / job.checkpoint_path).is_file():
            return 0, None
        saved = read_checkpoint(Path(project_dir) / job.checkpoint_path, STATE_FORMAT, STATE_VERSION,
                                "training job state", "a 'train' job")
        self.model.load_state_dict(saved["model"])
        self.optimiser.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        self.loss_generator.set_state(saved["loss_rng"])
        if saved["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda_rng"], self.device)
        print(f"resuming from {job.checkpoint_path} after {saved['step']} steps (weights, Adam state and random "
              "states restored)", flush=True)
        return int(saved["step"]), saved["val_dice"]


class _Trainer:
    """The training loop of one ``train`` job, with its progress reports and checkpoints."""

    def __init__(self, config: TrainJobConfig, data: ProjectAnnotations, state: _TrainingState,
                 loss_fn: SegmentationLoss, reporter: JobReporter, val_dice: float | None) -> None:
        self.config, self.data, self.state, self.loss_fn, self.reporter = config, data, state, loss_fn, reporter
        # Every answered slice: its known pixels (background regions and clicks) score the model, so the curve
        # has a point per job even though region suggestions seldom answer a whole slice.
        self.validation = data.slices
        self.val_dice = val_dice

    def run(self, done: int, paths: JobPaths) -> None:
        """Steps ``done + 1 .. steps``, in the batch order of an uninterrupted job (its first ``done`` batches
        are drawn again and skipped).

        Raises:
            ParentGone, Cancelled: as :meth:`JobReporter.report`.
        """
        config, model, device = self.config, self.state.model, self.state.device
        batches = _endless_batches(self._training_slices(), config.batch_size,
                                   torch.Generator().manual_seed(config.seed * BATCH_SEED_FACTOR), device)
        for _ in range(done):
            next(batches)
        while done < config.steps:
            model.train()
            loss = train_step(model, self.loss_fn, next(batches), self.state.optimiser, device).total.item()
            done += 1
            checkpoint = done % config.checkpoint_every == 0 or done == config.steps
            if checkpoint:
                self.val_dice = self._validate()
                self.state.save(paths.checkpoint, done, self.val_dice)
            self.reporter.report(done, config.steps, loss, self.val_dice,
                                 checkpoint=paths.checkpoint if checkpoint else None)

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
                       predict_probabilities(self.state.model, self.validation, self.config.image_size,
                                             self.state.device))
        return dice_of(*known_pixel_counts(self.data.state, self.validation, predictions))


def _train_config(project: Project, config: TrainJobConfig, device: torch.device, window: HUWindow) -> TrainConfig:
    """The :class:`TrainConfig` saved with the model (so :func:`load_run` rebuilds it)."""
    model = ModelConfig(project.model_kind, config.dropout, width=config.width)
    return TrainConfig(loss=LossConfig(project.loss), model=model, epochs=config.steps, batch_size=config.batch_size,
                       learning_rate=config.learning_rate, image_size=config.image_size, val_fraction=0.0,
                       seed=config.seed, device=device.type, window=window)


def _endless_batches(data: TrainingSlices, batch_size: int, generator: torch.Generator,
                     device: torch.device) -> Iterator[Batch]:
    while True:
        yield from data.batches(batch_size, generator, device)


if __name__ == "__main__":
    sys.exit(main())
