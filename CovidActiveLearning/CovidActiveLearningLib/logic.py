"""The module's core logic, without Qt: one object the Slicer widget (and the tests) drive.

It composes the pieces: the backend client, the suggestion layer (ROIs, heat map, views), the
answer book (durable in the scene) and the infection points, the outbox, training polls, the
prediction import, the export and the learning curve. Every method either succeeds or raises
:class:`UserFacingError` with a sentence for the clinician. Each method that talks to the backend
has an ``*_operation`` twin that the widget runs with :class:`operations.BackgroundOperation`,
so no request blocks Slicer's interface; nothing waits for training (the widget polls it).
"""

from __future__ import annotations

import getpass
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from CovidActiveLearningLib.answers import AnswerBook, AnswerRow
from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.curve import show_learning_curve
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.expert_labels import (
    EditingTarget,
    ProjectVolume,
    expert_label,
    prepare_for_editing,
    project_volumes,
)
from CovidActiveLearningLib.export import ExportedFiles, export_results
from CovidActiveLearningLib.geometry import check_backend_geometry
from CovidActiveLearningLib.mrml import MrmlContext
from CovidActiveLearningLib.operations import Operation, in_worker, remote, run_now
from CovidActiveLearningLib.outbox import SubmitReport, submit_operation
from CovidActiveLearningLib.points import InfectionPoints
from CovidActiveLearningLib.prediction import LungInvolvement, PredictionImport, PredictionModel, import_prediction
from CovidActiveLearningLib.regions import SuggestedRegion
from CovidActiveLearningLib.suggestions import SuggestionLayer
from CovidActiveLearningLib.training import CLICKS_TO_3D, TrainingStatus, clicks_to_3d_config
from CovidActiveLearningLib.volumes import HashCache, check_annotatable, content_hash, snapshot, write_nrrd

DEFAULT_URL = "http://127.0.0.1:8765"
VOLUME_ID_ATTRIBUTE = "CovidActiveLearning.VolumeId"  # "<backend url>|<project id>|<content hash>|<volume id>"


@dataclass(frozen=True)
class StrategyChoice:
    """The region strategies the connected backend offers (``GET /strategies``) and its default."""

    names: tuple[str, ...]
    default: str

    def offered(self, saved: str | None) -> str:
        """The strategy the panel shows: ``saved`` (what it showed) while the backend offers it, else the backend's
        default."""
        return saved if saved in self.names else self.default


@dataclass(frozen=True)
class Cycle:
    """The cycle being answered: its backend id and number, and the regions leased to this annotator."""

    id: int
    number: int
    volume_node_id: str
    regions: tuple[SuggestedRegion, ...]


@dataclass(frozen=True)
class ActionStates:
    """Which of the panel's actions can run now; every driver enables its buttons from it.

    ``busy``: a backend action is still running (one at a time); ``training``: a job is being polled.
    """

    connect: bool
    send_volume: bool
    get_suggestions: bool
    navigate: bool
    background: bool
    undo: bool
    submit: bool
    start_training: bool
    cancel_training: bool
    predict: bool
    export: bool
    learning_curve: bool
    list_volumes: bool
    train_3d: bool
    predict_3d: bool
    correct: bool
    use_as_label: bool

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


