"""``/projects/{p}/volumes``: upload (the raw file as the request body), list, metadata, download.

An upload (``application/octet-stream``, 415 otherwise; 503 past the concurrent uploads) is streamed to the
file store under a random name, refused past the size limit (413), then read back safely
(:func:`~covidal.service.uploads.sandbox.read_upload_safely`: its header checked, 413 past the voxel limit,
decoded in a limited child process while this thread makes the file durable, before its row is written): a file
that is not a readable 3D scalar volume is removed and refused (422). The same content uploaded again returns the existing volume (200 instead of 201). The volume read back
goes into the service's cache, so the project's next cycle need not read it again.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from covidal.service.cache import ServiceCache, VolumeKey
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import CacheDep, SettingsDep, StoreDep
from covidal.service.routes.uploads import receive_upload, upload_slot
from covidal.service.schemas import VolumeOut, volume_out
from covidal.service.store.files import StoredFile
from covidal.service.store.records import VolumeFormat
from covidal.service.store.store import Store
from covidal.service.uploads.limits import DecodeLimits
from covidal.service.uploads.sandbox import read_upload_safely
from covidal.service.volumes import check_plain_name, geometry_of, stored_suffix

router = api_router("volumes")


@router.post(
    "/projects/{project_id}/volumes",
    status_code=201,
    responses={
        200: {"description": "the same content was uploaded before: that volume"},
        413: {"description": "over the upload or voxel limit"},
        415: {"description": "not sent as application/octet-stream"},
        422: {"description": "not a 3D volume"},
        503: {"description": "too many uploads at once"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_volume(
    project_id: int,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    cache: CacheDep,
    name: Annotated[str, Query(description="a label, e.g. the case id")],
    format: Annotated[VolumeFormat, Query(description="how the body is encoded")],
) -> VolumeOut:
    """Store the request body (NRRD, NIfTI, or a zip of one DICOM series folder) as a volume of the project."""
    name = check_plain_name(name, "volume name")
    await run_in_threadpool(store.get_project, project_id)
    async with upload_slot(request):
        stored = await receive_upload(
            request,
            store.files,
            Store.volume_folder(project_id),
            partial(stored_suffix, format),
            settings.max_upload_bytes,
            "the volume file",
            synced=False,  # made durable while it is decoded (_record)
        )
        volume, created = await run_in_threadpool(
            _record, store, cache, project_id, name, stored, format, settings.decode_limits
        )
    response.status_code = 201 if created else 200
    return volume_out(volume)


@router.get("/projects/{project_id}/volumes")
def list_volumes(project_id: int, store: StoreDep) -> list[VolumeOut]:
    return [volume_out(volume) for volume in store.list_volumes(project_id)]


@router.get("/projects/{project_id}/volumes/{volume_id}")
def get_volume(project_id: int, volume_id: int, store: StoreDep) -> VolumeOut:
    """Dims, spacing, origin, direction and the IJK-to-RAS matrix of the volume."""
    return volume_out(store.get_volume(project_id, volume_id))


@router.get(
    "/projects/{project_id}/volumes/{volume_id}/download",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file as uploaded"}},
)
def download_volume(project_id: int, volume_id: int, store: StoreDep) -> FileResponse:
    volume = store.get_volume(project_id, volume_id)
    path = store.files.path(volume.path)
    suffix = "".join(path.suffixes)
    filename = volume.name if volume.name.lower().endswith(suffix.lower()) else f"{volume.name}{suffix}"
    return FileResponse(path, media_type="application/octet-stream", filename=filename)


def _record(
    store: Store,
    cache: ServiceCache,
    project_id: int,
    name: str,
    stored: StoredFile,
    volume_format: VolumeFormat,
    limits: DecodeLimits,
):
    """Read the stored upload (not yet durable) and record it as a volume: ``(volume, created)``; the file is
    removed if refused, made durable while it is decoded and before its row is written. The voxels read go into
    ``cache``."""
    try:
        existing = store.find_volume_by_sha256(project_id, stored.sha256)
        if existing is not None:  # skip reading a file that is already known
            store.files.remove(stored.relative_path)
            return existing, False
        path, sync = store.files.path(stored.relative_path), partial(store.files.sync, stored.relative_path)
        volume = read_upload_safely(path, volume_format, limits, meanwhile=sync)
    except BaseException:
        store.files.remove(stored.relative_path)
        raise
    record, created = store.add_volume(project_id, name, stored, volume_format, geometry_of(volume))
    cache.volume(VolumeKey(record.id, record.sha256), lambda: volume)
    return record, created
