"""``covidal bench-losses``: train each loss on the same split and print held-out metrics per loss."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

from covidal.bench.losses import bench_losses, markdown_table
from covidal.cli.options import (
    add_data_options,
    add_device_option,
    image_size,
    non_negative_int,
    positive_float,
    positive_int,
    window_from,
)
from covidal.data.slices import load_slices
from covidal.losses.registry import LossConfig, LossName
from covidal.training.train_config import TrainConfig
from covidal.utils.atomic import atomic_write_json


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-losses",
        help="compare the losses on one split (benchmark, not a test)",
        description=__doc__.split(":", 1)[1].strip(),
    )
    add_data_options(parser, masks_required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for one run per loss and results.json")
    parser.add_argument("--losses", nargs="+", choices=[n.value for n in LossName], default=[n.value for n in LossName])
    add_schedule_options(parser, epochs=150, size=352)
    parser.add_argument(
        "--val-count", type=positive_int, default=5, help="first N slices (by number) select the best pass"
    )
    parser.add_argument(
        "--test-count", type=positive_int, default=10, help="last N slices (by number) are the held-out test set"
    )
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(run=run)


def add_schedule_options(parser: argparse.ArgumentParser, epochs: int, size: int) -> None:
    """--epochs, --batch-size, --lr, --size and --seed of a training benchmark, with these defaults."""
    parser.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the training slices")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--size", type=image_size, default=size, help=f"square training grid (default {size})")
    parser.add_argument("--seed", type=non_negative_int, default=0)


def write_results(args: argparse.Namespace, rows: list[dict], **extra: object) -> None:
    """``args.out/results.json``: the rows, the command line, torch, the device, and ``extra``."""
    environment = {
        "command": " ".join(["covidal", *sys.argv[1:]]),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available() and args.device != "cpu"
        else platform.processor() or "cpu",
        **extra,
    }
    atomic_write_json(args.out / "results.json", {"rows": rows, "environment": environment})


def run(args: argparse.Namespace) -> int:
    config = TrainConfig(
        loss=LossConfig(),
        batch_size=args.batch_size,
        learning_rate=args.lr,
        image_size=args.size,
        seed=args.seed,
        device=args.device,
        window=window_from(args),
        mask_class=args.mask_class,
    )
    records = load_slices(args.images, args.masks, config.window, config.mask_class)
    losses = [LossName(name) for name in args.losses]
    rows = bench_losses(
        records, losses, config, args.out, args.val_count, args.test_count, args.epochs, progress=not args.quiet
    )
    write_results(args, rows, config=config.to_dict())
    print(markdown_table(rows))
    return 0
