"""CovidActiveLearning: segment COVID-19 lung infection in chest CT by answering suggested regions with single clicks.

The thin Slicer layer: the module's description, its parameter node, a widget that loads
``Resources/UI/CovidActiveLearning.ui`` and forwards every action to the logic, and the logic itself, which is
the Qt-free :class:`CovidActiveLearningLib.logic.CovidActiveLearningCoreLogic`. Every algorithm lives in
``CovidActiveLearningLib``; training runs in the separate ``covidal serve`` backend, so torch never loads in
Slicer. Nothing blocks the interface: backend requests (and hashing and writing a CT for upload) run in a worker
thread as logic operations (``CovidActiveLearningLib.operations``) whose scene changes happen here, on the GUI
thread, when a timer polls them; the backend's start, its installation and training are polled the same way.

The browser harness in ``Testing/harness`` drives the same core logic with Slicer's own views and markups
widgets; this file is the other driver of it, and both take their keys from ``CovidActiveLearningLib.shortcuts``.

Slicer 5.8 and older bundle Python 3.9, which the core cannot run on: this file then imports only
``CovidActiveLearningLib.compat`` and the module's panel shows why it cannot run.
"""

import functools
import time
from pathlib import Path

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from CovidActiveLearningLib.compat import unsupported_reason

UNSUPPORTED = unsupported_reason(slicer_version=slicer.app.applicationVersion)

if UNSUPPORTED is None:  # the core needs Python 3.11 (Slicer 5.10+); see CovidActiveLearningLib/compat.py
    from typing import Annotated

    from slicer import vtkMRMLScalarVolumeNode
    from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

    from CovidActiveLearningLib.backend_process import (
        BackendSource,
        BackendSupervisor,
        checkout_source,
        loopback_port,
    )
    from CovidActiveLearningLib.errors import UserFacingError
    from CovidActiveLearningLib.logic import DEFAULT_URL, CovidActiveLearningCoreLogic
    from CovidActiveLearningLib.mrml import application_context
    from CovidActiveLearningLib.operations import BackgroundOperation
    from CovidActiveLearningLib.prediction import PredictionModel
    from CovidActiveLearningLib.shortcuts import SHORTCUTS, shortcut_for
    from CovidActiveLearningLib.training import MODES_3D, TrainingWatch

POLL_INTERVAL_MS = 1000
OPERATION_POLL_MS = 50
RETRY_INTERVAL_S = 30  # answers a failed Submit kept are sent again this often, quietly
NOTICE_MS = 6000  # how long a refused click's reason stays in the status bar
# Panel buttons and the action of CovidActiveLearningLib.logic.ActionStates that enables each.
BUTTON_ACTIONS = {
    "sendVolumeButton": "send_volume",
    "getSuggestionsButton": "get_suggestions",
    "previousButton": "navigate",
    "nextButton": "navigate",
    "backgroundButton": "background",
    "undoButton": "undo",
    "submitButton": "submit",
    "startTrainingButton": "start_training",
    "cancelTrainingButton": "cancel_training",
    "predictButton": "predict",
    "exportButton": "export",
    "learningCurveButton": "learning_curve",
    "connectButton": "connect",
    "listVolumesButton": "list_volumes",
    "train3dButton": "train_3d",
    "predict3dButton": "predict_3d",
    "correctButton": "correct",
    "useAsLabelButton": "use_as_label",
}
BACKEND_DEFAULT_MODE = "backend default"  # the 3D mode choice that sends none
SHORTCUT_SLOTS = {"background": "onBackground", "next": "onNext", "previous": "onPrevious"}


