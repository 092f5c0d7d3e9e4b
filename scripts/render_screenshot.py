"""Render Resources/Screenshots/suggestions.png: the module's axial view during a cycle, before and after a click.

Runs the real pieces headless: ``covidal serve`` as a child process on loopback and the module's Qt-free core
logic over a slicer-core MRML scene (upload, a first cycle, its ROIs and heat map, one click on infection). Then
it composes the current region's axial slice, before and after the click, from the scene's nodes (the CT in the
lung window, the heat map with its colour table, window and opacity, the ROIs in their display colours, the
infection point) and writes it with vtkPNGWriter. It is not a capture of the Slicer window: no Slicer
application runs here.

The CT is the demo case: a real chest CT (TotalSegmentator 2.18.0 sdist, Apache-2.0) with SYNTHETIC lesions,
fetched and cached as ``covidal demo`` does.

Usage (from the repository root): ``.venv/bin/python scripts/render_screenshot.py [--out PNG] [--regions N]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import slicer
import vtk
from covidal.sample_data.demo import make_demo_case
from covidal.service.local import local_service
from vtk.util.numpy_support import numpy_to_vtk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CovidActiveLearning"))

from CovidActiveLearningLib.logic import CovidActiveLearningCoreLogic  # noqa: E402
from CovidActiveLearningLib.mrml import headless_context  # noqa: E402
from CovidActiveLearningLib.volumes import read_volume  # noqa: E402

LUNG_WINDOW = (-600.0, 1500.0)  # level, width (HU)
ZOOM = 2  # output pixels per voxel
POINT_RADIUS = 4  # output pixels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots" / "suggestions.png")
    # The first cycle ranks slices by lung voxels, not infection, and gives one region per slice: asking for
    # (almost) every slice makes sure some region holds a lesion to click on.
    parser.add_argument("--regions", type=int, default=190, help="regions the cycle asks for")
    args = parser.parse_args()
    case = make_demo_case()
    with tempfile.TemporaryDirectory(prefix="covidal-screenshot-") as folder:
        with local_service(Path(folder) / "projects", Path(folder) / "serve.log") as client:
            context = headless_context()
            logic = CovidActiveLearningCoreLogic(context, annotator="screenshot")
            logic.connect(client.base_url)
            logic.open_project("screenshot", regions_per_slice=16, mc_samples=2)
            volume = read_volume(context.scene, case.ct, "chest CT")
            lesions = slicer.util.arrayFromVolume(read_volume(context.scene, case.lesions, "lesions", labelmap=True))
            logic.get_suggestions(volume, args.regions)
            go_to_the_most_infected_region(logic, lesions)
            before = compose(context.scene, logic, volume)
            click_on_infection(logic, volume, lesions)
            after = compose(context.scene, logic, volume)
    gap = np.full((before.shape[0], 12, 3), 255, np.uint8)
    image = np.hstack([before, gap, after])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(image, args.out)
    print(f"wrote {args.out} ({image.shape[1]} x {image.shape[0]})")
    return 0


def go_to_the_most_infected_region(logic, lesions: np.ndarray):
    """Make the region with the most lesion voxels the current one; returns it.

    Raises:
        SystemExit: no region of the cycle holds a lesion (ask for more with ``--regions``).
    """
    def lesion_voxels(region) -> int:
        box = region.box
        return int(lesions[box.k, box.j0:box.j1, box.i0:box.i1].sum())

    region = max(logic.cycle.regions, key=lesion_voxels)
    if lesion_voxels(region) == 0:
        raise SystemExit("no suggested region holds a lesion: ask for more regions (--regions)")
    return logic.go_to_region(region.id)


def click_on_infection(logic, volume, lesions: np.ndarray) -> None:
    """Click on the lesion of the current region, as the clinician would."""
    i, j, k = lesion_voxel(lesions, logic.current_region)
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    logic.add_point_ras(ijk_to_ras.MultiplyPoint((i, j, k, 1.0))[:3])


def lesion_voxel(lesions: np.ndarray, region) -> tuple[int, int, int] | None:
    """The lesion voxel nearest the middle of the lesion part of the region's box, or None."""
    box = region.box
    j, i = np.nonzero(lesions[box.k, box.j0:box.j1, box.i0:box.i1])
    if len(i) == 0:
        return None
    nearest = np.argmin((i - i.mean()) ** 2 + (j - j.mean()) ** 2)
    return box.i0 + int(i[nearest]), box.j0 + int(j[nearest]), box.k


