"""``covidal bench-cv``: k-fold cross-validation of point-supervision methods against full masks.

Fixed folds (contiguous blocks of the slices sorted by number), the last model of each fold, micro Dice, IoU,
PPV and sensitivity over all held-out slices. Finished folds are kept in --out and reused by a rerun.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from covidal.bench.cross_validation import METHODS, cross_validate, markdown_table
from covidal.cli.bench_losses import add_schedule_options, write_results
from covidal.cli.options import (
    add_data_options,
    add_device_option,
    fraction,
    positive_int,
    window_from,
)
from covidal.data.slices import load_slices
from covidal.losses.registry import LossConfig
from covidal.models.slices.build import ModelConfig
from covidal.training.train_config import TrainConfig
from covidal.utils.atomic import atomic_write_bytes

DEFAULT_METHODS = ("full", "point", "cb-flip-rot")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-cv",
        help="cross-validate point-supervision methods against full masks (benchmark, not a test)",
        description=__doc__.split(":", 1)[1].strip(),
    )
    add_data_options(parser, masks_required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the models, fold results, results.json")
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS), help="methods to compare"
    )
    parser.add_argument("--folds", type=positive_int, default=5, help="number of folds (default 5)")
    add_schedule_options(parser, epochs=30, size=128)
    parser.add_argument("--width", type=positive_int, default=32, help="U-Net base channels (default 32)")
    parser.add_argument("--dropout", type=fraction, default=0.5, help="head dropout probability (default 0.5)")
    parser.add_argument("--table", type=Path, default=None, metavar="MD", help="also write the Markdown table here")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = TrainConfig(
        loss=LossConfig(),
        model=ModelConfig(width=args.width, dropout=args.dropout),
        batch_size=args.batch_size,
        learning_rate=args.lr,
        image_size=args.size,
        val_fraction=0.0,
        seed=args.seed,
        device=args.device,
        window=window_from(args),
        mask_class=args.mask_class,
    )
    records = load_slices(args.images, args.masks, config.window, config.mask_class)
    rows = cross_validate(
        records, args.methods, config, args.out, args.folds, args.epochs, progress=not args.quiet, log=_log
    )
    table = markdown_table(rows)
    write_results(args, rows, folds=args.folds, epochs=args.epochs)
    if args.table is not None:
        atomic_write_bytes(args.table, (table + "\n").encode())
    print(table)
    return 0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
