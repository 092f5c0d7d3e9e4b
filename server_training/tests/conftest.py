"""Shared fixtures: tiny synthetic data sets and tiny trained runs in temporary folders, and a CLI runner.

Nothing here is autouse: a fixture only acts on the tests that ask for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

SLICE_SHAPE = (40, 48)  # (H, W): non-square, so mapping back to the native grid is exercised
VOLUME_SPACING = (0.7, 0.8, 2.5)  # (i, j, k) mm
VOLUME_ORIGIN = (-12.5, 30.0, -100.0)  # LPS mm


@dataclass(frozen=True)
class SliceSet:
    """A folder of 8-bit PNG slices and a folder of 0/255 PNG masks with the same stems."""

    images: Path
    masks: Path
    stems: tuple[str, ...]


@dataclass(frozen=True)
class CtCase:
    """A CT volume in HU (int16 NRRD, oblique direction) and its label volume on the same grid."""

    ct: Path
    labels: Path


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` torch threads: tiny models are much faster on one thread of a busy CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def lesion_mask(shape: tuple[int, int], rng: np.random.Generator, lesions: int) -> np.ndarray:
    """uint8 ``[H, W]`` {0, 1} mask with ``lesions`` separate rectangles (at most 2, never touching)."""
    height, width = shape
    mask = np.zeros(shape, dtype=np.uint8)
    # One lesion per half of the image (left / right), so two lesions are separate components.
    for half in range(lesions):
        size_rows, size_cols = int(rng.integers(3, 8)), int(rng.integers(3, 8))
        top = int(rng.integers(2, height - size_rows - 2))
        left = int(rng.integers(2 + half * width // 2, (half + 1) * width // 2 - size_cols - 2))
        mask[top : top + size_rows, left : left + size_cols] = 1
    return mask


def write_slice_set(folder: Path, count: int, seed: int = 0, shape: tuple[int, int] = SLICE_SHAPE) -> SliceSet:
    """Write ``count`` slices ``1.png`` .. ``{count}.png`` with masks; slice 1 has no lesion, the others 1 or 2."""
    rng = np.random.default_rng(seed)
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    stems = tuple(str(n) for n in range(1, count + 1))
    for number, stem in enumerate(stems):
        mask = lesion_mask(shape, rng, lesions=0 if number == 0 else 1 + number % 2)
        image = np.clip(60 + rng.normal(0, 8, shape) + 140 * mask, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(images / f"{stem}.png")
        Image.fromarray(mask * 255).save(masks / f"{stem}.png")
    return SliceSet(images, masks, stems)


def oblique_direction() -> np.ndarray:
    """``[3, 3]`` rotation (20 degrees about k, then 10 about i): columns are the i, j, k axes in LPS."""
    a, b = math.radians(20), math.radians(10)
    about_k = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    about_i = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return about_k @ about_i


def write_volume_file(array: np.ndarray, path: Path, direction: np.ndarray | None = None) -> Path:
    """Write ``array`` ``[K, J, I]`` as a volume with the shared spacing/origin and ``direction`` (oblique by default)."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(VOLUME_SPACING)
    image.SetOrigin(VOLUME_ORIGIN)
    image.SetDirection(tuple((oblique_direction() if direction is None else direction).ravel()))
    sitk.WriteImage(image, str(path), True)
    return path


def write_ct_case(folder: Path, slices: int = 4, seed: int = 1) -> CtCase:
    """A ``[slices, 40, 48]`` CT in HU (air -1000, lung ~-850, lesions -300) and its 0/1 labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.stack([lesion_mask(SLICE_SHAPE, rng, lesions=1 + k % 2) for k in range(slices)])
    hu = np.full(labels.shape, -1000.0)
    hu[:, 4:-4, 4:-4] = -850 + rng.normal(0, 20, (slices, SLICE_SHAPE[0] - 8, SLICE_SHAPE[1] - 8))
    hu[labels == 1] = -300
    ct = write_volume_file(hu.astype(np.int16), folder / "ct.nrrd")
    return CtCase(ct, write_volume_file(labels, folder / "ct_labels.nrrd"))


@dataclass(frozen=True)
class VolumeSet:
    """A folder of CT volumes (int16 HU NRRD, oblique direction) and a folder of their labels, same names."""

    images: Path
    labels: Path
    names: tuple[str, ...]


VOLUME_SET_SHAPE = (12, 24, 28)  # [K, J, I]


def write_volume_set(folder: Path, count: int, seed: int = 0) -> VolumeSet:
    """``count`` CTs of lung-like noise (-850 HU) with one bright spherical lesion (-300 HU) each, labelled 1."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    grid = np.indices(VOLUME_SET_SHAPE).astype(float)
    names = tuple(f"case{index}" for index in range(count))
    for name in names:
        centre = [rng.uniform(4, 8), rng.uniform(7, 17), rng.uniform(8, 20)]
        distance_mm = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, VOLUME_SPACING[::-1])))
        label = (distance_mm <= rng.uniform(4.0, 7.0)).astype(np.uint8)
        hu = -850 + rng.normal(0, 25, VOLUME_SET_SHAPE)
        hu[label == 1] = -300 + rng.normal(0, 25, int(label.sum()))
        write_volume_file(hu.astype(np.int16), folder / "images" / f"{name}.nrrd")
        write_volume_file(label, folder / "labels" / f"{name}.nrrd")
    return VolumeSet(folder / "images", folder / "labels", names)


