"""A project's learning curve: one point per finished ``train`` job (answers and effort it trained on, its
validation Dice, the pseudo-labels it added for a CEAL project), written by the job as its ``result.json`` and drawn as a PNG."""

from __future__ import annotations

import json
import time

from covidal.service.jobs.job_config import JobKind
from covidal.service.project.layout import JobPaths, ProjectLayout
from covidal.service.schemas import CurvePoint
from covidal.service.store.records import JobStatus
from covidal.service.store.store import Store
from covidal.utils.atomic import atomic_write_json
from covidal.utils.dice_curve import dice_curve_png


def record_job_result(
    paths: JobPaths,
    job_id: int,
    steps: int,
    answers: int,
    effort_seconds: float,
    val_dice: float | None,
    pseudo_labels: dict | None = None,
) -> None:
    """Write a finished job's point of the curve (atomically); ``pseudo_labels`` is what
    :meth:`~covidal.activelearning.strategies.pseudo_labels.PseudoLabels.record` says of the pseudo-labels it
    trained on besides the answers (None: none)."""
    atomic_write_json(
        paths.result,
        {
            "job_id": job_id,
            "steps": steps,
            "answers": answers,
            "effort_seconds": effort_seconds,
            "val_dice": val_dice,
            "pseudo_labels": pseudo_labels,
            "finished_at": time.time(),
        },
    )


def curve_points(store: Store, layout: ProjectLayout, project_id: int) -> list[CurvePoint]:
    """One point per ``train`` job that finished (done), in finishing order."""
    jobs = [job for job in store.list_jobs(project_id) if job.kind == JobKind.TRAIN and job.status is JobStatus.DONE]
    points = []
    for job in jobs:
        path = layout.job(job.id).result
        if path.is_file():
            result = json.loads(path.read_text(encoding="utf-8"))
            points.append(
                CurvePoint(
                    job_id=job.id,
                    finished_at=job.finished_at or result["finished_at"],
                    answers=result["answers"],
                    effort_seconds=result["effort_seconds"],
                    val_dice=result["val_dice"],
                    steps=result["steps"],
                    pseudo_labels=result.get("pseudo_labels"),
                )
            )
    return sorted(points, key=lambda point: (point.finished_at, point.job_id))


def curve_png(points: list[CurvePoint], title: str) -> bytes:
    """PNG of each job's Dice on its training pixels (the answered regions: nothing of a project is held out) against
    annotation effort (minutes); jobs without a Dice are left out. The demo draws its held-out curve the same way."""
    shown = [point for point in points if point.val_dice is not None]
    return dice_curve_png(
        [point.effort_seconds for point in shown],
        [point.val_dice for point in shown],
        f"{title}: {len(points)} trained model(s)" + ("" if shown else ", no Dice yet"),
        "Dice on its training pixels (answered regions)",
    )
