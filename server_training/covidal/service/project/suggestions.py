"""A project's suggestion cycles: its volumes through the one active-learning query, stored as a cycle; and a
cycle's scores as a heat map volume.

Each volume is a part of the pool (:class:`~covidal.activelearning.query.PoolPart`): its axial slices
``[J, I]``, cut by the project's region grid, with the regions answered in any earlier cycle closed. A project
without a current 2D model (no job has finished yet, or a ``unet3d`` project, whose 3D network has no dropout
head to sample) ranks by :class:`~covidal.activelearning.strategies.InfectionDensity` inside the volume's
aerated lungs (:mod:`covidal.service.project.lungs`; the whole CT when none are found); otherwise by its
strategy with its ``mc_samples`` MC-dropout samples, its ``strategy_params`` setting, and each volume's answers
with their effort (:mod:`.strategy_inputs`). Cycle ``n``'s draws derive from ``cycle_seed(seed, n)`` with the
project's ``seed`` setting (default 0), as a simulation's cycle ``n`` does from its seed, so the same model,
volume, strategy, seed and answers give the same regions in the same order as ``covidal simulate``.

Volumes, their network inputs and the model come from the service's :class:`ServiceCache`: a cycle after
the first reads no volume again, nor the model file while it is unchanged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from covidal.activelearning.query import PoolPart, QueryOptions, cycle_seed, query_regions
from covidal.activelearning.selection import DEFAULT_MAX_PER_SLICE, SelectionRule
from covidal.activelearning.strategies import InfectionDensity, SliceStack, build_strategy
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.models.kinds import ModelKind
from covidal.regions.grid import RegionGrid
from covidal.service.cache import ServiceCache, VolumeKey
from covidal.service.jobs.training_data import answered_regions
from covidal.service.project.layout import ProjectLayout
from covidal.service.project.lungs import NoLungs, volume_lungs
from covidal.service.project.strategy_inputs import strategy_params, volume_answers
from covidal.service.settings import ServiceSettings
from covidal.service.store import records
from covidal.service.store.errors import Invalid
from covidal.service.store.records import RegionBox, SuggestionSpec
from covidal.service.store.store import Store
from covidal.service.volumes import read_stored_volume
from covidal.validation import check_int
from covidal.volumes.lungs import lungs_only


def open_cycle(
    store: Store,
    settings: ServiceSettings,
    cache: ServiceCache,
    project_id: int,
    volume_ids: list[int] | None,
    count: int,
) -> records.Cycle:
    """Score the pool (the given volumes, else all of the project's) and open a cycle with its ``count`` best
    regions; earlier cycles close.

    Raises:
        NotFound: an unknown project or volume. Invalid: no volumes, every region answered, slices smaller
            than the grid, or a bad ``seed`` or ``max_per_slice`` setting.
    """
    project = store.get_project(project_id)
    pool = [store.get_volume(project_id, volume_id) for volume_id in dict.fromkeys(volume_ids or [])]
    pool = pool or store.list_volumes(project_id)
    if not pool:
        raise Invalid(f"project {project_id} has no volumes yet: upload one before asking for suggestions")
    grid = RegionGrid(project.grid_k)
    answers = answered_regions(store, project_id)
    answered = {(a.volume_id, a.k, a.region) for a in answers}
    model = _current_model(project, settings, cache)
    try:
        project_seed, max_per_slice = cycle_settings(project.settings)
        rule = SelectionRule(count, max_per_slice)
        seed = cycle_seed(project_seed, len(store.list_cycles(project_id)) + 1)
        parts = [
            PoolPart(
                _volume_stack(store, settings, cache, volume, model),
                _open_regions(volume, grid, answered),
                volume_answers(volume.id, volume.geometry.dims[2], _slice_shape(volume), grid, answers),
            )
            for volume in pool
        ]
        params = strategy_params(project.settings)
        strategy = InfectionDensity() if model is None else build_strategy(project.strategy, params)
        queried = query_regions(
            parts, strategy, None if model is None else model.model, QueryOptions(grid, rule, project.mc_samples), seed
        )
    except CovidalError:
        raise  # already said in the user's terms (a bad setting, an unreadable volume): 422
    except ValueError as error:
        raise Invalid(f"cannot cut the slices into {project.grid_k} regions: {error}") from None
    if not queried:
        raise Invalid(f"every region of the pool's {len(pool)} volume(s) is answered already: upload more volumes")
    specs = []
    for q in queried:
        volume = pool[q.part]
        box = grid.boxes(_slice_shape(volume))[q.region]
        specs.append(
            SuggestionSpec(volume.id, q.slice, q.region, RegionBox(box.col0, box.col1, box.row0, box.row1), q.score)
        )
    return store.create_cycle(project_id, specs)


def heatmap_nrrd(store: Store, project_id: int, cycle_id: int, volume_id: int) -> tuple[bytes, str]:
    """``(NRRD bytes, file name)``: float32 on the volume's exact geometry, each of the cycle's suggested regions
    of the volume holding its score over its box, 0 elsewhere.

    Raises:
        NotFound: an unknown project, cycle or volume.
    """
    cycle = store.get_cycle(project_id, cycle_id)
    geometry = store.get_volume(project_id, volume_id).geometry
    di, dj, dk = geometry.dims
    scores = np.zeros((dk, dj, di), dtype=np.float32)
    for suggestion in store.list_suggestions(project_id, cycle_id):
        if suggestion.volume_id == volume_id:
            box = suggestion.box
            scores[suggestion.k, box.j0 : box.j1, box.i0 : box.i1] = suggestion.score
    image = sitk.GetImageFromArray(scores)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    with tempfile.TemporaryDirectory(prefix="covidal-heatmap-") as folder:
        path = Path(folder) / "heatmap.nrrd"
        sitk.WriteImage(image, str(path), True)
        return path.read_bytes(), f"heatmap-cycle{cycle.number}-volume{volume_id}.nrrd"


def cycle_settings(project_settings: Mapping[str, Any]) -> tuple[int, int | None]:
    """``(seed, max_per_slice)`` of a project's settings: its ``seed`` (default 0, also its training jobs') and
    its selection cap (default :data:`DEFAULT_MAX_PER_SLICE`, null for none).

    Raises:
        ConfigError: a seed that is not an integer >= 0, a cap that is not null or an integer >= 1, a
            ``strategy_params`` setting that :class:`StrategyParams` refuses.
    """
    seed = check_int("project setting seed", project_settings.get("seed", 0), minimum=0)
    strategy_params(project_settings)  # checked with the other cycle settings, when they are stored
    cap = project_settings.get("max_per_slice", DEFAULT_MAX_PER_SLICE)
    return seed, None if cap is None else check_int("project setting max_per_slice", cap, minimum=1)


def _slice_shape(volume: records.Volume) -> tuple[int, int]:
    """``(J, I)``: rows and columns of the volume's axial slices."""
    di, dj, _ = volume.geometry.dims
    return dj, di