# Settings that make a 3D run take about a second: a two-level U-Net on 8^3 patches of a coarse grid.
TINY_3D_OPTIONS = (
    "--spacing",
    "2,2,4",
    "--patch",
    "8",
    "--channels",
    "4,8",
    "--batch",
    "2",
    "--epochs",
    "2",
    "--steps-per-epoch",
    "2",
    "--device",
    "cpu",
)


@pytest.fixture(scope="session")
def volume_set(tmp_path_factory: pytest.TempPathFactory) -> VolumeSet:
    return write_volume_set(tmp_path_factory.mktemp("volume_set"), count=3)


@pytest.fixture
def volume_set_writer() -> Callable[..., VolumeSet]:
    """``volume_set_writer(folder, count, seed=0)``: see :func:`write_volume_set`."""
    return write_volume_set


@pytest.fixture(scope="session")
def tiny_3d_options() -> tuple[str, ...]:
    """Command-line options of a 3D run that takes about a second."""
    return TINY_3D_OPTIONS


@pytest.fixture
def single_thread_torch() -> Iterator[None]:
    """One torch thread for the test, restored afterwards."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def synthetic_slices(tmp_path_factory: pytest.TempPathFactory) -> SliceSet:
    """Six 40x48 PNG slices with masks (read-only: copy before changing anything)."""
    return write_slice_set(tmp_path_factory.mktemp("slices"), count=6)


@pytest.fixture
def make_slices(tmp_path: Path) -> Callable[..., SliceSet]:
    """Factory ``make_slices(count, seed=0, shape=(40, 48), name="set")`` writing a fresh, modifiable set."""
    return lambda count, seed=0, shape=SLICE_SHAPE, name="set": write_slice_set(tmp_path / name, count, seed, shape)


@pytest.fixture(scope="session")
def synthetic_ct(tmp_path_factory: pytest.TempPathFactory) -> CtCase:
    """A 4-slice oblique CT NRRD in HU and its label NRRD (read-only)."""
    return write_ct_case(tmp_path_factory.mktemp("ct"))


@pytest.fixture
def volume_writer() -> Callable[..., Path]:
    """``volume_writer(array [K, J, I], path, direction=None)``: a volume file with the shared oblique geometry."""
    return write_volume_file


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, synthetic_slices: SliceSet) -> Path:
    """A run folder (model.pt, train.json, points.json) of a UNet trained 1 step at 32x32 on the slices."""
    from covidal.data.slices import load_slices
    from covidal.losses.registry import LossConfig, LossName
    from covidal.training.train_config import TrainConfig
    from covidal.training.train_run import train

    run_dir = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        loss=LossConfig(LossName.POINT), steps=1, batch_size=4, image_size=32, val_fraction=0.34, device="cpu"
    )
    with torch_threads(1):
        train(load_slices(synthetic_slices.images, synthetic_slices.masks), config, run_dir, progress=False)
    return run_dir


TRAINED_CT_WINDOW = (-700.0, 600.0)  # (level, width): clips the lesions (-300 HU), unlike the default window


@pytest.fixture(scope="session")
def ct_run(tmp_path_factory: pytest.TempPathFactory, synthetic_ct: CtCase) -> Path:
    """A run folder of a UNet trained 1 pass (1 step) at 32x32 on the CT volume with the window ``TRAINED_CT_WINDOW``."""
    from covidal.data.slices import load_slices
    from covidal.data.window import HUWindow
    from covidal.losses.registry import LossConfig, LossName
    from covidal.training.train_config import TrainConfig
    from covidal.training.train_run import train

    run_dir = tmp_path_factory.mktemp("ct_run")
    window = HUWindow(*TRAINED_CT_WINDOW)
    config = TrainConfig(
        loss=LossConfig(LossName.POINT),
        steps=1,
        batch_size=4,
        image_size=32,
        val_fraction=0.0,
        device="cpu",
        window=window,
    )
    with torch_threads(1):
        train(load_slices(synthetic_ct.ct, synthetic_ct.labels, window), config, run_dir, progress=False)
    return run_dir


@dataclass(frozen=True)
class CliResult:
    """Exit status and captured output of one ``covidal`` command run in this process."""

    code: int
    out: str
    err: str

    def assert_user_error(self, *words: str) -> None:
        """Exit 2 and exactly one stderr line ``covidal...`` naming each of ``words`` (case-insensitive); no traceback."""
        assert self.code == 2, (self.code, self.err)
        assert "Traceback" not in self.err
        assert self.err.startswith("covidal") and self.err.endswith("\n") and self.err.count("\n") == 1, self.err
        for word in words:
            assert word.lower() in self.err.lower(), (word, self.err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``cli("train", "--images", path, ...)``: run ``covidal.cli.main.main`` (argparse exits count as a status)."""
    from covidal.cli.main import main

    def run(*argv: object) -> CliResult:
        capsys.readouterr()  # drop what earlier steps of the test printed
        try:
            code = main([str(word) for word in argv])
        except SystemExit as exit_:
            code = exit_.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
