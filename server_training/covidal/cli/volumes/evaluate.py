"""``covidal evaluate-3d``: Dice and 95th-percentile Hausdorff distance (mm) of a 3D model, per volume and averaged.

Volumes are predicted with a sliding window on the training grid and scored on their own
(native) grid. HD95 is undefined (null) for a volume where exactly one of prediction and
reference is empty; the average HD95 is over the volumes where it is defined.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from covidal.cli.volumes.data import add_model_and_images, model_and_cases
from covidal.utils.atomic import atomic_write_json
from covidal.volumes.evaluation import VolumeScore, evaluate_cases


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate-3d",
        help="evaluate a 3D model: Dice and HD95 per volume",
        description=__doc__.split(":", 1)[1].strip(),
    )
    add_model_and_images(parser, "run folder written by `covidal train-3d` or `noisy-teacher`")
    parser.add_argument("--labels", type=Path, required=True, help="reference label volumes, matched by name")
    parser.add_argument("--json", type=Path, required=True, help="where to write the scores")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    loaded, device, cases = model_and_cases(args, args.labels, "test")
    config = loaded.config
    report = evaluate_cases(loaded.model, cases, config.sliding_window, device, config.amp, on_volume=_print_volume)
    report["settings"] = {
        "model": str(Path(args.model).resolve()),
        "mode": config.mode.value,
        "epoch": loaded.epoch,
        "images": str(args.images),
        "labels": str(args.labels),
        "threshold": 0.5,
        "averaging": "mean over volumes; hd95_mm over the volumes where it is defined",
    }
    atomic_write_json(args.json, report)
    hd95 = report["hd95_mm"]
    print(
        f"dice={report['dice']:.4f} hd95_mm={'n/a' if math.isnan(hd95) else f'{hd95:.2f}'} "
        f"({len(report['volumes'])} volumes) -> {args.json}"
    )
    return 0


def _print_volume(name: str, score: VolumeScore) -> None:
    hd95 = "n/a" if score.hd95_mm != score.hd95_mm else f"{score.hd95_mm:.2f} mm"
    print(
        f"{name}: Dice {score.dice:.4f}, HD95 {hd95}, predicted {score.predicted_ml:.1f} mL, "
        f"reference {score.reference_ml:.1f} mL"
    )
