"""Tests of CovidActiveLearningLib/suggestions.py on real MRML nodes: ROIs on an oblique NRRD, a
left-handed NRRD and the real DICOM series, subject-hierarchy folders, the heat-map overlay, and
slice navigation; one test takes its regions and heat map from a real ``covidal serve``."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import box_center_ras, box_size_mm, ijk_to_ras, ijk_to_ras_matrix, ras_to_ijk
from CovidActiveLearningLib.regions import SuggestedRegion, VoxelBox
from CovidActiveLearningLib.suggestions import (
    ANSWERED_COLOR,
    DIMMED_OPACITY,
    HEATMAP_OPACITY,
    HIGHLIGHT_LINE,
    MIN_FIELD_OF_VIEW_MM,
    NORMAL_LINE,
    REGION_CONTEXT,
    SCORE_COLOR_NODE_ID,
    SuggestionLayer,
    score_levels,
)
from CovidActiveLearningLib.volumes import read_dicom_series, read_volume

TOLERANCE_MM = 1e-3
CHEST_BOXES = [VoxelBox(2, 8, 16, 4, 10), VoxelBox(0, 0, 7, 41, 48), VoxelBox(5, 49, 56, 0, 1)]
DICOM_BOXES = [VoxelBox(20, 128, 160, 256, 288), VoxelBox(0, 0, 32, 0, 32), VoxelBox(47, 480, 512, 100, 101)]


def write_like(reference_path, array_kji: np.ndarray, path, straight: bool = False):
    """Write ``array_kji`` on the grid of the image at ``reference_path`` (``straight``: with the
    identity direction instead) to ``path``."""
    reference = sitk.ReadImage(str(reference_path))
    image = sitk.GetImageFromArray(array_kji)
    image.CopyInformation(reference)
    if straight:
        image.SetDirection(tuple(np.eye(3).ravel()))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def region(box: VoxelBox, score: float, rank: int, suggestion_id: int | None = None, cycle_id: int = 1):
    return SuggestedRegion(
        id=suggestion_id or 100 + rank, cycle_id=cycle_id, volume_id=1, box=box, score=score, rank=rank
    )


@pytest.fixture
def layer(mrml):
    return SuggestionLayer(mrml)


@pytest.fixture
def oblique_ct(mrml, chest_files):
    return read_volume(mrml.scene, chest_files[0], "CT")


@pytest.fixture(params=["oblique", "left-handed", "dicom"])
def ct_and_boxes(request, mrml, chest_files):
    """A CT node and boxes inside it: the oblique NRRD, the same with its k axis reversed (a left-handed
    grid), or the real DICOM series."""
    if request.param == "oblique":
        return read_volume(mrml.scene, chest_files[0], "CT"), CHEST_BOXES
    if request.param == "left-handed":
        volume = read_volume(mrml.scene, chest_files[0], "CT")  # Slicer's reader turns left-handed files around
        flipped = ijk_to_ras_matrix(volume) @ np.diag([1.0, 1.0, -1.0, 1.0])
        volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(flipped))
        return volume, CHEST_BOXES
    return read_dicom_series(mrml.scene, request.getfixturevalue("shared_dicom"), "CT"), DICOM_BOXES


@pytest.fixture
def slice_views(mrml):
    """Red/Yellow/Green slice nodes (axial/sagittal/coronal) with their composite nodes, as Slicer's layout makes."""
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(mrml.scene)
    views = {}
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        slice_node = slicer.vtkMRMLSliceNode()
        slice_node.SetName(name)
        slice_node.SetLayoutName(name)
        mrml.scene.AddNode(slice_node)
        slice_node.SetOrientation(orientation)
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(name)
        mrml.scene.AddNode(composite)
        views[name] = slice_node, composite
    return views


def roi_corners(roi) -> np.ndarray:
    """``[8, 3]`` RAS corners of the ROI box from the ROI's own object-to-world matrix and size."""
    object_to_world = slicer.util.arrayFromVTKMatrix(roi.GetObjectToWorldMatrix())
    half = np.asarray(roi.GetSize()) / 2
    signs = np.array([[a, b, c, 1.0] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)])
    return (signs * np.append(half, 1.0)) @ object_to_world.T[:, :3]


