"""``covidal pseudo-label``: label unlabelled volumes with a trained 3D model (the noisy teacher)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from covidal.cli.volumes.data import add_model_and_images, model_and_cases
from covidal.data.io import write_volume
from covidal.volumes.sliding_window import predict_on_source_grid


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "pseudo-label",
        help="write pseudo-label volumes for unlabelled volumes",
        description=__doc__.split(":", 1)[1].strip(),
    )
    add_model_and_images(parser, "run folder written by `covidal train-3d`")
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.nrrd label volumes (input geometry)")
    parser.add_argument("--probabilities", action="store_true", help="also write <name>_probability.nrrd (float32)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded, device, cases = model_and_cases(args, None, "unlabelled")
    config = loaded.config
    for source, prepared in cases:
        label, probability = predict_on_source_grid(loaded.model, prepared, config.sliding_window, device, config.amp)
        write_volume(label, args.out / f"{source.name}.nrrd")
        if args.probabilities:
            write_volume(probability, args.out / f"{source.name}_probability.nrrd")
        millilitres = float(label.array.astype(bool).sum()) * float(np.prod(label.spacing)) / 1000.0
        print(f"{source.name}: {millilitres:.1f} mL labelled -> {args.out / (source.name + '.nrrd')}")
    return 0
