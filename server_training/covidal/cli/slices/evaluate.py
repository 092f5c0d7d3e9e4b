"""``covidal evaluate``: micro Dice/IoU/PPV/sensitivity/specificity, counting MAE and GAME over a set."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from covidal.cli.options import add_data_options, add_device_option
from covidal.data.slices import load_slices
from covidal.data.window import HUWindow
from covidal.training.checkpoint import load_run
from covidal.training.inference import evaluate
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write_json

SUMMARY_KEYS = ("dice", "iou", "ppv", "sensitivity", "specificity", "mae")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="evaluate a trained model against reference masks",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("--model", type=Path, required=True, help="run folder written by `covidal train`")
    add_data_options(parser, masks_required=True)
    parser.add_argument("--json", type=Path, required=True, help="where to write the metrics")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # None: use the window the model was trained with.
    parser.set_defaults(run=run, window_level=None, window_width=None)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    loaded = load_run(args.model, device)
    window = _window(args, loaded.config.window)
    mask_class = args.mask_class if args.mask_class is not None else loaded.config.mask_class
    records = load_slices(args.images, args.masks, window, mask_class)
    result = evaluate(
        loaded.model,
        records,
        loaded.config.image_size,
        device,
        progress=not args.quiet,
        options=loaded.config.prediction,
    )
    report = {
        **result.to_dict(),
        "settings": {
            "model": str(Path(args.model).resolve()),
            "images": str(args.images),
            "masks": str(args.masks),
            "image_size": loaded.config.image_size,
            "window": {"level": window.level, "width": window.width},
            "mask_class": mask_class,
            "threshold": 0.5,
            "averaging": "micro (TP/FP/FN/TN summed over slices, native grids)",
        },
    }
    atomic_write_json(args.json, report)
    print(" ".join(f"{key}={_fmt(report[key])}" for key in SUMMARY_KEYS) + f"  ({result.slices} slices) -> {args.json}")
    return 0


def _window(args: argparse.Namespace, trained: HUWindow) -> HUWindow:
    """The window the model was trained with, unless overridden on the command line."""
    level = trained.level if args.window_level is None else args.window_level
    width = trained.width if args.window_width is None else args.window_width
    return HUWindow(level=level, width=width)


def _fmt(value) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"
