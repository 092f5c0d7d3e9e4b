"""Tests of CovidActiveLearningLib/export.py: real files written by the storage nodes, read back with SimpleITK
and with Slicer's own readers.

What is checked: the labelmap ``.nrrd`` has the reference CT's size, spacing, origin and direction (to 1e-4)
and its voxels equal the mask; the ``.seg.nrrd`` read back by a segmentation storage node gives the same
segment (name, colour, voxels on the CT grid), and read with SimpleITK then resampled (nearest neighbour, no
transform) onto the CT grid equals the mask, which holds whether or not the writer cropped it to the
segment's extent; the ``.mrk.json`` read back gives the same control points (RAS) and labels.
"""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.export import export_results
from CovidActiveLearningLib.prediction import INFECTION_COLOR, INFECTION_SEGMENT, import_prediction
from CovidActiveLearningLib.volumes import read_dicom_series, read_volume

POINTS_RAS = [(-12.5, 30.25, -104.0), (3.0, 41.5, -99.75), (20.0, 28.0, -95.5)]


def assert_same_grid(image, reference):
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-4)


def on_grid(image, reference) -> np.ndarray:
    """``image``'s voxels placed on ``reference``'s grid by physical position (nearest neighbour), ``[K, J, I]``."""
    return sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0))


def fiducials(scene, points_ras):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "infection points")
    for index, ras in enumerate(points_ras):
        node.AddControlPoint(vtk.vtkVector3d(*ras), f"P-{index + 1}")
    return node


@pytest.fixture
def predicted(mrml, chest_files):
    """``(reference CT node, segmentation node, mask [K, J, I])``: the chest lesions imported as a prediction."""
    reference = read_volume(mrml.scene, chest_files[0], "chest")
    segmentation = import_prediction(mrml, reference, chest_files[1], "chest infection").segmentation_node
    return reference, segmentation, sitk.GetArrayFromImage(sitk.ReadImage(str(chest_files[1])))


def test_labelmap_has_the_ct_grid_and_the_mask_voxels(mrml, predicted, chest_files, tmp_path):
    reference, segmentation, mask = predicted
    files = export_results(mrml, segmentation, reference, None, tmp_path / "new" / "folder", "chest")
    assert files.labelmap == (tmp_path / "new" / "folder" / "chest.nrrd") and files.labelmap.is_absolute()
    labelmap = sitk.ReadImage(str(files.labelmap))
    assert_same_grid(labelmap, sitk.ReadImage(str(chest_files[0])))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labelmap), mask)  # label 1 = Infection, 0 elsewhere
    assert files.points is None
    assert sorted(path.name for path in files.segmentation.parent.iterdir()) == ["chest.nrrd", "chest.seg.nrrd"]


def test_seg_nrrd_reads_back_as_the_same_segment(mrml, predicted, chest_files, tmp_path):
    reference, segmentation, mask = predicted
    files = export_results(mrml, segmentation, reference, None, tmp_path, "chest")
    assert files.segmentation == tmp_path / "chest.seg.nrrd"
    again = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read back")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(files.segmentation))
    assert storage.ReadData(again)
    assert again.GetSegmentation().GetNumberOfSegments() == 1
    segment_id = again.GetSegmentation().GetSegmentIdBySegmentName(INFECTION_SEGMENT)
    np.testing.assert_allclose(again.GetSegmentation().GetSegment(segment_id).GetColor(), INFECTION_COLOR, atol=1e-3)
    np.testing.assert_array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(again, segment_id, reference), mask)
    ct = sitk.ReadImage(str(chest_files[0]))
    np.testing.assert_array_equal(on_grid(sitk.ReadImage(str(files.segmentation)), ct), mask)


def test_points_read_back_at_the_same_ras_positions(mrml, predicted, tmp_path):
    reference, segmentation, _ = predicted
    files = export_results(mrml, segmentation, reference, fiducials(mrml.scene, POINTS_RAS), tmp_path, "chest")
    assert files.points == tmp_path / "chest_points.mrk.json"
    again = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "read back")
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    storage.SetFileName(str(files.points))
    assert storage.ReadData(again)
    np.testing.assert_allclose(slicer.util.arrayFromMarkupsControlPoints(again), POINTS_RAS, atol=1e-4)
    assert [again.GetNthControlPointLabel(index) for index in range(3)] == ["P-1", "P-2", "P-3"]


