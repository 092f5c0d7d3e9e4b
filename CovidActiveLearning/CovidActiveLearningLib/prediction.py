"""The backend's infection prediction as a segmentation node: one "Infection" segment, shown in 2D and 3D.

The backend writes a prediction as a uint8 NRRD label volume on the grid of the volume it predicted
(``1`` = infection, ``0`` = not). :func:`import_prediction` turns that file into a segmentation whose
reference geometry is the CT's, so the segment's voxels are exactly the file's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import MATCH_TOLERANCE_MM, ijk_to_ras_matrix, volume_dims
from CovidActiveLearningLib.mrml import MrmlContext
from CovidActiveLearningLib.volumes import read_volume

INFECTION_SEGMENT = "Infection"  # the segment's name and id
# Slicer's General Anatomy terminology has no "infection" or "consolidation" entry; its red lesion type
# (Morphologically Altered Structure / Hemorrhage, recommended RGB 188, 65, 28) is the closest lesion-like
# colour. A red-orange stands out on grey lung CT and differs from the segment editor's first default (green).
INFECTION_COLOR = (188 / 255, 65 / 255, 28 / 255)  # (r, g, b) in 0..1, as vtkSegment.SetColor takes it
CLOSED_SURFACE = "Closed surface"
MM3_PER_ML = 1000.0


class PredictionModel(StrEnum):
    """The project's model a prediction comes from: the click-trained 2D model, or the 3D model a ``clicks-to-3d``
    job trained on its pseudo-labels (the backend's ``?model=`` query)."""

    TWO_D = "2d"
    THREE_D = "3d"

    def query(self) -> dict[str, str]:
        """The client's keyword for a prediction by this model: none for the 2D model (the backend's default)."""
        return {} if self is PredictionModel.TWO_D else {"model": self.value}

    def node_name(self, volume_name: str) -> str:
        """The segmentation node of the CT's prediction by this model: the two sit side by side in the scene."""
        return f"{volume_name} infection" if self is PredictionModel.TWO_D else f"{volume_name} infection (3D model)"


@dataclass(frozen=True)
class LungInvolvement:
    """The backend's lung figures of a prediction: lung volume (mL) and the infected share (%) of both lungs and of
    each (None where that lung was not found)."""

    lung_ml: float
    percent: float
    right_percent: float | None
    left_percent: float | None

    @classmethod
    def from_json(cls, stats: Mapping[str, Any]) -> LungInvolvement | None:
        """From the backend's prediction JSON; None when it found no lungs (its ``lung_percent`` is null).

        Raises:
            UserFacingError: a figure that is not a number.
        """
        if stats.get("lung_percent") is None or stats.get("lung_ml") is None:
            return None
        try:
            return cls(
                float(stats["lung_ml"]),
                float(stats["lung_percent"]),
                _optional_float(stats.get("right_lung_percent")),
                _optional_float(stats.get("left_lung_percent")),
            )
        except (TypeError, ValueError):
            raise UserFacingError(f"The backend sent malformed lung figures: {dict(stats)!r}.") from None

    def text(self) -> str:
        """``"8.1% of the lungs (right 10.2%, left 6.0%)"``."""
        sides = [
            f"{side} {percent:.1f}%"
            for side, percent in (("right", self.right_percent), ("left", self.left_percent))
            if percent is not None
        ]
        return f"{self.percent:.1f}% of the lungs" + (f" ({', '.join(sides)})" if sides else "")


@dataclass(frozen=True)
class PredictionImport:
    """An imported prediction: the segmentation node, its infected voxel count and volume (mL), the model it came
    from and the backend's lung figures (None: no lungs found, or not asked)."""

    segmentation_node: object  # vtkMRMLSegmentationNode
    voxels: int
    infected_ml: float
    model: PredictionModel = PredictionModel.TWO_D
    lungs: LungInvolvement | None = None

    def summary(self) -> str:
        """The panel's line: ``"Infected: 12.3 mL (4567 voxels); 8.1% of the lungs (right 10.2%, left 6.0%)"``,
        ``"Infected (3D model): ..."`` for the 3D model's."""
        which = "" if self.model is PredictionModel.TWO_D else " (3D model)"
        line = f"Infected{which}: {self.infected_ml:.1f} mL ({self.voxels} voxels)"
        return f"{line}; {self.lungs.text()}" if self.lungs is not None else line

    @property
    def reference_volume(self):
        """The CT the prediction lies on (its segmentation's reference geometry), None once removed from the scene."""
        node = self.segmentation_node
        return node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())


def import_prediction(
    context: MrmlContext,
    reference_volume,
    labelmap_path: Path,
    name: str,
    model: PredictionModel = PredictionModel.TWO_D,
    lungs: LungInvolvement | None = None,
) -> PredictionImport:
    """Show the prediction file ``labelmap_path`` as the segmentation node ``name`` over ``reference_volume``.

    The node named ``name`` is reused (its segments replaced) when the scene has one, else created. It
    ends with exactly one segment, ``INFECTION_SEGMENT`` in ``INFECTION_COLOR``, holding the voxels whose
    label is not 0; it is shown filled and outlined in the slice views and as a closed surface in 3D. An
    empty prediction gives an empty segment and 0 mL.

    Args:
        reference_volume: the CT the backend predicted (its grid is the segmentation's reference geometry).
        labelmap_path: the backend's prediction NRRD (uint8 ``[K, J, I]`` on the CT's grid).
        name: the segmentation node's name.
        model, lungs: what the import says it is (kept in the result for its summary).

    Raises:
        UserFacingError: no reference volume, an unreadable file, or a file on another grid than the CT's.
    """
    if reference_volume is None:
        raise UserFacingError("Select the CT volume the prediction belongs to.")
    labelmap = read_volume(context.scene, labelmap_path, name=f"{name} (import)", labelmap=True)
    try:
        _check_same_grid(reference_volume, labelmap)
        _binarize(labelmap)
        segmentation_node = _empty_segmentation_node(context.scene, name, reference_volume)
        _fill_infection_segment(context, segmentation_node, labelmap)
    finally:
        context.scene.RemoveNode(labelmap)  # the import gives it no display node
    _show(segmentation_node)
    voxels = infected_voxels(context, segmentation_node, reference_volume)
    infected_ml = voxels * voxel_volume_mm3(reference_volume) / MM3_PER_ML
    return PredictionImport(segmentation_node, voxels, infected_ml, PredictionModel(model), lungs)


