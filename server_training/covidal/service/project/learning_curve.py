"""A project's learning curve: one point per finished ``train`` job (answers and effort it trained on, its Dice on
its training pixels, the pseudo-labels it added for a CEAL project), written by the job as its ``result.json``, and
drawn as a PNG.

Nothing of a project is held out, so what a model never trained on is the answers given after it: the next
``train`` job, before it trains, scores the last finished job's model on them (test-then-train) and writes that
job's ``unseen.json``. That Dice, on pixels the model never saw, is the curve; the last model has none until the
next job. The answers are the regions the strategy chose (where models are unsure), so it reads lower than a
Dice on random pixels would.
"""

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


def record_unseen_dice(paths: JobPaths, dice: float | None, answers: int, effort_seconds: float) -> None:
    """Write (atomically) the Dice of job ``paths``'s model on the ``answers`` given after it (None: no known
    infection or background pixel among them), which took ``effort_seconds``."""
    atomic_write_json(
        paths.unseen,
        {"unseen_dice": dice, "unseen_answers": answers, "unseen_effort_seconds": effort_seconds},
    )


def curve_points(store: Store, layout: ProjectLayout, project_id: int) -> list[CurvePoint]:
    """One point per ``train`` job that finished (done), in finishing order."""
    jobs = [job for job in store.list_jobs(project_id) if job.kind == JobKind.TRAIN and job.status is JobStatus.DONE]
    points = []
    for job in jobs:
        path = layout.job(job.id).result
        if path.is_file():
            result = json.loads(path.read_text(encoding="utf-8"))
            unseen_path = layout.job(job.id).unseen
            unseen = json.loads(unseen_path.read_text(encoding="utf-8")) if unseen_path.is_file() else {}
            points.append(
                CurvePoint(
                    job_id=job.id,
                    finished_at=job.finished_at or result["finished_at"],
                    answers=result["answers"],
                    effort_seconds=result["effort_seconds"],
                    val_dice=result["val_dice"],
                    steps=result["steps"],
                    pseudo_labels=result.get("pseudo_labels"),
                    unseen_dice=unseen.get("unseen_dice"),
                    unseen_answers=unseen.get("unseen_answers", 0),
                )
            )
    return sorted(points, key=lambda point: (point.finished_at, point.job_id))


UNSEEN_DICE_LABEL = "Dice on the answers given after it (not trained on)"


def curve_png(points: list[CurvePoint], title: str) -> bytes:
    """PNG of each model's Dice on the answers given after it (:data:`UNSEEN_DICE_LABEL`) against the annotation
    effort it trained on (minutes); models not yet scored are left out. The demo draws its held-out curve the same
    way."""
    shown = [point for point in points if point.unseen_dice is not None]
    return dice_curve_png(
        [point.effort_seconds for point in shown],
        [point.unseen_dice for point in shown],
        f"{title}: {len(points)} trained model(s)" + ("" if shown else ", none scored on later answers yet"),
        UNSEEN_DICE_LABEL,
    )
