"""Fixtures of the CovidActiveLearningLib tests: a headless slicer-core MRML scene, a real
``covidal serve`` on loopback (a child process over a temporary project folder), and real volume files."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

MODULE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(MODULE_DIR))  # CovidActiveLearningLib, as Slicer's module path provides it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # support

from support import local_backend, shared_dicom_or_skip, synthetic_chest, write_image

from CovidActiveLearningLib.mrml import MrmlContext, headless_context


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A clock for the effort counter that moves only by ``clock.advance(seconds)``."""
    return FakeClock()


@pytest.fixture
def mrml() -> MrmlContext:
    """A fresh headless MRML scene with the module logics attached (``slicer.mrmlScene`` points at it)."""
    return headless_context()


@pytest.fixture(scope="session")
def chest_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(ct.nrrd, lesions.nrrd)``: the synthetic chest CT and its lesion mask, oblique geometry."""
    folder = tmp_path_factory.mktemp("chest")
    ct, lesions = synthetic_chest()
    return write_image(ct, folder / "ct.nrrd"), write_image(lesions, folder / "lesions.nrrd")


@pytest.fixture(scope="session")
def shared_dicom() -> Path:
    """The real 48-slice TCIA chest CT series of ``../shared/data/dicom`` (skips when the shared data is absent)."""
    return shared_dicom_or_skip()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real ``covidal serve`` (child process, CPU) over a fresh project folder, for one test module."""
    with local_backend(tmp_path_factory.mktemp("backend")) as url:
        yield url
