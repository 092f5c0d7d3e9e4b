"""Helpers of the store tests (importable: conftest puts this folder on sys.path; worker.py runs beside it)."""

from __future__ import annotations

import io
from pathlib import Path

from covidal.service.store.records import (
    Cycle,
    Project,
    RegionBox,
    SuggestionSpec,
    Volume,
    VolumeFormat,
    VolumeGeometry,
)
from covidal.service.store.store import Store

DIMS = (64, 48, 10)  # (i, j, k) voxels
SIDE = 16  # regions are SIDE x SIDE voxel squares: 4 x 3 = 12 per slice
GEOMETRY = VolumeGeometry(DIMS, (0.7, 0.7, 2.5), (-10.0, 20.0, -100.0), (1.0, 0, 0, 0, 1, 0, 0, 0, 1))
T0 = 1_700_000_000.0  # a fixed "now" (2023-11-14T22:13:20Z)


def region_specs(volume_id: int, count: int) -> list[SuggestionSpec]:
    """``count`` regions, slice by slice, region index row-major; scores decreasing (rank = list order)."""
    per_row, per_column = DIMS[0] // SIDE, DIMS[1] // SIDE
    specs = []
    for n in range(count):
        k, region = divmod(n, per_row * per_column)
        row, column = divmod(region, per_row)
        box = RegionBox(column * SIDE, (column + 1) * SIDE, row * SIDE, (row + 1) * SIDE)
        specs.append(SuggestionSpec(volume_id, k, region, box, score=1.0 - n / count))
    return specs


def open_project(root: Path, name: str = "lungs", regions: int = 12) -> tuple[Store, Project, Volume, Cycle]:
    """A store at ``root`` with a project, a volume and an open cycle of ``regions`` regions."""
    store = Store(root)
    project = store.create_project(
        name, model_kind="unet3d", grid_k=16, strategy="entropy", mc_samples=4, loss="point", now=T0
    )
    stored = store.files.put_stream(store.volume_folder(project.id), ".nrrd", io.BytesIO(name.encode() * 100), 10**6)
    volume, _ = store.add_volume(project.id, "ct1.nrrd", stored, VolumeFormat.NRRD, GEOMETRY, now=T0)
    cycle = store.create_cycle(project.id, region_specs(volume.id, regions), now=T0)
    return store, project, volume, cycle