class CovidActiveLearning(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "Covid Active Learning"
        parent.categories = ["Segmentation"]
        parent.dependencies = ["Volumes", "Markups", "Segmentations", "Colors", "Plots"]
        parent.contributors = ["CovidActiveLearning developers"]
        parent.helpText = UNSUPPORTED or (
            "Segment COVID-19 lung infection in chest CT: the backend suggests small regions, you answer each "
            "with one click on infection or Background (Shift+B), Next (N) / Previous (P); the backend trains from "
            "your points. See the README in the extension's source tree."
        )
        parent.acknowledgementText = (
            "Point supervision and region-based active learning after Laradji et al. (2020, 2021)."
        )


if UNSUPPORTED is None:

    @parameterNodeWrapper
    class CovidActiveLearningParameterNode:
        """The module's settings, saved with the scene (the backend token is not: it stays in the widget)."""

        inputVolume: vtkMRMLScalarVolumeNode
        backendUrl: str = DEFAULT_URL
        backendDevice: Annotated[str, Choice(["cpu", "cuda"])] = "cpu"
        projectName: str = "covid"
        regionsPerSlice: Annotated[int, Choice([4, 9, 16, 25, 36, 49, 64])] = 16  # the backend needs a square
        # 0: the backend's default for its device (GET /defaults, shown in the spin box), sent as no choice at all.
        regionsPerCycle: Annotated[int, WithinRange(0, 500)] = 0
        trainingSteps: Annotated[int, WithinRange(0, 100000)] = 0
        trainAfterSubmit: bool = True
        heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.4
        mode3d: Annotated[str, Choice([BACKEND_DEFAULT_MODE, *MODES_3D])] = BACKEND_DEFAULT_MODE

    # The core logic first: ScriptedLoadableModuleLogic.__init__ calls super().__init__() without arguments,
    # which must reach object, not the core logic (it needs the scene).
    class CovidActiveLearningLogic(CovidActiveLearningCoreLogic, ScriptedLoadableModuleLogic):
        """The Qt-free core logic on the application's scene, plus Slicer's parameter-node handling."""

        def __init__(self):
            ScriptedLoadableModuleLogic.__init__(self)
            CovidActiveLearningCoreLogic.__init__(self, application_context())

        def getParameterNode(self):
            return CovidActiveLearningParameterNode(super().getParameterNode())


def _action(method):
    """A widget action: a UserFacingError becomes a message box, and the panel is refreshed afterwards."""

    @functools.wraps(method)
    def run(self, *args):
        try:
            with slicer.util.WaitCursor():
                method(self, *args)
        except UserFacingError as error:
            _showError(error)
        finally:
            self._refresh()

    return run


def _background(method):
    """A widget action that runs a logic operation in the background: the method returns
    ``(operation, onDone)``; ``onDone(result)`` runs on the GUI thread when the operation has ended."""

    @functools.wraps(method)
    def run(self, *args):
        if self._running is not None:
            slicer.util.showStatusMessage("Still waiting for the backend's answer to the last action.", 3000)
            return
        try:
            operation, onDone = method(self, *args)
        except UserFacingError as error:
            _showError(error)
            return
        self._startOperation(operation, onDone, busy=True)

    return run


def _showError(error):
    """The first line as the message, the rest (a log's tail) behind 'Show Details'."""
    text, _, details = str(error).partition("\n")
    if details:
        slicer.util.errorDisplay(text, detailedText=details)
    else:
        slicer.util.errorDisplay(text)


class CovidActiveLearningWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pointsNode = None
        self._shortcuts = []
        self._backends = None  # BackendSupervisor: the local backend and its installation
        self._training = None  # TrainingWatch of the queued job
        self._running = None  # (BackgroundOperation, onDone, busy) of the action waiting for the backend
        self._lastRetry = time.monotonic()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if UNSUPPORTED:
            label = qt.QLabel(UNSUPPORTED)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CovidActiveLearning.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CovidActiveLearningLogic()
        self._training = TrainingWatch(self.logic.poll_training_operation)
        self._backends = BackendSupervisor(startup_environment=slicer.util.startupEnvironment())
        self._showServedDefaults()
        # As MONAI Label's Slicer module shows its point lists' place buttons (MONAILabelWidget.setup): the compact
        # widget with only its place button; the logic arms persistent place mode at every region change.
        self.ui.placeWidget.buttonsVisible = False
        self.ui.placeWidget.placeButton().show()
        self.ui.placeWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceMultipleMarkups
        for name, action in (
            ("backgroundButton", "background"),
            ("nextButton", "next"),
            ("previousButton", "previous"),
        ):
            button = getattr(self.ui, name)
            button.text = f"{button.text} ({shortcut_for(action).label})"
        buttons = {
            "connectButton": self.onConnect,
            "startBackendButton": self.onStartBackend,
            "installBackendButton": self.onInstallBackend,
            "sendVolumeButton": self.onSendVolume,
            "getSuggestionsButton": self.onGetSuggestions,
            "previousButton": self.onPrevious,
            "nextButton": self.onNext,
            "backgroundButton": self.onBackground,
            "undoButton": self.onUndo,
            "submitButton": self.onSubmit,
            "startTrainingButton": self.onStartTraining,
            "cancelTrainingButton": self.onCancelTraining,
            "predictButton": self.onPredict,
            "exportButton": self.onExport,
            "learningCurveButton": self.onLearningCurve,
            "listVolumesButton": self.onListVolumes,
            "train3dButton": self.onTrain3d,
            "predict3dButton": self.onPredict3d,
            "correctButton": self.onCorrect,
            "useAsLabelButton": self.onUseAsLabel,
        }
        for name, slot in buttons.items():
            getattr(self.ui, name).connect("clicked()", slot)  # no argument: the slots take none
        self.ui.answersTable.connect("cellDoubleClicked(int,int)", self.onAnswerDoubleClicked)
        self.ui.heatmapOpacitySlider.connect(
            "valueChanged(double)", lambda opacity: slicer.util.setSliceViewerLayers(foregroundOpacity=opacity)
        )
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        slicer.app.connect("aboutToQuit()", self.onAboutToQuit)
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)
        self._timer.start()
        self._operationTimer = qt.QTimer()
        self._operationTimer.setInterval(OPERATION_POLL_MS)
        self._operationTimer.connect("timeout()", self._pollOperation)
        self.initializeParameterNode()
        self._refresh()

    def cleanup(self):
        if UNSUPPORTED:
            return
        self._timer.stop()
        self._operationTimer.stop()
        self._removeShortcuts()
        self._backends.stop()
        self.removeObservers()
        self.logic.close()

    def enter(self):
        if UNSUPPORTED:
            return
        self.initializeParameterNode()
        self._installShortcuts()
        self.logic.resume_effort()

    def exit(self):
        if UNSUPPORTED:
            return
        self.logic.pause_effort()  # time outside the module is not effort
        self._removeShortcuts()
        self.setParameterNode(None)

    def onAboutToQuit(self):
        self.logic.pause_effort()
        self._backends.stop()

    def onSceneStartClose(self, caller, event):
        self.logic.pause_effort()
        self.setParameterNode(None)
        self._training.stop()

    def onSceneEndClose(self, caller, event):
        self.logic.scene_closed()
        if self.parent.isEntered:
            self.initializeParameterNode()
        self._refresh()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, parameterNode):
        if self._parameterNode and self._parameterNodeGuiTag:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode, self._parameterNodeGuiTag = parameterNode, None
        if parameterNode:
            self._parameterNodeGuiTag = parameterNode.connectGui(self.ui)

    # Backend

    @_background
    def onConnect(self):
        return self.logic.connect_operation(
            self._parameterNode.backendUrl, self.ui.tokenLineEdit.text or None
        ), self._showConnected

    def _showConnected(self, health):
        self.ui.backendStatusLabel.text = f"Connected to covidal {health['version']} at {self.logic.client.base_url}."
        self._offerStrategies()
        self._showServedDefaults()

    def _offerStrategies(self):
        """The connected backend's strategies in the Strategy choice (a new project's), the shown one kept while
        offered, else the backend's default."""
        names = list(self.logic.strategies.names)
        box = self.ui.strategyComboBox
        chosen = self.logic.strategies.offered(box.currentText)
        box.clear()
        box.addItems(names)
        box.currentIndex = names.index(chosen)

    def _showServedDefaults(self):
        """At 0, the spin boxes say what the backend gives (its defaults are known once connected)."""
        served = self.logic.served or {}
        for spinBox, key in (
            (self.ui.regionCountSpinBox, "regions_per_cycle"),
            (self.ui.trainingStepsSpinBox, "steps"),
        ):
            spinBox.specialValueText = f"backend default ({served[key]})" if key in served else "backend default"

    @_action
    def onStartBackend(self):
        if self._backends.is_running():
            self.ui.backendStatusLabel.text = self._backends.request_stop()
        elif not self._backends.is_installed():
            slicer.util.infoDisplay("The backend is not installed yet: install it first.")
            self.onInstallBackend()
        else:
            parameters = self._parameterNode
            self.ui.backendStatusLabel.text = self._backends.start(parameters.backendUrl, parameters.backendDevice)

    @_action
    def onInstallBackend(self):
        plan = self._backends.plan_install(checkout_source() or self._askForSource(), self._askForPython)
        question = (
            f"Install the training backend into its own Python environment, "
            f"{self._backends.environment.folder}? pip downloads torch, MONAI and FastAPI (a few GB); "
            "Slicer's own Python is left untouched. These commands will run:\n\n" + plan.text()
        )
        if slicer.util.confirmOkCancelDisplay(question, windowTitle="Install the backend"):
            self.ui.backendStatusLabel.text = self._backends.start_install(plan)

    def _askForSource(self):
        path = qt.QFileDialog.getOpenFileName(
            self.parent,
            "Choose the backend: server_training/pyproject.toml or a covidal wheel",
            "",
            "Backend (pyproject.toml covidal-*.whl)",
        )
        if not path:
            raise UserFacingError("Installation cancelled: no backend was chosen.")
        return BackendSource.from_path(Path(path).parent if Path(path).name == "pyproject.toml" else path)

    def _askForPython(self):
        path = qt.QFileDialog.getOpenFileName(
            self.parent, "No Python 3.11+ found: choose one to create the backend's environment"
        )
        return Path(path) if path else None

    # Project, volume, suggestions

    def _inProject(self, operation):
        """Open the project named in the panel, then run ``operation`` (an operation of the logic)."""
        parameters = self._parameterNode
        return self.logic.in_project_operation(
            parameters.projectName, parameters.regionsPerSlice, operation, self.ui.strategyComboBox.currentText or None
        )

    @_background
    def onSendVolume(self):
        return self._inProject(self.logic.send_volume_operation(self._parameterNode.inputVolume)), self._volumeSent

    def _volumeSent(self, volumeId):
        self.ui.volumeStatusLabel.text = f"The backend has the volume (its id {volumeId})."
        self._listVolumes()

    @_background
    def onListVolumes(self):
        return self.logic.project_volumes_operation(), self._showVolumes

    def _listVolumes(self):
        """The project's volumes again, quietly, after an action that changed them."""
        self._startOperation(self.logic.project_volumes_operation(), self._showVolumes, busy=False)

    def _showVolumes(self, volumes):
        self.ui.projectVolumesList.clear()
        for volume in volumes:
            self.ui.projectVolumesList.addItem(volume.text())

    @_background
    def onGetSuggestions(self):
        operation = self.logic.get_suggestions_operation(
            self._parameterNode.inputVolume, self._parameterNode.regionsPerCycle or None
        )
        return self._inProject(operation), lambda regions: setattr(
            self.ui.volumeStatusLabel, "text", f"{len(regions)} regions to answer in this cycle."
        )

    @_action
    def onNext(self):
        self.logic.next_region()

    @_action
    def onPrevious(self):
        self.logic.previous_region()

    @_action
    def onAnswerDoubleClicked(self, row, column):
        self.logic.go_to_region(int(self.ui.answersTable.item(row, 1).text()))

    # Labelling

    @vtk.calldata_type(vtk.VTK_INT)
    def onPointPlaced(self, caller, event, index):
        # The event names the point by its index; in persistent place mode the markups widget adds a preview point
        # on the next mouse move, so the point is remembered by id now and taken after the event (the logic may
        # remove it, which is not safe while the markups widget is still placing it).
        pointId = self.logic.placed_point_id(index)
        if pointId is not None:
            qt.QTimer.singleShot(0, lambda: self._acceptPlacedPoint(pointId))

    def _acceptPlacedPoint(self, pointId):
        try:
            self.logic.accept_placed_point(pointId)
            self._notice("")
        except UserFacingError as error:  # a click outside the box: said in the panel, no dialog to dismiss
            self._notice(str(error))
        self._refresh()

    def _notice(self, text):
        self.ui.labellingNoticeLabel.text = text
        if text:
            slicer.util.showStatusMessage(text, NOTICE_MS)

    @_action
    def onBackground(self):
        self.logic.tag_background()

    @_action
    def onUndo(self):
        undone = self.logic.undo()
        slicer.util.showStatusMessage(f"Undone: {undone}" if undone else "Nothing to undo.", 3000)

    @_background
    def onSubmit(self):
        parameters = self._parameterNode
        operation = self.logic.submit_and_train_operation(parameters.trainAfterSubmit, parameters.trainingSteps or None)
        return operation, self._submitted

    def _submitted(self, outcome):
        report, jobId = outcome
        self.ui.submitStatusLabel.text = report.summary()
        if jobId is not None:
            self._trainingQueued(jobId)

    # Training and results

    @_background
    def onStartTraining(self):
        return self.logic.start_training_operation(self._parameterNode.trainingSteps or None), self._trainingQueued

    def _trainingQueued(self, jobId):
        self._training.start()
        self.ui.trainingStatusLabel.text = f"Training job {jobId} queued."

    @_background
    def onCancelTraining(self):
        return self.logic.cancel_training_operation(), None

    @_background
    def onTrain3d(self):
        mode = self._parameterNode.mode3d
        operation = self.logic.start_3d_training_operation(None if mode == BACKEND_DEFAULT_MODE else mode)
        return operation, self._trainingQueued

    @_background
    def onPredict(self):
        return self.logic.import_prediction_operation(self._parameterNode.inputVolume), self._showPrediction

    @_background
    def onPredict3d(self):
        operation = self.logic.import_prediction_operation(self._parameterNode.inputVolume, PredictionModel.THREE_D)
        return operation, self._showPrediction

    def _showPrediction(self, prediction):
        self.ui.infectedVolumeLabel.text = prediction.summary()

    @_action
    def onCorrect(self):
        target = self.logic.correct_in_segment_editor()  # the scene's Segment Editor parameter node, ready
        slicer.util.selectModule("SegmentEditor")
        # Its widget takes that node when it is entered; set again here in case it kept another parameter node.
        editor = slicer.modules.SegmentEditorWidget.editor
        editor.setSegmentationNode(target.segmentation_node)
        editor.setSourceVolumeNode(target.source_volume)
        editor.setCurrentSegmentID(target.segment_id)

    @_background
    def onUseAsLabel(self):
        return self.logic.use_as_expert_label_operation(), self._labelSent

    def _labelSent(self, label):
        self.ui.expertLabelStatusLabel.text = (
            f"Expert label of volume {label['volume_id']} stored ({label['foreground_voxels']} infected voxels)."
        )
        self._listVolumes()

    @_action
    def onExport(self):
        files = self.logic.export(self.ui.exportPathLineEdit.currentPath, self._parameterNode.inputVolume)
        slicer.util.infoDisplay("Exported:\n" + "\n".join(str(path) for path in files.paths()))

    @_background
    def onLearningCurve(self):
        return self.logic.update_learning_curve_operation(), slicer.modules.plots.logic().ShowChartInLayout

    # Polling and display

    def _poll(self):
        """Every second: the backend's installation or start, the training job, the effort counter."""
        poll = self._backends.poll()
        if poll.log is not None:
            self._showLog(poll.log)
        if poll.status:
            self.ui.backendStatusLabel.text = poll.status
        self.ui.startBackendButton.text = "Stop local backend" if self._backends.is_running() else "Start local backend"
        if poll.error:
            _showError(poll.error)
        if poll.ready_url:
            self._connectTo(poll.ready_url)
        self._showTraining(self._training.poll())
        self._retryUnsent()
        self.ui.progressLabel.text = self.logic.progress_line()

    def _retryUnsent(self):
        if self._running is None and self.logic.has_unsent() and time.monotonic() - self._lastRetry > RETRY_INTERVAL_S:
            self._lastRetry = time.monotonic()
            self._startOperation(
                self.logic.submit_operation(),
                lambda report: setattr(self.ui.submitStatusLabel, "text", f"Sent again: {report.summary()}"),
                busy=False,
            )

    def _startOperation(self, operation, onDone, busy):
        self._running = (BackgroundOperation(operation), onDone, busy)
        self._operationTimer.start()
        if busy:
            qt.QApplication.setOverrideCursor(qt.Qt.BusyCursor)
        self._refresh()

    @_background
    def _connectTo(self, url):
        return self.logic.connect_operation(url), self._showConnected

    def _pollOperation(self):
        """Every 50 ms while an action waits for the backend: its scene changes and its result, here."""
        running, onDone, busy = self._running
        try:
            if not running.poll():
                return
            self._operationTimer.stop()
            self._running = None
            if busy:
                qt.QApplication.restoreOverrideCursor()
            result = running.result()
            if onDone:
                onDone(result)
        except UserFacingError as error:
            _showError(error)
        finally:
            self._refresh()

    def _showTraining(self, status):
        if isinstance(status, UserFacingError):  # the backend may be restarting: keep polling, say why nothing moves
            self.ui.trainingStatusLabel.text = str(status)
        elif status is not None:
            self.ui.trainingProgressBar.value = round(100 * status.fraction)
            self.ui.trainingStatusLabel.text = status.text
            self._refresh()

    def _showLog(self, text):
        if self.ui.backendLogTextEdit.toPlainText() != text:
            self.ui.backendLogTextEdit.setPlainText(text)
            self.ui.backendLogTextEdit.moveCursor(qt.QTextCursor.End)

    def _refresh(self):
        """The current region, the answers table, the progress and which buttons work, after every action."""
        self.ui.currentRegionLabel.text = self.logic.current_region_text()
        rows = self.logic.answer_rows()
        table = self.ui.answersTable
        table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            cells = (row.rank, row.suggestion_id, row.kind, row.points, f"{row.effort_seconds:.0f}", row.status_text)
            for column, value in enumerate(cells):
                table.setItem(index, column, qt.QTableWidgetItem(str(value)))
        states = self.logic.actions(
            busy=self._running is not None and self._running[2], training=self._training.active
        ).as_dict()
        for name, action in BUTTON_ACTIONS.items():
            getattr(self.ui, name).enabled = states[action]
        self.ui.placeWidget.enabled = states["background"]
        # Heat maps are volumes too: keep them out of the CT selector.
        self.ui.inputVolumeSelector.sortFilterProxyModel().hiddenNodeIDs = self.logic.layer.heatmap_ids()
        self.ui.progressLabel.text = self.logic.progress_line()
        self._observePoints()

    def _observePoints(self):
        """Watch the 'Infection points' list (the logic creates it again if the user deleted it)."""
        node = self.logic.infection_points_node()
        if node is not self._pointsNode:
            if self._pointsNode is not None:
                self.removeObserver(
                    self._pointsNode, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointPlaced
                )
            self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onPointPlaced)
            self._pointsNode = node
            self.ui.placeWidget.setCurrentNode(node)

    def _installShortcuts(self):
        for shortcut in SHORTCUTS:
            key = qt.QShortcut(qt.QKeySequence(shortcut.qt_sequence), slicer.util.mainWindow())
            key.connect("activated()", getattr(self, SHORTCUT_SLOTS[shortcut.action]))
            self._shortcuts.append(key)

    def _removeShortcuts(self):
        for shortcut in self._shortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
        self._shortcuts = []


