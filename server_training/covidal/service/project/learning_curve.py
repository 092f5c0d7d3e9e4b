"""A project's learning curve: one point per finished ``train`` job (answers and effort it trained on, its Dice on
its training pixels, the pseudo-labels it added for a CEAL project), written by the job as its ``result.json``, and
drawn as a PNG.

Nothing of a project is held out, so what a model never trained on is the answers given after it: the next
``train`` job, before it trains, scores the last finished job's model on them (test-then-train) and writes that
job's ``unseen.json``: the share of those answers the model agreed with (an infection click it calls infected, a
background region in which it calls nothing infected). That share is the curve; the last model has none until the
next job. A Dice on those pixels would mean little (an infection answer gives one known pixel, a background
answer hundreds), and the answers are the regions the strategy chose (where models are unsure), so the share
reads lower than it would on random regions.
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


def record_unseen_agreement(paths: JobPaths, agreed: int, answers: int, effort_seconds: float) -> None:
    """Write (atomically) how many of the ``answers`` given after job ``paths``'s model (``answers`` > 0, which
    took ``effort_seconds``) it ``agreed`` with."""
    atomic_write_json(
        paths.unseen,
        {"unseen_agreed": agreed, "unseen_answers": answers, "unseen_effort_seconds": effort_seconds},
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
                    unseen_agreement=unseen["unseen_agreed"] / unseen["unseen_answers"] if unseen else None,
                    unseen_answers=unseen.get("unseen_answers", 0),
                )
            )
    return sorted(points, key=lambda point: (point.finished_at, point.job_id))


UNSEEN_LABEL = "share of the later answers it agreed with"


def curve_png(points: list[CurvePoint], title: str) -> bytes:
    """PNG of the share of the answers given after each model that it agreed with (:data:`UNSEEN_LABEL`) against
    the annotation effort it trained on (minutes); models not yet scored are left out."""
    shown = [point for point in points if point.unseen_agreement is not None]
    return dice_curve_png(
        [point.effort_seconds for point in shown],
        [point.unseen_agreement for point in shown],
        f"{title}: {len(points)} trained model(s)" + ("" if shown else ", none scored on later answers yet"),
        UNSEEN_LABEL,
    )
