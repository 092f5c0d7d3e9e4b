"""``/projects/{p}/cycles``: propose regions, lease them to annotators, and a score heat map per volume.

A project without a model gets the *initial* regions
(:func:`covidal.service.proposals.lung_fraction_scores`); once a training job
has given it a current model, regions are scored by MC dropout with the
project's strategy and ``mc_samples`` (:func:`covidal.service.modeling.mc_dropout_scorer`).
A ``unet3d`` project keeps the lung-fraction scores: its 3D network has no dropout
head to sample (it learns from expert label volumes, not from answered regions).
Regions already answered are never proposed again.

The pool's volumes, their network inputs and the model come from the service's
:class:`~covidal.service.cache.ServiceCache`: a cycle after the first reads no volume
again, nor the model file while it is unchanged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import SimpleITK as sitk
from fastapi import Query, Response

from covidal.data.volume import Volume
from covidal.regions.grid import RegionGrid
from covidal.service.cache import ServiceCache, VolumeKey
from covidal.service.jobs.annotations import answered_regions
from covidal.service.jobs.config import current_model_path
from covidal.service.proposals import RegionScorer, propose_regions
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import CacheDep, SettingsDep, StoreDep
from covidal.service.schemas import (
    CycleCreate,
    CycleOut,
    ModelKind,
    SuggestionOut,
    cycle_out,
    suggestion_out,
)
from covidal.service.settings import ServiceSettings
from covidal.service.store import records
from covidal.service.store.errors import Invalid
from covidal.service.store.records import RegionBox, SuggestionSpec
from covidal.service.store.store import Store
from covidal.service.volumes import read_stored_volume

if TYPE_CHECKING:
    import torch

router = api_router("cycles")


@router.post("/projects/{project_id}/cycles", status_code=201)
def create_cycle(project_id: int, body: CycleCreate, store: StoreDep, settings: SettingsDep,
                 cache: CacheDep) -> CycleOut:
    """Score the pool and open a new cycle with the ``count`` best regions (earlier cycles close)."""
    project = store.get_project(project_id)
    pool = [store.get_volume(project_id, volume_id) for volume_id in dict.fromkeys(body.volume_ids or [])]
    pool = pool or store.list_volumes(project_id)
    if not pool:
        raise Invalid(f"project {project_id} has no volumes yet: upload one before asking for suggestions")
    volumes = _read_pool(store, cache, pool, settings.decode_limits.max_zip_bytes)
    answered = {(a.volume_id, a.k, a.region) for a in answered_regions(store, project_id)}
    try:
        proposed = propose_regions(volumes, RegionGrid(project.grid_k), body.count, seed=project.id,
                                   scorer=_scorer(project, settings, cache, pool,
                                                  seed=len(store.list_cycles(project_id))),
                                   exclude=answered)
    except ValueError as error:
        raise Invalid(f"cannot cut the slices into {project.grid_k} regions: {error}") from None
    if not proposed:
        raise Invalid(f"every region of the pool's {len(pool)} volume(s) is answered already: upload more volumes")
    specs = [SuggestionSpec(p.volume_id, p.k, p.region, RegionBox(p.i0, p.i1, p.j0, p.j1), p.score)
             for p in proposed]
    cycle = store.create_cycle(project_id, specs)
    return cycle_out(cycle, store.list_suggestions(project_id, cycle.id))


@router.get("/projects/{project_id}/cycles")
def list_cycles(project_id: int, store: StoreDep) -> list[CycleOut]:
    return [cycle_out(cycle, store.list_suggestions(project_id, cycle.id)) for cycle in store.list_cycles(project_id)]


@router.get("/projects/{project_id}/cycles/{cycle_id}")
def get_cycle(project_id: int, cycle_id: int, store: StoreDep) -> CycleOut:
    """The cycle and all its suggestions (with their leases), without leasing anything."""
    return cycle_out(store.get_cycle(project_id, cycle_id), store.list_suggestions(project_id, cycle_id))


@router.get("/projects/{project_id}/cycles/{cycle_id}/suggestions")
def lease_suggestions(project_id: int, cycle_id: int, store: StoreDep, settings: SettingsDep,
                      annotator: Annotated[str, Query(min_length=1, max_length=100)],
                      limit: Annotated[int, Query(ge=1, le=1000)] = 5) -> list[SuggestionOut]:
    """Lease up to ``limit`` unanswered regions to ``annotator`` (never a region another annotator holds)."""
    leased = store.lease_suggestions(project_id, cycle_id, annotator, limit=limit,
                                     lease_seconds=settings.lease_seconds)
    return [suggestion_out(suggestion) for suggestion in leased]


@router.get("/projects/{project_id}/cycles/{cycle_id}/heatmap/{volume_id}",
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "float32 NRRD on the volume's grid: each suggested region's score"}})
def heatmap(project_id: int, cycle_id: int, volume_id: int, store: StoreDep) -> Response:
    """An NRRD with the volume's exact geometry holding each suggested region's score over its box (0 elsewhere)."""
    cycle = store.get_cycle(project_id, cycle_id)
    volume = store.get_volume(project_id, volume_id)
    suggestions = [s for s in store.list_suggestions(project_id, cycle_id) if s.volume_id == volume_id]
    content = _nrrd_bytes(heatmap_image(volume.geometry, suggestions))
    filename = f"heatmap-cycle{cycle.number}-volume{volume_id}.nrrd"
    return Response(content, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def heatmap_image(geometry: records.VolumeGeometry, suggestions: list[records.Suggestion]) -> sitk.Image:
    """float32 image on ``geometry`` with ``score`` over each suggestion's box of its slice, 0 elsewhere."""
    di, dj, dk = geometry.dims
    scores = np.zeros((dk, dj, di), dtype=np.float32)
    for suggestion in suggestions:
        box = suggestion.box
        scores[suggestion.k, box.j0:box.j1, box.i0:box.i1] = suggestion.score
    image = sitk.GetImageFromArray(scores)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def _nrrd_bytes(image: sitk.Image) -> bytes:
    with tempfile.TemporaryDirectory(prefix="covidal-heatmap-") as folder:
        path = Path(folder) / "heatmap.nrrd"
        sitk.WriteImage(image, str(path), True)
        return path.read_bytes()


