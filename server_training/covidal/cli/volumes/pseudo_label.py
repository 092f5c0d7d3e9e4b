"""``covidal pseudo-label``: label unlabelled volumes with a trained 3D model (the noisy teacher)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from covidal.cli.options import add_device_option
from covidal.cli.volumes.data import load_cases
from covidal.data.io import write_volume
from covidal.noisyteacher.run import load_model
from covidal.training.train_config import resolve_device
from covidal.volumes.sliding_window import predict_on_source_grid


def add_parser(commands) -> None:
    parser = commands.add_parser("pseudo-label", help="write pseudo-label volumes for unlabelled volumes",
                                 description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--model", type=Path, required=True, help="run folder written by `covidal train-3d`")
    parser.add_argument("--images", type=Path, required=True, help="folder of volumes (files or DICOM series folders)")
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.nrrd label volumes (input geometry)")
    parser.add_argument("--probabilities", action="store_true", help="also write <name>_probability.nrrd (float32)")
    add_device_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    loaded = load_model(args.model, device)
    config = loaded.config
    cases = load_cases(args.images, None, config.spacing, config.window, "unlabelled")
    for source, prepared in cases:
        label, probability = predict_on_source_grid(loaded.model, prepared, config.sliding_window, device, config.amp)
        write_volume(label, args.out / f"{source.name}.nrrd")
        if args.probabilities:
            write_volume(probability, args.out / f"{source.name}_probability.nrrd")
        millilitres = float(label.array.astype(bool).sum()) * float(np.prod(label.spacing)) / 1000.0
        print(f"{source.name}: {millilitres:.1f} mL labelled -> {args.out / (source.name + '.nrrd')}")
    return 0
