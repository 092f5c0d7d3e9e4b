"""Train a 2D segmentation network from point labels, keeping the best model by validation Dice."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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
from covidal.data.slices import SliceRecord
from covidal.errors import CovidalError
from covidal.inference import autocast_for, evaluate
from covidal.losses.base import Batch, LossResult, SegmentationLoss
from covidal.losses.registry import build_loss
from covidal.models.registry import build_model
from covidal.training.checkpoint import HISTORY_FILE, MODEL_FILE, save_checkpoint
from covidal.training.config import TrainConfig, resolve_device
from covidal.training.dataset import TrainingSlices
from covidal.training.distributed import SINGLE_PROCESS, Shard, mean_over_ranks
from covidal.utils.atomic import atomic_write_json

POINTS_FILE = "points.json"


@dataclass
class EpochRecord:
    """What one epoch did: mean loss (and each term) and the validation metrics."""

    epoch: int
    loss: float
    loss_parts: dict[str, float]
    seconds: float
    val: dict | None = None


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_val_dice: float | None
    history: list[EpochRecord] = field(default_factory=list)


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


def train(
    records: Sequence[SliceRecord],
    config: TrainConfig,
    run_dir: Path,
    points: Sequence[PointLabel] | None = None,
    progress: bool = True,
    validation: Sequence[SliceRecord] | None = None,
    shard: Shard = SINGLE_PROCESS,
) -> TrainResult:
    """Train, validate every epoch and keep the best checkpoint in ``run_dir/model.pt``.

    Data-parallel (``shard.world_size > 1``, inside an initialised process group):
    every rank builds the same split, points and initial model from ``config.seed``,
    wraps the model in DistributedDataParallel and trains on its shard of each
    epoch with ``config.batch_size`` slices per step (a global batch of
    ``world_size * batch_size``); dropout and the loss's random transforms are
    seeded ``seed + rank`` so ranks do not repeat each other's draws. The epoch
    loss is averaged over the ranks; only rank 0 validates and writes ``run_dir``,
    and its result alone carries the best epoch.

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
    loss_fn = build_loss(config.loss, generator=torch.Generator().manual_seed(config.seed + shard.rank))
    if loss_fn.requires_masks:
        _check_masks(train_records, f"the '{config.loss.name}' loss")
    train_points = _training_points(train_records, points, config.seed, config.min_background_points)
    if not train_points and not loss_fn.requires_masks:
        raise CovidalError("no point labels fall on the training slices")

    run_dir = Path(run_dir)
    if shard.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_points(run_dir / POINTS_FILE, train_points)
    data = TrainingSlices.build(train_records, points_by_slice(train_points), config.image_size, loss_fn.requires_masks)

    torch.manual_seed(config.seed)
    model = build_model(config.model).to(device)
    trained = _data_parallel(model, shard, device, config.seed)
    optimiser = torch.optim.Adam(trained.parameters(), lr=config.learning_rate)
    batch_generator = torch.Generator().manual_seed(config.seed)

    result = TrainResult(run_dir=run_dir, best_epoch=0, best_val_dice=None)
    summary = {
        "config": config.to_dict(),
        "device": str(device),
        "train_slices": [r.slice_id for r in train_records],
        "val_slices": [r.slice_id for r in val_records],
        "points": {"infection": sum(p.label == 1 for p in train_points), "background": sum(p.label == 0 for p in train_points)},
    }
    epochs = tqdm(range(1, config.epochs + 1), desc="train", unit="epoch", disable=not (progress and shard.is_main))
    for epoch in epochs:
        started = time.perf_counter()
        loss, parts = _train_one_epoch(trained, loss_fn, data, optimiser, config.batch_size, batch_generator, device,
                                       shard)
        if not shard.is_main:
            result.history.append(EpochRecord(epoch, loss, parts, time.perf_counter() - started))
            continue
        val = evaluate(model, val_records, config.image_size, device).to_dict() if val_records else None
        record = EpochRecord(epoch, loss, parts, time.perf_counter() - started, val)
        result.history.append(record)
        val_dice = None if val is None else val["dice"]
        if val is None or result.best_val_dice is None or val_dice > result.best_val_dice:
            result.best_epoch, result.best_val_dice = epoch, val_dice
            save_checkpoint(run_dir / MODEL_FILE, model, config, epoch, val_dice)
        epochs.set_postfix(loss=f"{loss:.3f}", val_dice="-" if val_dice is None else f"{val_dice:.3f}")
        atomic_write_json(
            run_dir / HISTORY_FILE,
            {**summary, "best_epoch": result.best_epoch, "best_val_dice": result.best_val_dice,
             "epochs": [asdict(r) for r in result.history]},
        )
    if shard.is_distributed:
        torch.distributed.barrier()  # every rank returns once rank 0 has written the run folder
    return result


def _data_parallel(model: nn.Module, shard: Shard, device: torch.device, seed: int) -> nn.Module:
    """``model`` itself for one process, else wrapped in DDP (after which dropout is seeded per rank)."""
    if not shard.is_distributed:
        return model
    wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if not shard.is_main:
        torch.manual_seed(seed + shard.rank)
    return wrapped


def _train_one_epoch(model, loss_fn, data, optimiser, batch_size, generator, device,
                     shard: Shard = SINGLE_PROCESS) -> tuple[float, dict[str, float]]:
    model.train()
    totals: dict[str, float] = defaultdict(float)
    total_loss, steps = 0.0, 0
    for batch in data.batches(batch_size, generator, device, shard):
        result = train_step(model, loss_fn, batch, optimiser, device)
        total_loss += result.total.item()
        for name, value in result.parts.items():
            totals[name] += value
        steps += 1
    names = list(totals)
    loss, *parts = mean_over_ranks([total_loss / steps, *(totals[name] / steps for name in names)], shard, device)
    return loss, dict(zip(names, parts))


def train_step(model: nn.Module, loss_fn: SegmentationLoss, batch: Batch, optimiser: torch.optim.Optimizer,
               device: torch.device) -> LossResult:
    """One optimiser step on ``batch`` (the model must already be in train mode).

    Raises:
        CovidalError: the loss is not finite (training diverged).
    """
    with autocast_for(device):
        result = loss_fn(model, batch)
    if not math.isfinite(result.total.item()):
        raise CovidalError("training diverged (non-finite loss); try a lower --lr")
    optimiser.zero_grad(set_to_none=True)
    result.total.backward()
    optimiser.step()
    return result
