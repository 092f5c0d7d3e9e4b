"""``covidal train``: a 2D segmentation network from point labels by the step trainer, keeping the best model by
validation Dice."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from covidal.data.points import (
    PointLabel,
    derive_points_for_slices,
    points_by_slice,
    save_points,
)
from covidal.data.slices import SliceRecord, records_kind
from covidal.data.window import ImageKind
from covidal.errors import CovidalError
from covidal.losses.registry import build_loss
from covidal.models.slices.build import build_model
from covidal.training.augment import BatchAugmentation
from covidal.training.checkpoint import HISTORY_FILE, MODEL_FILE, save_checkpoint
from covidal.training.dataset import TrainingSlices
from covidal.training.distributed import SINGLE_PROCESS, Shard, mean_over_ranks
from covidal.training.inference import evaluate
from covidal.training.steps import StepReport, StepTrainer
from covidal.training.train_config import TrainConfig, resolve_device
from covidal.utils.atomic import atomic_write_json

POINTS_FILE = "points.json"


@dataclass
class ValidationRecord:
    """The steps since the previous validation: mean loss (and each term), their seconds, and the validation
    metrics after ``step`` (None without a validation set)."""

    step: int
    loss: float
    loss_parts: dict[str, float]
    seconds: float
    val: dict | None = None


@dataclass
class TrainResult:
    run_dir: Path
    best_step: int
    best_val_dice: float | None
    history: list[ValidationRecord] = field(default_factory=list)


def split_train_val(
    records: Sequence[SliceRecord], val_fraction: float, seed: int
) -> tuple[list[SliceRecord], list[SliceRecord]]:
    """Random slice-level split (seeded); at least one slice on each side when ``val_fraction > 0``.

    Raises:
        CovidalError: too few slices to hold any out.
    """
    if val_fraction == 0:
        return list(records), []
    if len(records) < 2:
        raise CovidalError(f"{len(records)} slice(s) is too few to hold out a validation set; use --val-fraction 0")
    n_val = min(len(records) - 1, max(1, round(len(records) * val_fraction)))
    order = np.random.default_rng(seed).permutation(len(records))
    val_index = set(order[:n_val].tolist())
    train = [r for i, r in enumerate(records) if i not in val_index]
    val = [r for i, r in enumerate(records) if i in val_index]
    return train, val


def _check_masks(records: Sequence[SliceRecord], why: str) -> None:
    missing = [r.slice_id for r in records if r.mask is None]
    if missing:
        raise CovidalError(f"{why} needs reference masks, but {len(missing)} slice(s) have none (e.g. {missing[0]})")


def _training_points(
    train: Sequence[SliceRecord], given: Sequence[PointLabel] | None, seed: int, min_background: int
) -> list[PointLabel]:
    """The points to train on: given ones restricted to the training slices, or derived from masks."""
    if given is None:
        _check_masks(train, "deriving points (no --points file was given)")
        return derive_points_for_slices({r.slice_id: r.mask for r in train}, seed, min_background)
    train_ids = {r.slice_id for r in train}
    return [p for p in given if p.slice_id in train_ids]


def steps_per_pass(train_slices: int, batch_size: int, shard: Shard = SINGLE_PROCESS) -> int:
    """Optimiser steps of one pass over ``train_slices`` slices: each process batches its shard of them."""
    per_process = -(-train_slices // shard.world_size)
    return -(-per_process // batch_size)


def for_epochs(config: TrainConfig, epochs: int, train_slices: int, shard: Shard = SINGLE_PROCESS) -> TrainConfig:
    """``config`` training ``epochs`` passes over ``train_slices`` slices, validated after each pass.

    Raises:
        ValueError: ``epochs`` below 1.
    """
    per_pass = steps_per_pass(train_slices, config.batch_size, shard)
    return replace(config, steps=epochs * per_pass, validate_every=per_pass)


def train(
    records: Sequence[SliceRecord],
    config: TrainConfig,
    run_dir: Path,
    points: Sequence[PointLabel] | None = None,
    progress: bool = True,
    validation: Sequence[SliceRecord] | None = None,
    shard: Shard = SINGLE_PROCESS,
) -> TrainResult:
    """Train ``config.steps`` steps (:class:`~covidal.training.steps.StepTrainer`), validate every
    ``config.validate_every`` steps (default: every pass) and keep the best checkpoint in ``run_dir/model.pt``.

    Data-parallel (``shard.world_size > 1``, inside an initialised process group):
    every rank builds the same split, points and initial model from ``config.seed``,
    wraps the model in DistributedDataParallel and trains on its shard of each
    pass with ``config.batch_size`` slices per step (a global batch of
    ``world_size * batch_size``); dropout and the loss's random transforms are
    seeded ``seed + rank`` so ranks do not repeat each other's draws. The losses
    are averaged over the ranks; only rank 0 validates and writes ``run_dir``,
    and its result alone carries the best step.

    Args:
        records: all slices; a ``val_fraction`` share is held out for model selection.
        config: the run's configuration (saved in the checkpoint and in ``train.json``).
        run_dir: output folder; receives ``model.pt``, ``train.json`` and ``points.json``.
        points: point labels in native pixel coordinates; derived from the masks when None.
        progress: show a progress bar on stderr.
        validation: an explicit validation set; then all ``records`` train and ``val_fraction`` is unused.
        shard: this process's rank among the data-parallel processes (default: the only one).

    Raises:
        CovidalError: no slices, masks missing where needed, or no point on any training slice.
    """
    if not records:
        raise CovidalError("no slices to train on")
    device = resolve_device(config.device)
    if device.type == "cuda" and shard.is_distributed:
        device = torch.device("cuda", shard.local_rank)
    if validation is None:
        train_records, val_records = split_train_val(records, config.val_fraction, config.seed)
    else:
        train_records, val_records = list(records), list(validation)
    _check_masks(val_records, "validation")
    loss_generator = torch.Generator().manual_seed(config.seed + shard.rank)
    loss_fn = build_loss(config.loss, generator=loss_generator)
    if loss_fn.requires_masks:
        _check_masks(train_records, f"the '{config.loss.name}' loss")
    train_points = _training_points(train_records, points, config.seed, config.min_background_points)
    if not train_points and not loss_fn.requires_masks:
        raise CovidalError("no point labels fall on the training slices")

    run_dir = Path(run_dir)
    if shard.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_points(run_dir / POINTS_FILE, train_points)
    data = TrainingSlices.build(
        train_records,
        points_by_slice(train_points),
        config.image_size,
        loss_fn.requires_masks,
        config.pseudo_masks,
        config.background_prior,
        config.window,
    )

    torch.manual_seed(config.seed)
    model = build_model(config.model).to(device)
    trainer = StepTrainer(
        _data_parallel(model, shard, device, config.seed),
        loss_fn,
        data,
        config.batch_size,
        config.learning_rate,
        config.seed,
        device,
        shard,
        loss_generator,
        network=model,
        ema_decay=config.ema_decay,
        augmentation=BatchAugmentation(config.augment, config.seed, shard.rank),
    )
    predictor = trainer.predictor  # the average of the weights when the run keeps one
    validate_every = config.validate_every or steps_per_pass(len(train_records), config.batch_size, shard)
    kind = records_kind(train_records)
    result = TrainResult(run_dir=run_dir, best_step=0, best_val_dice=None)
    summary = {
        "config": config.to_dict(),
        "device": str(device),
        "train_slices": [r.slice_id for r in train_records],
        "val_slices": [r.slice_id for r in val_records],
        "validate_every": validate_every,
        "points": {
            "infection": sum(p.label == 1 for p in train_points),
            "background": sum(p.label == 0 for p in train_points),
        },
    }
    bar = tqdm(total=config.steps, desc="train", unit="step", disable=not (progress and shard.is_main))
    window: list[StepReport] = []
    started = time.perf_counter()

    def on_step(report: StepReport) -> None:
        nonlocal started
        bar.update()
        window.append(report)
        if report.step % validate_every and report.step != config.steps:
            return
        record = _mean_record(window, report.step, time.perf_counter() - started, shard, device)
        window.clear()
        started = time.perf_counter()
        if shard.is_main:
            record.val = (
                evaluate(predictor, val_records, config.image_size, device, options=config.prediction).to_dict()
                if val_records
                else None
            )
            _keep_if_best(result, record, predictor, config, kind)
            bar.set_postfix(
                loss=f"{record.loss:.3f}", val_dice="-" if record.val is None else f"{record.val['dice']:.3f}"
            )
            atomic_write_json(
                run_dir / HISTORY_FILE,
                {
                    **summary,
                    "best_step": result.best_step,
                    "best_val_dice": result.best_val_dice,
                    "validations": [asdict(r) for r in result.history],
                },
            )
        else:
            result.history.append(record)

    trainer.run(config.steps, on_step)
    bar.close()
    if shard.is_distributed:
        torch.distributed.barrier()  # every rank returns once rank 0 has written the run folder
    return result


def _mean_record(
    reports: list[StepReport], step: int, seconds: float, shard: Shard, device: torch.device
) -> ValidationRecord:
    """The mean loss and mean terms of ``reports`` (the steps since the last validation), over the ranks too."""
    names = list(reports[0].parts)
    means = np.mean([[r.loss, *(r.parts[name] for name in names)] for r in reports], axis=0).tolist()
    loss, *parts = mean_over_ranks(means, shard, device)
    return ValidationRecord(step, loss, dict(zip(names, parts)), seconds)


def _keep_if_best(
    result: TrainResult, record: ValidationRecord, model: nn.Module, config: TrainConfig, kind: ImageKind | None
) -> None:
    """Record ``record``; save the model (trained on images of ``kind``) when it has no validation or beats the
    best validation Dice so far."""
    result.history.append(record)
    val_dice = None if record.val is None else record.val["dice"]
    if record.val is None or result.best_val_dice is None or val_dice > result.best_val_dice:
        result.best_step, result.best_val_dice = record.step, val_dice
        save_checkpoint(result.run_dir / MODEL_FILE, model, config, record.step, val_dice, kind)


def _data_parallel(model: nn.Module, shard: Shard, device: torch.device, seed: int) -> nn.Module:
    """``model`` itself for one process, else wrapped in DDP (after which dropout is seeded per rank)."""
    if not shard.is_distributed:
        return model
    wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if not shard.is_main:
        torch.manual_seed(seed + shard.rank)
    return wrapped