def _open_regions(volume: records.Volume, grid: RegionGrid, answered: set[tuple[int, int, int]]) -> np.ndarray:
    """``[K, R]`` bool: True where the region has no answer yet."""
    open_regions = np.ones((volume.geometry.dims[2], grid.regions), dtype=bool)
    for volume_id, k, region in answered:
        if volume_id == volume.id and k < len(open_regions) and region < grid.regions:
            open_regions[k, region] = False
    return open_regions


def _volume_stack(
    store: Store, settings: ServiceSettings, cache: ServiceCache, volume: records.Volume, model
) -> SliceStack:
    """The volume's axial slices; its voxels and network input are read (or taken from the cache) only when a
    strategy asks for them, so a cache that holds none keeps one volume's voxels in memory at a time."""
    key = VolumeKey(volume.id, volume.sha256)
    max_expanded = settings.decode_limits.max_zip_bytes

    def read() -> Volume:
        return cache.volume(key, lambda: read_stored_volume(store.files.path(volume.path), volume.format, max_expanded))

    def voxels() -> np.ndarray:
        return read().array

    def lungs_hu() -> np.ndarray:
        ct = read()
        lungs = volume_lungs(cache, key, ct)
        return ct.array if isinstance(lungs, NoLungs) else lungs_only(ct, lungs.aerated)

    def network_input():
        from covidal.service.project.models import slices  # torch loads only once a project has a model

        window, size = model.config.window, model.config.image_size
        return cache.derived(
            slices.NetworkInputKey(key, window, size),
            lambda: slices.network_input_of(voxels(), window, size),
            slices.tensor_nbytes,
        )

    return SliceStack((_slice_shape(volume),) * volume.geometry.dims[2], network_input, lungs_hu)


def _current_model(project: records.Project, settings: ServiceSettings, cache: ServiceCache):
    """The project's current 2D model (a :class:`~covidal.training.checkpoint.LoadedRun`), or None when it has
    none yet or is a ``unet3d`` project."""
    path = ProjectLayout(settings.project_dir).current_model(project.id)
    if ModelKind(project.model_kind).dims == 3 or not path.is_file():
        return None
    from covidal.service.project.models import slices  # torch loads only once a project has a model

    return cache.model(path, lambda model_path: slices.load_model(model_path, settings.device))
