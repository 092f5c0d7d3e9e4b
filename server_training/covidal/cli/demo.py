"""``covidal demo``: the main job, region active learning through the HTTP service on a real CT with synthetic lesions.

It fetches a real chest CT from PyPI (the TotalSegmentator source distribution) and makes two cases of
it: synthetic ground-glass and consolidation lesions painted inside its lungs with two seeds, both cropped
to the lungs. Then it starts ``covidal serve`` on loopback and, through the HTTP API only (``covidal.client``),
does what a clinician with the Slicer module does, with the service's default settings: creates a project,
uploads the training case, and runs cycles of suggested regions answered by a simulated annotator (one
click on infection, else "background", 3 s each) followed by a training job. After each cycle the model
predicts the held-out case (never suggested, never answered): Dice and infected mL against its lesions are
the learning curve. At the end it writes the held-out prediction (NRRD on the case's grid), the learning
curve (PNG) and the prediction over the CT next to the truth at the held-out case's most infected slice (PNG).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.cli.options import add_device_option, image_size, non_negative_int, positive_int
from covidal.cli.served_loop import Tally, annotate_cycle, simulated_annotator, train_job
from covidal.client import BackendUnreachable, ClientError, CovidalClient
from covidal.data.io import read_volume
from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.regions.grid import RegionGrid
from covidal.sample_data.demo import DemoCase, chest_box, describe, make_demo_case
from covidal.sample_data.figures import HeldOutPoint, curve_png, overlay_png
from covidal.service.local import local_service
from covidal.training.background_prior import BackgroundPrior
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write, atomic_write_bytes


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run region active learning through the service on a real CT with synthetic lesions",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for the cropped cases, the service's project, the prediction and the figures",
    )
    parser.add_argument("--cycles", type=positive_int, default=3, help="annotate-then-train cycles (default 3)")
    service_default = "default: the service's for its device (GET /defaults)"
    parser.add_argument("--regions", type=positive_int, help=f"suggested regions per cycle ({service_default})")
    parser.add_argument("--steps", type=positive_int, help=f"training steps per cycle ({service_default})")
    parser.add_argument("--grid-k", type=positive_int, help=f"regions per slice, a perfect square ({service_default})")
    parser.add_argument(
        "--mc-samples", type=positive_int, help=f"MC-dropout samples scoring regions ({service_default})"
    )
    parser.add_argument("--loss", choices=[n.value for n in LossName], help=f"the project's loss ({service_default})")
    parser.add_argument("--size", type=image_size, help=f"training grid ({service_default})")
    parser.add_argument("--width", type=positive_int, help=f"U-Net base channels ({service_default})")
    parser.add_argument(
        "--background-prior",
        choices=[prior.value for prior in BackgroundPrior],
        help=f"background labelled without an answer on the answered slices ({service_default})",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="lesions of the training case (held out: +1)")
    parser.add_argument(
        "--cache", type=Path, default=None, help="download cache (default $COVIDAL_CACHE or ~/.cache/covidal)"
    )
    add_device_option(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class CroppedCase:
    """A demo case cropped to the lungs: ``ct.nrrd``-like files and the lesions ``[K, J, I]`` in memory."""

    ct: Path
    lesions_path: Path
    lesions: np.ndarray
    voxel_ml: float

    @property
    def lesion_ml(self) -> float:
        return float(self.lesions.sum()) * self.voxel_ml


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    out: Path = args.out
    if args.grid_k is not None:
        _region_grid(args.grid_k)  # refused before anything is made or started
    case, held_out_case = (make_demo_case(args.cache, seed=seed) for seed in (args.seed, args.seed + 1))
    print(f"training case:\n{describe(case)}\nheld-out case:\n{describe(held_out_case)}", flush=True)
    box = chest_box(case)
    train = _crop_case(case, box, out / "data", "")
    held_out = _crop_case(held_out_case, box, out / "data", "heldout_")
    try:
        tally, stats = _active_learning(args, train, held_out)
    except (ClientError, BackendUnreachable) as error:
        raise CovidalError(f"the demo's request to the service failed: {error} (see {out / 'service.log'})") from None
    prediction = out / "prediction.nrrd"
    predicted = read_volume(prediction).array != 0
    curve, overlay = out / "learning_curve.png", out / "prediction_vs_truth.png"
    atomic_write_bytes(curve, curve_png(tally.curve, "demo, held-out case"))
    slice_index = int(np.argmax(held_out.lesions.sum(axis=(1, 2))))
    atomic_write_bytes(
        overlay,
        overlay_png(
            read_volume(held_out.ct).array[slice_index],
            predicted[slice_index],
            held_out.lesions[slice_index],
            slice_index,
        ),
    )
    print(f"\nheld-out prediction (label volume on the case's grid): {prediction}\nlearning curve: {curve}")
    print(f"prediction over the CT next to the truth, slice {slice_index} (most infected): {overlay}")
    print("the lesions are synthetic, painted into a real CT; the held-out case was never suggested nor answered")
    last = tally.curve[-1]
    print(
        f"summary: {tally.regions} regions answered ({tally.infection} with a click on infection), "
        f"{tally.effort_seconds:g} s of annotation effort; held-out case: Dice {last.dice:.3f} against the "
        f"synthetic lesions, {last.infected_ml:.1f} mL predicted infected vs {held_out.lesion_ml:.1f} mL true "
        f"(right lung {_percent(stats['right_lung_percent'])}, left lung {_percent(stats['left_lung_percent'])} "
        f"involved) (wall time {time.monotonic() - started:.0f} s)"
    )
    return 0


def _percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}%"


def _active_learning(args: argparse.Namespace, train: CroppedCase, held_out: CroppedCase) -> tuple[Tally, dict]:
    """Start the service, run the cycles through its HTTP API, measure on the held-out case after each.

    Returns:
        ``(what the annotator did and the held-out curve, the last held-out prediction's figures)``; the last
        held-out prediction is saved as ``OUT/prediction.nrrd``.
    """
    out: Path = args.out
    device = resolve_device(args.device).type  # the service takes cpu or cuda, not auto
    with local_service(out / "service", out / "service.log", device) as client:
        print(
            f"\ncovidal serve is answering at {client.base_url} (project folder {out / 'service'}, "
            f"log {out / 'service.log'})",
            flush=True,
        )
        defaults = client.defaults()
        project = client.create_project(
            f"demo-seed{args.seed}",
            grid_k=args.grid_k,
            mc_samples=args.mc_samples,
            loss=args.loss,
            settings=_training_settings(args, defaults),
        )
        print(_project_line(project, args.regions or defaults["regions_per_cycle"]), flush=True)
        volume, _ = client.upload_volume(project["id"], train.ct, "demo_ct")
        held_out_volume, _ = client.upload_volume(project["id"], held_out.ct, "heldout_ct")
        annotator = simulated_annotator({volume["id"]: train.lesions}, RegionGrid(project["grid_k"]), args.seed)
        tally, stats = Tally(), {}
        for cycle_number in range(1, args.cycles + 1):
            print(f"\ncycle {cycle_number}/{args.cycles}", flush=True)
            count = args.regions or defaults["regions_per_cycle"]
            annotate_cycle(client, project["id"], [volume["id"]], count, annotator, tally)
            train_job(client, project["id"], args.steps)
            stats = _measure_held_out(client, project["id"], held_out_volume["id"], held_out, out, tally)
    return tally, stats


def _project_line(project: dict, regions: int) -> str:
    settings = project["settings"]
    return (
        f"project {project['id']}: loss {project['loss']}, {project['strategy']} with {project['mc_samples']} "
        f"MC-dropout samples, {project['grid_k']} regions per slice, {regions} suggestions per cycle, "
        f"{settings['image_size']}-pixel grid, U-Net width {settings['width']}, {settings['steps']} steps per job, "
        f"background prior {settings.get('background_prior', 'none')}"
    )


def _region_grid(regions: int) -> RegionGrid:
    try:
        return RegionGrid(regions)
    except ValueError as error:
        raise CovidalError(f"--grid-k: {error}") from None


def _training_settings(args: argparse.Namespace, defaults: dict) -> dict:
    """Project settings the training job reads (see ``TrainJobConfig.for_project``): the options given, else the
    service's defaults (which the service records for those left out)."""
    chosen = {
        "image_size": args.size,
        "width": args.width,
        "steps": args.steps,
        "background_prior": args.background_prior,
    }
    steps = args.steps or defaults["steps"]
    return {key: value for key, value in chosen.items() if value is not None} | {
        "seed": args.seed,
        "checkpoint_every": steps,  # the job's own Dice (answered pixels) once, at its end
    }


def _dice(predicted: np.ndarray, reference: np.ndarray) -> float:
    """``2 |P & R| / (|P| + |R|)`` over all voxels (1 when both are empty)."""
    total = int(predicted.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((predicted & reference).sum()) / total


def _measure_held_out(
    client: CovidalClient, project_id: int, volume_id: int, held_out: CroppedCase, out: Path, tally: Tally
) -> dict:
    """Predict the held-out case with the current model, save it as ``OUT/prediction.nrrd``, add a curve point.

    Returns:
        the service's figures of the prediction (infected mL, share of each lung).
    """
    stats = client.predict_volume(project_id, volume_id)
    path = client.download_prediction(project_id, volume_id, out / "prediction.nrrd")
    dice = _dice(read_volume(path).array != 0, held_out.lesions)
    tally.curve.append(HeldOutPoint(tally.regions, tally.effort_seconds, dice, stats["infected_ml"]))
    print(
        f"  after {tally.regions} answers ({tally.effort_seconds:g} s): held-out Dice {dice:.3f}, "
        f"{stats['infected_ml']:.1f} mL predicted infected vs {held_out.lesion_ml:.1f} mL true",
        flush=True,
    )
    return stats


def _crop_case(case: DemoCase, box: tuple[slice, slice, slice], folder: Path, prefix: str) -> CroppedCase:
    """Write ``{prefix}ct.nrrd`` and ``{prefix}lesions.nrrd``, the case cropped to ``box``.

    Every lesion lies in the lungs, hence in the crop: a Dice on the crop is the Dice on the whole CT with
    background predicted outside it.
    """
    paths = []
    for kind, source in (("ct", case.ct), ("lesions", case.lesions)):
        path = folder / f"{prefix}{kind}.nrrd"
        block = sitk.ReadImage(str(source))[box]  # SimpleITK slicing keeps the geometry
        atomic_write(path, lambda tmp, block=block: sitk.WriteImage(block, str(tmp), True))
        paths.append(path)
    lesions = sitk.ReadImage(str(paths[1]))
    voxel_ml = float(np.prod(lesions.GetSpacing())) / 1000.0
    return CroppedCase(paths[0], paths[1], sitk.GetArrayFromImage(lesions).astype(bool), voxel_ml)