def compose(scene, logic, volume) -> np.ndarray:
    """RGB ``[rows, columns, 3]`` uint8 of the current region's axial slice, drawn in the radiological convention
    (patient right on the left, anterior up) from the scene's nodes."""
    k = logic.current_region.box.k
    ct = slicer.util.arrayFromVolume(volume)[k].astype(float)
    level, width = LUNG_WINDOW
    gray = np.clip((ct - (level - width / 2)) / width, 0, 1)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    heatmap = scene.GetFirstNodeByName("Cycle 1 uncertainty")
    rgb = overlay_heatmap(rgb, heatmap, k)
    rgb = np.kron(rgb, np.ones((ZOOM, ZOOM, 1)))
    current = logic.current_region.id
    for region in sorted(logic.cycle.regions, key=lambda region: region.id == current):  # the current one on top
        if region.box.k == k:
            roi = logic.layer.roi_for(region.id)
            draw_box(rgb, region.box, roi.GetDisplayNode().GetSelectedColor(), 3 if region.id == current else 2)
    points = logic.infection_points_node()
    ras_to_ijk = vtk.vtkMatrix4x4()
    volume.GetRASToIJKMatrix(ras_to_ijk)
    for index in range(points.GetNumberOfControlPoints()):
        i, j, point_k, _ = ras_to_ijk.MultiplyPoint((*points.GetNthControlPointPositionWorld(index), 1.0))
        if round(point_k) == k:
            draw_point(rgb, i, j, points.GetDisplayNode().GetSelectedColor())
    return np.ascontiguousarray(radiological(rgb, volume) * 255).round().astype(np.uint8)


def overlay_heatmap(rgb: np.ndarray, heatmap, k: int) -> np.ndarray:
    """Blend slice ``k`` of the heat map over ``rgb`` as its display node says: colour table over the window,
    zero transparent, the slice views' foreground opacity."""
    if heatmap is None:
        return rgb
    from CovidActiveLearningLib.suggestions import HEATMAP_OPACITY

    scores = slicer.util.arrayFromVolume(heatmap)[k].astype(float)
    display = heatmap.GetDisplayNode()
    low, high = display.GetWindowLevelMin(), display.GetWindowLevelMax()
    table = display.GetColorNode().GetScalarsToColors()
    table_low, table_high = table.GetRange()
    levels = np.clip((scores - low) / max(high - low, 1e-12), 0, 1)
    palette = np.zeros((256, 3))
    for index, value in enumerate(np.linspace(table_low, table_high, 256)):
        table.GetColor(value, palette[index])
    colors = palette[np.round(levels * 255).astype(int)]
    alpha = np.where(scores > 0, HEATMAP_OPACITY, 0.0)[..., None]
    return (1 - alpha) * rgb + alpha * colors


def draw_box(rgb: np.ndarray, box, color, thickness: int) -> None:
    """Outline the voxel cells ``[i0, i1) x [j0, j1)`` (array columns are i, rows are j)."""
    top, bottom, left, right = box.j0 * ZOOM, box.j1 * ZOOM, box.i0 * ZOOM, box.i1 * ZOOM
    for rows, columns in ((slice(top, top + thickness), slice(left, right)),
                          (slice(bottom - thickness, bottom), slice(left, right)),
                          (slice(top, bottom), slice(left, left + thickness)),
                          (slice(top, bottom), slice(right - thickness, right))):
        rgb[rows, columns] = color


def draw_point(rgb: np.ndarray, i: float, j: float, color) -> None:
    rows, columns = np.ogrid[: rgb.shape[0], : rgb.shape[1]]
    center_row, center_column = (j + 0.5) * ZOOM, (i + 0.5) * ZOOM
    disc = (rows - center_row) ** 2 + (columns - center_column) ** 2
    rgb[disc <= (POINT_RADIUS + 1) ** 2] = (1.0, 1.0, 1.0)
    rgb[disc <= POINT_RADIUS ** 2] = color


def radiological(rgb: np.ndarray, volume) -> np.ndarray:
    """Flip the ``[j, i]`` image so that patient right is on the left and anterior is up (as Slicer's axial view)."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    if ijk_to_ras.GetElement(0, 0) > 0:  # i runs toward patient right: it must run leftward on screen
        rgb = rgb[:, ::-1]
    if ijk_to_ras.GetElement(1, 1) > 0:  # j runs toward anterior: it must run upward on screen
        rgb = rgb[::-1]
    return rgb


def write_png(rgb: np.ndarray, path: Path) -> None:
    image = vtk.vtkImageData()
    image.SetDimensions(rgb.shape[1], rgb.shape[0], 1)
    image.GetPointData().SetScalars(numpy_to_vtk(rgb[::-1].reshape(-1, 3), deep=True))  # VTK rows run bottom-up
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()


if __name__ == "__main__":
    raise SystemExit(main())
