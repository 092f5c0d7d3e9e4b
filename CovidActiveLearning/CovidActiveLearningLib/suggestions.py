"""A cycle's suggested regions in the scene: voxel-aligned ROIs, the uncertainty heat map, navigation.

Each region becomes a locked ``vtkMRMLMarkupsROINode`` whose box is exactly the region's voxel
cells (one slice thick), oriented along the volume's grid, so on an oblique CT it is an oblique
box. The ROIs of cycle ``n`` sit in the subject-hierarchy folder ``Cycle n suggestions``; showing
another cycle hides the older folders (they stay in the scene).

Colour scale: the built-in ``Warm1`` colour table (yellow for the lowest score, red for the
highest) colours both the ROIs and the heat map, and the heat map's legend explains it. For the
ROIs a region's score is normalised within its cycle (lowest 0 -> yellow, highest 1 -> red; all
equal -> red); the heat map's window spans the lowest to the highest positive score of its file.

The look of an ROI is derived from node attributes (score level, answered, highlighted), so it
survives saving and reloading the scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer
import vtk

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import (
    axes_rotation,
    box_center_ras,
    box_size_mm,
    check_backend_geometry,
    ijk_to_ras_matrix,
    volume_dims,
    voxel_inside,
)
from CovidActiveLearningLib.mrml import MrmlContext
from CovidActiveLearningLib.regions import SuggestedRegion
from CovidActiveLearningLib.volumes import read_volume

SUGGESTION_ID_ATTRIBUTE = "CovidActiveLearning.SuggestionId"
CYCLE_ID_ATTRIBUTE = "CovidActiveLearning.CycleId"
SCORE_ATTRIBUTE = "CovidActiveLearning.Score"
SCORE_LEVEL_ATTRIBUTE = "CovidActiveLearning.ScoreLevel"  # score normalised within the cycle, 0..1
ANSWERED_ATTRIBUTE = "CovidActiveLearning.Answered"
HIGHLIGHTED_ATTRIBUTE = "CovidActiveLearning.Highlighted"
CYCLE_NUMBER_ATTRIBUTE = "CovidActiveLearning.CycleNumber"  # on cycle folders (SH items) and heat-map nodes
TRUE = "1"

SCORE_COLOR_NODE_ID = "vtkMRMLColorTableNodeWarm1"  # yellow -> red, built in (also headless)
ANSWERED_COLOR = (0.6, 0.6, 0.6)
HEATMAP_OPACITY = 0.4  # the heat map's opacity over the CT until the clinician changes it
LEGEND_TITLE = "Uncertainty"
# Zoom on a region: the shorter side of each slice view spans this many times the region's larger in-plane
# side, and never less than MIN_FIELD_OF_VIEW_MM, so the box shows with its surroundings.
REGION_CONTEXT = 2.0
MIN_FIELD_OF_VIEW_MM = 60.0


@dataclass(frozen=True)
class RoiStyle:
    """How one ROI is drawn (markups display-node properties)."""

    color: tuple[float, float, float]
    line_thickness: float  # relative to the glyph size, as markups measure it
    fill_opacity: float
    opacity: float


NORMAL_LINE, HIGHLIGHT_LINE = 0.2, 0.6
NORMAL_FILL, HIGHLIGHT_FILL, ANSWERED_FILL = 0.1, 0.25, 0.0
DIMMED_OPACITY = 0.4


def roi_style(score_color, *, answered: bool, highlighted: bool, another_highlighted: bool) -> RoiStyle:
    """The look of one ROI.

    Args:
        score_color: RGB of its score on the colour scale.
        answered: drawn grey and unfilled.
        highlighted: the current region: thick line, more fill.
        another_highlighted: another ROI is the current one: this one is dimmed.
    """
    color = ANSWERED_COLOR if answered else tuple(score_color)
    fill = ANSWERED_FILL if answered else HIGHLIGHT_FILL if highlighted else NORMAL_FILL
    opacity = DIMMED_OPACITY if another_highlighted else 1.0
    return RoiStyle(color, HIGHLIGHT_LINE if highlighted else NORMAL_LINE, fill, opacity)


def score_levels(scores: Sequence[float]) -> list[float]:
    """Scores normalised to ``0..1`` within their cycle (all equal: all 1)."""
    low, high = min(scores, default=0.0), max(scores, default=0.0)
    return [(score - low) / (high - low) if high > low else 1.0 for score in scores]


class SuggestionLayer:
    """The suggested regions of the current cycle in the scene."""

    def __init__(self, context: MrmlContext) -> None:
        self._context = context

    @property
    def _scene(self):
        return self._context.scene

    @property
    def _hierarchy(self):
        # looked up each time: closing the scene in Slicer replaces the subject-hierarchy node
        return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self._scene)

    # Regions

    def show_cycle(self, volume_node, cycle_number: int, regions: Sequence[SuggestedRegion]) -> list:
        """Show the cycle's regions of ``volume_node`` as ROIs in folder ``Cycle {cycle_number} suggestions``.

        Showing a cycle again replaces its ROIs (regions answered before stay marked answered);
        the other cycles' folders are hidden. The highlight is cleared.

        Returns:
            The ``vtkMRMLMarkupsROINode`` of each region, in rank order.

        Raises:
            UserFacingError: a region lies outside the volume (the backend has another grid).
        """
        for region in regions:
            _check_region_inside(volume_node, region)
        folder = self._cycle_folder(cycle_number)
        answered = set()
        for roi in self._rois_in(folder):
            if roi.GetAttribute(ANSWERED_ATTRIBUTE) == TRUE:
                answered.add(int(roi.GetAttribute(SUGGESTION_ID_ATTRIBUTE)))
            _remove_with_display_nodes(self._scene, roi)
        ordered = sorted(regions, key=lambda region: region.rank)
        levels = score_levels([region.score for region in ordered])
        rois = [self._add_roi(volume_node, region, level, folder) for region, level in zip(ordered, levels)]
        for roi, region in zip(rois, ordered):
            if region.id in answered:
                roi.SetAttribute(ANSWERED_ATTRIBUTE, TRUE)
        for other in self._cycle_folders():
            self._hierarchy.SetItemDisplayVisibility(other, int(other == folder))
        self._set_highlight(None)
        return rois

    def roi_for(self, suggestion_id: int):
        """The ROI node of a suggestion shown in any cycle, or None."""
        return next(
            (roi for roi in self._all_rois() if roi.GetAttribute(SUGGESTION_ID_ATTRIBUTE) == str(suggestion_id)), None
        )

    def highlight(self, suggestion_id: int) -> None:
        """Make the suggestion's ROI the one that stands out (thick line, filled, the others dimmed).

        Raises:
            KeyError: no ROI shows that suggestion.
        """
        self._set_highlight(self._require(suggestion_id))

    def mark_answered(self, suggestion_id: int, answered: bool) -> None:
        """Draw the suggestion's ROI grey and empty (answered) or in its score colour again (undone).

        Raises:
            KeyError: no ROI shows that suggestion.
        """
        roi = self._require(suggestion_id)
        roi.SetAttribute(ANSWERED_ATTRIBUTE, TRUE if answered else "0")
        self._restyle_all()

    def missing_rois(self, regions: Sequence[SuggestedRegion]) -> list[SuggestedRegion]:
        """The regions whose ROI is no longer in the scene (the clinician deleted it)."""
        shown = {roi.GetAttribute(SUGGESTION_ID_ATTRIBUTE) for roi in self._all_rois()}
        return [region for region in regions if str(region.id) not in shown]

    def highlighted_id(self) -> int | None:
        """The suggestion id of the highlighted ROI, or None."""
        roi = next((roi for roi in self._all_rois() if roi.GetAttribute(HIGHLIGHTED_ATTRIBUTE) == TRUE), None)
        return None if roi is None else int(roi.GetAttribute(SUGGESTION_ID_ATTRIBUTE))

    # Heat map

    def show_heatmap(self, volume_node, heatmap_path: Path, cycle_number: int):
        """Read the backend's heat map (float scores on the volume's grid, 0 outside the regions) and overlay it.

        The node ``Cycle {n} uncertainty`` goes in the cycle's folder, coloured with the score scale,
        its window from the lowest to the highest positive score, voxels scoring 0 transparent, as
        the foreground of every slice view over ``volume_node``, with a colour legend titled
        ``Uncertainty``. A view that showed a heat map keeps its foreground opacity (the clinician
        may have changed it); the others get ``HEATMAP_OPACITY``. An earlier heat map of the same cycle
        is replaced; other cycles' heat maps stay in the scene with their legends hidden.

        Returns:
            The heat map's ``vtkMRMLScalarVolumeNode``.

        Raises:
            UserFacingError: the file is unreadable, or its grid is not the volume's.
        """
        heatmap_ids = {node.GetID() for node in self._heatmaps()}
        for old in self._heatmaps():
            if old.GetAttribute(CYCLE_NUMBER_ATTRIBUTE) == str(cycle_number):
                _remove_with_display_nodes(self._scene, old)
        heatmap = read_volume(self._scene, heatmap_path, f"Cycle {cycle_number} uncertainty")
        try:
            check_backend_geometry(volume_node, volume_dims(heatmap), ijk_to_ras_matrix(heatmap))
        except UserFacingError:
            _remove_with_display_nodes(self._scene, heatmap)
            raise
        heatmap.SetAttribute(CYCLE_NUMBER_ATTRIBUTE, str(cycle_number))
        self._hierarchy.SetItemParent(self._hierarchy_item(heatmap), self._cycle_folder(cycle_number))
        self._style_heatmap(heatmap)
        for composite in _nodes_of_class(self._scene, "vtkMRMLSliceCompositeNode"):
            showed_heatmap = composite.GetForegroundVolumeID() in heatmap_ids
            composite.SetBackgroundVolumeID(volume_node.GetID())
            composite.SetForegroundVolumeID(heatmap.GetID())
            if not showed_heatmap:
                composite.SetForegroundOpacity(HEATMAP_OPACITY)
        # The legend last: Slicer's colour-legend displayable manager draws a legend when the legend node changes,
        # and draws nothing for a volume that no view shows yet (so a legend made before the layers stayed hidden).
        self._add_legend(heatmap)
        for other in self._heatmaps():
            legend = self._context.colors.GetColorLegendDisplayNode(other)
            if legend is not None:
                legend.SetVisibility(int(other is heatmap))
        return heatmap

    def heatmap_ids(self) -> list[str]:
        """Node ids of every cycle's heat map (not CT volumes: the CT selector hides them)."""
        return [node.GetID() for node in self._heatmaps()]

    @staticmethod
    def is_heatmap(volume_node) -> bool:
        return volume_node is not None and volume_node.GetAttribute(CYCLE_NUMBER_ATTRIBUTE) is not None

    # Navigation

    def center_on(self, volume_node, region: SuggestedRegion) -> None:
        """Centre and zoom every slice view on the region: each view is turned to the volume's nearest voxel
        plane (so the axial view shows exactly slice ``k``, also on an oblique CT), jumps to the box centre,
        and its shorter side spans ``REGION_CONTEXT`` times the box's larger side (at least
        ``MIN_FIELD_OF_VIEW_MM``)."""
        center = box_center_ras(volume_node, region.box)
        width, height, _ = box_size_mm(volume_node, region.box)
        span = max(REGION_CONTEXT * max(width, height), MIN_FIELD_OF_VIEW_MM)
        for slice_node in _nodes_of_class(self._scene, "vtkMRMLSliceNode"):
            slice_node.RotateToVolumePlane(volume_node)
            slice_node.JumpSliceByCentering(*center)
            _zoom(slice_node, span)

    # Internals

    def _add_roi(self, volume_node, region: SuggestedRegion, level: float, folder: int):
        roi = self._scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", region.label())
        if roi.GetDisplayNode() is None:
            roi.CreateDefaultDisplayNodes()
        object_to_node = np.eye(4)
        object_to_node[:3, :3] = axes_rotation(volume_node)
        object_to_node[:3, 3] = box_center_ras(volume_node, region.box)
        roi.SetAndObserveObjectToNodeMatrix(slicer.util.vtkMatrixFromArray(object_to_node))
        roi.SetSize(*box_size_mm(volume_node, region.box))
        roi.SetLocked(True)
        roi.GetDisplayNode().SetHandlesInteractive(False)
        for name, value in (
            (SUGGESTION_ID_ATTRIBUTE, region.id),
            (CYCLE_ID_ATTRIBUTE, region.cycle_id),
            (SCORE_ATTRIBUTE, region.score),
            (SCORE_LEVEL_ATTRIBUTE, level),
        ):
            roi.SetAttribute(name, str(value))
        self._hierarchy.SetItemParent(self._hierarchy_item(roi), folder)
        return roi

    def _set_highlight(self, target) -> None:
        for roi in self._all_rois():
            roi.SetAttribute(HIGHLIGHTED_ATTRIBUTE, TRUE if roi is target else "0")
        self._restyle_all()

    def _restyle_all(self) -> None:
        rois = self._all_rois()
        any_highlighted = any(roi.GetAttribute(HIGHLIGHTED_ATTRIBUTE) == TRUE for roi in rois)
        for roi in rois:
            highlighted = roi.GetAttribute(HIGHLIGHTED_ATTRIBUTE) == TRUE
            style = roi_style(
                self._score_color(float(roi.GetAttribute(SCORE_LEVEL_ATTRIBUTE))),
                answered=roi.GetAttribute(ANSWERED_ATTRIBUTE) == TRUE,
                highlighted=highlighted,
                another_highlighted=any_highlighted and not highlighted,
            )
            _apply_style(roi.GetDisplayNode(), style)

    def _score_color(self, level: float) -> tuple[float, float, float]:
        table = self._scene.GetNodeByID(SCORE_COLOR_NODE_ID).GetScalarsToColors()
        low, high = table.GetRange()
        color = [0.0, 0.0, 0.0]
        table.GetColor(low + level * (high - low), color)
        return color[0], color[1], color[2]

    def _style_heatmap(self, heatmap) -> None:
        heatmap.CreateDefaultDisplayNodes()
        display = heatmap.GetDisplayNode()
        display.SetAndObserveColorNodeID(SCORE_COLOR_NODE_ID)
        display.SetInterpolate(0)  # crisp region boxes
        lowest, highest = _positive_score_range(slicer.util.arrayFromVolume(heatmap))
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(lowest if highest > lowest else 0.0, highest)
        display.AutoThresholdOff()
        display.SetThreshold(lowest, highest)  # 0 (outside every region) is transparent over the CT
        display.ApplyThresholdOn()

    def _add_legend(self, heatmap) -> None:
        legend = self._context.colors.AddDefaultColorLegendDisplayNode(heatmap)
        legend.SetTitleText(LEGEND_TITLE)
        legend.SetLabelFormat("%.3g")

    def _require(self, suggestion_id: int):
        roi = self.roi_for(suggestion_id)
        if roi is None:
            raise KeyError(f"no ROI shows suggestion {suggestion_id}")
        return roi

    def _all_rois(self) -> list:
        return [
            roi
            for roi in _nodes_of_class(self._scene, "vtkMRMLMarkupsROINode")
            if roi.GetAttribute(SUGGESTION_ID_ATTRIBUTE) is not None
        ]

    def _rois_in(self, folder: int) -> list:
        return [
            roi
            for roi in self._all_rois()
            if self._hierarchy.GetItemParent(self._hierarchy.GetItemByDataNode(roi)) == folder
        ]

    def _heatmaps(self) -> list:
        return [
            node
            for node in _nodes_of_class(self._scene, "vtkMRMLScalarVolumeNode")
            if node.GetAttribute(CYCLE_NUMBER_ATTRIBUTE) is not None
        ]

    def _cycle_folders(self) -> list[int]:
        children = vtk.vtkIdList()
        self._hierarchy.GetItemChildren(self._hierarchy.GetSceneItemID(), children, False)
        items = [children.GetId(index) for index in range(children.GetNumberOfIds())]
        return [item for item in items if self._hierarchy.HasItemAttribute(item, CYCLE_NUMBER_ATTRIBUTE)]

    def _cycle_folder(self, cycle_number: int) -> int:
        """The SH folder item of the cycle, created (with a folder display node, so hiding it hides the ROIs)."""
        for item in self._cycle_folders():
            if self._hierarchy.GetItemAttribute(item, CYCLE_NUMBER_ATTRIBUTE) == str(cycle_number):
                return item
        name = f"Cycle {cycle_number} suggestions"
        item = self._hierarchy.CreateFolderItem(self._hierarchy.GetSceneItemID(), name)
        self._hierarchy.SetItemAttribute(item, CYCLE_NUMBER_ATTRIBUTE, str(cycle_number))
        display = slicer.vtkMRMLFolderDisplayNode()  # made as Slicer's folder plugin makes it
        display.SetName(name)
        display.SetHideFromEditors(False)
        self._scene.AddNode(display)
        self._hierarchy.SetItemDataNode(item, display)
        return item

    def _hierarchy_item(self, node) -> int:
        """The node's SH item (Slicer creates one for every node; headless it is created here)."""
        item = self._hierarchy.GetItemByDataNode(node)
        return item or self._hierarchy.CreateItem(self._hierarchy.GetSceneItemID(), node)


