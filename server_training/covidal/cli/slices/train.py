"""``covidal train``: fit a 2D model to point labels (or full masks for the upper bound).

``--gpus N`` (N > 1) trains data-parallel: the command starts N processes with
torchrun (``python -m torch.distributed.run --standalone``), each runs
:mod:`covidal.cli.slices.train_worker` on one GPU with DistributedDataParallel and a
shard of every epoch; ``--batch-size`` is then per process. Rank 0 validates,
writes the run folder and prints. With ``--device cpu`` N is a number of CPU
processes (gloo backend), which is how the code path is tested without GPUs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from covidal.cli.options import (
    add_data_options,
    add_device_option,
    fraction,
    image_size,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    window_from,
)
from covidal.data.points import load_points, validate_points_in_bounds
from covidal.data.slices import load_slices
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, LossName
from covidal.models.kinds import SLICE_MODEL_KINDS, ModelKind
from covidal.models.slices.build import ModelConfig
from covidal.training.background_prior import BackgroundPrior
from covidal.training.distributed import SINGLE_PROCESS, Shard, check_gpus, launch
from covidal.training.train_config import Augment, TrainConfig, measured_threshold
from covidal.training.train_run import TrainResult, for_epochs, split_train_val, train

WORKER_MODULE = "covidal.cli.slices.train_worker"
DEFAULT_EPOCHS = 100
DEFAULT_LOSS = LossName.CB_FLIP_ROT
# Test-time augmentation was the one option that raised the cross-validated Dice of CB (flip, rot) (BENCHMARKS.md).
DEFAULT_TTA = True
# Intensity and scale augmentation was the best point-supervised training in cross-validation at both seeds measured:
# CB (flip, rot) with TTA and its threshold chosen on the other folds reached 98% (seed 0) and 93% (seed 1) of the
# full-mask Dice, +0.037 and +0.021 over no augmentation (BENCHMARKS.md, "Augmentation and averaged weights").
DEFAULT_AUGMENT = Augment.INTENSITY_SCALE


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a 2D segmentation model from points",
        description=__doc__.split(":", 1)[1].split("\n\n")[0].strip(),
    )
    add_data_options(parser, masks_required=False)
    parser.add_argument(
        "--loss",
        choices=[n.value for n in LossName],
        default=DEFAULT_LOSS.value,
        help=f"(default {DEFAULT_LOSS.value}) point: CE on clicked pixels; cb-flip / cb-flip-rot: + consistency under flips (and rotations); "
        "lcfcn / cb-lcfcn: counting loss (with consistency); full: fully supervised upper bound",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder for model.pt, train.json, points.json")
    parser.add_argument(
        "--points",
        type=Path,
        default=None,
        help="points JSON (covidal.points v1); default: derived from the masks, one per lesion + as many background",
    )
    parser.add_argument(
        "--background-points",
        type=positive_int,
        default=1,
        help="derived points: at least N background clicks per slice (default 1: the paper's protocol, "
        "as many background as infection clicks)",
    )
    parser.add_argument("--model", choices=[k.value for k in SLICE_MODEL_KINDS], default=ModelKind.UNET.value)
    parser.add_argument("--width", type=positive_int, default=32, help="U-Net base channels (default 32)")
    parser.add_argument(
        "--pretrained", type=Path, default=None, help="local VGG16 ImageNet weights for fcn8 (default: from scratch)"
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="passes over the training slices, each validated (default 100)",
    )
    length.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="optimiser steps instead of epochs, validated every --validate-every steps",
    )
    parser.add_argument(
        "--validate-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --steps: steps between validations (default: one pass over the training slices)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--size", type=image_size, default=352, help="square training grid (default 352)")
    parser.add_argument("--dropout", type=fraction, default=0.5, help="head dropout probability (default 0.5)")
    parser.add_argument("--consistency-weight", type=non_negative_float, default=1.0, help="lambda of the CB loss")
    add_point_supervision_options(parser)
    parser.add_argument(
        "--val-fraction", type=fraction, default=0.1, help="share of slices held out for model selection"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_device_option(parser)
    parser.add_argument(
        "--gpus",
        type=positive_int,
        default=1,
        metavar="N",
        help="train data-parallel on N GPUs (DDP, started with torchrun; --batch-size is per GPU); "
        "with --device cpu, N CPU processes (gloo) (default 1)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def add_point_supervision_options(parser: argparse.ArgumentParser) -> None:
    """The options that turn clicks into more supervision (see ``BENCHMARKS.md`` for what each measured)."""
    group = parser.add_argument_group("more supervision from the clicks")
    group.add_argument(
        "--pseudo-masks",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="grow each infection click into a pseudo-mask of similar tissue, weighed by --derived-weight",
    )
    group.add_argument(
        "--background-prior",
        choices=[p.value for p in BackgroundPrior],
        default=BackgroundPrior.NONE.value,
        help="background without clicks: intensity (aerated lung, bone), outside-lungs, both, none (default)",
    )
    group.add_argument(
        "--derived-weight",
        type=non_negative_float,
        default=0.5,
        help="weight of the pseudo-masks and background prior beside the clicks (default 0.5)",
    )
    group.add_argument(
        "--background-weight",
        type=positive_float,
        default=LossConfig.background_weight,
        help="point and cb-flip* losses: weight of the background clicks' term against the infection clicks' "
        f"(above 1: fewer false positives; default {LossConfig.background_weight:g})",
    )
    group.add_argument(
        "--self-training-weight",
        type=non_negative_float,
        default=0.0,
        help="cb-flip* losses: weight of self-training on confident unclicked pixels (default 0: off)",
    )
    group.add_argument(
        "--self-training-threshold",
        type=fraction,
        default=0.9,
        help="confidence a pixel needs to be self-labelled, in [0.5, 1) (default 0.9)",
    )
    group.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_TTA,
        help=f"predict with test-time augmentation over flips and rotations (default {'on' if DEFAULT_TTA else 'off'})",
    )
    group.add_argument(
        "--threshold",
        type=fraction,
        default=None,
        help="infection probability from which a pixel counts as infected in validation and prediction, in (0, 1) "
        f"(default {measured_threshold(LossName.CB_FLIP_ROT):g} for the cb-flip-rot loss, as measured on 8-bit slices, "
        "else 0.5)",
    )
    group.add_argument(
        "--lung-restriction",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="predict no infection outside the widened intensity lung mask (default off)",
    )
    group.add_argument(
        "--ema-decay",
        type=fraction,
        default=None,
        help="keep an exponential moving average of the weights with this decay in [0, 1), e.g. 0.99, and "
        "validate, save and predict with it (default: off)",
    )
    group.add_argument(
        "--augment",
        choices=[a.value for a in Augment],
        default=DEFAULT_AUGMENT.value,
        help="random augmentation of the training batches: intensity (gamma, contrast, brightness), "
        "intensity+scale (also a zoom of 0.8-1.25 that keeps every infection click), or none "
        f"(default {DEFAULT_AUGMENT.value}, as measured)",
    )


def config_from(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        loss=LossConfig(
            name=LossName(args.loss),
            consistency_weight=args.consistency_weight,
            derived_weight=args.derived_weight,
            self_training_weight=args.self_training_weight,
            self_training_threshold=args.self_training_threshold,
            background_weight=args.background_weight,
        ),
        model=ModelConfig(
            name=ModelKind(args.model),
            dropout=args.dropout,
            width=args.width,
            pretrained=None if args.pretrained is None else str(args.pretrained.resolve()),
        ),
        steps=args.steps or 1,
        validate_every=args.validate_every,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        image_size=args.size,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        window=window_from(args),
        mask_class=args.mask_class,
        min_background_points=args.background_points,
        pseudo_masks=args.pseudo_masks,
        background_prior=BackgroundPrior(args.background_prior),
        tta=args.tta,
        lung_restriction=args.lung_restriction,
        threshold=measured_threshold(args.loss) if args.threshold is None else args.threshold,
        ema_decay=args.ema_decay,
        augment=Augment(args.augment),
    )


@dataclass(frozen=True)
class TrainJob:
    """What one training run reads and writes; handed to each data-parallel worker as JSON.

    Attributes:
        epochs: passes over the training slices, turned into ``config.steps`` once the slices are known
            (:func:`for_epochs`), or None to train ``config.steps``.
    """

    images: Path
    masks: Path | None
    points: Path | None
    out: Path
    config: TrainConfig
    progress: bool
    epochs: int | None = None

    def to_json(self) -> str:
        paths = {
            name: None if path is None else str(Path(path).resolve())
            for name, path in (
                ("images", self.images),
                ("masks", self.masks),
                ("points", self.points),
                ("out", self.out),
            )
        }
        return json.dumps({**paths, "config": self.config.to_dict(), "progress": self.progress, "epochs": self.epochs})

    @classmethod
    def from_json(cls, text: str) -> TrainJob:
        data = json.loads(text)
        paths = {
            name: None if data[name] is None else Path(data[name]) for name in ("images", "masks", "points", "out")
        }
        return cls(
            **paths, config=TrainConfig.from_dict(data["config"]), progress=data["progress"], epochs=data["epochs"]
        )


def job_from(args: argparse.Namespace) -> TrainJob:
    """The run the command line asks for.

    Raises:
        CovidalError: no masks, and no points file with --val-fraction 0 to train without them.
    """
    config = config_from(args)
    if args.masks is None and (args.points is None or config.val_fraction > 0):
        raise CovidalError(
            "--masks is required (to derive points and to validate); "
            "without masks give --points FILE and --val-fraction 0"
        )
    if args.validate_every is not None and args.steps is None:
        raise CovidalError("--validate-every goes with --steps; --epochs validates after every pass")
    epochs = None if args.steps is not None else args.epochs or DEFAULT_EPOCHS
    return TrainJob(args.images, args.masks, args.points, args.out, config, progress=not args.quiet, epochs=epochs)


def run_job(job: TrainJob, shard: Shard = SINGLE_PROCESS) -> TrainResult:
    """Load the slices (and points) of ``job`` and train; rank 0 prints the outcome."""
    records = load_slices(job.images, job.masks, job.config.window, job.config.mask_class)
    points = None
    if job.points is not None:
        points = load_points(job.points)
        validate_points_in_bounds(points, {r.slice_id: r.image.shape for r in records})
    config = job.config
    if job.epochs is not None:
        train_slices, _ = split_train_val(records, config.val_fraction, config.seed)
        config = for_epochs(config, job.epochs, len(train_slices), shard)
    result = train(records, config, job.out, points=points, progress=job.progress, shard=shard)
    if shard.is_main:
        best = "n/a" if result.best_val_dice is None else f"{result.best_val_dice:.4f}"
        print(
            f"best step {result.best_step} of {config.steps}, validation Dice {best}; "
            f"model: {Path(job.out) / 'model.pt'}"
        )
    return result


def run(args: argparse.Namespace) -> int:
    job = job_from(args)
    if args.gpus == 1:
        run_job(job)
        return 0
    check_gpus(args.gpus, job.config.device)
    launch(args.gpus, WORKER_MODULE, [job.to_json()])
    return 0
