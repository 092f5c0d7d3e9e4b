"""Tests of CovidActiveLearningLib/prediction.py: real label NRRD files imported into a real segmentation node."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.prediction import (
    CLOSED_SURFACE,
    INFECTION_COLOR,
    INFECTION_SEGMENT,
    LungInvolvement,
    PredictionModel,
    import_prediction,
)
from CovidActiveLearningLib.volumes import read_volume

CHEST_VOXEL_MM3 = 1.4 * 1.2 * 5.0  # the chest fixture's spacing product


def write_like(array_kji: np.ndarray, like_path, path, direction=None):
    """Write ``array_kji`` as uint8 NRRD with the geometry of the image at ``like_path`` (or another direction)."""
    like = sitk.ReadImage(str(like_path))
    image = sitk.GetImageFromArray(array_kji.astype(np.uint8))
    image.SetSpacing(like.GetSpacing())
    image.SetOrigin(like.GetOrigin())
    image.SetDirection(like.GetDirection() if direction is None else tuple(np.ravel(direction)))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def segment_mask(node, reference):
    """``[K, J, I]`` voxels of the Infection segment on the reference grid (leaves a display node in the scene)."""
    segment_id = node.GetSegmentation().GetSegmentIdBySegmentName(INFECTION_SEGMENT)
    return slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, reference)


def surface_points(node) -> int:
    surface = vtk.vtkPolyData()
    node.GetClosedSurfaceRepresentation(INFECTION_SEGMENT, surface)
    return surface.GetNumberOfPoints()


@pytest.fixture
def chest(mrml, chest_files):
    """The reference CT node and the lesion mask ``[K, J, I]`` (uint8) of the chest fixture."""
    return read_volume(mrml.scene, chest_files[0], "chest"), sitk.GetArrayFromImage(sitk.ReadImage(str(chest_files[1])))


def test_prediction_becomes_one_infection_segment_with_the_mask_voxels(mrml, chest, chest_files):
    reference, mask = chest
    nodes_before = mrml.scene.GetNumberOfNodes()
    result = import_prediction(mrml, reference, chest_files[1], "chest infection")
    assert mrml.scene.GetNumberOfNodes() == nodes_before + 2  # the segmentation and its display node, no leftovers
    node = result.segmentation_node
    assert node.GetName() == "chest infection"
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(INFECTION_SEGMENT))
    np.testing.assert_allclose(segment.GetColor(), INFECTION_COLOR)
    assert mask.sum() > 100
    np.testing.assert_array_equal(segment_mask(node, reference), mask)
    assert result.voxels == int(mask.sum())
    assert result.infected_ml == pytest.approx(mask.sum() * CHEST_VOXEL_MM3 / 1000)
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is reference
    display = node.GetDisplayNode()
    assert display.GetVisibility2DFill() and display.GetVisibility2DOutline() and display.GetVisibility3D()
    assert display.GetPreferredDisplayRepresentationName3D() == CLOSED_SURFACE
    assert segmentation.ContainsRepresentation(CLOSED_SURFACE) and surface_points(node) > 0


def test_importing_again_replaces_the_segment_in_the_same_node(mrml, chest, chest_files, tmp_path):
    reference, mask = chest
    first = import_prediction(mrml, reference, chest_files[1], "chest infection")
    nodes_after_first, first_surface = mrml.scene.GetNumberOfNodes(), surface_points(first.segmentation_node)
    smaller = mask.copy()
    smaller[: mask.shape[0] // 2] = 0
    second = import_prediction(
        mrml, reference, write_like(smaller, chest_files[1], tmp_path / "p2.nrrd"), "chest infection"
    )
    assert second.segmentation_node.GetID() == first.segmentation_node.GetID()
    assert mrml.scene.GetNumberOfNodes() == nodes_after_first
    assert second.segmentation_node.GetSegmentation().GetNumberOfSegments() == 1
    np.testing.assert_array_equal(segment_mask(second.segmentation_node, reference), smaller)
    assert 0 < second.voxels == int(smaller.sum()) < first.voxels
    assert 0 < surface_points(second.segmentation_node) < first_surface  # the 3D surface follows the new voxels


def test_other_labels_than_one_count_as_infection(mrml, chest, chest_files, tmp_path):
    reference, mask = chest
    labels = mask * 3
    labels[0, 0, 0] = 7  # a second label value must not become a second segment
    result = import_prediction(mrml, reference, write_like(labels, chest_files[1], tmp_path / "p.nrrd"), "pred")
    assert result.segmentation_node.GetSegmentation().GetNumberOfSegments() == 1
    assert result.voxels == int(mask.sum()) + 1


def test_empty_prediction_gives_an_empty_infection_segment_and_zero_ml(mrml, chest, chest_files, tmp_path):
    reference, mask = chest
    result = import_prediction(
        mrml, reference, write_like(np.zeros_like(mask), chest_files[1], tmp_path / "e.nrrd"), "pred"
    )
    segmentation = result.segmentation_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    assert segmentation.GetNthSegment(0).GetName() == INFECTION_SEGMENT
    assert result.voxels == 0 and result.infected_ml == 0.0


def test_prediction_on_another_grid_is_refused(mrml, chest, chest_files, tmp_path):
    reference, mask = chest
    unrotated = write_like(mask, chest_files[1], tmp_path / "axial.nrrd", direction=np.eye(3))
    with pytest.raises(UserFacingError, match="mm away from 'chest'"):
        import_prediction(mrml, reference, unrotated, "pred")
    cropped = write_like(mask[:, :, :-1], chest_files[1], tmp_path / "cropped.nrrd")
    with pytest.raises(UserFacingError, match=r"55 x 48 x 6 voxels but 'chest' has 56 x 48 x 6"):
        import_prediction(mrml, reference, cropped, "pred")
    assert mrml.scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    assert mrml.scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0


def test_missing_file_or_reference_is_a_clear_error(mrml, chest, chest_files, tmp_path):
    reference, _ = chest
    with pytest.raises(UserFacingError, match="Could not read"):
        import_prediction(mrml, reference, tmp_path / "absent.nrrd", "pred")
    with pytest.raises(UserFacingError, match="Select the CT volume"):
        import_prediction(mrml, None, chest_files[1], "pred")


def test_the_summary_says_the_model_and_the_lung_involvement(mrml, chest, chest_files):
    reference, mask = chest
    stats = {"lung_ml": 2400.0, "lung_percent": 8.06, "right_lung_percent": 10.21, "left_lung_percent": None}
    lungs = LungInvolvement.from_json(stats)
    assert lungs == LungInvolvement(2400.0, 8.06, 10.21, None)
    result = import_prediction(
        mrml, reference, chest_files[1], PredictionModel.THREE_D.node_name("chest"), PredictionModel.THREE_D, lungs
    )
    ml = mask.sum() * CHEST_VOXEL_MM3 / 1000
    assert result.segmentation_node.GetName() == "chest infection (3D model)"
    assert (
        result.summary() == f"Infected (3D model): {ml:.1f} mL ({mask.sum()} voxels); 8.1% of the lungs (right 10.2%)"
    )
    assert result.reference_volume is reference
    two_d = import_prediction(mrml, reference, chest_files[1], PredictionModel.TWO_D.node_name("chest"))
    assert two_d.segmentation_node is not result.segmentation_node  # side by side
    assert two_d.summary() == f"Infected: {ml:.1f} mL ({mask.sum()} voxels)"
    assert LungInvolvement.from_json({"lungs": "no lungs found", "lung_ml": None, "lung_percent": None}) is None
    with pytest.raises(UserFacingError, match="malformed lung figures"):
        LungInvolvement.from_json({"lung_ml": 1.0, "lung_percent": "many"})
