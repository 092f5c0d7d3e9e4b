"""``covidal demo``: the main job, end to end on real chest CT with synthetic lesions.

It fetches a real chest CT from PyPI (the TotalSegmentator source distribution), inserts
synthetic ground-glass lesions inside its lungs, splits the lung slices into a training and
a held-out block, then runs the very commands a user would run: ``covidal train`` on points
derived from the training block, ``covidal evaluate`` on the held-out block, and
``covidal predict`` on the whole volume, which writes the prediction as NRRD.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.cli.options import add_device_option, image_size, non_negative_int, positive_int
from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.sample_data import describe, make_demo_case
from covidal.utils.atomic import atomic_write

TEST_SHARE = 0.3


def add_parser(commands) -> None:
    parser = commands.add_parser("demo", help="run the whole pipeline on a real CT with synthetic lesions",
                                 description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--out", type=Path, required=True, help="folder for the data split, the run and the prediction")
    parser.add_argument("--loss", choices=[n.value for n in LossName], default=LossName.CB_FLIP_ROT.value)
    parser.add_argument("--epochs", type=positive_int, default=12)
    parser.add_argument("--size", type=image_size, default=160, help="training grid (small so the demo runs on a CPU)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="download cache (default $COVIDAL_CACHE or ~/.cache/covidal)")
    add_device_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    case = make_demo_case(args.cache, seed=args.seed)
    print(describe(case))
    data = out / "data"
    train_ct, train_lesions, test_ct, test_lesions = _split_lung_slices(case, data)
    run_dir = out / "run"
    device = ["--device", args.device]
    _covidal("train", "--images", train_ct, "--masks", train_lesions, "--loss", args.loss, "--out", run_dir,
             "--epochs", args.epochs, "--size", args.size, "--val-fraction", 0.15, "--seed", args.seed, *device)
    metrics_path = out / "test_metrics.json"
    _covidal("evaluate", "--model", run_dir, "--images", test_ct, "--masks", test_lesions, "--json", metrics_path, *device)
    prediction = out / "prediction.nrrd"
    _covidal("predict", "--model", run_dir, "--input", case.ct, "--out", prediction, *device)
    metrics = json.loads(metrics_path.read_text())
    print(f"\nheld-out Dice {metrics['dice']:.3f} (IoU {metrics['iou']:.3f}, PPV {metrics['ppv']:.3f}, "
          f"sensitivity {metrics['sensitivity']:.3f}) on {metrics['slices']} slices never used for training.")
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


def _split_lung_slices(case, folder: Path) -> tuple[Path, Path, Path, Path]:
    """Crop the CT to its lung slices; the first 70% train, the last 30% are held out.

    A contiguous held-out block (not every n-th slice) keeps neighbouring, nearly identical
    slices from leaking between training and test.
    """
    ct, lesions = sitk.ReadImage(str(case.ct)), sitk.ReadImage(str(case.lesions))
    lung_slices = np.flatnonzero(sitk.GetArrayViewFromImage(sitk.ReadImage(str(case.lungs))).any(axis=(1, 2)))
    if len(lung_slices) < 10:
        raise CovidalError(f"the demo CT has only {len(lung_slices)} slices with lung")
    first, last = int(lung_slices[0]), int(lung_slices[-1]) + 1
    cut = last - round((last - first) * TEST_SHARE)
    paths = []
    for name, (start, stop) in (("train", (first, cut)), ("test", (cut, last))):
        for kind, image in (("ct", ct), ("lesions", lesions)):
            path = folder / f"{name}_{kind}.nrrd"
            block = image[:, :, start:stop]  # SimpleITK slicing keeps the geometry (origin moves with start)
            atomic_write(path, lambda tmp, block=block: sitk.WriteImage(block, str(tmp), True))
            paths.append(path)
    return tuple(paths)  # type: ignore[return-value]
