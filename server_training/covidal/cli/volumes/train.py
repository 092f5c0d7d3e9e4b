"""``covidal train-3d``: train the 3D teacher (a residual 3D U-Net) on expert-labelled volumes."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidal.cli.volumes.data import load_cases
from covidal.cli.volumes.options import add_training_options, config_from
from covidal.noisyteacher.student_modes import StudentMode
from covidal.noisyteacher.trainer import train_3d


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train-3d",
        help="train a 3D model on labelled volumes (the noisy teacher)",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        help="folder of volumes (NIfTI/NRRD/MHA files or DICOM series folders), or one volume",
    )
    parser.add_argument("--labels", type=Path, required=True, help="folder of label volumes named like the images")
    parser.add_argument("--out", type=Path, required=True, help="run folder (model.pt, config.json, history.json)")
    add_training_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args, StudentMode.SUPERVISED)
    cases = load_cases(args.images, args.labels, config.spacing, config.window, "expert")
    result = train_3d(config, [prepared for _, prepared in cases], args.out)
    last = result.epochs[-1]
    print(
        f"trained {config.epochs} epochs, last expert loss {last.expert_loss:.4f}; model: {Path(args.out) / 'model.pt'}"
    )
    return 0
