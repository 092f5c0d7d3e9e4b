"""``covidal demo``: the main job, end to end on real chest CT with synthetic lesions.

It fetches a real chest CT from PyPI (the TotalSegmentator source distribution) and makes
two cases from it with different synthetic ground-glass lesions inside its lungs. Then it
runs the very commands a user would run: ``covidal train`` on points derived from the first
case's lung slices, ``covidal evaluate`` on the second case's, and ``covidal predict`` on the
whole first CT, which writes the prediction as NRRD.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.cli.options import (
    add_device_option,
    image_size,
    non_negative_int,
    positive_int,
)
from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.sample_data import describe, make_demo_case
from covidal.utils.atomic import atomic_write

CROP_MARGIN = 8  # voxels kept around the lungs' bounding box


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help="run the whole pipeline on a real CT with synthetic lesions",
                                 description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--out", type=Path, required=True, help="folder for the data split, the run and the prediction")
    parser.add_argument("--loss", choices=[n.value for n in LossName], default=LossName.CB_FLIP_ROT.value)
    parser.add_argument("--epochs", type=positive_int, default=15)
    parser.add_argument("--size", type=image_size, default=128, help="training grid (small so the demo runs on a CPU)")
    parser.add_argument("--width", type=positive_int, default=16, help="U-Net base channels (small so the demo runs on a CPU)")
    parser.add_argument("--background-points", type=positive_int, default=8,
                        help="background clicks per slice at least (lesions here are small: 2%% of the lungs)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="download cache (default $COVIDAL_CACHE or ~/.cache/covidal)")
    add_device_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    case, test_case = make_demo_case(args.cache, seed=args.seed), make_demo_case(args.cache, seed=args.seed + 1)
    print(f"training case:\n{describe(case)}\nheld-out case (same CT, other synthetic lesions):\n{describe(test_case)}")
    train_ct, train_lesions, test_ct, test_lesions = _crop_cases(case, test_case, out / "data")
    run_dir = out / "run"
    device = ["--device", args.device]
    _covidal("train", "--images", train_ct, "--masks", train_lesions, "--loss", args.loss, "--out", run_dir,
             "--epochs", args.epochs, "--size", args.size, "--width", args.width, "--val-fraction", 0.15,
             "--background-points", args.background_points,
             "--seed", args.seed, *device)
    metrics_path = out / "test_metrics.json"
    _covidal("evaluate", "--model", run_dir, "--images", test_ct, "--masks", test_lesions, "--json", metrics_path, *device)
    prediction = out / "prediction.nrrd"
    _covidal("predict", "--model", run_dir, "--input", case.ct, "--out", prediction, *device)
    metrics = json.loads(metrics_path.read_text())
    print(f"\nheld-out Dice {metrics['dice']:.3f} (IoU {metrics['iou']:.3f}, PPV {metrics['ppv']:.3f}, "
          f"sensitivity {metrics['sensitivity']:.3f}) on {metrics['slices']} slices whose lesions were never seen in training.")
    print(f"prediction (label volume, CT geometry): {prediction}")
    print("the lesions are synthetic, inserted into a real CT; see README.md")
    return 0


def _covidal(*argv) -> None:
    """Run one covidal command in this process, exactly as typed on the command line."""
    from covidal.cli.main import main

    words = [str(word) for word in argv]
    print(f"\n$ covidal {shlex.join(words)}", flush=True)
    status = main(words)
    if status:
        raise CovidalError(f"`covidal {words[0]}` failed with status {status}")


def _crop_cases(train_case, test_case, folder: Path) -> tuple[Path, Path, Path, Path]:
    """Crop both cases to the lungs' bounding box (+ margin) and write them as NRRD.

    Both cases share the same real anatomy (so the same lungs) but carry different
    synthetic lesions: evaluating on the second case measures how well lesions the
    model never saw are found, with no lesion shared between training and test.
    The crop keeps only the chest, so the small CPU training grid keeps native resolution.
    """
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(train_case.lungs))).astype(bool)  # [K, J, I]
    if lungs.any(axis=(1, 2)).sum() < 10:
        raise CovidalError("the demo CT has fewer than 10 slices with lung")
    (k0, k1), (j0, j1), (i0, i1) = (
        _extent(lungs.any(axis=axes), margin) for axes, margin in (((1, 2), 0), ((0, 2), CROP_MARGIN), ((0, 1), CROP_MARGIN))
    )
    paths = []
    for name, case in (("train", train_case), ("test", test_case)):
        for kind, source in (("ct", case.ct), ("lesions", case.lesions)):
            path = folder / f"{name}_{kind}.nrrd"
            block = sitk.ReadImage(str(source))[i0:i1, j0:j1, k0:k1]  # SimpleITK slicing keeps the geometry
            atomic_write(path, lambda tmp, block=block: sitk.WriteImage(block, str(tmp), True))
            paths.append(path)
    return tuple(paths)  # type: ignore[return-value]


def _extent(occupied: np.ndarray, margin: int) -> tuple[int, int]:
    """``[start, stop)`` of the occupied indices of a 1D mask, widened by ``margin`` within bounds."""
    index = np.flatnonzero(occupied)
    return max(0, int(index[0]) - margin), min(len(occupied), int(index[-1]) + 1 + margin)
