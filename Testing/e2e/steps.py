"""What a clinician does in the harness's panel and views, step by step, and what the tests read back.

Geometry here is computed from VTK's own matrices (the slice view's XY-to-RAS, the volume's RAS-to-IJK), not
with the module's geometry code, so a test compares the module's answer with an independent one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from CovidActiveLearningLib.backend_client import CovidalClient
from harness.session import HarnessSession


def load(harness: HarnessSession, path: Path) -> None:
    """*Load* a volume file or a DICOM folder (Slicer: *Add Data* or the DICOM module)."""
    harness.fill("CT file or DICOM folder", str(path))
    harness.click_button("Load")
    harness.wait_for_text("volume-status", "Loaded")


def get_suggestions(harness: HarnessSession, regions: int) -> list:
    """*Get suggestions* for ``regions`` regions; returns the cycle's regions (rank order)."""
    harness.fill("Regions to answer", regions)
    harness.click_button("Get suggestions")
    harness.wait_for_text("volume-status", "regions to answer in this cycle", timeout=180)
    return harness.call(lambda app: list(app.logic.cycle.regions))


def current_region(harness: HarnessSession):
    return harness.call(lambda app: app.logic.current_region)


def voxel_ras(harness: HarnessSession, voxel) -> np.ndarray:
    """RAS (mm) of the centre of voxel ``(i, j, k)`` of the loaded CT."""
    return harness.call(lambda app: _matrix(app.volume.GetIJKToRASMatrix) @ np.append(np.asarray(voxel, float), 1))[:3]


def voxel_under(harness: HarnessSession, x: float, y: float) -> tuple[int, int, int]:
    """The voxel of the loaded CT under the page point ``(x, y)`` of the red view."""
    ras = harness.ras_at(x, y)
    ijk = harness.call(lambda app: _matrix(app.volume.GetRASToIJKMatrix) @ np.append(ras, 1.0))[:3]
    return tuple(int(value) for value in np.floor(ijk + 0.5))


def click_voxel(harness: HarnessSession, voxel) -> tuple[float, float]:
    """Click with the mouse on voxel ``(i, j, k)`` in the red view (on its slice); returns the page point."""
    x, y = harness.page_point(voxel_ras(harness, voxel))
    harness.click_at(x, y)
    return x, y


def stored_answers(backend: str, harness: HarnessSession) -> dict[int, dict]:
    """The backend's annotations of the panel's project, by suggestion id."""
    project_id = harness.call(lambda app: app.logic.project_id)
    return {answer["suggestion_id"]: answer for answer in CovidalClient(backend).list_annotations(project_id)}


def control_points(harness: HarnessSession) -> list[tuple[str, str]]:
    """``(position status, description)`` of each control point of 'Infection points'."""

    def read(app):
        node = app.logic.infection_points_node()
        return [
            (
                node.GetPositionStatusAsString(node.GetNthControlPointPositionStatus(index)),
                node.GetNthControlPointDescription(index),
            )
            for index in range(node.GetNumberOfControlPoints())
        ]

    return harness.call(read)


def _matrix(getter) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    getter(matrix)
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])
