"""Train every loss on the same slices and report held-out metrics side by side.

The split is fixed and documented: slices sorted by their numeric stem; the first
``val_count`` select the best pass (as in the reference runs), the last ``test_count``
are never seen in training or selection and give the reported figures; the rest train.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from covidal.data.slices import SliceRecord
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, LossName
from covidal.training.checkpoint import load_run
from covidal.training.inference import evaluate
from covidal.training.train_config import TrainConfig, resolve_device
from covidal.training.train_run import for_epochs, train

REPORTED = ("dice", "iou", "ppv", "sensitivity", "specificity")


@dataclass(frozen=True)
class BenchSplit:
    train: list[SliceRecord]
    val: list[SliceRecord]
    test: list[SliceRecord]


def split_for_bench(records: Sequence[SliceRecord], val_count: int, test_count: int) -> BenchSplit:
    """First ``val_count`` (by numeric stem) validate, last ``test_count`` test, the rest train."""
    ordered = sorted(records, key=lambda r: natural_key(r.slice_id))
    if val_count + test_count >= len(ordered):
        raise CovidalError(
            f"{len(ordered)} slices cannot hold {val_count} validation + {test_count} test slices and still train"
        )
    return BenchSplit(
        train=ordered[val_count : len(ordered) - test_count],
        val=ordered[:val_count],
        test=ordered[len(ordered) - test_count :],
    )


def bench_losses(
    records: Sequence[SliceRecord],
    losses: Sequence[LossName],
    base_config: TrainConfig,
    out_dir: Path,
    val_count: int,
    test_count: int,
    epochs: int,
    progress: bool = True,
) -> list[dict]:
    """Train one model per loss (same split, seed, schedule: ``epochs`` passes over the training slices, each
    validated) and evaluate each on the test slices.

    Returns one row per loss: the loss name, the test metrics, the best step and the wall time.
    """
    split = split_for_bench(records, val_count, test_count)
    device = resolve_device(base_config.device)
    base_config = for_epochs(base_config, epochs, len(split.train))
    rows = []
    for loss in losses:
        config = replace(
            base_config, loss=LossConfig(name=loss, consistency_weight=base_config.loss.consistency_weight)
        )
        started = time.perf_counter()
        result = train(split.train, config, out_dir / loss.value, progress=progress, validation=split.val)
        seconds = time.perf_counter() - started
        best = load_run(out_dir / loss.value, device)
        metrics = evaluate(best.model, split.test, config.image_size, device, options=config.prediction).metrics
        rows.append(
            {
                "loss": loss.value,
                **{key: metrics[key] for key in REPORTED},
                "best_step": result.best_step,
                "val_dice": result.best_val_dice,
                "seconds": seconds,
            }
        )
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table (Dice, IoU, PPV, Sens, Spec on the test slices)."""
    lines = [
        "| loss | Dice | IoU | PPV | Sens | Spec | best step | val Dice | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        values = " | ".join(f"{row[key]:.3f}" for key in REPORTED)
        lines.append(
            f"| {row['loss']} | {values} | {row['best_step']} | {row['val_dice']:.3f} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines)


def natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
