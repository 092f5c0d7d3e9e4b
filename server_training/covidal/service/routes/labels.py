"""``/projects/{p}/volumes/{v}/label``: the expert label volume of a project's volume (any project: a ``unet3d``
project's noisy-teacher jobs and a 2D project's ``clicks-to-3d`` jobs train on it).

An upload is received as a volume's is (``application/octet-stream``, size and voxel limits, 413), read back
safely and checked (:func:`covidal.service.label_checks.check_label_file`: the volume's exact geometry, whole values
>= 0); a refused file is removed (422) and an accepted one recorded, replacing the volume's earlier label.
The volumes with a label are the expert volumes of the project's 3D jobs (a clinician's corrected segmentation,
sent from Slicer's Segment Editor with the CT's geometry).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Annotated, BinaryIO

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from covidal.service.label_checks import check_label_file
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import SettingsDep, StoreDep
from covidal.service.routes.uploads import receive_upload, upload_slot
from covidal.service.schemas import LabelOut
from covidal.service.store.errors import Conflict
from covidal.service.store.files import CHUNK_BYTES, StoredFile
from covidal.service.store.records import Label, LabelFormat, Volume, VolumeFormat
from covidal.service.store.store import Store
from covidal.service.uploads.limits import DecodeLimits
from covidal.service.volumes import stored_suffix

router = api_router("labels")


@router.put(
    "/projects/{project_id}/volumes/{volume_id}/label",
    status_code=201,
    responses={
        200: {"description": "the volume's earlier label was replaced"},
        413: {"description": "over the upload or voxel limit"},
        415: {"description": "not sent as application/octet-stream"},
        422: {
            "description": "not a 3D volume, another geometry than the volume's, values that are not whole numbers >= 0"
        },
        503: {"description": "too many uploads at once"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_label(
    project_id: int,
    volume_id: int,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    format: Annotated[LabelFormat, Query(description="how the body is encoded")],
) -> LabelOut:
    """Store the request body (NRRD or NIfTI: 0 background, > 0 infection, on the volume's grid) as its label."""
    volume = await run_in_threadpool(store.get_volume, project_id, volume_id)
    async with upload_slot(request):
        stored = await receive_upload(
            request,
            store.files,
            Store.label_folder(project_id),
            partial(stored_suffix, VolumeFormat(format.value)),
            settings.max_upload_bytes,
            "the label file",
        )
        label, created = await run_in_threadpool(_record, store, volume, stored, format, settings.decode_limits)
    response.status_code = 201 if created else 200
    return LabelOut.model_validate(label)


@router.get(
    "/projects/{project_id}/volumes/{volume_id}/label",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the label as uploaded"},
        404: {"description": "the volume has no label"},
    },
)
def download_label(project_id: int, volume_id: int, store: StoreDep) -> StreamingResponse:
    """The volume's label file as uploaded (NRRD or NIfTI)."""
    label = store.get_label(project_id, volume_id)
    path = store.files.path(label.path)
    try:  # opened before answering: a label replaced meanwhile stays readable through the open file
        handle = open(path, "rb")  # noqa: SIM115 - the streamed response closes it
    except FileNotFoundError:
        raise Conflict(f"the label of volume {volume_id} was replaced while it was being read; ask again") from None
    filename = f"label-volume{volume_id}{''.join(path.suffixes)}"
    return StreamingResponse(
        _chunks(handle),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Content-Length": str(label.size)},
    )


@router.get("/projects/{project_id}/labels")
def list_labels(project_id: int, store: StoreDep) -> list[LabelOut]:
    """The project's expert labels (one per labelled volume), by volume id."""
    return [LabelOut.model_validate(label) for label in store.list_labels(project_id)]


def _record(
    store: Store, volume: Volume, stored: StoredFile, label_format: LabelFormat, limits: DecodeLimits
) -> tuple[Label, bool]:
    """Check the stored upload against ``volume`` and record it: ``(label, created)``; removed if refused."""
    try:
        summary = check_label_file(
            store.files.path(stored.relative_path), VolumeFormat(label_format.value), volume.geometry, volume.id, limits
        )
    except BaseException:
        store.files.remove(stored.relative_path)
        raise
    return store.set_label(volume.project_id, volume.id, stored, label_format, summary.foreground_voxels)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk
