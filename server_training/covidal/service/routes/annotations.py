"""``/projects/{p}/annotations``: submit an answer for a suggested region (idempotent), and the history."""

from __future__ import annotations

from fastapi import Response

from covidal.service.routes.base import api_router
from covidal.service.routes.deps import StoreDep
from covidal.service.schemas import AnnotationCreate, AnnotationOut

router = api_router("annotations")


@router.post(
    "/projects/{project_id}/annotations",
    status_code=201,
    responses={
        200: {"description": "a replay of an answer already stored under the idempotency key"},
        409: {"description": "already answered, leased by another annotator, or the key reused"},
        422: {"description": "a point outside the region or volume, a bad value"},
    },
)
def submit_annotation(project_id: int, body: AnnotationCreate, response: Response, store: StoreDep) -> AnnotationOut:
    """Record the answer (201), or return the stored one when the same answer is sent again with its key (200)."""
    annotation, created = store.submit_annotation(
        project_id,
        body.suggestion_id,
        annotator=body.annotator,
        answer=body.answer,
        points=body.points,
        effort_seconds=body.effort_seconds,
        idempotency_key=body.idempotency_key,
    )
    response.status_code = 201 if created else 200
    return AnnotationOut.model_validate(annotation)


@router.get("/projects/{project_id}/annotations")
def annotation_history(project_id: int, store: StoreDep) -> list[AnnotationOut]:
    """Every answer of the project (who, when, effort), oldest first."""
    return [AnnotationOut.model_validate(annotation) for annotation in store.annotation_history(project_id)]