def test_empty_segment_exports_an_all_zero_labelmap(mrml, chest_files, tmp_path):
    reference = read_volume(mrml.scene, chest_files[0], "chest")
    empty = sitk.ReadImage(str(chest_files[1])) * 0
    sitk.WriteImage(empty, str(tmp_path / "empty.nrrd"))
    segmentation = import_prediction(mrml, reference, tmp_path / "empty.nrrd", "pred").segmentation_node
    files = export_results(mrml, segmentation, reference, None, tmp_path / "out", "chest")
    labelmap = sitk.ReadImage(str(files.labelmap))
    assert_same_grid(labelmap, sitk.ReadImage(str(chest_files[0])))
    assert not sitk.GetArrayFromImage(labelmap).any()


def test_dicom_reference_round_trips_with_identical_geometry(mrml, shared_dicom, tmp_path):
    reference = read_dicom_series(mrml.scene, shared_dicom, "tcia")
    dicom = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(shared_dicom)))
    hu = sitk.GetArrayFromImage(dicom)
    mask = np.zeros(hu.shape, np.uint8)
    middle = hu.shape[0] // 2
    mask[middle - 3 : middle + 3] = hu[middle - 3 : middle + 3] < -400  # air and lung on six slices
    assert 0 < mask.sum() < mask.size
    label = sitk.GetImageFromArray(mask)
    label.CopyInformation(dicom)
    sitk.WriteImage(label, str(tmp_path / "prediction.nrrd"), useCompression=True)
    result = import_prediction(mrml, reference, tmp_path / "prediction.nrrd", "tcia infection")
    assert result.voxels == int(mask.sum())
    assert result.infected_ml == pytest.approx(mask.sum() * np.prod(dicom.GetSpacing()) / 1000, rel=1e-6)
    files = export_results(mrml, result.segmentation_node, reference, None, tmp_path / "out", "tcia")
    labelmap = sitk.ReadImage(str(files.labelmap))
    assert_same_grid(labelmap, dicom)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(labelmap), mask)
    np.testing.assert_array_equal(on_grid(sitk.ReadImage(str(files.segmentation)), dicom), mask)


def test_segmentation_without_segments_is_refused(mrml, predicted, tmp_path):
    reference, _, _ = predicted
    bare = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "bare")
    with pytest.raises(UserFacingError, match="no segment to export"):
        export_results(mrml, bare, reference, None, tmp_path, "chest")
    assert not any(tmp_path.iterdir())


def test_folder_that_cannot_be_created_is_a_clear_error(mrml, predicted, tmp_path):
    reference, segmentation, _ = predicted
    (tmp_path / "a file").write_text("not a folder")
    with pytest.raises(UserFacingError, match="Cannot create the export folder"):
        export_results(mrml, segmentation, reference, None, tmp_path / "a file" / "results", "chest")


def test_a_failed_write_leaves_no_file_behind(mrml, predicted, tmp_path):
    reference, segmentation, _ = predicted
    not_markups = reference  # the markups writer refuses a volume node, after the two NRRDs were written
    with pytest.raises(UserFacingError, match="Could not write the points"):
        export_results(mrml, segmentation, reference, not_markups, tmp_path, "chest")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "chest.nrrd").mkdir()  # a folder in the labelmap's place: the rename fails
    with pytest.raises(UserFacingError, match="Could not write the export files"):
        export_results(mrml, segmentation, reference, None, tmp_path, "chest")
    assert [path.name for path in tmp_path.iterdir() if path.is_file() and path.name.startswith(".")] == []


def test_export_leaves_the_scene_as_it_was(mrml, predicted, tmp_path):
    reference, segmentation, _ = predicted
    before = mrml.scene.GetNumberOfNodes()
    export_results(mrml, segmentation, reference, None, tmp_path, "chest")
    assert mrml.scene.GetNumberOfNodes() == before
