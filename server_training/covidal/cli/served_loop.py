"""The simulated clinician's side of the served loop, shared by ``covidal demo`` and ``covidal bench-clicks-3d``:
answer a cycle's suggested regions through the HTTP API (one click on infection, else "background", 3 s each) and
run a training job to its end, printing its progress."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from covidal.annotation.annotator import SimulatedAnnotator
from covidal.annotation.state import Answer
from covidal.client import CovidalClient
from covidal.errors import CovidalError
from covidal.regions.grid import RegionGrid, RegionId
from covidal.sample_data.figures import HeldOutPoint

EFFORT_SECONDS = 3.0  # a click or a "background" tag (a slice delineation is about 96 s)
ANNOTATOR = "simulated-annotator"
POLL_S = 0.5
PRINT_EVERY_S = 5.0  # progress lines at most this often, plus the last step
JOB_TIMEOUT_S = 3600.0


@dataclass
class Tally:
    """What the simulated annotator did over all cycles, and the held-out figures after each."""

    regions: int = 0
    infection: int = 0
    effort_seconds: float = 0.0
    curve: list[HeldOutPoint] = field(default_factory=list)


def slice_key(volume_id: int, k: int) -> tuple[str, str]:
    """The annotator's key of slice ``k`` of a project volume."""
    return (str(int(volume_id)), str(int(k)))


def simulated_annotator(lesions: dict[int, np.ndarray], grid: RegionGrid, seed: int) -> SimulatedAnnotator:
    """An annotator who answers from the true lesions ``[K, J, I]`` of each project volume (by volume id)."""
    masks = {slice_key(v, k): mask[k] for v, mask in lesions.items() for k in range(len(mask))}
    return SimulatedAnnotator(masks, grid, seed)


def annotate_cycle(
    client: CovidalClient,
    project_id: int,
    volume_ids: list[int],
    count: int,
    annotator: SimulatedAnnotator,
    tally: Tally,
) -> None:
    """Open a cycle of ``count`` suggested regions of the volumes, lease them all and answer each like a clinician
    would (``annotator``'s masks are keyed by :func:`slice_key`)."""
    cycle = client.create_cycle(project_id, count=count, volume_ids=volume_ids)
    leased = client.lease_suggestions(project_id, cycle["id"], ANNOTATOR, limit=count)
    infection = 0
    for suggestion in leased:
        k = suggestion["k"]
        case, slice_id = slice_key(suggestion["volume_id"], k)
        label = annotator.answer(RegionId(case, slice_id, suggestion["region"]))
        _check_box(suggestion, annotator, (case, slice_id))
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


def _check_box(suggestion: dict, annotator: SimulatedAnnotator, key: tuple[str, str]) -> None:
    """The annotator's region must be the service's region, or the clicks would land in the wrong place."""
    box = suggestion["box"]
    mine = annotator.grid.boxes(annotator.slice_shapes[key])[suggestion["region"]]
    if (mine.row0, mine.row1, mine.col0, mine.col1) != (box["j0"], box["j1"], box["i0"], box["i1"]):
        raise CovidalError(
            f"region {suggestion['region']} of slice {key}: the service's box {box} differs from the annotator's {mine}"
        )


def train_job(client: CovidalClient, project_id: int, steps: int | None) -> None:
    """Start a training job (``steps``, else the project's) on every answered region and print its progress until it ends.

    Raises:
        CovidalError: the job failed or was cancelled (with its error), or did not end in time.
    """
    job = wait_for_job(client, project_id, client.start_training(project_id, steps=steps))
    val_dice = job["progress"]["val_dice"]
    # The job's own Dice is on the pixels it trained on; the held-out Dice that follows is the measure.
    print("  done" + (f" (Dice on its training pixels {val_dice:.3f})" if val_dice is not None else ""), flush=True)


def wait_for_job(client: CovidalClient, project_id: int, job: dict) -> dict:
    """Print a queued job's progress (and stage) until it ends; returns the finished job.

    Raises:
        CovidalError: the job failed or was cancelled (with its error), or did not end in time.
    """
    print(f"  {job['kind']} job {job['id']}", flush=True)
    deadline, last_step, last_print = time.monotonic() + JOB_TIMEOUT_S, None, 0.0
    while job["status"] not in ("done", "failed", "cancelled", "interrupted"):
        if time.monotonic() > deadline:
            raise CovidalError(f"{job['kind']} job {job['id']} did not finish within {JOB_TIMEOUT_S:g} s")
        time.sleep(POLL_S)
        job = client.get_job(project_id, job["id"])
        progress = job["progress"]
        if (
            progress
            and progress["step"] != last_step
            and (progress["step"] == progress["steps"] or time.monotonic() - last_print >= PRINT_EVERY_S)
        ):
            last_step, last_print = progress["step"], time.monotonic()
            stage = f"{progress['stage']} " if progress.get("stage") else ""
            print(
                f"    {stage}step {progress['step']}/{progress['steps']}  loss {_number(progress['loss'])}  "
                f"ETA {_eta(progress['eta_seconds'])}",
                flush=True,
            )
    if job["status"] != "done":
        raise CovidalError(
            f"{job['kind']} job {job['id']} {job['status']}: {job.get('error')}\n"
            f"{client.job_log(project_id, job['id'])[-2000:]}"
        )
    return job


def _number(value: float | None) -> str:
    """A loss for a progress line (none before a stage's first step)."""
    return "-" if value is None else f"{value:.4f}"


def _eta(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds:.0f} s"
