"""A browser app hosting the module's core logic with 3D Slicer's own views: the end-to-end test harness.

trame-slicer builds Slicer's slice views (``vtkMRMLSliceLogic``, the slice view interactor style and the
displayable managers: volumes, the ROI and point markups widgets, segmentations, the colour legend) on a
slicer-core scene and streams them to the browser, rendering offscreen through EGL. Into that scene this
app puts the same :class:`CovidActiveLearningCoreLogic` the Slicer module uses, driven as the module's
widget drives it (``CovidActiveLearning/CovidActiveLearning.py``): a panel of the same actions, a
``PointPositionDefinedEvent`` observer that takes the click named by the event after the event, the same
keyboard shortcuts on the views, backend requests polled off the GUI loop. No logic lives here; a click in
the browser goes through Slicer's markups widget exactly as a click in the desktop application does.

What this app cannot show (the Qt panel, PythonQt's threads) is listed in ``Testing/README.md``.

Run it by hand with ``.venv/bin/python -m harness.app --port 8080`` from ``Testing/`` and open the printed address.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # offscreen rendering, no X server
os.environ.setdefault("TRAME_ARGS", "--server")  # trame reads its options from here, not from the test runner's

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "CovidActiveLearning"))  # CovidActiveLearningLib, as Slicer's module path provides it

import slicer
import vtk
from trame.app import get_server
from trame.ui.vuetify3 import SinglePageWithDrawerLayout
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3
from trame_slicer.core import SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.views import ViewLayoutDefinition

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.logic import DEFAULT_URL, CovidActiveLearningCoreLogic
from CovidActiveLearningLib.mrml import MrmlContext
from CovidActiveLearningLib.operations import BackgroundOperation
from CovidActiveLearningLib.prediction import PredictionModel
from CovidActiveLearningLib.shortcuts import action_for_key, shortcut_for
from CovidActiveLearningLib.suggestions import HEATMAP_OPACITY
from CovidActiveLearningLib.training import MODES_3D, TrainingWatch
from CovidActiveLearningLib.volumes import read_dicom_series, read_volume

VIEWS = {
    "Red": ViewLayoutDefinition.axial_view(),
    "Yellow": ViewLayoutDefinition.sagittal_view(),
    "Green": ViewLayoutDefinition.coronal_view(),
}
OPERATION_POLL_S = 0.05  # as the widget's 50 ms timer
POLL_S = 1.0  # training progress and the effort line, as the widget's 1 s timer
DRAWER_WIDTH = 380
BACKEND_DEFAULT_MODE = "backend default"  # the 3D mode choice that sends none, as in the module's panel
KEY_EVENT_ARGUMENTS = "[$event.key, $event.shiftKey, $event.ctrlKey, $event.altKey, $event.repeat]"  # for on_key


def harness_context(app: SlicerApp) -> MrmlContext:
    """The core logic's view of a trame-slicer application: its scene and the module logics it registered.

    trame-slicer registers MRML's colour logic, not Slicer's (``vtkSlicerColorLogic``, whose colour-legend
    functions are static); the legend's node class is registered here as Slicer's colour logic registers it.
    """
    app.scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    logics = app.app_logic
    return MrmlContext(
        app.scene,
        logics.GetModuleLogic("Volumes"),
        logics.GetModuleLogic("Segmentations"),
        logics.GetModuleLogic("Markups"),
        slicer.vtkSlicerColorLogic(),
        slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(app.scene),
    )


class HarnessApp:
    """The panel and views of the module in a browser (see the module docstring).

    Args:
        server: a trame server (default: a new one named ``covidal-harness``); build the app on the thread and
            event loop that will run it, since trame-slicer schedules its views there.
        annotator: the name answers are stored under.
    """

    def __init__(self, server=None, annotator: str = "clinician") -> None:
        self.server = server or get_server("covidal-harness", client_type="vue3")
        self.state = self.server.state
        self.slicer = SlicerApp()
        register_rca_factories(self.slicer.view_manager, self.server)
        for view in VIEWS.values():
            self.slicer.view_manager.create_view(view)
        self.context = harness_context(self.slicer)
        self.logic = CovidActiveLearningCoreLogic(self.context, annotator=annotator)
        self.volume = None  # the CT node, as the panel's CT selector holds it
        self._running = None  # (BackgroundOperation, on_done) of the action waiting for the backend
        self.training = TrainingWatch(self.logic.poll_training_operation)
        self._points_node = None
        self._points_observer = None
        self._build_ui()
        self.slicer.scene.AddObserver(slicer.vtkMRMLScene.StartCloseEvent, lambda *_: self.logic.pause_effort())
        self.server.controller.on_client_exited.add(lambda *_, **__: self.logic.pause_effort())
        self.server.controller.on_client_connected.add(lambda *_, **__: self.logic.resume_effort())
        self._schedule(POLL_S, self._poll)
        self.refresh()

    # Views

    def slice_views(self) -> dict:
        """``{"Red": SliceView, ...}``: trame-slicer's views around Slicer's slice logics."""
        return {view.get_view_node().GetLayoutName(): view for view in self.slicer.view_manager.get_slice_views()}

    def slice_node(self, name: str = "Red"):
        return self.slice_views()[name].get_view_node()

    # Panel actions (the module widget's, one for one)

    def on_load(self):
        """*File > Add Data* / the DICOM module: a volume file, or a folder holding one DICOM series."""
        self._act(self._load)

    def _load(self):
        path = Path(self.state.ct_path.strip()).expanduser()
        if not self.state.ct_path.strip() or not path.exists():
            raise UserFacingError(f"No file or folder at '{self.state.ct_path}'.")
        name = path.name.split(".")[0] or "CT"
        node = (
            read_dicom_series(self.slicer.scene, path, name)
            if path.is_dir()
            else read_volume(self.slicer.scene, path, name)
        )
        node.CreateDefaultDisplayNodes()
        self.volume = node
        for view in self.slice_views().values():
            view.set_background_volume_id(node.GetID())
            view.set_foreground_volume_id(None)
            view.reset_view()
        self.state.volume_status = f"Loaded '{node.GetName()}'."

    def on_close_scene(self):
        """*File > Close Scene*."""
        self._act(self._close_scene)

    def _close_scene(self):
        self.slicer.scene.Clear(0)
        self.logic.scene_closed()
        self.volume = None
        self.training.stop()
        for key in (
            "volume_status",
            "submit_status",
            "training_status",
            "infected",
            "export_status",
            "expert_label_status",
            "notice",
        ):
            self.state[key] = ""
        self.state.training_progress = 0

    def on_connect(self):
        self._run(
            self.logic.connect_operation(self.state.backend_url),
            lambda health: self.state.update(
                {"backend_status": f"Connected to covidal {health['version']} at {self.logic.client.base_url}."}
            ),
        )

    def _in_project(self, operation):
        return self.logic.in_project_operation(self.state.project_name, int(self.state.regions_per_slice), operation)

    def on_send_volume(self):
        self._run(
            self._in_project(self.logic.send_volume_operation(self.volume)),
            lambda volume_id: self.state.update({"volume_status": f"The backend has the volume (its id {volume_id})."}),
        )

    def on_list_volumes(self):
        self._run(self.logic.project_volumes_operation(), self._show_volumes)

    def _show_volumes(self, volumes):
        self.state.project_volumes = [volume.text() for volume in volumes]

    def _list_volumes(self):
        """The project's volumes again after an action that changed them (the module does it quietly)."""
        self._run(self.logic.project_volumes_operation(), self._show_volumes)

    def on_get_suggestions(self):
        operation = self.logic.get_suggestions_operation(self.volume, int(self.state.regions_per_cycle) or None)
        self._run(
            self._in_project(operation),
            lambda regions: self.state.update({"volume_status": f"{len(regions)} regions to answer in this cycle."}),
        )

    def on_next(self):
        self._act(self.logic.next_region)

    def on_previous(self):
        self._act(self.logic.previous_region)

    def on_background(self):
        self._act(self.logic.tag_background)

    def on_undo(self):
        self._act(lambda: self.state.update({"notice": self.logic.undo() or "Nothing to undo."}))

    def on_submit(self):
        train, steps = bool(self.state.train_after_submit), int(self.state.training_steps) or None
        self._run(self.logic.submit_and_train_operation(train, steps), self._submitted)

    def _submitted(self, outcome):
        report, job_id = outcome
        self.state.submit_status = report.summary()
        if job_id is not None:
            self._training_queued(job_id)

    def on_start_training(self):
        self._run(self.logic.start_training_operation(int(self.state.training_steps) or None), self._training_queued)

    def _training_queued(self, job_id):
        self.training.start()
        self.state.training_status = f"Training job {job_id} queued."

    def on_cancel_training(self):
        self._run(self.logic.cancel_training_operation(), None)

    def on_train_3d(self):
        mode = self.state.mode_3d
        operation = self.logic.start_3d_training_operation(None if mode == BACKEND_DEFAULT_MODE else mode)
        self._run(operation, self._training_queued)

    def on_predict(self):
        self._run(self.logic.import_prediction_operation(self.volume), self._show_prediction)

    def on_predict_3d(self):
        self._run(self.logic.import_prediction_operation(self.volume, PredictionModel.THREE_D), self._show_prediction)

    def _show_prediction(self, prediction):
        self.state.infected = prediction.summary()

    def on_correct(self):
        """The scene readied for Slicer's Segment Editor module (which the browser does not have: the module's
        widget switches to it here)."""

        def ready():
            target = self.logic.correct_in_segment_editor()
            self.state.expert_label_status = (
                f"Ready for the Segment Editor: '{target.segmentation_node.GetName()}' over "
                f"'{target.source_volume.GetName()}'."
            )

        self._act(ready)

    def on_use_as_label(self):
        self._run(self.logic.use_as_expert_label_operation(), self._label_sent)

    def _label_sent(self, label):
        self.state.expert_label_status = (
            f"Expert label of volume {label['volume_id']} stored ({label['foreground_voxels']} infected voxels)."
        )
        self._list_volumes()

    def on_export(self):
        self._act(
            lambda: self.state.update(
                {
                    "export_status": "Exported: "
                    + ", ".join(str(path) for path in self.logic.export(self.state.export_folder, self.volume).paths())
                }
            )
        )

    # Clicks and keys in the views

    @vtk.calldata_type(vtk.VTK_INT)
    def _on_point_defined(self, caller, event, index):
        # As the module widget: the event names the point; it is taken after the event, by id, so a preview
        # point the markups widget adds meanwhile is never taken for it.
        point_id = self.logic.placed_point_id(index)
        if point_id is not None:
            asyncio.get_event_loop().call_soon(self._accept_placed_point, point_id)

    def _accept_placed_point(self, point_id):
        try:
            self.logic.accept_placed_point(point_id)
            self.state.notice = ""
        except UserFacingError as error:  # a click outside the box: a notice, nothing to dismiss
            self.state.notice = str(error)
        self.refresh()

    def on_key(self, key: str, shift: bool, control: bool, alt: bool, repeat: bool):
        """A key pressed over the views. Like the module's Qt shortcuts on Slicer's main window, it is taken once
        per press where it bubbles up, above the views (trame-rca hands each view its own copies of a key press);
        the views' own keys (``b``, ``f``, arrows, ...) still reach Slicer's slice views."""
        action = None if repeat else action_for_key(key, shift, control, alt)
        handlers = {"background": self.on_background, "next": self.on_next, "previous": self.on_previous}
        if action is not None:
            handlers[action]()

    # Running actions

    def _act(self, action):
        """A quick action: its UserFacingError shows in the panel's error line."""
        try:
            action()
            self.state.error = ""
        except UserFacingError as error:
            self.state.error = str(error).partition("\n")[0]
        self.refresh()

    def _run(self, operation, on_done):
        """An action that waits for the backend: its requests run in worker threads, its scene code here."""
        if self._running is not None:
            self.state.error = "Still waiting for the backend's answer to the last action."
            return
        try:
            self._running = (BackgroundOperation(operation), on_done)
            self.state.error = ""
        except UserFacingError as error:
            self.state.error = str(error).partition("\n")[0]
        self.refresh()
        if self._running is not None:
            self._schedule(OPERATION_POLL_S, self._poll_operation)

    def _poll_operation(self):
        running, on_done = self._running
        try:
            if not running.poll():
                self._schedule(OPERATION_POLL_S, self._poll_operation)
                return
            self._running = None
            result = running.result()
            if on_done:
                on_done(result)
        except UserFacingError as error:
            self.state.error = str(error).partition("\n")[0]
        except Exception as error:
            self.state.error = f"Unexpected error: {error!r}"
            raise
        finally:
            self.refresh()

    def _poll(self):
        """Every second: the training job's progress and the effort line."""
        status = self.training.poll()
        if isinstance(status, UserFacingError):
            self.state.training_status = str(status)
        elif status is not None:
            self.state.training_progress = round(100 * status.fraction)
            self.state.training_status = status.text
            self.refresh()
        self.state.progress = self.logic.progress_line()
        self.state.flush()
        self._schedule(POLL_S, self._poll)

    @staticmethod
    def _schedule(delay: float, callback) -> None:
        asyncio.get_event_loop().call_later(delay, callback)

    # Display

    def refresh(self):
        """The current region, the answers, the progress and which buttons work, after every action."""
        state = self.state
        state.current_region = self.logic.current_region_text()
        state.answers = [
            {
                "rank": row.rank,
                "region": row.suggestion_id,
                "answer": str(row.kind),
                "points": row.points,
                "effort": f"{row.effort_seconds:.0f}",
                "status": row.status_text,
            }
            for row in self.logic.answer_rows()
        ]
        state.progress = self.logic.progress_line()
        state.enabled = self.logic.actions(busy=self._running is not None, training=self.training.active).as_dict()
        state.placing = (
            "Clicks in the views go to 'Infection points'."
            if self.logic.placing_infection_points()
            else "Clicks in the views do not place infection points."
        )
        self._observe_points()
        state.flush()

    def close(self):
        """Release the views' graphics resources on this (the rendering) thread."""
        for view in self.slice_views().values():
            view.finalize()

    def _observe_points(self):
        node = self.logic.infection_points_node()
        if node is self._points_node:
            return
        if self._points_node is not None and self._points_observer is not None:
            self._points_node.RemoveObserver(self._points_observer)
        self._points_observer = node.AddObserver(
            slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._on_point_defined
        )
        self._points_node = node

    def _build_ui(self):
        self.state.update(
            {
                "ct_path": "",
                "backend_url": DEFAULT_URL,
                "project_name": "covid",
                "regions_per_slice": 16,
                "regions_per_cycle": 0,  # 0: the backend's default, as in the module's panel
                "training_steps": 0,
                "train_after_submit": True,
                "export_folder": "",
                "backend_status": "Not connected.",
                "volume_status": "",
                "current_region": "",
                "progress": "",
                "notice": "",
                "error": "",
                "submit_status": "",
                "training_status": "",
                "training_progress": 0,
                "infected": "",
                "export_status": "",
                "expert_label_status": "",
                "project_volumes": [],
                "mode_3d": BACKEND_DEFAULT_MODE,
                "answers": [],
                "enabled": {},
                "placing": "",
                "heatmap_opacity": HEATMAP_OPACITY,
            }
        )
        self.state.change("heatmap_opacity")(self._on_heatmap_opacity)
        with SinglePageWithDrawerLayout(self.server) as layout:
            layout.title.set_text("Covid Active Learning: browser harness")
            layout.drawer.width = DRAWER_WIDTH
            with layout.drawer, html.Div(classes="pa-2 d-flex flex-column ga-1", style="font-size: 13px"):
                self._panel()
            with (
                layout.content,
                html.Div(
                    id="views",
                    style="display: flex; height: calc(100vh - 64px)",
                    keydown=(self.on_key, KEY_EVENT_ARGUMENTS),
                ),
            ):
                with html.Div(id="view-Red", style="flex: 2; display: flex; position: relative"):
                    self._view("Red")
                with html.Div(style="flex: 1; display: flex; flex-direction: column"):
                    for name in ("Yellow", "Green"):
                        with html.Div(id=f"view-{name}", style="flex: 1; display: flex; position: relative"):
                            self._view(name)

    def _on_heatmap_opacity(self, heatmap_opacity, **_):
        """The panel's slider, as the module's: the foreground opacity of every slice view."""
        for view in self.slice_views().values():
            view.set_foreground_opacity(float(heatmap_opacity))

    def _view(self, name: str):
        client.ServerTemplate(name=self.server.translator.translate_key(VIEWS[name].singleton_tag))

    def _panel(self):
        def button(text, handler, enabled_by, **kwargs):
            v3.VBtn(text, click=handler, disabled=(f"!enabled.{enabled_by}",), size="small", **kwargs)

        def field(label, key, **kwargs):
            v3.VTextField(label=label, v_model=(key,), density="compact", hide_details=True, **kwargs)

        def line(key, **kwargs):
            html.Div(f"{{{{ {key} }}}}", id=key.replace("_", "-"), **kwargs)

        html.Div("Backend", classes="text-subtitle-2")
        field("URL", "backend_url")
        button("Connect", self.on_connect, "connect")
        line("backend_status")
        html.Div("Project and volume", classes="text-subtitle-2 mt-2")
        field("CT file or DICOM folder", "ct_path")
        with html.Div(classes="d-flex ga-1"):
            v3.VBtn("Load", click=self.on_load, size="small")
            v3.VBtn("Close scene", click=self.on_close_scene, size="small")
        field("Project", "project_name")
        field("Regions per slice", "regions_per_slice", type="number")
        button("Send volume", self.on_send_volume, "send_volume")
        line("volume_status")
        button("List the project's volumes", self.on_list_volumes, "list_volumes")
        html.Div("{{ project_volumes.join('; ') }}", id="project-volumes")
        html.Div("Suggestions", classes="text-subtitle-2 mt-2")
        field("Regions to answer", "regions_per_cycle", type="number")
        button("Get suggestions", self.on_get_suggestions, "get_suggestions")
        with html.Div(classes="d-flex ga-1"):
            button(f"Previous ({shortcut_for('previous').label})", self.on_previous, "navigate")
            button(f"Next ({shortcut_for('next').label})", self.on_next, "navigate")
        line("current_region")
        v3.VSlider(
            label="Heat map opacity",
            v_model=("heatmap_opacity",),
            min=0,
            max=1,
            step=0.05,
            density="compact",
            hide_details=True,
        )
        html.Div("Labelling", classes="text-subtitle-2 mt-2")
        line("placing")
        line("notice", style="color: #c0392b")
        with html.Div(classes="d-flex ga-1"):
            button(f"Background ({shortcut_for('background').label})", self.on_background, "background")
            button("Undo", self.on_undo, "undo")
        v3.VDataTable(items=("answers",), density="compact", hide_default_footer=True, id="answers", items_per_page=-1)
        line("progress")
        html.Div("Submit", classes="text-subtitle-2 mt-2")
        v3.VCheckbox(label="Train after submit", v_model=("train_after_submit",), density="compact", hide_details=True)
        button("Submit", self.on_submit, "submit")
        line("submit_status")
        html.Div("Training", classes="text-subtitle-2 mt-2")
        field("Steps", "training_steps", type="number")
        with html.Div(classes="d-flex ga-1"):
            button("Start training", self.on_start_training, "start_training")
            button("Cancel", self.on_cancel_training, "cancel_training")
        v3.VProgressLinear(model_value=("training_progress",), height=6, id="training-progress")
        line("training_status")
        v3.VSelect(
            label="3D mode",
            v_model=("mode_3d",),
            items=("modes_3d", [BACKEND_DEFAULT_MODE, *MODES_3D]),
            density="compact",
            hide_details=True,
        )
        button("Train 3D model", self.on_train_3d, "train_3d")
        html.Div("Results", classes="text-subtitle-2 mt-2")
        button("Predict", self.on_predict, "predict")
        line("infected")
        field("Export folder", "export_folder")
        button("Export", self.on_export, "export")
        line("export_status")
        button("Show 3D prediction", self.on_predict_3d, "predict_3d")
        with html.Div(classes="d-flex ga-1"):
            button("Correct in Segment Editor", self.on_correct, "correct")
            button("Use as expert label", self.on_use_as_label, "use_as_label")
        line("expert_label_status")
        line("error", style="color: #c0392b")


def main() -> int:
    parser = argparse.ArgumentParser(description="The module's panel and Slicer's views in a browser.")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    app = HarnessApp()
    app.server.start(port=args.port, open_browser=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
