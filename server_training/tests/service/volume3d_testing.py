"""Helpers of the 3D (``unet3d``) service tests: tiny CTs with a lesion and their labels, a project with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from service_testing import VOLUME_SPACING, unique_name, write_volume

CT_SHAPE = (12, 24, 24)  # [K, J, I]
LUNG, LESION = -850, -300  # HU
# A 3D run of a second or two: a two-level U-Net on 8^3 patches of a 2 x 2 x 4 mm grid (8 x 10 x 8 voxels here).
TINY_3D_CONFIG = {
    "epochs": 2,
    "steps_per_epoch": 2,
    "batch_size": 2,
    "patch_size": [8, 8, 8],
    "spacing": [2.0, 2.0, 4.0],
    "channels": [4, 8],
}


def lesion_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ct, label)`` ``[12, 24, 24]``: int16 lung-like noise in HU with a spherical lesion, and its uint8 label."""
    rng = np.random.default_rng(seed)
    grid = np.indices(CT_SHAPE).astype(float)
    centre = (rng.uniform(4, 8), rng.uniform(8, 16), rng.uniform(8, 16))
    distance_mm = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, VOLUME_SPACING[::-1])))
    label = (distance_mm <= rng.uniform(4.0, 6.0)).astype(np.uint8)
    ct = LUNG + rng.normal(0, 25, CT_SHAPE)
    ct[label == 1] = LESION + rng.normal(0, 25, int(label.sum()))
    return ct.astype(np.int16), label


def unet3d_project(client, folder: Path, count: int = 3, labelled: int = 1) -> tuple[dict, list[dict]]:
    """``(project, volumes)``: a unet3d project with ``count`` lesion CTs uploaded, the first ``labelled`` with
    their expert label."""
    folder.mkdir(parents=True, exist_ok=True)
    project = client.create_project(
        unique_name("nt"), model_kind="unet3d", grid_k=4, strategy="entropy", mc_samples=2, loss="point"
    )
    volumes = []
    for number in range(count):
        ct, label = lesion_case(number)
        volume, _ = client.upload_volume(project["id"], write_volume(ct, folder / f"ct{number}.nrrd"))
        if number < labelled:
            client.upload_label(project["id"], volume["id"], write_volume(label, folder / f"label{number}.nrrd"))
        volumes.append(volume)
    return project, volumes


def start_noisy_teacher(client, project_id: int, **config) -> dict:
    """Queue a noisy-teacher job with :data:`TINY_3D_CONFIG` updated by ``config``."""
    return client.start_training(project_id, config={**TINY_3D_CONFIG, **config}, kind="noisy-teacher")
