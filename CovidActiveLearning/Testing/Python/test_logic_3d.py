"""The 3D model from the clinician's clicks through CovidActiveLearningLib/logic.py: a headless slicer-core scene
against a real `covidal serve`.

A 2D project is answered from the chest fixture's lesion mask (oblique, anisotropic grid) and trained for a few
steps; its prediction of the CT, corrected to the lesion mask, is sent as the CT's expert label, and a second CT is
left to the 2D model's pseudo-labels. A ``clicks-to-3d`` job with a tiny 3D U-Net is started from the Lib, followed
to its end by the Lib's poller (the one the panel's timer drives) and its prediction imported beside the 2D one.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from support import synthetic_chest, write_image
from test_logic import answer_like_the_mask, open_logic, wait_for_training

from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.prediction import LungInvolvement, PredictionModel
from CovidActiveLearningLib.training import TrainingWatch
from CovidActiveLearningLib.volumes import read_volume

# A 3D U-Net of two levels on 16^3 patches, a few steps: minutes at most on one CPU thread.
TINY_3D = {"epochs": 3, "steps_per_epoch": 3, "patch_size": [16, 16, 16], "channels": [4, 8], "batch_size": 1}
CHEST_VOXEL_MM3 = 1.4 * 1.2 * 5.0
JOB_TIMEOUT_S = 600


def follow(logic) -> list:
    """Follow the logic's job with the panel's poller (:class:`TrainingWatch`) until it stops; every status seen."""
    watch = TrainingWatch(logic.poll_training_operation)
    watch.start()
    seen, deadline = [], time.monotonic() + JOB_TIMEOUT_S
    while watch.active:
        assert time.monotonic() < deadline, f"the 3D job did not finish: {seen[-1].text if seen else 'no status'}"
        status = watch.poll()
        if status is not None:
            assert not isinstance(status, UserFacingError), status
            seen.append(status)
        time.sleep(0.1)
    return seen


def test_a_3d_model_from_the_clicks_is_trained_followed_and_its_prediction_imported(
    mrml, backend, chest_files, tmp_path
):
    ct = read_volume(mrml.scene, chest_files[0], "chest")
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(chest_files[1])))
    logic = open_logic(mrml, backend, "clicks to 3d")
    with pytest.raises(UserFacingError, match=r"^The backend refused: "):  # no 2D model to pseudo-label with yet
        logic.start_3d_training(config=TINY_3D)
    with pytest.raises(UserFacingError, match=r"^The backend refused: "):  # no 3D model yet
        logic.import_prediction(ct, PredictionModel.THREE_D)

    logic.get_suggestions(ct, 6)
    answer_like_the_mask(logic, ct, lesions)
    assert logic.submit().sent == 6
    logic.start_training(steps=4)
    wait_for_training(logic)
    two_d = logic.import_prediction(ct)
    segment_id = logic.correct_in_segment_editor().segment_id
    slicer.util.updateSegmentBinaryLabelmapFromArray(lesions, two_d.segmentation_node, segment_id, ct)
    assert logic.use_as_expert_label()["foreground_voxels"] == int(lesions.sum())
    second, _ = synthetic_chest(seed=1)
    pool_id = logic.send_volume(read_volume(mrml.scene, write_image(second, tmp_path / "second.nrrd"), "second"))
    assert [(v.id == pool_id, v.expert_labelled) for v in logic.project_volumes()] == [(False, True), (True, False)]

    job_id = logic.start_3d_training(config=TINY_3D)  # the backend's default mode
    job = CovidalClient(backend).get_job(logic.project_id, job_id)
    assert job["kind"] == "clicks-to-3d" and {key: job["config"][key] for key in TINY_3D} == TINY_3D
    seen = follow(logic)
    final = seen[-1]
    assert final.status.value == "done" and final.is_3d, final.text
    assert final.steps and final.step == final.steps
    assert all(status.text.startswith("3D model: ") for status in seen)
    stages = [status.stage for status in seen if status.stage is not None and not status.finished]
    assert stages and stages == sorted(stages, key=["pseudo-label", "student"].index)  # seen, in their order
    assert final.val_dice is not None and "Dice on the expert labels" in final.text  # the expert label was used

    three_d = logic.import_prediction(ct, PredictionModel.THREE_D)
    assert logic.prediction is three_d  # the one Correct and Use as expert label now act on
    node = three_d.segmentation_node
    assert node.GetName() == "chest infection (3D model)" and node is not two_d.segmentation_node
    assert two_d.segmentation_node.GetScene() is mrml.scene  # the 2D one stays beside it
    assert node.GetSegmentation().GetNthSegment(0).GetName() == "Infection"
    stats = CovidalClient(backend).predict_volume(logic.project_id, logic.send_volume(ct), model="3d")
    assert three_d.voxels == stats["voxels"]
    assert three_d.infected_ml == pytest.approx(three_d.voxels * CHEST_VOXEL_MM3 / 1000)
    assert three_d.infected_ml == pytest.approx(stats["infected_ml"], rel=1e-6)
    assert three_d.lungs == LungInvolvement.from_json(stats)
    assert three_d.summary().startswith(f"Infected (3D model): {three_d.infected_ml:.1f} mL")

    files = logic.export(tmp_path / "export", ct)  # on the CT's exact grid, like the 2D prediction's
    labelmap, source = sitk.ReadImage(str(files.labelmap)), sitk.ReadImage(str(chest_files[0]))
    assert labelmap.GetSize() == source.GetSize()
    np.testing.assert_allclose(labelmap.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(labelmap.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(labelmap.GetDirection(), source.GetDirection(), atol=1e-6)
    assert int(sitk.GetArrayFromImage(labelmap).sum()) == three_d.voxels


def test_a_chosen_mode_is_sent_and_an_unknown_one_refused_before_any_request(mrml, backend):
    logic = open_logic(mrml, backend, "clicks to 3d modes")
    with pytest.raises(UserFacingError, match="not a 3D training mode"):
        logic.start_3d_training("best")
    with pytest.raises(UserFacingError, match=r"^The backend refused: "):  # rgs is known; no 2D model yet
        logic.start_3d_training("rgs", TINY_3D)
    assert logic.job_id is None
