"""What the module's tests and the end-to-end tests in ../../../Testing share: the synthetic chest CT (an oblique,
anisotropic grid with lungs and ground-glass lesions) with its lesion mask, the simulated clinician; and a real
``covidal serve`` on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CHEST_SPACING = (1.4, 1.2, 5.0)  # (i, j, k) mm, anisotropic so axis mix-ups show
CHEST_ORIGIN = (-40.0, 25.0, -110.0)  # LPS mm


def oblique_direction(degrees: float = 20.0) -> np.ndarray:
    """``[3, 3]`` LPS direction: a rotation by ``degrees`` about the k axis and a small tilt."""
    a, b = np.radians(degrees), np.radians(7.0)
    about_k = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_i = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return about_i @ about_k


def synthetic_chest(shape_kji: tuple[int, int, int] = (6, 48, 56), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int16 HU ``[K, J, I]`` chest (body, two lungs, ground-glass blobs) and its uint8 lesion mask."""
    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[: shape_kji[0], : shape_kji[1], : shape_kji[2]].astype(float)
    cj, ci = shape_kji[1] / 2, shape_kji[2] / 2
    body = ((j - cj) / (0.45 * shape_kji[1])) ** 2 + ((i - ci) / (0.47 * shape_kji[2])) ** 2 < 1
    lungs = np.zeros(shape_kji, bool)
    for side in (-1, 1):
        lungs |= ((j - cj) / (0.33 * shape_kji[1])) ** 2 + (
            (i - ci - side * 0.22 * shape_kji[2]) / (0.17 * shape_kji[2])
        ) ** 2 < 1
    ct = np.where(body, 40.0, -1000.0)
    ct[lungs] = -850.0
    lesions = np.zeros(shape_kji, bool)
    for _ in range(4):
        center = rng.uniform([0, cj - 8, ci - 18], [shape_kji[0], cj + 8, ci + 18])
        radius = rng.uniform(3, 6)
        lesions |= (((j - center[1]) ** 2 + (i - center[2]) ** 2) < radius**2) & (np.abs(k - center[0]) < 2)
    lesions &= lungs
    ct[lesions] = -450.0
    ct += rng.normal(0, 15, shape_kji)
    return ct.astype(np.int16), lesions.astype(np.uint8)


def write_image(array_kji: np.ndarray, path: Path, direction: np.ndarray | None = None) -> Path:
    """Write ``[K, J, I]`` with the chest geometry (oblique unless ``direction`` is given) to ``path``."""
    image = sitk.GetImageFromArray(array_kji)
    image.SetSpacing(CHEST_SPACING)
    image.SetOrigin(CHEST_ORIGIN)
    image.SetDirection(tuple((oblique_direction() if direction is None else direction).ravel()))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


SHARED_DICOM = Path(__file__).resolve().parents[4] / "shared" / "data" / "dicom" / "tcia_chest_ct_48"


def shared_dicom_or_skip() -> Path:
    """The real 48-slice TCIA chest CT series of ``../shared/data/dicom`` beside the checkout (the test is skipped
    when that shared data is absent)."""
    import pytest

    if not SHARED_DICOM.is_dir():
        pytest.skip(f"shared data {SHARED_DICOM} is absent (it lives beside the checkout in ../shared/data)")
    return SHARED_DICOM


@contextmanager
def local_backend(folder: Path) -> Iterator[str]:
    """The URL of a real ``covidal serve`` (child process, CPU, one thread) over a fresh project folder in ``folder``."""
    from covidal.service.local import local_service  # the backend's package: tests only, never inside Slicer

    with local_service(folder / "projects", folder / "serve.log", environment={"OMP_NUM_THREADS": "1"}) as client:
        yield client.base_url
