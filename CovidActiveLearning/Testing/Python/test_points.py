"""Tests of CovidActiveLearningLib/points.py: clicks in 'Infection points' on the oblique chest CT become voxels."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

from CovidActiveLearningLib.answers import AnswerBook
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import ijk_to_ras
from CovidActiveLearningLib.points import INFECTION_POINTS_NAME, InfectionPoints
from CovidActiveLearningLib.regions import SuggestedRegion, VoxelBox
from CovidActiveLearningLib.volumes import read_volume

CYCLE = 4
REGION = SuggestedRegion(
    id=41, cycle_id=CYCLE, volume_id=1, box=VoxelBox(k=3, i0=20, i1=30, j0=10, j1=20), score=0.7, rank=2
)
OTHER = SuggestedRegion(
    id=42, cycle_id=CYCLE, volume_id=1, box=VoxelBox(k=3, i0=30, i1=40, j0=10, j1=20), score=0.6, rank=3
)
OLD = SuggestedRegion(id=31, cycle_id=CYCLE - 1, volume_id=1, box=REGION.box, score=0.9, rank=1)


@pytest.fixture
def ct_node(mrml, chest_files):
    return read_volume(mrml.scene, chest_files[0], "chest")  # 56 x 48 x 6 voxels, oblique


@pytest.fixture
def book(mrml) -> AnswerBook:
    book = AnswerBook(mrml.scene)
    book.start_cycle(CYCLE)
    book.begin(REGION)
    return book


@pytest.fixture
def points(mrml) -> InfectionPoints:
    return InfectionPoints(mrml.scene)


def control_point_ras(node, index: int) -> np.ndarray:
    ras = [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(index, ras)
    return np.array(ras)


@pytest.mark.parametrize(
    ("voxel", "offset"),
    [
        ((20, 10, 3), (0, 0, 0)),  # a corner of the box
        ((29, 19, 3), (0.49, 0.49, 0.49)),  # the far corner, clicked near the cell's edge
        ((24, 15, 3), (-0.45, 0.3, -0.4)),
        ((21, 18, 3), (0.2, -0.49, 0.1)),
    ],
)
def test_a_click_in_ras_becomes_the_voxel_under_it(ct_node, book, points, voxel, offset):
    ras = ijk_to_ras(ct_node, np.add(voxel, offset))
    assert points.add_point_ras(ct_node, REGION, book, ras) == voxel
    assert book.answer_for(REGION.id).points == (voxel,)
    node = points.node()
    assert node.GetNumberOfControlPoints() == 1
    np.testing.assert_allclose(control_point_ras(node, 0), ras, atol=1e-9)  # the point stays where it was put
    assert node.GetNthControlPointDescription(0) == f"suggestion 41 voxel {voxel[0]} {voxel[1]} {voxel[2]}"
    assert node.GetNthControlPointLabel(0) == "R2-1"
    assert node.GetNthControlPointLocked(0)


def place(node, ras) -> int:
    """A control point added as the markups widget adds a click: position defined; returns its index."""
    return node.AddControlPointWorld(vtk.vtkVector3d(*ras), "")


def preview(node, ras) -> int:
    """The markups widget's preview point in persistent place mode: the list's last point, not yet defined."""
    index = node.AddControlPointWorld(vtk.vtkVector3d(*ras), "")
    node.SetNthControlPointPositionWorld(index, *ras, node.PositionPreview)
    return index


def test_a_placed_point_is_accepted_like_a_click(ct_node, book, points):
    node = points.node()
    for number, voxel in enumerate([(22, 12, 3), (27, 17, 3)], start=1):
        point_id = points.placed_point_id(place(node, ijk_to_ras(ct_node, voxel)))
        assert points.accept_placed(point_id, ct_node, REGION, book) == voxel
        assert node.GetNthControlPointLabel(number - 1) == f"R2-{number}"
    assert book.answer_for(REGION.id).points == ((22, 12, 3), (27, 17, 3))


def test_the_click_is_the_point_the_event_named_not_the_preview_after_it(ct_node, book, points):
    """Persistent place mode: after the click the widget adds a preview point under the mouse before the
    deferred acceptance runs; the click's own point is taken, the preview is neither taken nor removed."""
    node = points.node()
    clicked = place(node, ijk_to_ras(ct_node, (23, 14, 3)))
    point_id = points.placed_point_id(clicked)  # recorded when PointPositionDefinedEvent names index 0
    under_mouse = preview(node, ijk_to_ras(ct_node, (40, 30, 3)))  # outside the region
    assert points.placed_point_id(under_mouse) is None
    assert points.accept_placed(point_id, ct_node, REGION, book) == (23, 14, 3)
    assert node.GetNumberOfControlPoints() == 2
    assert node.GetNthControlPointPositionStatus(1) == node.PositionPreview
    book.undo()
    points.sync_from_book(book)  # the undone click goes, the live preview stays
    assert node.GetNumberOfControlPoints() == 1
    assert node.GetNthControlPointPositionStatus(0) == node.PositionPreview


