"""``covidal bench-scoring``: slices per second of cached vs naive Monte-Carlo dropout scoring, in one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import Tensor

from covidal.bench.scoring_speed import (
    ScoringBenchResult,
    bench_scoring,
    format_rate,
    markdown_table,
)
from covidal.cli.options import (
    add_device_option,
    finite_float,
    image_size,
    non_negative_int,
    positive_float,
    positive_int,
)
from covidal.cli.slices.evaluate import _window
from covidal.data.slices import load_slices
from covidal.data.window import HUWindow
from covidal.errors import CovidalError
from covidal.models.kinds import ModelKind
from covidal.models.slices.build import ModelConfig, build_model
from covidal.models.slices.network import SegmentationNet
from covidal.training.checkpoint import load_run
from covidal.training.dataset import network_input
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write_json

DEFAULT_SIZE = 352
DEFAULT_WIDTH = 32
FRESH_MODEL_DROPOUT = 0.5


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-scoring",
        help="time cached vs naive MC-dropout scoring (benchmark, not a test)",
        description=__doc__.split(":", 1)[1].strip()
        + " Timings do not depend on the weights, so without --model a freshly initialised U-Net is timed.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="run folder written by `covidal train` (default: a fresh U-Net, dropout 0.5)",
    )
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        help="real slices (PNG/JPG folder, volume, DICOM series), repeated cyclically up to --slices "
        "(default: seeded random images)",
    )
    parser.add_argument(
        "--window-level",
        type=finite_float,
        default=None,
        help="HU window level for CT volumes (default: the run's, else -600)",
    )
    parser.add_argument(
        "--window-width",
        type=positive_float,
        default=None,
        help="HU window width for CT volumes (default: the run's, else 1500)",
    )
    parser.add_argument(
        "--size",
        type=image_size,
        default=None,
        help=f"side of the square network input (default: the run's training size, else {DEFAULT_SIZE})",
    )
    parser.add_argument("--samples", type=positive_int, default=20, help="T, MC-dropout samples per slice (default 20)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="slices per forward pass (default 16)")
    parser.add_argument("--slices", type=positive_int, default=64, help="slices scored per timed pass (default 64)")
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        help="timed passes per method, order alternating; the median is reported (default 3)",
    )
    parser.add_argument(
        "--width",
        type=positive_int,
        default=None,
        help=f"base width of the fresh U-Net (default {DEFAULT_WIDTH}); not with --model",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seeds the random images and the dropout masks"
    )
    add_device_option(parser)
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the result, command line and torch version here"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, size, window = _model_size_window(args, device)
    images = _images(args, size, window)
    result = bench_scoring(model, images, args.samples, args.batch_size, device, args.repeats, args.seed)
    print(_summary(result))
    if args.json is not None:
        atomic_write_json(
            args.json,
            {
                "result": result.to_dict(),
                "markdown": markdown_table([result]),
                "command": " ".join(["covidal", *sys.argv[1:]]),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
            },
        )
        print(f"result written to {args.json}")
    return 0


def _model_size_window(args: argparse.Namespace, device: torch.device) -> tuple[SegmentationNet, int, HUWindow]:
    """The trained run's model, size and window, or a fresh U-Net with the defaults; options override size and window.

    Raises:
        CovidalError: --width together with --model, or as :func:`load_run`.
    """
    if args.model is None:
        width = DEFAULT_WIDTH if args.width is None else args.width
        # Timings do not depend on the weights: seed the initialisation only so runs are repeatable.
        torch.manual_seed(args.seed)
        model = build_model(ModelConfig(name=ModelKind.UNET, dropout=FRESH_MODEL_DROPOUT, width=width))
        return model, args.size or DEFAULT_SIZE, _window(args, HUWindow())
    if args.width is not None:
        raise CovidalError("--width sets the fresh U-Net's width; a --model run has its own, so drop --width")
    loaded = load_run(args.model, device)
    return loaded.model, args.size or loaded.config.image_size, _window(args, loaded.config.window)


def _images(args: argparse.Namespace, size: int, window: HUWindow) -> Tensor:
    """``[slices, 1, size, size]`` network input: real slices repeated cyclically, or seeded standard-normal noise.

    Raises:
        CovidalError: as :func:`load_slices`.
    """
    if args.images is None:
        generator = torch.Generator().manual_seed(args.seed)
        return torch.randn(args.slices, 1, size, size, generator=generator)
    records = load_slices(args.images, None, window)[: args.slices]
    real = network_input([record.image for record in records], size)
    return real[torch.arange(args.slices) % len(real)]


def _summary(result: ScoringBenchResult) -> str:
    """One line per method, the ratio, the agreement and the device."""
    size = f"{result.image_size}x{result.image_size}"
    return "\n".join(
        [
            f"device: {result.device}; {result.model}; {result.slices} slices of {size}, T={result.samples}, "
            + f"batch {result.batch_size}, median of {result.repeats} repeats",
            f"cached (trunk once, T heads batched): {format_rate(result.cached_slices_per_s):>10} slices/s",
            f"naive (T full forward passes):        {format_rate(result.naive_slices_per_s):>10} slices/s",
            f"ratio cached/naive: {result.ratio:.1f}x",
            f"agreement: max |entropy difference| = {result.max_abs_entropy_difference:.2e} nats",
        ]
    )
