"""``/projects/{p}/metrics``: the learning curve (:mod:`covidal.service.project.learning_curve`)."""

from __future__ import annotations

from fastapi import Response

from covidal.service.project.learning_curve import curve_png, curve_points
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import LayoutDep, StoreDep
from covidal.service.schemas import CurvePoint

router = api_router("metrics")


@router.get("/projects/{project_id}/metrics/curve")
def learning_curve(project_id: int, store: StoreDep, layout: LayoutDep) -> list[CurvePoint]:
    """One point per ``train`` job that finished (done), in finishing order: answers, effort, validation Dice."""
    return curve_points(store, layout, project_id)


@router.get(
    "/projects/{project_id}/metrics/curve.png",
    responses={200: {"content": {"image/png": {}}, "description": "validation Dice against effort"}},
)
def learning_curve_png(project_id: int, store: StoreDep, layout: LayoutDep) -> Response:
    points = curve_points(store, layout, project_id)
    return Response(curve_png(points, store.get_project(project_id).name), media_type="image/png")
