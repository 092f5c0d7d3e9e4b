"""Fixtures of the end-to-end tests: one harness (Slicer's views and the module's logic in a browser app, Debian's
Chromium driven by Playwright) for the whole run, a real ``covidal serve`` on loopback, the real DICOM series of
``../shared`` and an oblique synthetic chest CT. Each test starts from a closed scene and a project of its own."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Testing"))  # the harness package
sys.path.insert(0, str(ROOT / "CovidActiveLearning" / "Testing" / "Python"))  # support

from harness.session import HarnessSession
from support import local_backend, shared_dicom_or_skip, synthetic_chest, write_image

SCREENSHOTS = ROOT / "Testing" / "e2e" / "screenshots"  # git-ignored; each test prints the path of its own
# The backend's model for these tests: a small U-Net on a 64-pixel grid, so a training job takes seconds on a CPU.
TINY_MODEL = {"image_size": 64, "width": 8, "checkpoint_every": 2, "batch_size": 2}
WRITTEN: list[tuple[str, Path]] = []  # (test, screenshot), listed at the end of the run


def pytest_terminal_summary(terminalreporter) -> None:
    """Where each test's screenshot is, so a person can look at what was clicked."""
    if WRITTEN:
        terminalreporter.section("screenshots of the views")
        for test, path in WRITTEN:
            terminalreporter.write_line(f"{test}: {path}")


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real ``covidal serve`` (child process, CPU) over a fresh project folder, for the whole run."""
    with local_backend(tmp_path_factory.mktemp("backend")) as url:
        yield url


@pytest.fixture(scope="session")
def harness() -> Iterator[HarnessSession]:
    """The harness app and one Chromium page on it, shared by every test (a browser session costs seconds of CPU)."""
    session = HarnessSession(
        SCREENSHOTS,
        on_screenshot=lambda path: WRITTEN.append((os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0], path)),
    )
    yield session
    session.close()


@pytest.fixture(scope="session")
def shared_dicom() -> Path:
    return shared_dicom_or_skip()


@pytest.fixture(scope="session")
def oblique_chest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """``(ct.nrrd, lesions [K, J, I])``: a 12-slice synthetic chest CT on an oblique grid and its lesion mask."""
    folder = tmp_path_factory.mktemp("oblique")
    ct, lesions = synthetic_chest((12, 96, 112), seed=3)
    return write_image(ct, folder / "oblique_chest.nrrd"), lesions


@pytest.fixture
def fresh(harness: HarnessSession, backend: str, request: pytest.FixtureRequest) -> HarnessSession:
    """The harness with the scene closed and the panel connected to the backend, as a clinician starts."""
    harness.click_button("Close scene")
    harness.fill("URL", backend)
    harness.click_button("Connect")
    harness.wait_for_text("backend-status", "Connected to covidal")
    harness.fill("Project", request.node.name[:60])
    return harness
