"""Expert labels through CovidActiveLearningLib/logic.py: a headless slicer-core scene against a real `covidal serve`.

The prediction is the chest fixture's lesion mask imported as the CT's prediction (the segmentation a Predict
would give, without training a model first); it is readied for the Segment Editor, corrected as the clinician
would there, and sent as the CT's expert label; the backend's copy is read back.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from test_expert_labels import corrected

from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.logic import CovidActiveLearningCoreLogic
from CovidActiveLearningLib.operations import BackgroundOperation
from CovidActiveLearningLib.prediction import import_prediction
from CovidActiveLearningLib.volumes import read_volume


@pytest.fixture
def predicted_logic(mrml, backend, chest_files):
    """``(logic, ct node, lesion mask)``: a logic in its own project whose prediction is the lesion mask."""
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    logic.connect(backend)
    ct = read_volume(mrml.scene, chest_files[0], "chest")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(chest_files[1])))
    logic.prediction = import_prediction(mrml, ct, chest_files[1], "chest infection")
    yield logic, ct, mask
    logic.close()


def test_a_corrected_segmentation_becomes_the_cts_expert_label_with_its_exact_grid(
    predicted_logic, backend, chest_files, tmp_path
):
    logic, ct, mask = predicted_logic
    logic.open_project("expert label")
    other = read_volume(logic.context.scene, chest_files[1], "another volume")  # listed, never labelled
    other_id = logic.send_volume(other)
    assert [volume.expert_labelled for volume in logic.project_volumes()] == [False]

    target = logic.correct_in_segment_editor()
    assert target.segmentation_node is logic.prediction.segmentation_node and target.source_volume is ct
    fixed = corrected(logic.prediction, ct, mask)
    label = BackgroundOperation(logic.use_as_expert_label_operation()).wait()  # as the widget runs it
    volume_id = logic.send_volume(ct)  # matched by content: the id the label went to
    assert label["volume_id"] == volume_id != other_id
    assert label["foreground_voxels"] == int(fixed.sum())

    back = sitk.ReadImage(str(CovidalClient(backend).download_label(logic.project_id, volume_id, tmp_path / "l.nrrd")))
    source = sitk.ReadImage(str(chest_files[0]))
    assert back.GetSize() == source.GetSize() and back.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(back.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), source.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), fixed)

    listed = {volume.id: volume for volume in logic.project_volumes()}
    assert listed[volume_id].text() == f"chest (id {volume_id}): expert label, {int(fixed.sum())} voxels"
    assert not listed[other_id].expert_labelled
    assert logic.actions().use_as_label and logic.actions().correct


def test_sending_again_replaces_the_label(predicted_logic, backend):
    logic, ct, mask = predicted_logic
    logic.open_project("expert label again")
    first = logic.use_as_expert_label()
    segment_id = logic.correct_in_segment_editor().segment_id
    smaller = mask.copy()
    smaller[: mask.shape[0] // 2] = 0
    slicer.util.updateSegmentBinaryLabelmapFromArray(smaller, logic.prediction.segmentation_node, segment_id, ct)
    second = logic.use_as_expert_label()
    assert first["volume_id"] == second["volume_id"]
    assert (first["foreground_voxels"], second["foreground_voxels"]) == (int(mask.sum()), int(smaller.sum()))
    assert len(CovidalClient(backend).list_labels(logic.project_id)) == 1


def test_refusals_are_one_line_and_nothing_reaches_the_backend(predicted_logic, backend):
    logic, ct, mask = predicted_logic
    logic.open_project("expert label refusals")
    slicer.util.updateSegmentBinaryLabelmapFromArray(
        np.zeros_like(mask), logic.prediction.segmentation_node, logic.correct_in_segment_editor().segment_id, ct
    )
    with pytest.raises(UserFacingError, match="is empty; paint the infection"):
        logic.use_as_expert_label()
    assert CovidalClient(backend).list_volumes(logic.project_id) == []  # refused before the CT was sent
    logic.project_id = 10_000  # a project the backend does not have: its 404 detail, in one line
    with pytest.raises(UserFacingError, match=r"^The backend refused: .*10000") as refused:
        logic.project_volumes()
    assert "\n" not in str(refused.value)
    logic.context.scene.RemoveNode(logic.prediction.segmentation_node)
    for action in (logic.correct_in_segment_editor, logic.use_as_expert_label):
        with pytest.raises(UserFacingError, match="no prediction to correct"):
            action()
    logic.prediction = None
    assert not (logic.actions().correct or logic.actions().use_as_label)
