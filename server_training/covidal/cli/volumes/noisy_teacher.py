"""``covidal noisy-teacher``: train a 3D student on expert volumes plus pseudo-labelled volumes.

Each step uses one expert batch and one pseudo-labelled batch; the pseudo-labelled patches are
weighted per sample according to --mode (supervised: expert only; semi: equal weights; rgs:
gradient agreement with the expert batch; rgm: gradient magnitude at the last layer; rgsm: both,
mixed by --lambda; -al: only samples weighing at least 1/batch count).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from covidal.cli.volumes.data import load_cases
from covidal.cli.volumes.options import add_training_options, config_from
from covidal.errors import CovidalError
from covidal.noisyteacher.student_modes import StudentMode, uses_pseudo_labels
from covidal.noisyteacher.trainer import train_3d


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "noisy-teacher",
        help="train a 3D student on expert + re-weighted pseudo-labelled volumes",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("--expert-images", type=Path, required=True, help="folder of expert-labelled volumes")
    parser.add_argument("--expert-labels", type=Path, required=True, help="their label volumes, matched by name")
    parser.add_argument("--pseudo-images", type=Path, default=None, help="folder of unlabelled volumes")
    parser.add_argument(
        "--pseudo-labels",
        type=Path,
        default=None,
        help="their pseudo-labels (from `covidal pseudo-label`), matched by name",
    )
    parser.add_argument("--mode", choices=[m.value for m in StudentMode], required=True)
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=_unit_interval,
        default=0.5,
        help="rgsm/rgsm-al: weight = lambda * RGS + (1 - lambda) * RGM (default 0.5)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    add_training_options(parser)
    parser.set_defaults(run=run)


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    mode = StudentMode(args.mode)
    config = config_from(args, mode, args.lam)
    has_pseudo = (args.pseudo_images is not None, args.pseudo_labels is not None)
    if any(has_pseudo) and not all(has_pseudo):
        raise CovidalError("give both --pseudo-images and --pseudo-labels, or neither")
    if uses_pseudo_labels(mode) and not all(has_pseudo):
        raise CovidalError(f"--mode {mode.value} needs --pseudo-images and --pseudo-labels")
    expert = load_cases(args.expert_images, args.expert_labels, config.spacing, config.window, "expert")
    pseudo = []
    if uses_pseudo_labels(mode):
        pseudo = load_cases(args.pseudo_images, args.pseudo_labels, config.spacing, config.window, "pseudo-labelled")
    elif all(has_pseudo):
        print("mode supervised: the pseudo-labelled volumes are not used")
    result = train_3d(config, [p for _, p in expert], args.out, [p for _, p in pseudo])
    skipped = sum(epoch.skipped_steps for epoch in result.epochs)
    print(
        f"mode {mode.value}: {config.epochs} epochs, {skipped} steps whose pseudo-labelled batch had all-zero "
        f"weights; model: {Path(args.out) / 'model.pt'}"
    )
    return 0