class CovidActiveLearningTest(ScriptedLoadableModuleTest):
    """In Slicer (Reload and Test, and ctest in an extension build): what only the application can show. The
    Qt-free logic is tested headless with pytest against a real backend (Testing/Python), and with Slicer's own
    views and markups widgets in a browser (the top-level Testing/harness); neither has Qt, this does."""

    def runTest(self):
        if UNSUPPORTED:
            self.skipTest(UNSUPPORTED)
        slicer.mrmlScene.Clear()
        self.test_parameter_defaults_and_clear_refusals()
        slicer.mrmlScene.Clear()
        self.test_the_panel_places_clicks_in_infection_points()
        slicer.mrmlScene.Clear()
        self.test_correct_opens_the_infection_segment_in_the_segment_editor()

    def test_parameter_defaults_and_clear_refusals(self):
        import numpy as np

        logic = CovidActiveLearningLogic()
        parameters = logic.getParameterNode()
        self.assertEqual(loopback_port(parameters.backendUrl), 8765)
        volume = slicer.util.addVolumeFromArray(np.full((4, 32, 32), -800, np.int16), name="chest")
        with self.assertRaisesRegex(UserFacingError, "Connect to the backend first"):
            logic.send_volume(volume)
        with self.assertRaisesRegex(UserFacingError, "Get suggestions first"):
            logic.tag_background()
        with self.assertRaisesRegex(UserFacingError, "Get suggestions first"):
            logic.add_point_ras((0.0, 0.0, 0.0))
        self.assertIsNone(logic.undo())
        states = logic.actions()
        self.assertFalse(states.send_volume or states.submit or states.navigate or states.export)
        self.assertIs(logic.infection_points_node(), logic.infection_points_node())
        logic.close()

    def test_the_panel_places_clicks_in_infection_points(self):
        """The module's own widget: the place button shows, and a left click in the red view goes through Slicer's
        markups widget and the panel's observer to an answer of the current region. No backend: the cycle is
        made here, as the backend would send it."""
        import numpy as np

        from CovidActiveLearningLib.geometry import ijk_to_ras
        from CovidActiveLearningLib.logic import Cycle
        from CovidActiveLearningLib.regions import SuggestedRegion, VoxelBox

        slicer.util.selectModule("CovidActiveLearning")
        widget = slicer.modules.CovidActiveLearningWidget
        logic = widget.logic
        self.assertTrue(widget.ui.placeWidget.placeButton().visible)
        volume = slicer.util.addVolumeFromArray(np.full((4, 64, 64), -800, np.int16), name="chest")
        region = SuggestedRegion(id=7, cycle_id=1, volume_id=1, box=VoxelBox(2, 0, 64, 0, 64), score=0.5, rank=1)
        logic.layer.show_cycle(volume, 1, [region])
        logic.cycle = Cycle(1, 1, volume.GetID(), (region,))
        logic.book.start_cycle(1)
        logic.next_region()  # one region: back to it, which arms placing
        self.assertTrue(logic.placing_infection_points())
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        self.assertEqual(interaction.GetCurrentInteractionMode(), interaction.Place)
        view = slicer.app.layoutManager().sliceWidget("Red").sliceView()
        size = view.size
        slicer.util.clickAndDrag(
            view, start=(size.width() // 2, size.height() // 2), end=(size.width() // 2, size.height() // 2), steps=4
        )
        slicer.app.processEvents()
        answer = logic.book.answer_for(region.id)
        self.assertIsNotNone(answer, "a click in the red view in place mode must answer the region")
        i, j, k = answer.points[0]
        self.assertEqual(k, 2)
        points = logic.infection_points_node()
        ras = [0.0, 0.0, 0.0]
        points.GetNthControlPointPositionWorld(0, ras)
        self.assertLess(np.abs(np.subtract(ijk_to_ras(volume, (i, j, k)), ras)).max(), 1.0)

    def test_correct_opens_the_infection_segment_in_the_segment_editor(self):
        """'Correct in Segment Editor' switches to Slicer's Segment Editor with the prediction's segmentation, its CT
        as source volume and the 'Infection' segment selected. No backend: the prediction is imported from a file,
        as the backend would send it."""
        import tempfile

        import numpy as np

        from CovidActiveLearningLib.prediction import import_prediction

        slicer.util.selectModule("CovidActiveLearning")
        widget = slicer.modules.CovidActiveLearningWidget
        volume = slicer.util.addVolumeFromArray(np.full((4, 32, 32), -800, np.int16), name="chest")
        mask = np.zeros((4, 32, 32), np.uint8)
        mask[1:3, 10:20, 10:20] = 1
        labels = slicer.util.addVolumeFromArray(mask, nodeClassName="vtkMRMLLabelMapVolumeNode")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "prediction.nrrd"
            slicer.util.saveNode(labels, str(path))
            widget.logic.prediction = import_prediction(widget.logic.context, volume, path, "chest infection")
        widget.onCorrect()
        self.assertEqual(slicer.util.selectedModule(), "SegmentEditor")
        editor = slicer.modules.SegmentEditorWidget.editor
        self.assertIs(editor.segmentationNode(), widget.logic.prediction.segmentation_node)
        self.assertIs(editor.sourceVolumeNode(), volume)
        segmentation = widget.logic.prediction.segmentation_node.GetSegmentation()
        self.assertEqual(segmentation.GetSegment(editor.currentSegmentID()).GetName(), "Infection")
        slicer.util.selectModule("CovidActiveLearning")
