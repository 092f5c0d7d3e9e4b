"""Fixtures of the store tests: a store folder with a project, one uploaded volume and a cycle of regions."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import store_testing (pytest runs with --import-mode=importlib)

from store_testing import open_project

from covidal.service.store.records import Cycle, Project, Volume
from covidal.service.store.store import Store


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[tuple[Store, Project, Volume, Cycle]]:
    """``(store, project, volume, cycle)``: see :func:`open_project` (12 regions)."""
    opened = open_project(tmp_path / "store")
    yield opened
    opened[0].close()


@pytest.fixture
def project_opener(tmp_path: Path) -> Iterator[Callable[..., tuple[Store, Project, Volume, Cycle]]]:
    """``project_opener(name="lungs", regions=12, root=None)``: :func:`open_project`, closed after the test."""
    stores: list[Store] = []

    def open_(name: str = "lungs", regions: int = 12, root: Path | None = None) -> tuple[Store, Project, Volume, Cycle]:
        opened = open_project(root or tmp_path / "store", name, regions)
        stores.append(opened[0])
        return opened

    yield open_
    for store in stores:
        store.close()
