"""Options shared by the 3D commands (``train-3d``, ``noisy-teacher``, ``bench-reweight``)."""

from __future__ import annotations

import argparse

from covidal.cli.options import add_device_option, non_negative_int, positive_float, positive_int
from covidal.errors import CovidalError
from covidal.models.volumes.unet import UNet3DConfig
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.noisyteacher.student_modes import StudentMode
from covidal.volumes.patches import PatchConfig
from covidal.volumes.preprocess import TARGET_SPACING_MM
from covidal.volumes.sliding_window import SlidingWindowConfig


def int_tuple(text: str) -> tuple[int, ...]:
    """``"16,32,64"`` -> ``(16, 32, 64)``; every value at least 1."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"every value must be at least 1, got {text!r}")
    return values


def patch_size(text: str) -> tuple[int, int, int]:
    """``"96"`` (a cube) or ``"96,96,48"`` (D, H, W = k, j, i)."""
    values = int_tuple(text)
    if len(values) == 1:
        return values * 3  # type: ignore[return-value]
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"give one size or three (D,H,W), got {text!r}")
    return values  # type: ignore[return-value]


def spacing_mm(text: str) -> tuple[float, float, float]:
    """``"1.6,1.6,3.2"`` (i, j, k) in mm, all positive."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated millimetre values, got {text!r}") from None
    if len(values) != 3 or not all(0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"expected three positive millimetre values (i,j,k), got {text!r}")
    return values  # type: ignore[return-value]


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Batch, schedule, optimiser, grid, network and device options of a 3D training run."""
    defaults = Train3DConfig()
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=defaults.batch_size,
        help=f"patches per batch (default {defaults.batch_size})",
    )
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs, help=f"default {defaults.epochs}")
    parser.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        default=defaults.steps_per_epoch,
        help=f"optimiser steps per epoch (default {defaults.steps_per_epoch})",
    )
    parser.add_argument("--lr", type=positive_float, default=defaults.learning_rate, help="Adam learning rate")
    parser.add_argument(
        "--patch",
        type=patch_size,
        default=PatchConfig().size,
        help="training patch and sliding window, voxels: N or D,H,W (default 96)",
    )
    parser.add_argument(
        "--foreground-probability",
        type=float,
        default=PatchConfig().foreground_probability,
        help="share of patches centred on a labelled voxel (default 0.5)",
    )
    parser.add_argument(
        "--spacing", type=spacing_mm, default=TARGET_SPACING_MM, help="training grid in mm, i,j,k (default 1.6,1.6,3.2)"
    )
    parser.add_argument(
        "--channels",
        type=int_tuple,
        default=UNet3DConfig().channels,
        help="U-Net channels per level (default 16,32,64,128,256: the paper's 4,806,481 parameters)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_device_option(parser)
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=None,
        help="per-sample gradients this many samples at a time (saves GPU memory)",
    )


def config_from(args: argparse.Namespace, mode: StudentMode, lam: float = 0.5) -> Train3DConfig:
    """The run's config from the options of :func:`add_training_options`.

    Raises:
        CovidalError: an invalid value the argument types cannot see (e.g. a
            foreground probability outside [0, 1]).
    """
    channels = tuple(args.channels)
    try:
        return _config(args, mode, lam, channels)
    except ValueError as error:
        raise CovidalError(str(error)) from None


def _config(args: argparse.Namespace, mode: StudentMode, lam: float, channels: tuple[int, ...]) -> Train3DConfig:
    return Train3DConfig(
        mode=mode,
        lam=lam,
        batch_size=args.batch,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.lr,
        spacing=tuple(args.spacing),
        patch=PatchConfig(size=tuple(args.patch), foreground_probability=args.foreground_probability),
        network=UNet3DConfig(channels=channels, strides=(2,) * (len(channels) - 1)),
        sliding_window=SlidingWindowConfig(patch_size=tuple(args.patch)),
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        chunk_size=args.chunk_size,
    )
