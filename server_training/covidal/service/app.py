"""The HTTP API of ``covidal serve`` (FastAPI): projects, volumes and their expert labels, suggestion cycles
with leases, annotations, training jobs (run by a :class:`~covidal.service.jobs.runner.JobRunner` started
with the app), predictions and the learning curve.

Errors are JSON ``{"detail": "<what is wrong>"}``: a store's :class:`NotFound`
is 404, :class:`Conflict` and :class:`LeaseError` 409, :class:`Invalid` and any
other :class:`CovidalError` (a user's bad input) 422, an upload over the size or
voxel limit 413, an upload not sent as ``application/octet-stream`` 415, a number
too large for the store (``OverflowError``, e.g. a 20-digit id) 422, :class:`Busy`
(also: too many uploads at once) 503; malformed JSON, NaN or Infinity in it, or a
wrong field type is 422. Before any route, :mod:`covidal.service.edge` checks the
``Host`` (400), the token when there is one (401), a foreign ``Origin`` when there
is none (403), and ends a request whose body stalls (408).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from covidal import __version__
from covidal.errors import CovidalError
from covidal.service.cache import ServiceCache
from covidal.service.edge import RequestEdge
from covidal.service.jobs.runner import JobRunner
from covidal.service.routes import (
    annotations,
    cycles,
    jobs,
    labels,
    metrics,
    predictions,
    projects,
    volumes,
)
from covidal.service.routes.uploads import UnsupportedMediaType, UploadSlots
from covidal.service.settings import ServiceSettings
from covidal.service.store.errors import (
    Busy,
    Conflict,
    Invalid,
    LeaseError,
    NotFound,
    StoreError,
)
from covidal.service.store.store import Store
from covidal.service.uploads.sandbox import start_decoder
from covidal.service.volumes import UploadTooLarge

__all__ = ["ServiceSettings", "create_app"]

LOG = logging.getLogger("covidal.service")

ERROR_STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    LeaseError: 409,
    UploadTooLarge: 413,
    UnsupportedMediaType: 415,
    Invalid: 422,
    Busy: 503,
    StoreError: 500,
    CovidalError: 422,
}


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service for ``settings``; its store opens (and recovers from a crash) when the server starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.project_dir)
        recovery = store.recover()
        if recovery.removed_files or recovery.interrupted_jobs:
            LOG.warning(
                "recovered the store: removed %d leftover files, interrupted %d jobs",
                len(recovery.removed_files),
                len(recovery.interrupted_jobs),
            )
        app.state.store = store
        start_decoder()
        runner = JobRunner(settings.project_dir, settings.device)
        runner.start()
        try:
            yield
        finally:
            runner.stop()
            store.close()

    app = FastAPI(
        title="covidal",
        version=__version__,
        lifespan=lifespan,
        description="Backend of the CovidActiveLearning 3D Slicer extension. Geometry is in voxel "
        "indices (i, j, k) plus each volume's IJK-to-RAS matrix.",
    )
    app.state.settings = settings
    app.state.cache = ServiceCache(settings.cache_bytes)
    app.state.upload_slots = UploadSlots(settings.max_concurrent_uploads)
    for error_class in ERROR_STATUS:
        app.add_exception_handler(error_class, _error_response)
    app.add_exception_handler(OverflowError, _overflow_response)
    app.add_middleware(RequestEdge, settings=settings)
    for module in (projects, volumes, labels, cycles, annotations, jobs, predictions, metrics):
        app.include_router(module.router)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app


async def _error_response(request: Request, error: Exception) -> JSONResponse:
    status = next(ERROR_STATUS[kind] for kind in type(error).__mro__ if kind in ERROR_STATUS)
    if status >= 500:
        LOG.error("%s %s failed: %s", request.method, request.url.path, error)
    return JSONResponse({"detail": str(error)}, status_code=status)


async def _overflow_response(request: Request, error: Exception) -> JSONResponse:
    """422 for a number the store cannot hold (SQLite integers are 64-bit): e.g. an id of 2**64 in the path."""
    return JSONResponse(
        {"detail": f"a number in the request is out of range (integers must lie within +-(2**63 - 1)): {error}"},
        status_code=422,
    )