def _scorer(project: records.Project, settings: ServiceSettings, cache: ServiceCache, pool: list[records.Volume],
            seed: int) -> RegionScorer | None:
    """MC-dropout scores of the project's current 2D model (dropout masks drawn from ``seed``),
    or None (the lung fraction) when it has none yet or is a ``unet3d`` project."""
    path = current_model_path(settings.project_dir, project.id)
    if not path.is_file() or project.model_kind == ModelKind.UNET3D:
        return None
    from covidal.service import modeling  # torch loads only once a project has a model

    run = cache.model(path, lambda model_path: modeling.load_model(model_path, settings.device))
    volume_keys = {record.id: _volume_key(record) for record in pool}

    def network_inputs(volume_id: int, array: np.ndarray) -> torch.Tensor:
        key = modeling.NetworkInputKey(volume_keys[volume_id], run.config.window, run.config.image_size)
        return cache.derived(key, lambda: modeling.network_input_of(array, run.config.window, run.config.image_size),
                             modeling.tensor_nbytes)

    return modeling.mc_dropout_scorer(run, project.strategy, project.mc_samples, seed, network_inputs)


def _read_pool(store: Store, cache: ServiceCache, pool: list[records.Volume],
               max_expanded_bytes: int) -> Iterator[tuple[int, Volume]]:
    """``(volume id, volume)`` one at a time from the cache, read on a miss (so a cache that holds
    none of them keeps only one volume's voxels in memory)."""
    for record in pool:
        yield record.id, cache.volume(_volume_key(record), lambda record=record: read_stored_volume(
            store.files.path(record.path), record.format, max_expanded_bytes))


def _volume_key(record: records.Volume) -> VolumeKey:
    return VolumeKey(record.id, record.sha256)
