"""The 'Infection points' markups list: the clinician's clicks on infection, checked against the region.

Each accepted control point is tagged in its description with the suggestion id and voxel it
answers (``suggestion 17 voxel 12 30 2``), labelled ``R<rank>-<n>`` and locked, so a drag cannot
move it away from the voxel the answer book holds. A refused point is removed at once.

Placing follows Slicer's markups: the list is made the active place node and the interaction node
goes into persistent place mode (``vtkSlicerMarkupsLogic::SetActiveList`` and ``StartPlaceMode``, what
the toolbar's place button does). In persistent place mode Slicer's markups widget keeps a *preview*
control point under the mouse (position status ``PositionPreview``, the list's last point), so a click
is identified by the index that ``PointPositionDefinedEvent`` carries, never by "the last point", and
points that are not defined are never touched here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import vtk

from CovidActiveLearningLib.answers import AnswerBook, AnswerKind, RegionAnswer, Voxel
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import ijk_to_ras, ras_to_voxel, voxel_inside
from CovidActiveLearningLib.regions import SuggestedRegion

INFECTION_POINTS_NAME = "Infection points"
FIDUCIAL_CLASS = "vtkMRMLMarkupsFiducialNode"
INTERACTION_NODE_ID = "vtkMRMLInteractionNodeSingleton"  # the scene's interaction node, in Slicer and headless
_TAG = re.compile(r"^suggestion (\d+) voxel (-?\d+) (-?\d+) (-?\d+)$")


class InfectionPoints:
    """The 'Infection points' markups fiducial list the clinician clicks into (found or created in ``scene``)."""

    def __init__(self, scene) -> None:
        self._scene = scene
        self.node()

    def node(self):
        """The list node, created again if the user deleted it."""
        node = self._scene.GetFirstNode(INFECTION_POINTS_NAME, FIDUCIAL_CLASS, None, True)
        if node is None:
            node = self._scene.AddNewNodeByClass(FIDUCIAL_CLASS, INFECTION_POINTS_NAME)
            node.CreateDefaultDisplayNodes()
        return node

    def start_placing(self, markups_logic) -> None:
        """Make the list Slicer's active place node and enter persistent place mode, so that every left click in
        a view adds a point to it (an ROI added to the scene becomes the active list: call this after adding one).

        Args:
            markups_logic: the scene's ``vtkSlicerMarkupsLogic``.
        """
        markups_logic.SetActiveList(self.node())
        markups_logic.StartPlaceMode(True)

    def is_place_target(self, markups_logic) -> bool:
        """Whether a left click in a view now adds a point to this list: it is the active place node and the
        interaction node is in place mode."""
        interaction = self._scene.GetNodeByID(INTERACTION_NODE_ID)
        return (
            markups_logic.GetActiveListID() == self.node().GetID()
            and interaction is not None
            and interaction.GetCurrentInteractionMode() == interaction.Place
        )

    def placed_point_id(self, index: int) -> str | None:
        """The id of control point ``index`` when it is a newly placed click (position defined, not yet accepted);
        None for a preview point, an index out of range or a point that answers a region already.

        Call it from the ``PointPositionDefinedEvent`` observer with the index the event carries; the id stays
        valid when earlier points are removed before :meth:`accept_placed` runs.
        """
        node = self.node()
        if not 0 <= index < node.GetNumberOfControlPoints():
            return None
        if node.GetNthControlPointPositionStatus(index) != node.PositionDefined or _tag_of(node, index) is not None:
            return None
        return node.GetNthControlPointID(index)

    def accept_placed(self, point_id: str, volume_node, region: SuggestedRegion, book: AnswerBook) -> Voxel | None:
        """Take the placed control point ``point_id`` (see :meth:`placed_point_id`) as a click on infection.

        Returns:
            the voxel ``(i, j, k)`` it answers; None when the point answers a region already (a point this
            class placed itself, e.g. by :meth:`add_point_ras` or :meth:`sync_from_book`).

        Raises:
            UserFacingError: the point is gone, no volume, the point outside the volume or the region, or the
                book refused it (see :meth:`AnswerBook.add_point`); the control point is then removed.
        """
        node = self.node()
        index = node.GetNthControlPointIndexByID(point_id)
        if index < 0:
            raise UserFacingError("The point was removed before it could be taken; click again inside the box.")
        if _tag_of(node, index) is not None:
            return None
        return self._accept(node, index, volume_node, region, book)

    def add_point_ras(self, volume_node, region: SuggestedRegion, book: AnswerBook, ras) -> Voxel:
        """As :meth:`accept_placed`, for a point at RAS ``ras`` ``[3]`` (mm) placed by a script."""
        node = self.node()
        index = node.AddControlPointWorld(vtk.vtkVector3d(*(float(value) for value in ras)), "")
        return self._accept(node, index, volume_node, region, book)

    def remove_last_for(self, suggestion_id: int) -> None:
        """Remove the newest control point of a region (nothing if it has none)."""
        node = self.node()
        for index in reversed(range(node.GetNumberOfControlPoints())):
            tag = _tag_of(node, index)
            if tag is not None and tag[0] == suggestion_id:
                node.RemoveNthControlPoint(index)
                return

    def sync_from_book(self, book: AnswerBook, volumes: Mapping[int, object] | None = None) -> None:
        """Make the list show exactly the book's infection points.

        Defined control points that answer nothing in the book (undone, or never accepted) are removed; a
        preview point (the markups widget's point under the mouse in place mode) is left alone. With ``volumes`` (backend volume id -> volume node), points of the book missing from the
        list are placed again at their voxel centres (a scene whose list was deleted).
        """
        node = self.node()
        wanted = {
            (answer.suggestion_id, voxel): answer
            for answer in book.answers()
            if answer.kind is AnswerKind.INFECTION
            for voxel in answer.points
        }
        shown = set()
        for index in reversed(range(node.GetNumberOfControlPoints())):
            tag = _tag_of(node, index)
            if node.GetNthControlPointPositionStatus(index) != node.PositionDefined:
                continue
            if tag in wanted and tag not in shown:
                shown.add(tag)
            else:
                node.RemoveNthControlPoint(index)
        for (suggestion_id, voxel), answer in wanted.items():
            volume_node = (volumes or {}).get(answer.volume_id)
            if (suggestion_id, voxel) not in shown and volume_node is not None:
                index = node.AddControlPointWorld(vtk.vtkVector3d(*ijk_to_ras(volume_node, voxel)), "")
                self._mark(node, index, answer, voxel)

    def _accept(self, node, index: int, volume_node, region: SuggestedRegion, book: AnswerBook) -> Voxel:
        try:
            voxel = _voxel_of(node, index, volume_node, region)
            answer = book.add_point(region, voxel)
        except UserFacingError:
            node.RemoveNthControlPoint(index)
            raise
        self._mark(node, index, answer, voxel)
        return voxel

    @staticmethod
    def _mark(node, index: int, answer: RegionAnswer, voxel: Voxel) -> None:
        node.SetNthControlPointLabel(index, f"R{answer.rank}-{answer.points.index(voxel) + 1}")
        node.SetNthControlPointDescription(
            index, f"suggestion {answer.suggestion_id} voxel {voxel[0]} {voxel[1]} {voxel[2]}"
        )
        node.SetNthControlPointLocked(index, True)


def _voxel_of(node, index: int, volume_node, region: SuggestedRegion) -> Voxel:
    """The voxel of control point ``index`` in ``volume_node``.

    Raises:
        UserFacingError: no volume, a position that is not a number, or a voxel outside the volume.
    """
    if volume_node is None:
        raise UserFacingError("Select the CT volume the regions were suggested on before placing points.")
    ras = [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(index, ras)
    if not np.all(np.isfinite(ras)):
        raise UserFacingError("The point has no valid position; place it again inside the highlighted box.")
    voxel = ras_to_voxel(volume_node, ras)
    if not voxel_inside(volume_node, voxel):
        raise UserFacingError(
            f"The point is outside the volume '{volume_node.GetName()}'; click inside the "
            f"highlighted box of region {region.rank}."
        )
    return voxel


def _tag_of(node, index: int) -> tuple[int, Voxel] | None:
    """``(suggestion id, voxel)`` the control point answers, None for an untagged point."""
    match = _TAG.match(node.GetNthControlPointDescription(index) or "")
    if match is None:
        return None
    suggestion_id, i, j, k = (int(group) for group in match.groups())
    return suggestion_id, (i, j, k)
