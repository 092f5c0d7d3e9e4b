"""Helpers of the service tests: test volumes with hand-computable lung fractions, projects, raw HTTP."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from covidal.bench.raw_http import raw_request  # noqa: F401 - the tests import it from here
from covidal.service.local import free_port  # noqa: F401 - the tests import it from here

VOLUME_SPACING = (0.7, 0.8, 2.5)  # (i, j, k) mm
VOLUME_ORIGIN = (-12.5, 30.0, -100.0)  # LPS mm
AIR, LUNG = -1000, -800  # HU: outside and inside the lung range [-950, -300]
_NAMES = itertools.count()


def oblique_direction() -> np.ndarray:
    """``[3, 3]`` rotation: columns are the i, j, k axes in LPS (20 degrees about k, then 10 about i)."""
    a, b = np.radians(20), np.radians(10)
    about_k = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_i = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return about_k @ about_i


def write_volume(array: np.ndarray, path: Path, direction: np.ndarray | None = None) -> Path:
    """``array`` ``[K, J, I]`` (or ``[J, I]``) written with the oblique test geometry."""
    image = sitk.GetImageFromArray(array)
    dims = array.ndim
    image.SetSpacing(VOLUME_SPACING[:dims])
    image.SetOrigin(VOLUME_ORIGIN[:dims])
    if dims == 3:
        image.SetDirection(tuple((oblique_direction() if direction is None else direction).ravel()))
    sitk.WriteImage(image, str(path), True)
    return path


def lung_ct() -> np.ndarray:
    """int16 ``[3, 8, 8]`` HU; with 4 regions (4x4 voxel squares, region = 2 * row band + column band):

    slice 0: region 3 all lung (fraction 1), region 0 half lung (0.5); slice 1: region 1 three quarters (0.75);
    slice 2: no lung (0). Expected ranking: (k0, r3), (k1, r1), one region of k2 (tie, by jitter), (k0, r0).
    """
    ct = np.full((3, 8, 8), AIR, dtype=np.int16)
    ct[0, 4:8, 4:8] = LUNG
    ct[0, 0:2, 0:4] = LUNG
    ct[1, 0:3, 4:8] = LUNG
    return ct


def unique_name(prefix: str) -> str:
    """A name not used before in this test run (modules share one project folder per module)."""
    return f"{prefix}-{next(_NAMES)}"


def new_project(client, grid_k: int = 4) -> dict:
    return client.create_project(
        unique_name("lungs"), model_kind="unet", grid_k=grid_k, strategy="entropy", mc_samples=4, loss="point"
    )
