"""From answers to results through the panel, on an oblique CT: Submit with training after it (its progress in the
panel), the prediction imported as the 'Infection' segment, the export read back with SimpleITK, and the corrected
segmentation sent as the CT's expert label and read back from the backend."""

from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import TINY_MODEL
from CovidActiveLearningLib.backend_client import CovidalClient
from steps import click_voxel, current_region, get_suggestions, load, stored_answers

TRAINING_STEPS = 4
TRAINING_TIMEOUT_S = 300
REGIONS = 6


def lesion_voxel(lesions_kji: np.ndarray, region) -> tuple[int, int, int] | None:
    """An infected voxel ``(i, j, k)`` of the region away from its border, as a clinician would click it, or None."""
    box = region.box
    rows, columns = np.nonzero(lesions_kji[box.k, box.j0 + 1 : box.j1 - 1, box.i0 + 1 : box.i1 - 1])
    if rows.size == 0:
        return None
    middle = rows.size // 2
    return box.i0 + 1 + int(columns[middle]), box.j0 + 1 + int(rows[middle]), box.k


def test_submit_train_predict_and_export_on_an_oblique_ct(fresh, backend, oblique_chest, tmp_path):
    ct_path, lesions = oblique_chest
    project = fresh.run(fresh.page.get_by_label("Project", exact=True).input_value())
    CovidalClient(backend).create_project(
        project, model_kind="unet", grid_k=16, strategy="entropy", mc_samples=2, loss="point", settings=TINY_MODEL
    )  # the backend's side: a small model
    load(fresh, ct_path)
    fresh.click_button("Send volume")
    fresh.wait_for_text("volume-status", "The backend has the volume")
    regions = get_suggestions(fresh, REGIONS)
    given = {}
    for number, _ in enumerate(regions, start=1):  # every region as the clinician: a click on a lesion, or Background
        region = current_region(fresh)
        voxel = lesion_voxel(lesions, region)
        given[region.id] = voxel
        if voxel is None:
            fresh.press("Shift+B")
            fresh.wait_until(lambda app, rid=region.id: app.logic.book.answer_for(rid), what="the background tag")
        else:
            click_voxel(fresh, voxel)
            fresh.wait_until(lambda app, rid=region.id: app.logic.book.answer_for(rid), what="the click")
            fresh.press("n")
        if number < len(regions):
            fresh.wait_until(lambda app, rid=region.id: app.logic.current_region.id != rid, what="the next region")
    assert fresh.text("progress").startswith(f"{REGIONS} of {REGIONS} answered")

    fresh.fill("Steps", TRAINING_STEPS)
    fresh.run(fresh.page.get_by_label("Train after submit").set_checked(True))
    # The browser sends field changes to the harness asynchronously; Submit reads them there. Once (in one CI run
    # of dozens) no training job followed the Submit: wait until the harness holds both, so a lost or late change
    # fails here, by name, instead of the job wait timing out.
    fresh.wait_until(
        lambda app: app.state.train_after_submit is True and int(app.state.training_steps) == TRAINING_STEPS,
        what="the panel's Steps and Train after submit to reach the harness",
    )
    fresh.click_button("Submit")
    fresh.wait_for_text("submit-status", f"{REGIONS} answer(s) sent")
    stored = stored_answers(backend, fresh)
    assert {sid: (a["answer"], [tuple(p) for p in a["points"]]) for sid, a in stored.items()} == {
        sid: ("background", []) if voxel is None else ("infection", [voxel]) for sid, voxel in given.items()
    }
    seen, deadline = set(), time.monotonic() + TRAINING_TIMEOUT_S
    while "Done" not in (status := fresh.text("training-status")):
        assert "Failed" not in status and "Cancelled" not in status and time.monotonic() < deadline, status
        seen.add(status)
        time.sleep(0.3)
    assert status.startswith(f"Done, step {TRAINING_STEPS} of {TRAINING_STEPS}"), status
    assert any(text.startswith("Training job") or "step" in text for text in seen)
    assert fresh.run(fresh.page.locator("#training-progress").get_attribute("aria-valuenow")) == "100"
    fresh.screenshot("training_done")

    fresh.click_button("Predict")
    fresh.wait_for_text("infected", "Infected:", timeout=180)

    def segments(app):
        node = app.logic.prediction.segmentation_node
        segmentation = node.GetSegmentation()
        display = node.GetDisplayNode()
        return (
            [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())],
            bool(display.GetVisibility2DFill()),
            bool(display.GetVisibility()),
            app.logic.prediction.voxels,
        )

    names, filled, visible, voxels = fresh.call(segments)
    assert (names, filled, visible) == (["Infection"], True, True)
    fresh.screenshot("prediction")

    folder = tmp_path / "export"
    fresh.fill("Export folder", folder)
    fresh.click_button("Export")
    fresh.wait_for_text("export-status", "Exported:")
    stem = ct_path.name.split(".")[0]
    source = sitk.ReadImage(str(ct_path))
    labelmap = sitk.ReadImage(str(folder / f"{stem}.nrrd"))  # on the CT's exact grid
    assert labelmap.GetSize() == source.GetSize()
    np.testing.assert_allclose(labelmap.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(labelmap.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(labelmap.GetDirection(), source.GetDirection(), atol=1e-6)
    assert int((sitk.GetArrayFromImage(labelmap) > 0).sum()) == voxels
    segmentation = sitk.ReadImage(str(folder / f"{stem}.seg.nrrd"))  # Slicer may crop it to the segment's extent
    np.testing.assert_allclose(segmentation.GetDirection(), source.GetDirection(), atol=1e-6)
    on_ct_grid = sitk.Resample(segmentation, source, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(on_ct_grid) > 0, sitk.GetArrayFromImage(labelmap) > 0)
    assert segmentation.GetMetaData("Segment0_Name") == "Infection"
    assert (folder / f"{stem}_points.mrk.json").is_file()

    fresh.click_button("Correct in Segment Editor")
    fresh.wait_for_text("expert-label-status", "Ready for the Segment Editor")
    corrected = fresh.call(paint_block)  # what the clinician would paint in the Segment Editor (not in the browser)
    fresh.click_button("Use as expert label")
    fresh.wait_for_text("expert-label-status", f"({int(corrected.sum())} infected voxels)", timeout=120)
    fresh.wait_for_text("project-volumes", "expert label")
    project_id, volume_id = fresh.call(lambda app: (app.logic.project_id, app.logic.send_volume(app.volume)))
    label = sitk.ReadImage(str(CovidalClient(backend).download_label(project_id, volume_id, tmp_path / "label.nrrd")))
    assert label.GetSize() == source.GetSize()
    np.testing.assert_allclose(label.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(label.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(label.GetDirection(), source.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), corrected)


def paint_block(app) -> np.ndarray:
    """Add a block of voxels to the prediction's Infection segment, as the Segment Editor's Paint would (through the
    segmentations logic: the harness's scene is not ``slicer.mrmlScene``); returns the corrected segment ``[K, J, I]``
    (0/1) on the CT's grid."""
    import slicer
    import vtk

    from CovidActiveLearningLib.prediction import exported_labelmap

    node, scene = app.logic.prediction.segmentation_node, app.context.scene
    segment_id = node.GetSegmentation().GetSegmentIdBySegmentName("Infection")
    with exported_labelmap(app.context, node, [segment_id], app.volume) as labelmap:
        corrected = (slicer.util.arrayFromVolume(labelmap) > 0).astype(np.uint8)
    corrected[1:3, 10:14, 10:16] = 1
    painted = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "painted")
    try:
        slicer.util.updateVolumeFromArray(painted, corrected)
        matrix = vtk.vtkMatrix4x4()
        app.volume.GetIJKToRASMatrix(matrix)
        painted.SetIJKToRASMatrix(matrix)
        targets = vtk.vtkStringArray()
        targets.InsertNextValue(segment_id)
        assert app.context.segmentations.ImportLabelmapToSegmentationNode(painted, node, targets)
    finally:
        scene.RemoveNode(painted)
    return corrected


@pytest.fixture(autouse=True)
def _no_stale_training(fresh):
    """Training is polled by the panel; a test ends only once its job has ended (the next test's scene is empty)."""
    yield
    fresh.wait_until(lambda app: not app.training.active, timeout=300, what="the training job to end")