def cell_corners(volume, box: VoxelBox) -> np.ndarray:
    """``[8, 3]`` RAS corners of the box's voxel cells."""
    return np.array(
        [
            ijk_to_ras(volume, (i, j, k))
            for i in (box.i0 - 0.5, box.i1 - 0.5)
            for j in (box.j0 - 0.5, box.j1 - 0.5)
            for k in (box.k - 0.5, box.k + 0.5)
        ]
    )


def assert_same_corners(found: np.ndarray, expected: np.ndarray) -> None:
    distances = np.linalg.norm(found[:, None, :] - expected[None, :, :], axis=2)
    assert distances.min(axis=0).max() < TOLERANCE_MM and distances.min(axis=1).max() < TOLERANCE_MM


def display_color(roi) -> tuple:
    return tuple(roi.GetDisplayNode().GetSelectedColor())


# ROI geometry


def test_roi_boxes_are_the_voxel_boxes_mapped_to_ras(layer, ct_and_boxes):
    volume, boxes = ct_and_boxes
    rois = layer.show_cycle(volume, 1, [region(box, 0.5, rank) for rank, box in enumerate(boxes, start=1)])
    for roi, box in zip(rois, boxes):
        assert_same_corners(roi_corners(roi), cell_corners(volume, box))
        np.testing.assert_allclose(roi.GetSize(), box_size_mm(volume, box), atol=TOLERANCE_MM)
        np.testing.assert_allclose(roi.GetCenterWorld(), box_center_ras(volume, box), atol=TOLERANCE_MM)


def test_voxel_centres_inside_the_box_are_in_the_roi_and_those_next_to_it_are_not(layer, ct_and_boxes):
    volume, boxes = ct_and_boxes
    box = boxes[0]
    roi = layer.show_cycle(volume, 1, [region(box, 0.5, 1)])[0]
    inside = [(i, j, box.k) for i in range(box.i0, box.i1) for j in range(box.j0, box.j1)]
    ring = (
        [(i, j, box.k) for i in (box.i0 - 1, box.i1) for j in range(box.j0 - 1, box.j1 + 1)]
        + [(i, j, box.k) for i in range(box.i0, box.i1) for j in (box.j0 - 1, box.j1)]
        + [(i, j, k) for i in (box.i0, box.i1 - 1) for j in (box.j0, box.j1 - 1) for k in (box.k - 1, box.k + 1)]
    )
    assert all(roi.IsPointInROIWorld(ijk_to_ras(volume, voxel)) for voxel in inside)
    assert not any(roi.IsPointInROIWorld(ijk_to_ras(volume, voxel)) for voxel in ring)


def test_rois_are_locked_against_editing(layer, oblique_ct):
    roi = layer.show_cycle(oblique_ct, 1, [region(CHEST_BOXES[0], 0.5, 1)])[0]
    assert roi.GetLocked() and not roi.GetDisplayNode().GetHandlesInteractive()


def test_a_region_outside_the_volume_is_refused(layer, oblique_ct):
    with pytest.raises(UserFacingError, match="outside 'CT'"):
        layer.show_cycle(oblique_ct, 1, [region(VoxelBox(6, 0, 4, 0, 4), 0.5, 1)])


# Names, colours, attributes, folders


def test_rois_come_in_rank_order_named_coloured_by_score_and_tagged(layer, oblique_ct):
    regions = [
        region(CHEST_BOXES[1], 0.40, 2, suggestion_id=7),
        region(CHEST_BOXES[2], 0.10, 3, suggestion_id=9),
        region(CHEST_BOXES[0], 0.90, 1, suggestion_id=5),
    ]
    rois = layer.show_cycle(oblique_ct, 1, regions)
    assert [roi.GetName() for roi in rois] == ["Region 1 (0.900)", "Region 2 (0.400)", "Region 3 (0.100)"]
    assert [roi.GetAttribute("CovidActiveLearning.SuggestionId") for roi in rois] == ["5", "7", "9"]
    assert {roi.GetAttribute("CovidActiveLearning.CycleId") for roi in rois} == {"1"}
    colors = [display_color(roi) for roi in rois]
    np.testing.assert_allclose(colors[0], (1, 0, 0), atol=0.01)  # highest score: red
    np.testing.assert_allclose(colors[2], (1, 1, 0), atol=0.01)  # lowest score: yellow
    assert colors[0][1] < colors[1][1] < colors[2][1]  # green falls as the score rises
    assert layer.roi_for(7) is rois[1] and layer.roi_for(8) is None


