"""``covidal demo``: the main job, region active learning through the HTTP service on a real CT with synthetic lesions.

It fetches a real chest CT from PyPI (the TotalSegmentator source distribution), paints
synthetic ground-glass lesions inside its lungs and crops it to the lungs. Then it starts
``covidal serve`` on loopback and, through the HTTP API only (``covidal.client``), does what
a clinician with the Slicer module does: creates a project, uploads the CT, and runs cycles
of suggested regions answered by a simulated annotator (one click on infection, else
"background", 3 s each) followed by a training job. At the end it downloads the prediction
(NRRD on the CT's grid) and the learning curve (PNG), and prints Dice against the lesions.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.annotation.annotator import SimulatedAnnotator
from covidal.annotation.state import Answer
from covidal.cli.options import (
    add_device_option,
    image_size,
    non_negative_int,
    positive_int,
)
from covidal.client import BackendUnreachable, ClientError, CovidalClient
from covidal.data.io import geometry_difference, read_volume
from covidal.errors import CovidalError
from covidal.losses.registry import LossName
from covidal.regions.grid import RegionGrid, RegionId
from covidal.sample_data.demo import describe, make_demo_case
from covidal.service.local import local_service
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write

CROP_MARGIN = 8  # voxels kept around the lungs' bounding box
EFFORT_SECONDS = 3.0  # a click or a "background" tag (a slice delineation is about 96 s)
ANNOTATOR = "simulated-annotator"
CASE = "demo"
POLL_S = 0.5
PRINT_EVERY_S = 5.0  # progress lines at most this often, plus the last step
JOB_TIMEOUT_S = 3600.0


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
        help="folder for the cropped case, the service's project, the prediction and the curve",
    )
    parser.add_argument("--cycles", type=positive_int, default=3, help="annotate-then-train cycles (default 3)")
    parser.add_argument("--regions", type=positive_int, default=48, help="suggested regions per cycle (default 48)")
    parser.add_argument("--steps", type=positive_int, default=60, help="training steps per cycle (default 60)")
    parser.add_argument("--grid-k", type=positive_int, default=16, help="regions per slice, a perfect square")
    parser.add_argument("--mc-samples", type=positive_int, default=4, help="MC-dropout samples scoring regions")
    parser.add_argument(
        "--loss",
        choices=[n.value for n in LossName],
        default=LossName.LCFCN.value,
        help="the project's loss (default lcfcn: with this few clicks cb-flip-rot marked most "
        "of the lungs as infected)",
    )
    parser.add_argument("--size", type=image_size, default=96, help="training grid (small so the demo runs on a CPU)")
    parser.add_argument(
        "--width", type=positive_int, default=16, help="U-Net base channels (small so the demo runs on a CPU)"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--cache", type=Path, default=None, help="download cache (default $COVIDAL_CACHE or ~/.cache/covidal)"
    )
    add_device_option(parser)
    parser.set_defaults(run=run)


@dataclass
class Tally:
    """What the simulated annotator did over all cycles."""

    regions: int = 0
    infection: int = 0
    effort_seconds: float = 0.0


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    out: Path = args.out
    grid = _region_grid(args.grid_k)
    case = make_demo_case(args.cache, seed=args.seed)
    print(f"demo case:\n{describe(case)}", flush=True)
    ct_path, lesions_path = _crop_case(case, out / "data")
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(lesions_path))).astype(bool)  # [K, J, I]
    annotator = SimulatedAnnotator({(CASE, str(k)): lesions[k] for k in range(lesions.shape[0])}, grid, args.seed)
    try:
        prediction, curve, infected_ml, tally = _active_learning(args, ct_path, lesions, annotator)
    except (ClientError, BackendUnreachable) as error:
        raise CovidalError(f"the demo's request to the service failed: {error} (see {out / 'service.log'})") from None
    _check_geometry(ct_path, prediction)
    dice = _dice(read_volume(prediction).array != 0, lesions)
    print(f"\nprediction (label volume on the CT's grid): {prediction}\nlearning curve: {curve}")
    print(
        "the lesions are synthetic, painted into a real CT; the Dice is on the same CT whose regions the "
        "simulated annotator answered (not a held-out case)"
    )
    print(
        f"summary: {tally.regions} regions answered ({tally.infection} with a click on infection), "
        f"{tally.effort_seconds:g} s of annotation effort, Dice {dice:.3f} against the synthetic lesions "
        f"on the whole CT, {infected_ml:.1f} mL predicted infected (wall time {time.monotonic() - started:.0f} s)"
    )
    return 0


def _active_learning(
    args: argparse.Namespace, ct_path: Path, lesions: np.ndarray, annotator: SimulatedAnnotator
) -> tuple[Path, Path, float, Tally]:
    """Start the service, run the cycles through its HTTP API and fetch the results.

    Returns:
        ``(prediction NRRD, learning curve PNG, infected mL, what the annotator did)``.
    """
    out: Path = args.out
    device = resolve_device(args.device).type  # the service takes cpu or cuda, not auto
    with local_service(out / "service", out / "service.log", device) as client:
        print(
            f"\ncovidal serve is answering at {client.base_url} (project folder {out / 'service'}, "
            f"log {out / 'service.log'})",
            flush=True,
        )
        project = client.create_project(
            f"demo-seed{args.seed}",
            model_kind="unet",
            grid_k=args.grid_k,
            strategy="entropy",
            mc_samples=args.mc_samples,
            loss=args.loss,
            settings=_training_settings(args),
        )
        volume, _ = client.upload_volume(project["id"], ct_path, "demo_ct")
        print(
            f"project {project['id']} created; CT uploaded as volume {volume['id']} "
            f"({' x '.join(map(str, volume['dims']))} voxels)",
            flush=True,
        )
        tally = Tally()
        for cycle_number in range(1, args.cycles + 1):
            print(f"\ncycle {cycle_number}/{args.cycles}", flush=True)
            _annotate_cycle(client, project["id"], args.regions, annotator, tally)
            _train(client, project["id"], args.steps)
            dice = _cycle_dice(client, project["id"], volume["id"], lesions, out / "data" / "cycle_prediction.nrrd")
            print(
                f"  after {tally.regions} answers ({tally.effort_seconds:g} s): Dice {dice:.3f} against the "
                "synthetic lesions on the whole CT",
                flush=True,
            )
        prediction, curve, infected_ml = _fetch_results(client, project["id"], volume["id"], out)
    return prediction, curve, infected_ml, tally


def _region_grid(regions: int) -> RegionGrid:
    try:
        return RegionGrid(regions)
    except ValueError as error:
        raise CovidalError(f"--grid-k: {error}") from None


def _training_settings(args: argparse.Namespace) -> dict:
    """Project settings the training job reads (see ``covidal.service.jobs.job_config.TrainJobConfig.for_project``)."""
    return {
        "image_size": args.size,
        "width": args.width,
        "seed": args.seed,
        "checkpoint_every": max(1, args.steps // 5),
    }


def _annotate_cycle(
    client: CovidalClient, project_id: int, count: int, annotator: SimulatedAnnotator, tally: Tally
) -> None:
    """Open a cycle of ``count`` suggested regions, lease them all and answer each like a clinician would."""
    cycle = client.create_cycle(project_id, count=count)
    leased = client.lease_suggestions(project_id, cycle["id"], ANNOTATOR, limit=count)
    infection = 0
    for suggestion in leased:
        k = suggestion["k"]
        label = annotator.answer(RegionId(CASE, str(k), suggestion["region"]))
        _check_box(suggestion, annotator, k)
        if label.answer is Answer.INFECTION:
            points = [[col, row, k] for row, col in label.points]  # (row j, column i) -> (i, j, k)
            client.submit_annotation(
                project_id,
                suggestion["id"],
                annotator=ANNOTATOR,
                answer="infection",
                points=points,
                effort_seconds=EFFORT_SECONDS,
            )
            infection += 1
        else:
            client.submit_annotation(
                project_id, suggestion["id"], annotator=ANNOTATOR, answer="background", effort_seconds=EFFORT_SECONDS
            )
    tally.regions += len(leased)
    tally.infection += infection
    tally.effort_seconds += EFFORT_SECONDS * len(leased)
    print(
        f"  {len(cycle['suggestions'])} regions suggested, {len(leased)} answered: {infection} with a click on "
        f"infection, {len(leased) - infection} background ({EFFORT_SECONDS * len(leased):g} s of effort)",
        flush=True,
    )


def _check_box(suggestion: dict, annotator: SimulatedAnnotator, k: int) -> None:
    """The annotator's region must be the service's region, or the clicks would land in the wrong place."""
    box = suggestion["box"]
    mine = annotator.grid.boxes(annotator.slice_shapes[(CASE, str(k))])[suggestion["region"]]
    if (mine.row0, mine.row1, mine.col0, mine.col1) != (box["j0"], box["j1"], box["i0"], box["i1"]):
        raise CovidalError(
            f"region {suggestion['region']} of slice {k}: the service's box {box} differs from the annotator's {mine}"
        )


def _train(client: CovidalClient, project_id: int, steps: int) -> None:
    """Start a training job on every answered region and print its progress until it ends.

    Raises:
        CovidalError: the job failed or was cancelled (with its error), or did not end in time.
    """
    job = client.start_training(project_id, steps=steps)
    print(f"  training job {job['id']}: {steps} steps", flush=True)
    deadline, last_step, last_print = time.monotonic() + JOB_TIMEOUT_S, None, 0.0
    while job["status"] not in ("done", "failed", "cancelled", "interrupted"):
        if time.monotonic() > deadline:
            raise CovidalError(f"training job {job['id']} did not finish within {JOB_TIMEOUT_S:g} s")
        time.sleep(POLL_S)
        job = client.get_job(project_id, job["id"])
        progress = job["progress"]
        if (
            progress
            and progress["step"] != last_step
            and (progress["step"] == progress["steps"] or time.monotonic() - last_print >= PRINT_EVERY_S)
        ):
            last_step, last_print = progress["step"], time.monotonic()
            print(
                f"    step {progress['step']}/{progress['steps']}  loss {progress['loss']:.4f}  "
                f"ETA {_eta(progress['eta_seconds'])}",
                flush=True,
            )
    if job["status"] != "done":
        raise CovidalError(
            f"training job {job['id']} {job['status']}: {job.get('error')}\n"
            f"{client.job_log(project_id, job['id'])[-2000:]}"
        )
    val_dice = job["progress"]["val_dice"]
    print("  done" + (f"; Dice on the answered pixels {val_dice:.3f}" if val_dice is not None else ""), flush=True)


def _cycle_dice(client: CovidalClient, project_id: int, volume_id: int, lesions: np.ndarray, path: Path) -> float:
    """Dice of the current model's prediction of the CT against the lesions ``[K, J, I]``.

    The service's own learning curve scores only the answered pixels (a click per infected
    region); the demo knows the whole truth, so it reports this too.
    """
    client.predict_volume(project_id, volume_id)
    return _dice(read_volume(client.download_prediction(project_id, volume_id, path)).array != 0, lesions)


def _eta(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds:.0f} s"


def _fetch_results(client: CovidalClient, project_id: int, volume_id: int, out: Path) -> tuple[Path, Path, float]:
    """Predict the CT with the last model; download the prediction and the learning curve.

    Returns:
        ``(prediction NRRD, learning curve PNG, infected mL)``.
    """
    stats = client.predict_volume(project_id, volume_id)
    prediction = client.download_prediction(project_id, volume_id, out / "prediction.nrrd")
    curve = client.download_learning_curve(project_id, out / "learning_curve.png")
    for point in client.learning_curve(project_id):
        dice = "n/a" if point["val_dice"] is None else f"{point['val_dice']:.3f}"
        print(
            f"learning curve: {point['answers']} answers, {point['effort_seconds']:g} s of effort -> "
            f"validation Dice {dice}"
        )
    return prediction, curve, float(stats["infected_ml"])


def _check_geometry(ct_path: Path, prediction: Path) -> None:
    difference = geometry_difference(read_volume(ct_path), read_volume(prediction))
    if difference:
        raise CovidalError(f"the prediction {prediction} is not on the CT's grid: {difference}")


def _dice(predicted: np.ndarray, reference: np.ndarray) -> float:
    """``2 |P & R| / (|P| + |R|)`` over all voxels (1 when both are empty)."""
    total = int(predicted.sum()) + int(reference.sum())
    return 1.0 if total == 0 else 2.0 * int((predicted & reference).sum()) / total


def _crop_case(case, folder: Path) -> tuple[Path, Path]:
    """Crop the case to the lungs' bounding box (+ margin in-plane) and write ``ct.nrrd`` and ``lesions.nrrd``.

    The crop keeps only the chest, so the small CPU training grid keeps native resolution
    and the service scores fewer regions. Every lesion lies in the lungs, hence in the crop:
    a Dice on the crop is the Dice on the whole CT with background predicted outside it.

    Raises:
        CovidalError: fewer than 10 slices with lung.
    """
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(case.lungs))).astype(bool)  # [K, J, I]
    if lungs.any(axis=(1, 2)).sum() < 10:
        raise CovidalError("the demo CT has fewer than 10 slices with lung")
    (k0, k1), (j0, j1), (i0, i1) = (
        _extent(lungs.any(axis=axes), margin)
        for axes, margin in (((1, 2), 0), ((0, 2), CROP_MARGIN), ((0, 1), CROP_MARGIN))
    )
    paths = []
    for kind, source in (("ct", case.ct), ("lesions", case.lesions)):
        path = folder / f"{kind}.nrrd"
        block = sitk.ReadImage(str(source))[i0:i1, j0:j1, k0:k1]  # SimpleITK slicing keeps the geometry
        atomic_write(path, lambda tmp, block=block: sitk.WriteImage(block, str(tmp), True))
        paths.append(path)
    return paths[0], paths[1]


def _extent(occupied: np.ndarray, margin: int) -> tuple[int, int]:
    """``[start, stop)`` of the occupied indices of a 1D mask, widened by ``margin`` within bounds."""
    index = np.flatnonzero(occupied)
    return max(0, int(index[0]) - margin), min(len(occupied), int(index[-1]) + 1 + margin)