def _check_region_inside(volume_node, region: SuggestedRegion) -> None:
    box = region.box
    first, last = (box.i0, box.j0, box.k), (box.i1 - 1, box.j1 - 1, box.k)
    if not (voxel_inside(volume_node, first) and voxel_inside(volume_node, last)):
        raise UserFacingError(
            f"Suggestion {region.id} ({box}) lies outside '{volume_node.GetName()}' "
            f"{volume_dims(volume_node)}; upload the volume again."
        )


def _zoom(slice_node, span_mm: float) -> None:
    """Set the field of view so that the view's shorter side spans ``span_mm``, keeping the view's aspect."""
    columns, rows, _ = slice_node.GetDimensions()
    field = slice_node.GetFieldOfView()
    columns, rows = max(columns, 1), max(rows, 1)
    scale = span_mm / min(columns, rows)
    slice_node.SetFieldOfView(columns * scale, rows * scale, field[2])


def _apply_style(display, style: RoiStyle) -> None:
    display.SetColor(*style.color)
    display.SetSelectedColor(*style.color)  # markups draw selected control points (the default) in this colour
    display.SetLineThickness(style.line_thickness)
    display.SetFillOpacity(style.fill_opacity)
    display.SetOpacity(style.opacity)


def _positive_score_range(scores: np.ndarray) -> tuple[float, float]:
    """Lowest and highest positive score (``(0, 1)`` when none is positive)."""
    positive = scores[scores > 0]
    return (float(positive.min()), float(positive.max())) if positive.size else (0.0, 1.0)


def _nodes_of_class(scene, class_name: str) -> list:
    nodes = scene.GetNodesByClass(class_name)
    return [nodes.GetItemAsObject(index) for index in range(nodes.GetNumberOfItems())]


def _remove_with_display_nodes(scene, node) -> None:
    display_nodes = [node.GetNthDisplayNode(index) for index in range(node.GetNumberOfDisplayNodes())]
    scene.RemoveNode(node)
    for display in display_nodes:
        if display is not None and display.GetScene() is not None:
            scene.RemoveNode(display)