def test_score_levels_are_normalised_within_the_cycle():
    assert score_levels([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert score_levels([0.3, 0.3]) == [1.0, 1.0]


def test_each_cycle_has_its_folder_and_a_new_cycle_hides_the_old_one(layer, mrml, oblique_ct):
    hierarchy = mrml.subject_hierarchy
    first = layer.show_cycle(oblique_ct, 1, [region(CHEST_BOXES[0], 0.5, 1, 11), region(CHEST_BOXES[1], 0.4, 2, 12)])
    second = layer.show_cycle(oblique_ct, 2, [region(CHEST_BOXES[2], 0.6, 1, 21, cycle_id=2)])
    folders = [hierarchy.GetItemParent(hierarchy.GetItemByDataNode(rois[0])) for rois in (first, second)]
    assert [hierarchy.GetItemName(folder) for folder in folders] == ["Cycle 1 suggestions", "Cycle 2 suggestions"]
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(first[1])) == folders[0]
    assert [hierarchy.GetItemDisplayVisibility(folder) for folder in folders] == [0, 1]
    assert not slicer.vtkMRMLFolderDisplayNode.GetHierarchyVisibility(first[0])
    assert slicer.vtkMRMLFolderDisplayNode.GetHierarchyVisibility(second[0])
    assert layer.roi_for(11) is first[0]  # hidden, not deleted

    again = layer.show_cycle(oblique_ct, 1, [region(CHEST_BOXES[0], 0.5, 1, 11), region(CHEST_BOXES[1], 0.4, 2, 12)])
    assert [hierarchy.GetItemDisplayVisibility(folder) for folder in folders] == [1, 0]
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(again[0])) == folders[0]
    assert mrml.scene.GetNodesByClass("vtkMRMLMarkupsROINode").GetNumberOfItems() == 3


# Highlight and answered


def test_exactly_one_roi_is_highlighted_and_the_others_are_dimmed(layer, oblique_ct):
    rois = layer.show_cycle(oblique_ct, 1, [region(box, 0.5, rank) for rank, box in enumerate(CHEST_BOXES, start=1)])
    assert layer.highlighted_id() is None
    assert {roi.GetDisplayNode().GetLineThickness() for roi in rois} == {NORMAL_LINE}
    for target in (rois[0], rois[2]):
        layer.highlight(int(target.GetAttribute("CovidActiveLearning.SuggestionId")))
        thick = [roi for roi in rois if roi.GetDisplayNode().GetLineThickness() == HIGHLIGHT_LINE]
        assert thick == [target]
        assert all(roi.GetDisplayNode().GetOpacity() == DIMMED_OPACITY for roi in rois if roi is not target)
        assert target.GetDisplayNode().GetOpacity() == 1.0
    assert layer.highlighted_id() == 103
    with pytest.raises(KeyError):
        layer.highlight(999)


def test_answered_rois_turn_grey_and_undo_restores_the_score_colour(layer, oblique_ct):
    rois = layer.show_cycle(oblique_ct, 1, [region(CHEST_BOXES[0], 0.9, 1), region(CHEST_BOXES[1], 0.1, 2)])
    before = display_color(rois[1])
    layer.mark_answered(102, True)
    np.testing.assert_allclose(display_color(rois[1]), ANSWERED_COLOR)
    assert rois[1].GetDisplayNode().GetFillOpacity() == 0.0
    np.testing.assert_allclose(display_color(rois[0]), (1, 0, 0), atol=0.01)  # the other one keeps its colour
    layer.mark_answered(102, False)
    np.testing.assert_allclose(display_color(rois[1]), before)
    assert rois[1].GetDisplayNode().GetFillOpacity() > 0


def test_showing_a_cycle_again_keeps_its_answered_regions_grey(layer, oblique_ct):
    regions = [region(CHEST_BOXES[0], 0.9, 1), region(CHEST_BOXES[1], 0.1, 2)]
    layer.show_cycle(oblique_ct, 1, regions)
    layer.mark_answered(101, True)
    rois = layer.show_cycle(oblique_ct, 1, regions)
    np.testing.assert_allclose(display_color(rois[0]), ANSWERED_COLOR)
    assert display_color(rois[1]) != ANSWERED_COLOR


# Heat map