class CovidActiveLearningCoreLogic:
    """Drives one project of one backend for one annotator.

    Args:
        context: the scene and module logics (:func:`mrml.application_context` inside Slicer).
        annotator: the name answers are stored under (default: the login name).
        clock: seconds for the effort counter (a monotonic clock).
    """

    def __init__(
        self, context: MrmlContext, annotator: str | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.context = context
        self.annotator = annotator or getpass.getuser() or "clinician"
        self.client: CovidalClient | None = None
        self.strategies: StrategyChoice | None = None  # the connected backend's
        # The backend's project defaults for its device (``GET /defaults``): what a new project, a cycle and a
        # training job get when the clinician leaves a setting alone. Read at each connection.
        self.served: dict | None = None
        self.project_id: int | None = None
        self.cycle: Cycle | None = None
        self._index = 0
        self.layer = SuggestionLayer(context)
        self.book = AnswerBook(context.scene) if clock is None else AnswerBook(context.scene, clock)
        self.points = InfectionPoints(context.scene)
        self.job_id: int | None = None
        self.prediction: PredictionImport | None = None
        self._hashes = HashCache()
        # Files in transit (uploads, heat maps, predictions) are deleted once used; the folder goes with close().
        self._folder = tempfile.TemporaryDirectory(prefix="covidal-slicer-")
        self._downloads = Path(self._folder.name)

    def close(self) -> None:
        """Remove the logic's temporary folder (the module widget's cleanup; a closed logic cannot send files)."""
        self._folder.cleanup()

    def scene_closed(self) -> None:
        """The scene was cleared: its cycle's volume, boxes and prediction are gone (the backend keeps its data)."""
        self.cycle = None
        self.prediction = None
        self._hashes = HashCache()

    # Backend and project. Each request-making method is an operation (see operations.py) with a plain
    # synchronous twin; the widget runs the operations in the background so Slicer never freezes.

    def connect(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 60) -> dict:
        """Check that ``covidal serve`` answers at ``url`` and read the strategies it offers (:attr:`strategies`);
        returns its health JSON."""
        return run_now(self.connect_operation(url, token, timeout))

    def connect_operation(
        self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 60
    ) -> Operation[dict]:
        client = CovidalClient(url.strip() or DEFAULT_URL, token or None, timeout=timeout)
        health = yield remote(client.health)
        listed = yield remote(client.strategies)
        self.served = yield remote(client.defaults)
        self.client = client
        self.strategies = StrategyChoice(tuple(listed["names"]), listed["default"])
        return health

    def open_project(
        self,
        name: str,
        regions_per_slice: int | None = None,
        strategy: str | None = None,
        mc_samples: int | None = None,
        loss: str | None = None,
        settings: dict | None = None,
    ) -> int:
        """Use the backend's project called ``name``, creating it (a 2D U-Net) if there is none; the choices left
        None take the backend's defaults for its device (``GET /defaults``)."""
        return run_now(self.open_project_operation(name, regions_per_slice, strategy, mc_samples, loss, settings))

    def open_project_operation(
        self,
        name: str,
        regions_per_slice: int | None = None,
        strategy: str | None = None,
        mc_samples: int | None = None,
        loss: str | None = None,
        settings: dict | None = None,
    ) -> Operation[int]:
        client = self._client()
        name = name.strip()
        if not name:
            raise UserFacingError("Give the project a name.")
        for project in (yield remote(client.list_projects)):
            if project["name"] == name:
                self.project_id = int(project["id"])
                return self.project_id
        project = yield remote(
            client.create_project,
            name,
            model_kind="unet",
            grid_k=regions_per_slice,
            strategy=strategy,
            mc_samples=mc_samples,
            loss=loss,
            settings=settings,
        )
        self.project_id = int(project["id"])
        return self.project_id

    def in_project_operation(
        self, name: str, regions_per_slice: int, operation: Operation, strategy: str | None = None
    ) -> Operation:
        """Open the project ``name`` (see :meth:`open_project`; ``regions_per_slice`` and ``strategy``, one of
        :attr:`strategies` or None for the backend's default, apply to a new project), then run ``operation`` (an
        operation of this logic); returns its value."""
        yield from self.open_project_operation(name, regions_per_slice, strategy)
        return (yield from operation)

    # Volumes

    def send_volume(self, volume_node) -> int:
        """The backend's id of the volume, uploading it the first time (matched by content hash).

        The content hash and the upload file are computed off the GUI thread (``in_worker``), and the hash
        once per session while the voxels do not change.

        Raises:
            UserFacingError: nothing or no CT volume selected, a 2D image, a heat map, no project, backend errors.
        """
        return run_now(self.send_volume_operation(volume_node))

    def send_volume_operation(self, volume_node) -> Operation[int]:
        check_annotatable(volume_node)
        if self.layer.is_heatmap(volume_node):
            raise UserFacingError(
                f"'{volume_node.GetName()}' is a cycle's uncertainty heat map, not a CT; select the CT volume."
            )
        project_id = self._project()
        volume = snapshot(volume_node)
        digest = self._hashes.get(volume)
        if digest is None:
            digest = yield in_worker(content_hash, volume)
            self._hashes.put(volume, digest)
        cached = (volume_node.GetAttribute(VOLUME_ID_ATTRIBUTE) or "").split("|")
        if cached[:3] == [self.client.base_url, str(project_id), digest]:
            return int(cached[3])
        path = yield in_worker(write_nrrd, volume, self._downloads / f"upload-{digest[:16]}.nrrd")
        try:
            volume, _ = yield remote(self.client.upload_volume, project_id, path, _upload_name(volume_node))
        finally:
            path.unlink(missing_ok=True)
        check_backend_geometry(volume_node, volume["dims"], volume["ijk_to_ras"])
        volume_node.SetAttribute(VOLUME_ID_ATTRIBUTE, f"{self.client.base_url}|{project_id}|{digest}|{volume['id']}")
        return int(volume["id"])

    # Suggestions and navigation

    def get_suggestions(self, volume_node, count: int | None = None) -> list[SuggestedRegion]:
        """Start a cycle of ``count`` regions (None: the backend's regions per cycle) on the volume, lease its
        regions, show them, go to the first one and start placing clicks in 'Infection points' (see
        :meth:`InfectionPoints.start_placing`)."""
        return run_now(self.get_suggestions_operation(volume_node, count))

    def get_suggestions_operation(self, volume_node, count: int | None = None) -> Operation[list[SuggestedRegion]]:
        if count is None:
            count = int(self._served()["regions_per_cycle"])
        if count < 1:
            raise UserFacingError("Ask for at least one region.")
        volume_id = yield from self.send_volume_operation(volume_node)
        project_id = self._project()
        cycle = yield remote(self.client.create_cycle, project_id, count, [volume_id])
        leased = yield remote(self.client.lease_suggestions, project_id, cycle["id"], self.annotator, count)
        regions = tuple(sorted((SuggestedRegion.from_json(s) for s in leased), key=lambda region: region.rank))
        if not regions:
            raise UserFacingError("Every region of this cycle is leased to another annotator; ask again later.")
        heatmap = yield remote(
            self.client.download_heatmap,
            project_id,
            cycle["id"],
            volume_id,
            self._downloads / f"heatmap-{cycle['id']}.nrrd",
        )
        try:
            self.layer.show_cycle(volume_node, int(cycle["number"]), regions)
            self.layer.show_heatmap(volume_node, heatmap, int(cycle["number"]))
        finally:
            heatmap.unlink(missing_ok=True)
        self.cycle = Cycle(int(cycle["id"]), int(cycle["number"]), volume_node.GetID(), regions)
        self.book.start_cycle(self.cycle.id)
        self._go_to(0)
        return list(regions)

    @property
    def current_region(self) -> SuggestedRegion | None:
        return self.cycle.regions[self._index] if self.cycle else None

    def next_region(self) -> SuggestedRegion | None:
        """The next region of the cycle (wrapping around), centred and highlighted."""
        return self._go_to(self._index + 1) if self.cycle else None

    def previous_region(self) -> SuggestedRegion | None:
        return self._go_to(self._index - 1) if self.cycle else None

    def go_to_region(self, suggestion_id: int) -> SuggestedRegion:
        """Make the region with this suggestion id current.

        Raises:
            UserFacingError: it is not a region of the current cycle.
        """
        regions = self.cycle.regions if self.cycle else ()
        for index, region in enumerate(regions):
            if region.id == suggestion_id:
                return self._go_to(index)
        raise UserFacingError(
            f"Region {suggestion_id} is not one of this cycle's suggestions; "
            "get suggestions again to answer a newer cycle."
        )

    # Labelling

    def infection_points_node(self):
        return self.points.node()

    def placing_infection_points(self) -> bool:
        """Whether a left click in a view now adds to 'Infection points' (active place node, place mode)."""
        return self.points.is_place_target(self.context.markups)

    def start_placing(self) -> None:
        """Make 'Infection points' the active list in persistent place mode (also done at every region change)."""
        self.points.start_placing(self.context.markups)

    def placed_point_id(self, index: int) -> str | None:
        """For the ``PointPositionDefinedEvent`` observer: the id of the control point the event's index names
        when it is a new click (None for a preview point or a point the logic placed). Accept it after the
        event with :meth:`accept_placed_point`."""
        return self.points.placed_point_id(index)

    def accept_placed_point(self, point_id: str) -> tuple[int, int, int] | None:
        """Take the control point ``point_id`` the clinician placed in 'Infection points' as a click on infection.

        Returns:
            its voxel ``(i, j, k)``; None when it answers a region already (nothing to do).

        Raises:
            UserFacingError: no current region, or the point lies outside it (the point is removed).
        """
        region = self._current()
        voxel = self.points.accept_placed(point_id, self._volume_node(), region, self.book)
        if voxel is not None:
            self._mark_answered(region.id, True)
        return voxel

    def add_point_ras(self, ras) -> tuple[int, int, int]:
        """A click on infection at RAS ``ras`` (mm) in the current region (scripted use and tests)."""
        region = self._current()
        voxel = self.points.add_point_ras(self._volume_node(), region, self.book, ras)
        self._mark_answered(region.id, True)
        return voxel

    def tag_background(self) -> None:
        """Tag the current region as background and move on to the next unanswered one."""
        region = self._current()
        self.book.tag_background(region)
        self._mark_answered(region.id, True)
        self._go_to_next_unanswered()

    def undo(self) -> str | None:
        """Undo the last unsent point or tag; returns what was undone (None: nothing to undo)."""
        undone = self.book.undo()
        if undone is not None:
            self.points.sync_from_book(self.book)
            for region in self.cycle.regions if self.cycle else ():
                self._mark_answered(region.id, self.book.answer_for(region.id) is not None)
        return undone

    def answer_rows(self) -> list[AnswerRow]:
        return self.book.rows()

    def progress_text(self) -> str:
        return self.book.progress(self.cycle.regions if self.cycle else ())

    def effort_seconds(self) -> float:
        return self.book.effort_seconds()

    def progress_line(self) -> str:
        """The line under the answers table: ``"2 of 5 answered; 14 s of effort"``."""
        return f"{self.progress_text()}; {self.effort_seconds():.0f} s of effort"

    def current_region_text(self) -> str:
        region = self.current_region
        return f"{region.label()}, slice {region.box.k}" if region else "No suggestions yet."

    def pause_effort(self) -> None:
        """Stop the effort clock: the clinician left the module, closed the scene or quit Slicer."""
        self.book.end()

    def resume_effort(self) -> None:
        """Count effort on the current region again (the clinician came back to the module)."""
        region = self.current_region
        if region is not None and not self.book.clock_running and self.book.current_cycle == region.cycle_id:
            self.book.begin(region)

    def actions(self, busy: bool = False, training: bool = False) -> ActionStates:
        """Which panel actions can run now.

        Args:
            busy: a backend action is still running (the panel runs one at a time).
            training: a training job is running (its progress is being polled).
        """
        connected = self.client is not None
        in_project = connected and self.project_id is not None
        answering = self.cycle is not None
        predicted = self.prediction is not None
        return ActionStates(
            connect=not busy,
            send_volume=connected and not busy,
            get_suggestions=connected and not busy,
            navigate=answering,
            background=answering,
            undo=self.book.can_undo(),
            submit=in_project and not busy and bool(self.book.pending()),
            start_training=in_project and not busy and not training,
            cancel_training=training,
            predict=in_project and not busy,
            export=predicted,
            learning_curve=in_project and not busy,
            list_volumes=in_project and not busy,
            train_3d=in_project and not busy and not training,
            predict_3d=in_project and not busy,
            correct=predicted,
            use_as_label=predicted and in_project and not busy,
        )

    # Submit and training

    def has_unsent(self) -> bool:
        """Whether answers wait to be sent and a backend project is open to send them to."""
        return self.client is not None and self.project_id is not None and bool(self.book.pending())

    def submit(self) -> SubmitReport:
        """Send every unsent answer (unsent ones stay in the scene and are retried next time)."""
        return run_now(self.submit_operation())

    def submit_operation(self) -> Operation[SubmitReport]:
        return submit_operation(self.book, self._client(), self._project(), self.annotator)

    def submit_and_train_operation(
        self, train: bool, steps: int | None = None
    ) -> Operation[tuple[SubmitReport, int | None]]:
        """Submit, then (if ``train``, when something new reached the backend) queue a training job of ``steps``
        (None: the project's steps).

        Returns:
            the submit report and the queued job's id (None when no job was started).
        """
        report = yield from self.submit_operation()
        if not train or report.sent + report.replayed == 0:
            return report, None
        return report, (yield from self.start_training_operation(steps))

    def start_training(self, steps: int | None = None) -> int:
        """Queue a training job on every answer sent so far, of ``steps`` optimiser steps (None: the project's
        steps, the backend's default when the project was created); returns its id."""
        return run_now(self.start_training_operation(steps))

    def start_training_operation(self, steps: int | None = None) -> Operation[int]:
        job = yield remote(self._client().start_training, self._project(), steps)
        self.job_id = int(job["id"])
        return self.job_id

    def start_3d_training(self, mode: str | None = None, config: dict | None = None) -> int:
        """Queue a ``clicks-to-3d`` job: the 3D model trained on the 2D model's pseudo-labels of the project's volumes,
        re-weighted by the answers (and the expert labels); returns its id, followed like a 2D job's
        (:meth:`poll_training`).

        Args:
            mode: one of ``training.MODES_3D``; None: the backend's default.
            config: more of the job's options (``epochs``, ``steps_per_epoch``, ``patch_size``, ...).

        Raises:
            UserFacingError: an unknown mode; the backend's refusal (e.g. no 2D model trained yet).
        """
        return run_now(self.start_3d_training_operation(mode, config))

    def start_3d_training_operation(self, mode: str | None = None, config: dict | None = None) -> Operation[int]:
        job_config = clicks_to_3d_config(mode, config)
        job = yield remote(self._client().start_training, self._project(), config=job_config, kind=CLICKS_TO_3D)
        self.job_id = int(job["id"])
        return self.job_id

    def poll_training(self) -> TrainingStatus:
        """The current job's progress."""
        return run_now(self.poll_training_operation())

    def poll_training_operation(self) -> Operation[TrainingStatus]:
        if self.job_id is None:
            raise UserFacingError("No training job has been started.")
        return TrainingStatus.from_json((yield remote(self._client().get_job, self._project(), self.job_id)))

    def cancel_training(self) -> None:
        run_now(self.cancel_training_operation())

    def cancel_training_operation(self) -> Operation[None]:
        if self.job_id is not None:
            yield remote(self._client().cancel_job, self._project(), self.job_id)

    # Results

    def import_prediction(self, volume_node, model: str = PredictionModel.TWO_D) -> PredictionImport:
        """Predict the volume with the project's current 2D (or 3D) model and show it as the 'Infection' segment of
        the model's segmentation node (:meth:`PredictionModel.node_name`); it becomes :attr:`prediction`, the one
        Export, Correct and Use as expert label act on."""
        return run_now(self.import_prediction_operation(volume_node, model))

    def import_prediction_operation(
        self, volume_node, model: str = PredictionModel.TWO_D
    ) -> Operation[PredictionImport]:
        model = PredictionModel(model)
        volume_id = yield from self.send_volume_operation(volume_node)
        which = model.query()
        stats = yield remote(self.client.predict_volume, self._project(), volume_id, **which)
        path = yield remote(
            self.client.download_prediction,
            self._project(),
            volume_id,
            self._downloads / f"prediction-{model}-{volume_id}.nrrd",
            **which,
        )
        try:
            self.prediction = import_prediction(
                self.context,
                volume_node,
                path,
                model.node_name(volume_node.GetName()),
                model,
                LungInvolvement.from_json(stats),
            )
        finally:
            path.unlink(missing_ok=True)
        return self.prediction

    def correct_in_segment_editor(self) -> EditingTarget:
        """Ready the last imported prediction for Slicer's Segment Editor module (its parameter node edits the
        'Infection' segment over the CT); the widget then selects that module."""
        prediction = self._prediction()
        return prepare_for_editing(self.context, prediction.segmentation_node, prediction.reference_volume)

    def use_as_expert_label(self) -> dict:
        """Send the (corrected) 'Infection' segment of the last imported prediction as the expert label of its CT;
        returns the backend's label JSON (``volume_id``, ``foreground_voxels``, ...)."""
        return run_now(self.use_as_expert_label_operation())

    def use_as_expert_label_operation(self) -> Operation[dict]:
        prediction = self._prediction()
        ct = prediction.reference_volume
        label = expert_label(self.context, prediction.segmentation_node, ct)  # refused before any upload
        volume_id = yield from self.send_volume_operation(ct)
        path = yield in_worker(write_nrrd, label, self._downloads / f"label-{volume_id}.nrrd")
        try:
            stored, _ = yield remote(self.client.upload_label, self._project(), volume_id, path, "nrrd")
        finally:
            path.unlink(missing_ok=True)
        return stored

    def project_volumes(self) -> list[ProjectVolume]:
        """The project's volumes, each with whether (and how large) its expert label is."""
        return run_now(self.project_volumes_operation())

    def project_volumes_operation(self) -> Operation[list[ProjectVolume]]:
        client, project_id = self._client(), self._project()
        volumes = yield remote(client.list_volumes, project_id)
        labels = yield remote(client.list_labels, project_id)
        try:
            return project_volumes(volumes, labels)
        except ValueError as error:
            raise UserFacingError(f"The backend sent {error}.") from None

    def export(self, folder: str | Path, volume_node=None) -> ExportedFiles:
        """Write the prediction (``.seg.nrrd`` and labelmap ``.nrrd``) and the infection points (``.mrk.json``)."""
        if self.prediction is None:
            raise UserFacingError("Predict the volume before exporting its segmentation.")
        reference = volume_node or self._volume_node()
        if not str(folder).strip():
            raise UserFacingError("Choose a folder to export to.")
        return export_results(
            self.context,
            self.prediction.segmentation_node,
            reference,
            self.points.node(),
            Path(folder),
            reference.GetName(),
        )

    def update_learning_curve(self):
        """The project's effort-versus-Dice curve as plot nodes; returns the chart node."""
        return run_now(self.update_learning_curve_operation())

    def update_learning_curve_operation(self) -> Operation:
        points = yield remote(self._client().learning_curve, self._project())
        return show_learning_curve(self.context, points)

    # Internals

    def _go_to(self, index: int) -> SuggestedRegion:
        """Make region ``index`` current: effort clock, highlight, views centred and zoomed, clicks armed."""
        self._index = index % len(self.cycle.regions)
        region = self.cycle.regions[self._index]
        self.book.begin(region)
        self._show_boxes()
        self.layer.highlight(region.id)
        self.layer.center_on(self._volume_node(), region)
        self.points.start_placing(self.context.markups)
        return region

    def _mark_answered(self, suggestion_id: int, answered: bool) -> None:
        self._show_boxes()
        self.layer.mark_answered(suggestion_id, answered)

    def _show_boxes(self) -> None:
        """Draw the cycle's boxes again when the clinician deleted one (answered ones drawn answered)."""
        if not self.layer.missing_rois(self.cycle.regions):
            return
        self.layer.show_cycle(self._volume_node(), self.cycle.number, self.cycle.regions)
        for region in self.cycle.regions:
            self.layer.mark_answered(region.id, self.book.answer_for(region.id) is not None)
        self.layer.highlight(self.current_region.id)
        self.points.start_placing(self.context.markups)  # a new ROI became the active list

    def _go_to_next_unanswered(self) -> None:
        count = len(self.cycle.regions)
        for step in range(1, count + 1):
            if self.book.answer_for(self.cycle.regions[(self._index + step) % count].id) is None:
                self._go_to(self._index + step)
                return

    def _current(self) -> SuggestedRegion:
        if self.current_region is None:
            raise UserFacingError("Get suggestions first: there is no region to answer.")
        return self.current_region

    def _volume_node(self):
        node = self.context.scene.GetNodeByID(self.cycle.volume_node_id) if self.cycle else None
        if node is None:
            raise UserFacingError("The volume of this cycle is no longer in the scene; get suggestions again.")
        return node

    def _prediction(self) -> PredictionImport:
        if self.prediction is None or self.prediction.segmentation_node.GetScene() is None:
            raise UserFacingError("There is no prediction to correct; predict the volume first.")
        return self.prediction

    def _client(self) -> CovidalClient:
        if self.client is None:
            raise UserFacingError("Connect to the backend first.")
        return self.client

    def _served(self) -> dict:
        self._client()
        return self.served

    def _project(self) -> int:
        self._client()
        if self.project_id is None:
            raise UserFacingError("Open a project first.")
        return self.project_id


def _upload_name(volume_node) -> str:
    """A file-system-safe volume name for the backend (it refuses path-like names)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in volume_node.GetName()).strip("._")
    return safe[:100] or "volume"
