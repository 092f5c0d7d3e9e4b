"""Whole cycles of CovidActiveLearningLib/logic.py: a headless slicer-core scene against a real `covidal serve`.

Volumes: the synthetic chest CT with an oblique direction matrix (its lesion mask plays the
clinician) and the real DICOM series of ../shared. The backend trains a tiny CPU model.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from support import synthetic_chest, write_image

from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import ijk_to_ras
from CovidActiveLearningLib.logic import CovidActiveLearningCoreLogic
from CovidActiveLearningLib.operations import BackgroundOperation, run_now
from CovidActiveLearningLib.prediction import LungInvolvement
from CovidActiveLearningLib.regions import SuggestedRegion
from CovidActiveLearningLib.volumes import read_dicom_series, read_volume

TINY_MODEL = {"image_size": 64, "width": 8, "checkpoint_every": 2, "batch_size": 2}
TRAINING_TIMEOUT_S = 300


def open_logic(mrml, backend, project: str) -> CovidActiveLearningCoreLogic:
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    logic.connect(backend)
    logic.open_project(project, regions_per_slice=16, mc_samples=2, settings=TINY_MODEL)
    return logic


def lesion_voxel(lesions_kji: np.ndarray, region: SuggestedRegion) -> tuple[int, int, int] | None:
    """An infected voxel (i, j, k) of the region, as the clinician would click it, or None."""
    box = region.box
    rows, columns = np.nonzero(lesions_kji[box.k, box.j0 : box.j1, box.i0 : box.i1])
    if rows.size == 0:
        return None
    middle = rows.size // 2
    return box.i0 + int(columns[middle]), box.j0 + int(rows[middle]), box.k


def answer_like_the_mask(logic, ct_node, lesions_kji) -> dict[int, tuple[int, int, int] | None]:
    """Answer every region of the cycle from the lesion mask: a click at the voxel's RAS, or background."""
    given = {}
    for _ in logic.cycle.regions:
        region = logic.current_region
        if logic.book.answer_for(region.id) is not None:
            logic.next_region()
            continue
        voxel = lesion_voxel(lesions_kji, region)
        given[region.id] = voxel
        if voxel is None:
            logic.tag_background()
        else:
            offset = np.array([0.3, -0.2, 0.1])  # a click off the voxel centre still lands in the voxel
            assert logic.add_point_ras(ijk_to_ras(ct_node, np.add(voxel, offset))) == voxel
            logic.next_region()
    return given


def wait_for_training(logic) -> None:
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while not (status := logic.poll_training()).finished:
        assert time.monotonic() < deadline, f"training did not finish: {status.text}"
        time.sleep(0.5)
    assert status.status.value == "done", status.text