def infected_voxels(context: MrmlContext, segmentation_node, reference_volume) -> int:
    """Voxels of the reference volume's grid inside the ``INFECTION_SEGMENT`` segment (0 when it is empty)."""
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(INFECTION_SEGMENT)
    with exported_labelmap(context, segmentation_node, [segment_id], reference_volume) as labelmap:
        return int(np.count_nonzero(slicer.util.arrayFromVolume(labelmap)))


@contextmanager
def exported_labelmap(context: MrmlContext, segmentation_node, segment_ids: Sequence[str], reference_volume):
    """A temporary labelmap node of the segments on the reference volume's exact grid (``segment_ids[n]`` has
    label ``n + 1``), removed on exit with the display and colour nodes the export adds to the scene.

    ``slicer.util.arrayFromSegmentBinaryLabelmap`` would do for one segment but leaves such a display node
    behind at every call.

    Raises:
        UserFacingError: the export failed.
    """
    scene = context.scene
    before = {scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())}
    try:
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{segmentation_node.GetName()} labels")
        ids = vtk.vtkStringArray()
        for segment_id in segment_ids:
            ids.InsertNextValue(segment_id)
        if not context.segmentations.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_volume):
            raise UserFacingError(f"Could not turn '{segmentation_node.GetName()}' into a labelmap.")
        yield labelmap
    finally:
        nodes = [scene.GetNthNode(index) for index in range(scene.GetNumberOfNodes())]
        for node in reversed([node for node in nodes if node.GetID() not in before]):
            scene.RemoveNode(node)


def voxel_volume_mm3(volume_node) -> float:
    """Volume of one voxel (mm^3): the determinant of the IJK-to-RAS direction-times-spacing matrix."""
    return float(abs(np.linalg.det(ijk_to_ras_matrix(volume_node)[:3, :3])))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _check_same_grid(reference_volume, labelmap) -> None:
    """Raise UserFacingError unless the two volumes have the same voxel counts and corners (to 1 µm)."""
    dims = volume_dims(labelmap)
    if dims != volume_dims(reference_volume):
        raise UserFacingError(
            f"The prediction has {dims[0]} x {dims[1]} x {dims[2]} voxels but "
            f"'{reference_volume.GetName()}' has {' x '.join(map(str, volume_dims(reference_volume)))}"
            "; predict this volume again."
        )
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[0] - 1) for j in (0, dims[1] - 1) for k in (0, dims[2] - 1)])
    gap = np.abs(corners @ ijk_to_ras_matrix(labelmap).T - corners @ ijk_to_ras_matrix(reference_volume).T).max()
    if gap > MATCH_TOLERANCE_MM:
        raise UserFacingError(
            f"The prediction lies {gap:.3g} mm away from '{reference_volume.GetName()}'; predict this volume again."
        )


def _binarize(labelmap) -> None:
    """Make every non-zero label 1, so the import yields one segment whatever labels the file used."""
    labels = slicer.util.arrayFromVolume(labelmap)
    labels[...] = labels != 0
    slicer.util.arrayFromVolumeModified(labelmap)


def _empty_segmentation_node(scene, name: str, reference_volume):
    """The segmentation node ``name`` (reused, segments removed, or created) with the CT as reference geometry."""
    found = scene.GetNodesByClassByName("vtkMRMLSegmentationNode", name)
    node = (
        found.GetItemAsObject(0)
        if found.GetNumberOfItems()
        else scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    )
    node.GetSegmentation().RemoveAllSegments()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    node.CreateDefaultDisplayNodes()
    return node


def _fill_infection_segment(context: MrmlContext, segmentation_node, labelmap) -> None:
    """Add the ``INFECTION_SEGMENT`` segment and import label 1 of ``labelmap`` into it.

    Naming the target segment keeps an empty labelmap from giving no segment at all.
    """
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment(
        INFECTION_SEGMENT, INFECTION_SEGMENT, INFECTION_COLOR
    )
    targets = vtk.vtkStringArray()
    targets.InsertNextValue(segment_id)
    if not context.segmentations.ImportLabelmapToSegmentationNode(labelmap, segmentation_node, targets):
        raise UserFacingError(f"Could not import the prediction into '{segmentation_node.GetName()}'.")


def _show(segmentation_node) -> None:
    """Filled and outlined in the slice views, a closed surface in 3D."""
    segmentation_node.CreateClosedSurfaceRepresentation()
    display = segmentation_node.GetDisplayNode()
    display.SetVisibility(True)
    display.SetVisibility2DFill(True)
    display.SetVisibility2DOutline(True)
    display.SetVisibility3D(True)
    display.SetPreferredDisplayRepresentationName3D(CLOSED_SURFACE)
