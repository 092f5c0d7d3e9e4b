"""``/projects/{p}/metrics``: the learning curve, annotation effort against validation Dice, per finished job."""

from __future__ import annotations

import io
import json

from fastapi import Response

from covidal.service.jobs.config import JobKind, JobPaths
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import SettingsDep, StoreDep
from covidal.service.schemas import CurvePoint
from covidal.service.settings import ServiceSettings
from covidal.service.store.records import JobStatus
from covidal.service.store.store import Store

router = api_router("metrics")


@router.get("/projects/{project_id}/metrics/curve")
def learning_curve(project_id: int, store: StoreDep, settings: SettingsDep) -> list[CurvePoint]:
    """One point per ``train`` job that finished (done), in finishing order: answers, effort, validation Dice."""
    return curve_points(store, settings, project_id)


@router.get("/projects/{project_id}/metrics/curve.png",
            responses={200: {"content": {"image/png": {}}, "description": "validation Dice against effort"}})
def learning_curve_png(project_id: int, store: StoreDep, settings: SettingsDep) -> Response:
    points = curve_points(store, settings, project_id)
    return Response(plot_curve(points, store.get_project(project_id).name), media_type="image/png")


def curve_points(store: Store, settings: ServiceSettings, project_id: int) -> list[CurvePoint]:
    jobs = [job for job in store.list_jobs(project_id) if job.kind == JobKind.TRAIN and job.status is JobStatus.DONE]
    points = []
    for job in jobs:
        path = JobPaths(settings.project_dir, job.id).result
        if path.is_file():
            result = json.loads(path.read_text(encoding="utf-8"))
            points.append(CurvePoint(job_id=job.id, finished_at=job.finished_at or result["finished_at"],
                                     answers=result["answers"], effort_seconds=result["effort_seconds"],
                                     val_dice=result["val_dice"], steps=result["steps"]))
    return sorted(points, key=lambda point: (point.finished_at, point.job_id))


def plot_curve(points: list[CurvePoint], title: str) -> bytes:
    """PNG of validation Dice against annotation effort (minutes); jobs without a Dice are left out."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
    shown = [point for point in points if point.val_dice is not None]
    axes.plot([p.effort_seconds / 60 for p in shown], [p.val_dice for p in shown], marker="o")
    axes.set_xlabel("annotation effort (minutes)")
    axes.set_ylabel("validation Dice (known pixels)")
    axes.set_ylim(0, 1)
    axes.set_title(f"{title}: {len(points)} trained model(s)" + ("" if shown else ", no Dice yet"))
    axes.grid(alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