def test_a_point_removed_before_its_acceptance_is_a_clear_error_and_ids_survive_removals(ct_node, book, points):
    node = points.node()
    first = points.placed_point_id(place(node, ijk_to_ras(ct_node, (30, 12, 3))))  # outside: refused, removed
    second = points.placed_point_id(place(node, ijk_to_ras(ct_node, (24, 12, 3))))
    with pytest.raises(UserFacingError, match="outside region 2"):
        points.accept_placed(first, ct_node, REGION, book)
    assert points.accept_placed(second, ct_node, REGION, book) == (24, 12, 3)  # its index moved from 1 to 0
    with pytest.raises(UserFacingError, match="removed before it could be taken"):
        points.accept_placed(first, ct_node, REGION, book)
    assert points.accept_placed(second, ct_node, REGION, book) is None  # taken already: nothing to do


def test_placing_makes_the_list_the_active_place_node_in_persistent_place_mode(mrml, points):
    interaction = mrml.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    assert not points.is_place_target(mrml.markups)  # the new list is the active one, but not in place mode
    points.start_placing(mrml.markups)
    mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "a region box")  # Slicer makes a new ROI the active list
    assert not points.is_place_target(mrml.markups)
    points.start_placing(mrml.markups)
    assert points.is_place_target(mrml.markups)
    assert interaction.GetCurrentInteractionMode() == interaction.Place and interaction.GetPlaceModePersistence()
    interaction.SetCurrentInteractionMode(interaction.ViewTransform)
    assert not points.is_place_target(mrml.markups)


@pytest.mark.parametrize(
    ("region", "voxel", "volume", "message"),
    [
        (REGION, (30, 12, 3), True, r"The point is outside region 2; click inside the highlighted box or move to"),
        (REGION, (22, 12, 2), True, "outside region 2"),
        (REGION, (22, 9, 3), True, "outside region 2"),
        (REGION, (-3, 12, 3), True, "outside the volume 'chest'; click inside the highlighted box of region 2"),
        (REGION, (22, 12, 6), True, "outside the volume"),
        (OTHER, (32, 12, 3), True, "Region 3 is not the region on screen"),
        (OLD, (22, 12, 3), True, "from another cycle"),
        (REGION, (22, 12, 3), False, "Select the CT volume"),
    ],
    ids=[
        "past-i1",
        "slice-below",
        "before-j0",
        "before-volume",
        "beyond-last-slice",
        "not-shown",
        "old-cycle",
        "no-volume",
    ],
)
def test_a_refused_click_is_removed_and_says_why(ct_node, book, points, region, voxel, volume, message):
    points.add_point_ras(ct_node, REGION, book, ijk_to_ras(ct_node, (25, 15, 3)))
    with pytest.raises(UserFacingError, match=message):
        points.add_point_ras(ct_node if volume else None, region, book, ijk_to_ras(ct_node, voxel))
    node = points.node()
    assert node.GetNumberOfControlPoints() == 1  # only the earlier, accepted point
    assert node.GetNthControlPointDescription(0) == "suggestion 41 voxel 25 15 3"
    assert [(answer.suggestion_id, answer.points) for answer in book.answers()] == [(REGION.id, ((25, 15, 3),))]


def test_a_second_click_on_the_same_voxel_is_refused(ct_node, book, points):
    points.add_point_ras(ct_node, REGION, book, ijk_to_ras(ct_node, (25, 15, 3)))
    node = points.node()
    point_id = points.placed_point_id(place(node, ijk_to_ras(ct_node, (25.3, 14.8, 3))))
    with pytest.raises(UserFacingError, match="already has a point"):
        points.accept_placed(point_id, ct_node, REGION, book)
    assert node.GetNumberOfControlPoints() == 1


def test_the_list_follows_undo_and_comes_back_after_deletion(mrml, ct_node, book, points):
    voxels = [(22, 12, 3), (23, 13, 3), (24, 14, 3)]
    for voxel in voxels:
        points.add_point_ras(ct_node, REGION, book, ijk_to_ras(ct_node, voxel))
    node = points.node()
    node.AddControlPointWorld(vtk.vtkVector3d(0, 0, 0), "stray")  # never accepted: answers nothing

    book.undo()
    points.sync_from_book(book)
    assert _tags(points.node()) == ["suggestion 41 voxel 22 12 3", "suggestion 41 voxel 23 13 3"]
    points.remove_last_for(REGION.id)
    assert _tags(points.node()) == ["suggestion 41 voxel 22 12 3"]

    mrml.scene.RemoveNode(node)  # the user deleted the list
    points.sync_from_book(book, {REGION.volume_id: ct_node})
    again = points.node()
    assert again.GetName() == INFECTION_POINTS_NAME and again.GetID() != node.GetID()
    assert _tags(again) == ["suggestion 41 voxel 22 12 3", "suggestion 41 voxel 23 13 3"]
    for index, voxel in enumerate(voxels[:2]):
        np.testing.assert_allclose(control_point_ras(again, index), ijk_to_ras(ct_node, voxel), atol=1e-9)


def test_the_existing_list_is_found_again(mrml):
    first = InfectionPoints(mrml.scene).node()
    assert InfectionPoints(mrml.scene).node().GetID() == first.GetID()
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == 1


def _tags(node) -> list[str]:
    return [node.GetNthControlPointDescription(index) for index in range(node.GetNumberOfControlPoints())]