@pytest.fixture
def write_heatmap(chest_files):
    """Writes a float32 heat map on the chest CT's grid: each box's score over it, 0 elsewhere."""

    def write(path, boxes_and_scores, straight=False):
        scores = np.zeros((6, 48, 56), np.float32)
        for box, score in boxes_and_scores:
            scores[box.k, box.j0 : box.j1, box.i0 : box.i1] = score
        return write_like(chest_files[0], scores, path, straight=straight)

    return write


def test_heatmap_is_the_foreground_of_every_slice_view_with_a_legend(
    layer, mrml, oblique_ct, slice_views, tmp_path, write_heatmap
):
    path = write_heatmap(tmp_path / "heat1.nrrd", [(CHEST_BOXES[0], 0.8), (CHEST_BOXES[1], 0.2)])
    heatmap = layer.show_heatmap(oblique_ct, path, 1)
    assert heatmap.GetName() == "Cycle 1 uncertainty"
    np.testing.assert_allclose(ijk_to_ras_matrix(heatmap), ijk_to_ras_matrix(oblique_ct), atol=TOLERANCE_MM)
    assert heatmap.GetImageData().GetDimensions() == oblique_ct.GetImageData().GetDimensions()
    for _, composite in slice_views.values():
        assert composite.GetForegroundVolumeID() == heatmap.GetID()
        assert composite.GetBackgroundVolumeID() == oblique_ct.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(HEATMAP_OPACITY)
    display = heatmap.GetDisplayNode()
    assert display.GetColorNodeID() == SCORE_COLOR_NODE_ID
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == pytest.approx((0.2, 0.8))
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(0.2)  # 0 is transparent
    legend = mrml.colors.GetColorLegendDisplayNode(heatmap)
    assert legend is not None and legend.GetTitleText() == "Uncertainty" and legend.GetVisibility()

    second = layer.show_heatmap(oblique_ct, write_heatmap(tmp_path / "heat2.nrrd", [(CHEST_BOXES[2], 0.5)]), 2)
    assert {composite.GetForegroundVolumeID() for _, composite in slice_views.values()} == {second.GetID()}
    assert mrml.scene.GetNodeByID(heatmap.GetID()) is heatmap  # the older cycle's map stays in the scene
    assert not legend.GetVisibility() and mrml.colors.GetColorLegendDisplayNode(second).GetVisibility()


def test_heatmap_of_the_same_cycle_replaces_the_earlier_one(layer, mrml, oblique_ct, tmp_path, write_heatmap):
    first = layer.show_heatmap(oblique_ct, write_heatmap(tmp_path / "a.nrrd", [(CHEST_BOXES[0], 0.8)]), 1)
    first_id = first.GetID()
    layer.show_heatmap(oblique_ct, write_heatmap(tmp_path / "b.nrrd", [(CHEST_BOXES[1], 0.3)]), 1)
    names = [
        node.GetName()
        for node in [
            mrml.scene.GetNthNodeByClass(n, "vtkMRMLScalarVolumeNode")
            for n in range(mrml.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))
        ]
    ]
    assert names.count("Cycle 1 uncertainty") == 1 and mrml.scene.GetNodeByID(first_id) is None


def test_heatmap_on_another_grid_is_refused_and_not_left_in_the_scene(layer, mrml, oblique_ct, tmp_path, write_heatmap):
    path = write_heatmap(tmp_path / "straight.nrrd", [(CHEST_BOXES[0], 0.8)], straight=True)
    with pytest.raises(UserFacingError, match="mm away"):
        layer.show_heatmap(oblique_ct, path, 1)
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1


# Navigation


def test_center_on_puts_the_region_centre_in_every_view_and_slice_k_in_the_axial_one(layer, ct_and_boxes, slice_views):
    volume, boxes = ct_and_boxes
    box = boxes[0]
    layer.center_on(volume, region(box, 0.5, 1))
    center = box_center_ras(volume, box)
    for slice_node, _ in slice_views.values():
        np.testing.assert_allclose(
            slicer.util.arrayFromVTKMatrix(slice_node.GetSliceToRAS())[:3, 3], center, atol=TOLERANCE_MM
        )
    red = slicer.util.arrayFromVTKMatrix(slice_views["Red"][0].GetSliceToRAS())
    for x, y in [(0, 0), (40, 0), (0, -35), (-25, 30)]:  # anywhere on the axial plane: the middle of slice k
        assert ras_to_ijk(volume, center + x * red[:3, 0] + y * red[:3, 1])[2] == pytest.approx(box.k, abs=1e-6)
    assert slice_views["Red"][0].GetSliceOffset() == pytest.approx(red[:3, 2] @ center, abs=TOLERANCE_MM)


