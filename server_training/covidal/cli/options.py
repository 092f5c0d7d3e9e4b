"""Argument types and option groups shared by the commands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from covidal.data.window import HUWindow
from covidal.training.train_config import DeviceChoice


def positive_int(text: str) -> int:
    value = _parse(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _parse(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def finite_float(text: str) -> float:
    value = _parse(float, text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def fraction(text: str) -> float:
    value = _parse(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def image_size(text: str) -> int:
    value = positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32, got {value}")
    return value


def _parse(kind, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def add_data_options(parser: argparse.ArgumentParser, masks_required: bool) -> None:
    """``--images``/``--masks`` plus how CT is windowed and masks binarised."""
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        help="folder of PNG/JPG slices, a volume (NIfTI/NRRD/MHA), a DICOM series folder, or a folder of volumes",
    )
    parser.add_argument(
        "--masks",
        type=Path,
        required=masks_required,
        help="folder of masks sharing the images' stems, or label volume(s) matched by name",
    )
    parser.add_argument(
        "--mask-class",
        type=positive_int,
        default=None,
        help="use only this label of multi-class masks as infection (default: any non-zero)",
    )
    parser.add_argument(
        "--window-level", type=finite_float, default=-600.0, help="HU window level for CT (default -600)"
    )
    parser.add_argument(
        "--window-width", type=positive_float, default=1500.0, help="HU window width for CT (default 1500)"
    )


def window_from(args: argparse.Namespace) -> HUWindow:
    return HUWindow(level=args.window_level, width=args.window_width)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=[d.value for d in DeviceChoice],
        default=DeviceChoice.AUTO.value,
        help="where to run (default: cuda when available)",
    )
