"""``covidal train``: fit a 2D model to point labels (or full masks for the upper bound)."""

from __future__ import annotations

import argparse
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
from covidal.models.registry import ModelConfig, ModelName
from covidal.training.config import TrainConfig
from covidal.training.trainer import train


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train a 2D segmentation model from points",
                                 description=__doc__.split(":", 1)[1].strip())
    add_data_options(parser, masks_required=False)
    parser.add_argument("--loss", choices=[n.value for n in LossName], required=True,
                        help="point: CE on clicked pixels; cb-flip / cb-flip-rot: + consistency under flips (and rotations); "
                             "lcfcn / cb-lcfcn: counting loss (with consistency); full: fully supervised upper bound")
    parser.add_argument("--out", type=Path, required=True, help="run folder for model.pt, train.json, points.json")
    parser.add_argument("--points", type=Path, default=None,
                        help="points JSON (covidal.points v1); default: derived from the masks, one per lesion + as many background")
    parser.add_argument("--background-points", type=positive_int, default=1,
                        help="derived points: at least N background clicks per slice (default 1: the paper's protocol, "
                             "as many background as infection clicks)")
    parser.add_argument("--model", choices=[n.value for n in ModelName], default=ModelName.UNET.value)
    parser.add_argument("--width", type=positive_int, default=32, help="U-Net base channels (default 32)")
    parser.add_argument("--pretrained", type=Path, default=None, help="local VGG16 ImageNet weights for fcn8 (default: from scratch)")
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--size", type=image_size, default=352, help="square training grid (default 352)")
    parser.add_argument("--dropout", type=fraction, default=0.5, help="head dropout probability (default 0.5)")
    parser.add_argument("--consistency-weight", type=non_negative_float, default=1.0, help="lambda of the CB loss")
    parser.add_argument("--val-fraction", type=fraction, default=0.1, help="share of slices held out for model selection")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def config_from(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        loss=LossConfig(name=LossName(args.loss), consistency_weight=args.consistency_weight),
        model=ModelConfig(name=ModelName(args.model), dropout=args.dropout, width=args.width,
                          pretrained=None if args.pretrained is None else str(args.pretrained.resolve())),
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, image_size=args.size,
        val_fraction=args.val_fraction, seed=args.seed, device=args.device,
        window=window_from(args), mask_class=args.mask_class, min_background_points=args.background_points,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.masks is None and (args.points is None or config.val_fraction > 0):
        raise CovidalError("--masks is required (to derive points and to validate); "
                           "without masks give --points FILE and --val-fraction 0")
    records = load_slices(args.images, args.masks, config.window, config.mask_class)
    points = None
    if args.points is not None:
        points = load_points(args.points)
        validate_points_in_bounds(points, {r.slice_id: r.image.shape for r in records})
    result = train(records, config, args.out, points=points, progress=not args.quiet)
    best = "n/a" if result.best_val_dice is None else f"{result.best_val_dice:.4f}"
    print(f"best epoch {result.best_epoch}, validation Dice {best}; model: {Path(args.out) / 'model.pt'}")
    return 0