# Against the real backend


def test_backend_regions_and_heat_map_line_up_voxel_for_voxel(layer, mrml, backend, chest_files, slice_views, tmp_path):
    client = CovidalClient(backend)
    project = client.create_project(
        "suggestion display", model_kind="unet", grid_k=16, strategy="entropy", mc_samples=2, loss="point", settings={}
    )
    volume, _ = client.upload_volume(project["id"], chest_files[0])
    cycle = client.create_cycle(project["id"], count=3)
    regions = [SuggestedRegion.from_json(data) for data in cycle["suggestions"]]
    ct = read_volume(mrml.scene, chest_files[0], "CT")
    rois = layer.show_cycle(ct, cycle["number"], regions)
    heat_path = client.download_heatmap(project["id"], cycle["id"], volume["id"], tmp_path / "heat.nrrd")
    heatmap = layer.show_heatmap(ct, heat_path, cycle["number"])

    scores = slicer.util.arrayFromVolume(heatmap)  # [k, j, i]
    for roi, suggestion in zip(rois, sorted(regions, key=lambda r: r.rank)):
        box = suggestion.box
        assert_same_corners(roi_corners(roi), cell_corners(ct, box))
        np.testing.assert_allclose(scores[box.k, box.j0 : box.j1, box.i0 : box.i1], suggestion.score, rtol=1e-6)
    for k, j, i in np.argwhere(scores > 0):  # every scored voxel lies in an ROI
        assert any(roi.IsPointInROIWorld(ijk_to_ras(ct, (i, j, k))) for roi in rois)
    assert slice_views["Red"][1].GetForegroundVolumeID() == heatmap.GetID()


def test_the_opacity_the_clinician_set_survives_the_next_cycles_heat_map(
    layer, oblique_ct, slice_views, tmp_path, write_heatmap
):
    first = layer.show_heatmap(oblique_ct, write_heatmap(tmp_path / "one.nrrd", [(CHEST_BOXES[0], 0.8)]), 1)
    red, yellow = slice_views["Red"][1], slice_views["Yellow"][1]
    red.SetForegroundOpacity(0.9)  # the slider or Slicer's slice controller
    yellow.SetForegroundVolumeID(None)  # a view the clinician cleared gets the default again
    second = layer.show_heatmap(oblique_ct, write_heatmap(tmp_path / "two.nrrd", [(CHEST_BOXES[1], 0.4)]), 2)
    assert red.GetForegroundVolumeID() == second.GetID() and red.GetForegroundOpacity() == pytest.approx(0.9)
    assert yellow.GetForegroundOpacity() == pytest.approx(HEATMAP_OPACITY)
    assert sorted(layer.heatmap_ids()) == sorted([first.GetID(), second.GetID()])
    assert layer.is_heatmap(second) and not layer.is_heatmap(oblique_ct) and not layer.is_heatmap(None)


def test_center_on_zooms_each_view_to_the_region_with_its_surroundings(layer, ct_and_boxes, slice_views):
    volume, boxes = ct_and_boxes
    for slice_node, _ in slice_views.values():
        slice_node.SetDimensions(400, 300, 1)
    box = boxes[0]
    layer.center_on(volume, region(box, 0.5, 1))
    width, height, _ = box_size_mm(volume, box)
    span = max(REGION_CONTEXT * max(width, height), MIN_FIELD_OF_VIEW_MM)
    for slice_node, _ in slice_views.values():
        field = slice_node.GetFieldOfView()
        assert field[1] == pytest.approx(span) and field[0] == pytest.approx(span * 400 / 300)  # the view's aspect


def test_a_deleted_box_is_reported_missing(layer, mrml, oblique_ct):
    regions = [region(box, 0.5, rank) for rank, box in enumerate(CHEST_BOXES, start=1)]
    rois = layer.show_cycle(oblique_ct, 1, regions)
    assert layer.missing_rois(regions) == []
    mrml.scene.RemoveNode(rois[1])
    assert layer.missing_rois(regions) == [regions[1]]