def test_a_whole_cycle_on_an_oblique_ct(mrml, backend, chest_files, tmp_path):
    ct_node = read_volume(mrml.scene, chest_files[0], "chest")
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(chest_files[1])))
    logic = open_logic(mrml, backend, "whole-cycle")

    volume_id = logic.send_volume(ct_node)
    twin = read_volume(mrml.scene, chest_files[0], "chest again")  # the same CT loaded a second time
    assert logic.send_volume(twin) == volume_id == logic.send_volume(ct_node)
    assert len(CovidalClient(backend).list_volumes(logic.project_id)) == 1

    regions = logic.get_suggestions(ct_node, 6)
    assert len(regions) == 6 and logic.current_region == regions[0]
    assert logic.progress_text() == "0 of 6 answered"
    given = answer_like_the_mask(logic, ct_node, lesions)
    assert logic.progress_text() == "6 of 6 answered"

    report = logic.submit()
    assert (report.sent, report.still_pending, report.rejected, report.unreachable) == (6, 0, [], None)
    stored = {a["suggestion_id"]: a for a in CovidalClient(backend).list_annotations(logic.project_id)}
    assert set(stored) == set(given)
    for suggestion_id, voxel in given.items():
        expected = ("background", []) if voxel is None else ("infection", [list(voxel)])
        assert (stored[suggestion_id]["answer"], [list(p) for p in stored[suggestion_id]["points"]]) == expected
        assert stored[suggestion_id]["annotator"] == "dr-test"
    assert logic.submit().sent == 0  # nothing is sent twice

    logic.start_training(steps=4)
    wait_for_training(logic)
    prediction = logic.import_prediction(ct_node)
    segmentation = prediction.segmentation_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    assert segmentation.GetNthSegment(0).GetName() == "Infection"
    backend_stats = CovidalClient(backend).predict_volume(logic.project_id, volume_id)
    assert prediction.voxels == backend_stats["voxels"]
    assert prediction.infected_ml == pytest.approx(backend_stats["infected_ml"], rel=1e-6)
    assert prediction.lungs == LungInvolvement.from_json(backend_stats)

    files = logic.export(tmp_path / "export")
    labelmap, source = sitk.ReadImage(str(files.labelmap)), sitk.ReadImage(str(chest_files[0]))
    assert labelmap.GetSize() == source.GetSize()
    np.testing.assert_allclose(labelmap.GetSpacing(), source.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(labelmap.GetOrigin(), source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(labelmap.GetDirection(), source.GetDirection(), atol=1e-6)
    assert int(sitk.GetArrayFromImage(labelmap).sum()) == prediction.voxels
    assert files.segmentation.is_file() and files.points.is_file()

    chart = logic.update_learning_curve()
    assert chart.GetNumberOfPlotSeriesNodes() == 1


def test_the_real_dicom_series_gets_voxel_aligned_suggestions(mrml, backend, shared_dicom):
    ct_node = read_dicom_series(mrml.scene, shared_dicom, "tcia")
    logic = open_logic(mrml, backend, "dicom")
    regions = logic.get_suggestions(ct_node, 3)
    volume = CovidalClient(backend).get_volume(logic.project_id, regions[0].volume_id)
    assert tuple(volume["dims"]) == ct_node.GetImageData().GetDimensions()
    for region in regions:
        roi = logic.layer.roi_for(region.id)
        box = region.box
        inside = ijk_to_ras(ct_node, (box.i0, box.j0, box.k))
        outside = ijk_to_ras(ct_node, (box.i1, box.j0, box.k))
        assert roi.IsPointInROIWorld(inside) and not roi.IsPointInROIWorld(outside)
    logic.tag_background()
    point = logic.current_region.box
    voxel = (point.i0 + 1, point.j1 - 1, point.k)
    assert logic.add_point_ras(ijk_to_ras(ct_node, voxel)) == voxel
    assert logic.submit().sent == 2
    stored = CovidalClient(backend).list_annotations(logic.project_id)
    assert sorted(a["answer"] for a in stored) == ["background", "infection"]
    assert [list(p) for a in stored for p in a["points"]] == [list(voxel)]


def test_the_strategy_choice_is_the_backends_and_a_project_created_with_density_suggests(mrml, backend, chest_files):
    """The panel offers what the backend's registry lists (``GET /strategies``; the module cannot import covidal,
    so the test does); a project opened with ``density`` ranks by it on the backend and its first suggestions come
    back; every listed strategy is accepted, and an existing project keeps its own."""
    from covidal.activelearning.strategies import StrategyName

    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    assert logic.strategies is None  # nothing to offer before a backend answers
    logic.connect(backend)
    assert logic.strategies.names == tuple(StrategyName) and logic.strategies.default == "entropy"
    assert [logic.strategies.offered(saved) for saved in ("density", "", None, "retired")] == ["density"] + [
        "entropy"
    ] * 3
    operation = logic.get_suggestions_operation(read_volume(mrml.scene, chest_files[0]), 6)
    regions = run_now(logic.in_project_operation("strategy density", 16, operation, "density"))
    assert logic.client.get_project(logic.project_id)["strategy"] == "density"
    assert len(regions) == 6 and len({region.id for region in regions}) == 6
    assert [region.rank for region in regions] == sorted(region.rank for region in regions)
    for strategy in logic.strategies.names:
        run_now(logic.in_project_operation(f"strategy {strategy}", 16, nothing(), strategy))
        assert logic.client.get_project(logic.project_id)["strategy"] == strategy
    run_now(logic.in_project_operation("strategy vaal", 16, nothing(), "entropy"))
    assert logic.client.get_project(logic.project_id)["strategy"] == "vaal"
    run_now(logic.in_project_operation("left to the backend", 16, nothing(), None))
    assert logic.client.get_project(logic.project_id)["strategy"] == logic.strategies.default


def test_what_the_clinician_leaves_alone_takes_the_backends_served_defaults(mrml, backend, tmp_path):
    """The module keeps no cycle size or step count of its own: a project opened with nothing chosen, a cycle
    asked with no count and a job started with no steps take the backend's defaults for its device."""
    served = CovidalClient(backend).defaults()
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    logic.connect(backend)
    assert logic.served == served
    logic.open_project("served defaults")
    project = logic.client.get_project(logic.project_id)
    chosen = ("grid_k", "strategy", "mc_samples", "loss")
    assert {key: project[key] for key in chosen} == {key: served[key] for key in chosen}
    assert {key: project["settings"][key] for key in ("image_size", "width", "steps")} == {
        key: served[key] for key in ("image_size", "width", "steps")
    }
    # One region per slice by default: enough slices for a whole served cycle.
    ct, _ = synthetic_chest((served["regions_per_cycle"] + 2, 48, 56))
    ct_node = read_volume(mrml.scene, write_image(ct, tmp_path / "tall.nrrd"), "tall chest")
    assert len(logic.get_suggestions(ct_node)) == served["regions_per_cycle"] != 10  # the module's old constant
    logic.tag_background()
    report, job_id = run_now(logic.submit_and_train_operation(train=True))
    assert report.sent == 1 and job_id is not None
    try:
        assert logic.client.get_job(logic.project_id, job_id)["config"]["steps"] == served["steps"] != 200
    finally:
        logic.cancel_training()


def nothing():
    """An operation that asks for nothing."""
    return None
    yield  # makes this a generator, as operations are


def test_bad_input_gets_a_clear_message(mrml, backend, chest_files):
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    with pytest.raises(UserFacingError, match="Connect to the backend"):
        logic.open_project("p")
    logic.connect(backend)
    with pytest.raises(UserFacingError, match="Open a project"):
        logic.send_volume(read_volume(mrml.scene, chest_files[0]))
    logic.open_project("bad-input", settings=TINY_MODEL)
    with pytest.raises(UserFacingError, match="Select a CT volume"):
        logic.get_suggestions(None, 3)
    flat = slicer.util.addVolumeFromArray(np.zeros((1, 32, 32), np.int16), name="radiograph")
    with pytest.raises(UserFacingError, match="2D image"):
        logic.get_suggestions(flat, 3)
    with pytest.raises(UserFacingError, match="Get suggestions first"):
        logic.tag_background()

    ct_node = read_volume(mrml.scene, chest_files[0])
    old = logic.get_suggestions(ct_node, 2)
    logic.get_suggestions(ct_node, 2)
    with pytest.raises(UserFacingError, match="not one of this cycle"):
        logic.go_to_region(old[0].id)
    box = logic.current_region.box
    with pytest.raises(UserFacingError, match="outside"):
        logic.add_point_ras(ijk_to_ras(ct_node, (box.i1 + 2, box.j0, box.k)))
    assert logic.book.answer_for(logic.current_region.id) is None
    with pytest.raises(UserFacingError, match="does not answer"):
        CovidActiveLearningCoreLogic(mrml).connect("http://127.0.0.1:9", timeout=2)


def test_undo_takes_back_the_point_and_the_answer(mrml, backend, chest_files):
    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = open_logic(mrml, backend, "undo")
    logic.get_suggestions(ct_node, 2)
    region = logic.current_region
    voxel = (region.box.i0, region.box.j0, region.box.k)
    logic.add_point_ras(ijk_to_ras(ct_node, voxel))
    assert logic.infection_points_node().GetNumberOfControlPoints() == 1
    assert logic.progress_text() == "1 of 2 answered"
    assert logic.undo() is not None
    assert logic.infection_points_node().GetNumberOfControlPoints() == 0
    assert logic.book.answer_for(region.id) is None and logic.progress_text() == "0 of 2 answered"
    assert logic.undo() is None
    assert logic.submit().sent == 0


def test_the_widget_path_runs_requests_in_the_background(mrml, backend, chest_files):
    """As the widget does: each request in a worker thread, polled from the GUI thread until done."""
    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    BackgroundOperation(logic.connect_operation(backend)).wait(30)
    BackgroundOperation(logic.open_project_operation("background", settings=TINY_MODEL)).wait(30)
    running = BackgroundOperation(logic.get_suggestions_operation(ct_node, 3))
    polls = 0
    while not running.poll():
        polls += 1
        time.sleep(0.01)
    regions = running.result()
    assert polls > 0  # the upload and the cycle took several polls: the GUI thread was free meanwhile
    assert len(regions) == 3 and logic.layer.roi_for(regions[0].id) is not None
    logic.tag_background()
    report = BackgroundOperation(logic.submit_operation()).wait(30)
    assert report.sent == 1


def test_clicks_go_to_infection_points_after_the_boxes_arrive(mrml, backend, chest_files):
    """Slicer makes every ROI added to the scene the active markups list; after Get suggestions (several ROIs) and
    after each region change, a click in place mode must still go to 'Infection points'."""
    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = open_logic(mrml, backend, "placing")
    interaction = mrml.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    logic.get_suggestions(ct_node, 4)
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 4
    assert logic.placing_infection_points()
    assert interaction.GetCurrentInteractionMode() == interaction.Place and interaction.GetPlaceModePersistence()
    interaction.SetCurrentInteractionMode(interaction.ViewTransform)  # the clinician left place mode to pan
    mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "a box of the clinician's")
    logic.next_region()
    assert logic.placing_infection_points() and interaction.GetCurrentInteractionMode() == interaction.Place


def run_recording(operation) -> tuple[object, list[str]]:
    """Run ``operation`` in place like ``run_now``, recording the name of each function it handed off."""
    handed_off, outcome = [], (None, None)
    while True:
        try:
            request = operation.send(outcome[0]) if outcome[1] is None else operation.throw(outcome[1])
        except StopIteration as stop:
            return stop.value, handed_off
        handed_off.append(request.function.__name__)
        try:
            outcome = (request(), None)
        except Exception as error:  # noqa: BLE001 - handed back as the operation's own driver does
            outcome = (None, error)


def test_send_volume_hashes_and_writes_in_the_worker_and_hashes_once(mrml, backend, chest_files):
    """Hashing and the gzip NRRD are handed off like requests (the widget runs them in its worker thread, the GUI
    thread only takes their results); an unchanged CT is not hashed again, an edited one is."""
    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = open_logic(mrml, backend, "send-off-thread")
    volume_id, handed_off = run_recording(logic.send_volume_operation(ct_node))
    assert handed_off == ["content_hash", "write_nrrd", "upload_volume"]
    again, handed_off = run_recording(logic.send_volume_operation(ct_node))
    assert (again, handed_off) == (volume_id, [])  # no hash, no file, no request
    regions, handed_off = run_recording(logic.get_suggestions_operation(ct_node, 2))
    assert "content_hash" not in handed_off and len(regions) == 2
    slicer.util.arrayFromVolume(ct_node)[0, 0, 0] += 100
    slicer.util.arrayFromVolumeModified(ct_node)
    edited, handed_off = run_recording(logic.send_volume_operation(ct_node))
    assert handed_off == ["content_hash", "write_nrrd", "upload_volume"] and edited != volume_id
    assert not any(logic._downloads.iterdir())  # upload and heat-map files are deleted once used


def test_effort_stops_while_the_clinician_is_away(mrml, backend, chest_files, clock):
    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test", clock=clock)
    logic.connect(backend)
    logic.open_project("effort", settings=TINY_MODEL)
    logic.get_suggestions(ct_node, 2)
    clock.advance(4)
    logic.pause_effort()  # the clinician left the module (or closed the scene, or quit)
    clock.advance(600)
    assert logic.effort_seconds() == 4
    logic.resume_effort()
    clock.advance(3)
    logic.tag_background()
    assert logic.effort_seconds() == 7 and logic.book.answers()[0].effort_seconds == 7


def test_a_deleted_box_is_drawn_again_and_a_heat_map_is_not_a_ct(mrml, backend, chest_files):
    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = open_logic(mrml, backend, "deleted-box")
    regions = logic.get_suggestions(ct_node, 3)
    mrml.scene.RemoveNode(logic.layer.roi_for(regions[0].id))  # the clinician deleted the current box
    logic.tag_background()  # marks it answered: no KeyError, the box is back, drawn answered
    assert logic.layer.missing_rois(regions) == [] and logic.placing_infection_points()
    assert logic.layer.roi_for(regions[0].id).GetAttribute("CovidActiveLearning.Answered") == "1"
    assert logic.layer.highlighted_id() == regions[1].id
    heatmap = mrml.scene.GetNodeByID(logic.layer.heatmap_ids()[0])
    with pytest.raises(UserFacingError, match="uncertainty heat map, not a CT"):
        logic.get_suggestions(heatmap, 2)


def test_the_panel_enables_what_can_run_and_close_removes_the_temporary_folder(mrml, backend, chest_files):
    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")

    def enabled(states) -> set[str]:
        return {name for name, value in states.as_dict().items() if value}

    assert enabled(logic.actions()) == {"connect"}
    logic.connect(backend)
    logic.open_project("actions", settings=TINY_MODEL)
    logic.get_suggestions(ct_node, 2)
    assert enabled(logic.actions()) == {
        "connect",
        "send_volume",
        "get_suggestions",
        "navigate",
        "background",
        "start_training",
        "predict",
        "learning_curve",
        "list_volumes",
        "train_3d",
        "predict_3d",
    }  # no prediction yet: nothing to correct or send as an expert label
    logic.tag_background()
    assert {"undo", "submit"} <= enabled(logic.actions())
    assert enabled(logic.actions(busy=True, training=True)) == {"navigate", "background", "undo", "cancel_training"}
    logic.submit()
    assert not {"undo", "submit"} & enabled(logic.actions())
    folder = logic._downloads
    assert folder.is_dir()
    logic.close()
    assert not folder.exists()


def test_a_training_watch_follows_the_job_to_its_end_without_blocking(mrml, backend, chest_files):
    from CovidActiveLearningLib.training import TrainingWatch

    ct_node = read_volume(mrml.scene, chest_files[0])
    logic = open_logic(mrml, backend, "watch")
    logic.get_suggestions(ct_node, 2)
    logic.tag_background()
    logic.submit()
    watch = TrainingWatch(logic.poll_training_operation)
    assert watch.poll() is None  # nothing queued: nothing to ask
    logic.start_training(steps=2)
    watch.start()
    statuses, deadline = [], time.monotonic() + TRAINING_TIMEOUT_S
    while watch.active:
        assert time.monotonic() < deadline
        status = watch.poll()  # returns at once; a status when a request came back
        if status is not None:
            statuses.append(status)
        time.sleep(0.05)
    assert statuses[-1].status.value == "done" and statuses[-1].fraction == 1.0
