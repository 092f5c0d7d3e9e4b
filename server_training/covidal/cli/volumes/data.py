"""Loading the volumes a 3D command is pointed at, with one line of progress per volume."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidal.cli.options import add_device_option
from covidal.data.window import HUWindow
from covidal.noisyteacher.run import load_model
from covidal.training.train_config import resolve_device
from covidal.volumes.cases import CaseSource, list_volume_cases
from covidal.volumes.preprocess import PreparedCase, prepare_case


def load_cases(
    images: Path, labels: Path | None, spacing: tuple[float, float, float], window: HUWindow, what: str
) -> list[tuple[CaseSource, PreparedCase]]:
    """Every case of ``images`` (labels matched by name), read and resampled to ``spacing``.

    Raises:
        CovidalError: anything :func:`list_volume_cases` or :func:`prepare_case` refuses.
    """
    sources = list_volume_cases(images, labels)
    print(f"{what}: {len(sources)} volumes from {images}", flush=True)
    return [(source, prepare_case(source, spacing, window)) for source in sources]


def add_model_and_images(parser: argparse.ArgumentParser, model_help: str) -> None:
    """``--model`` (a 3D run folder) and ``--images`` (the volumes to run it on), plus ``--device``."""
    parser.add_argument("--model", type=Path, required=True, help=model_help)
    parser.add_argument("--images", type=Path, required=True, help="folder of volumes (files or DICOM series folders)")
    add_device_option(parser)


def model_and_cases(args: argparse.Namespace, labels: Path | None, part: str):
    """``(loaded model, its device, the cases of --images)`` prepared on the model's grid and window.

    Raises:
        CovidalError: the model or a volume cannot be read.
    """
    device = resolve_device(args.device)
    loaded = load_model(args.model, device)
    return loaded, device, load_cases(args.images, labels, loaded.config.spacing, loaded.config.window, part)
