"""Tests of CovidActiveLearningLib/expert_labels.py: a real imported prediction in a slicer-core scene, readied for
the Segment Editor, corrected and exported as an expert label file on the oblique, anisotropic chest CT's grid."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.expert_labels import (
    SEGMENT_EDITOR_TAG,
    ProjectVolume,
    expert_label,
    infection_segment_id,
    prepare_for_editing,
    project_volumes,
)
from CovidActiveLearningLib.prediction import INFECTION_SEGMENT, import_prediction
from CovidActiveLearningLib.volumes import read_volume, write_nrrd


@pytest.fixture
def predicted(mrml, chest_files):
    """``(ct node, imported prediction, lesion mask [K, J, I])``: the lesion mask imported as the CT's prediction."""
    ct = read_volume(mrml.scene, chest_files[0], "chest")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(chest_files[1])))
    return ct, import_prediction(mrml, ct, chest_files[1], "chest infection"), mask


def corrected(prediction, ct, mask) -> np.ndarray:
    """Correct the Infection segment as a clinician would in the Segment Editor: erase the top slice's infection
    and paint a block the model missed; returns the corrected mask ``[K, J, I]``."""
    fixed = mask.copy()
    fixed[-1] = 0
    fixed[1:3, 5:9, 6:12] = 1
    segment_id = infection_segment_id(prediction.segmentation_node)
    slicer.util.updateSegmentBinaryLabelmapFromArray(fixed, prediction.segmentation_node, segment_id, ct)
    return fixed


def test_the_segment_editor_node_edits_the_infection_segment_over_the_ct(mrml, predicted):
    ct, prediction, _ = predicted
    target = prepare_for_editing(mrml, prediction.segmentation_node, ct)
    editor = mrml.scene.GetSingletonNode(SEGMENT_EDITOR_TAG, "vtkMRMLSegmentEditorNode")
    assert editor is not None and editor is target.editor_node
    assert editor.GetSegmentationNode() is prediction.segmentation_node
    assert editor.GetSourceVolumeNode() is ct
    segmentation = prediction.segmentation_node.GetSegmentation()
    assert editor.GetSelectedSegmentID() == target.segment_id
    assert segmentation.GetSegment(target.segment_id).GetName() == INFECTION_SEGMENT
    assert segmentation.GetSourceRepresentationName() == "Binary labelmap"  # what the editor's effects paint
    nodes = mrml.scene.GetNumberOfNodes()
    again = prepare_for_editing(mrml, prediction.segmentation_node, ct)
    assert again.editor_node is editor and mrml.scene.GetNumberOfNodes() == nodes  # one parameter node, reused


def test_the_expert_label_is_the_corrected_segment_on_the_cts_exact_grid(mrml, predicted, chest_files, tmp_path):
    ct, prediction, mask = predicted
    fixed = corrected(prediction, ct, mask)
    assert 0 < np.count_nonzero(fixed != mask)
    nodes = mrml.scene.GetNumberOfNodes()
    label = expert_label(mrml, prediction.segmentation_node, ct)
    assert mrml.scene.GetNumberOfNodes() == nodes  # the export leaves nothing behind
    assert label.voxels.dtype == np.uint8
    np.testing.assert_array_equal(label.voxels, fixed)
    written = sitk.ReadImage(str(write_nrrd(label, tmp_path / "label.nrrd")))
    source = sitk.ReadImage(str(chest_files[0]))
    assert written.GetSize() == source.GetSize()
    assert written.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
    assert not np.allclose(source.GetDirection(), np.eye(3).ravel())  # the fixture's grid is oblique
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), fixed)


def test_an_empty_segment_is_refused(mrml, predicted):
    ct, prediction, mask = predicted
    segment_id = infection_segment_id(prediction.segmentation_node)
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.zeros_like(mask), prediction.segmentation_node, segment_id, ct)
    with pytest.raises(UserFacingError, match="'Infection' segment of 'chest infection' is empty"):
        expert_label(mrml, prediction.segmentation_node, ct)


def test_no_segmentation_a_removed_one_or_a_renamed_segment_is_a_clear_error(mrml, predicted):
    ct, prediction, _ = predicted
    node = prediction.segmentation_node
    segment = node.GetSegmentation().GetSegment(infection_segment_id(node))
    segment.SetName("Lesion")
    for action in (expert_label, prepare_for_editing):
        with pytest.raises(UserFacingError, match="has no 'Infection' segment"):
            action(mrml, node, ct)
    segment.SetName(INFECTION_SEGMENT)
    with pytest.raises(UserFacingError, match="CT of this prediction is no longer in the scene"):
        prepare_for_editing(mrml, node, None)
    mrml.scene.RemoveNode(node)
    for gone in (node, None):
        with pytest.raises(UserFacingError, match="no prediction to correct"):
            expert_label(mrml, gone, ct)


def test_the_project_volumes_say_which_have_an_expert_label():
    volumes = [{"id": 4, "name": "b", "dims": [1, 1, 1]}, {"id": 2, "name": "a"}, {"id": 7, "name": "c"}]
    labels = [{"volume_id": 7, "foreground_voxels": 120}, {"volume_id": 2, "foreground_voxels": 0}]
    listed = project_volumes(volumes, labels)
    assert listed == [ProjectVolume(2, "a", 0), ProjectVolume(4, "b", None), ProjectVolume(7, "c", 120)]
    assert [volume.expert_labelled for volume in listed] == [True, False, True]
    assert [volume.text() for volume in listed] == [
        "a (id 2): expert label, 0 voxels",
        "b (id 4)",
        "c (id 7): expert label, 120 voxels",
    ]
    with pytest.raises(ValueError, match="malformed"):
        project_volumes([{"name": "no id"}], [])
