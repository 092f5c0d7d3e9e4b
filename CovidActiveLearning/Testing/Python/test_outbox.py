"""Tests of CovidActiveLearningLib/outbox.py against a real `covidal serve`: clicks placed in RAS on the oblique
chest CT arrive as the right voxels, once, whatever happens to the connection."""

from __future__ import annotations

import numpy as np
import slicer

from CovidActiveLearningLib.answers import AnswerBook, AnswerKind, AnswerStatus
from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.geometry import check_backend_geometry, ijk_to_ras
from CovidActiveLearningLib.outbox import SubmitReport, submit_pending
from CovidActiveLearningLib.points import InfectionPoints
from CovidActiveLearningLib.regions import SuggestedRegion
from CovidActiveLearningLib.volumes import read_volume

ANNOTATOR = "dr-outbox"
TINY_MODEL = {"image_size": 64, "width": 8, "checkpoint_every": 2, "batch_size": 2}
CLICK_OFFSET = (0.3, -0.2, 0.1)  # a click off the voxel centre still lands in the voxel


class Session:
    """A project on the backend with one cycle on the chest CT, and the scene side of one clinician."""

    def __init__(self, mrml, backend: str, chest_ct, name: str, count: int, clock) -> None:
        self.client = CovidalClient(backend)
        project = self.client.create_project(
            name, model_kind="unet", grid_k=16, strategy="entropy", mc_samples=2, loss="point", settings=TINY_MODEL
        )
        self.project_id = project["id"]
        volume, _ = self.client.upload_volume(self.project_id, chest_ct)
        self.ct_node = read_volume(mrml.scene, chest_ct, "chest")
        check_backend_geometry(self.ct_node, volume["dims"], volume["ijk_to_ras"])  # the same voxel grid
        self.cycle = self.client.create_cycle(self.project_id, count, [volume["id"]])
        self.clock = clock
        self.book = AnswerBook(mrml.scene, self.clock)
        self.book.start_cycle(self.cycle["id"])
        self.points = InfectionPoints(mrml.scene)

    def lease(self, annotator: str = ANNOTATOR, limit: int = 5) -> list[SuggestedRegion]:
        leased = self.client.lease_suggestions(self.project_id, self.cycle["id"], annotator, limit)
        return sorted((SuggestedRegion.from_json(s) for s in leased), key=lambda region: region.rank)

    def click(self, region: SuggestedRegion, *voxels: tuple[int, int, int]) -> None:
        self.book.begin(region)
        for voxel in voxels:
            ras = ijk_to_ras(self.ct_node, np.add(voxel, CLICK_OFFSET))
            assert self.points.add_point_ras(self.ct_node, region, self.book, ras) == voxel

    def tag(self, region: SuggestedRegion) -> None:
        self.book.begin(region)
        self.book.tag_background(region)

    def submit(self, client: CovidalClient | None = None, project_id: int | None = None) -> SubmitReport:
        return submit_pending(self.book, client or self.client, project_id or self.project_id, ANNOTATOR)

    def stored(self) -> dict[int, tuple]:
        """suggestion id -> (answer, points, effort, key, annotator) as the backend holds them."""
        return {
            a["suggestion_id"]: (
                a["answer"],
                [tuple(p) for p in a["points"]],
                a["effort_seconds"],
                a["idempotency_key"],
                a["annotator"],
            )
            for a in self.client.list_annotations(self.project_id)
        }

    def expected(self) -> dict[int, tuple]:
        """The same, from the answer book."""
        return {
            a.suggestion_id: (a.kind.value, list(a.points), a.effort_seconds, a.idempotency_key, ANNOTATOR)
            for a in self.book.answers()
            if a.status is AnswerStatus.SENT
        }


def corners(region: SuggestedRegion) -> list[tuple[int, int, int]]:
    box = region.box
    return [(box.i0, box.j0, box.k), (box.i1 - 1, box.j1 - 1, box.k)]


def middle(region: SuggestedRegion) -> tuple[int, int, int]:
    box = region.box
    return (box.i0 + box.i1) // 2, (box.j0 + box.j1) // 2, box.k


def test_clicks_arrive_as_the_voxels_under_them_and_only_once(mrml, backend, chest_files, clock):
    session = Session(mrml, backend, chest_files[0], "outbox-voxels", 4, clock)
    regions = session.lease()
    session.click(regions[0], *corners(regions[0]))
    session.clock.advance(7.5)
    session.tag(regions[1])
    session.clock.advance(3.25)
    session.click(regions[2], middle(regions[2]))
    session.clock.advance(1)

    report = session.submit()
    assert (report.sent, report.replayed, report.still_pending, report.rejected, report.unreachable, report.failed) == (
        3,
        0,
        0,
        [],
        None,
        [],
    )
    stored = session.stored()
    assert stored == session.expected()
    assert {sid: (answer, points, effort) for sid, (answer, points, effort, _, _) in stored.items()} == {
        regions[0].id: ("infection", corners(regions[0]), 7.5),
        regions[1].id: ("background", [], 3.25),
        regions[2].id: ("infection", [middle(regions[2])], 1.0),
    }
    assert session.book.progress(regions) == "3 of 4 answered"

    again = session.submit()
    assert (again.sent, again.replayed, again.still_pending) == (0, 0, 0)
    assert len(session.client.list_annotations(session.project_id)) == 3


def test_an_unreachable_backend_loses_no_answer(mrml, backend, chest_files, clock):
    from covidal.service.local import free_port  # the backend's package: tests only, never inside Slicer

    session = Session(mrml, backend, chest_files[0], "outbox-outage", 3, clock)
    regions = session.lease()
    session.click(regions[0], middle(regions[0]))
    session.tag(regions[1])
    gone = CovidalClient(f"http://127.0.0.1:{free_port()}", timeout=5)

    report = session.submit(gone)
    assert report.unreachable and "cannot reach" in report.unreachable
    assert (report.sent, report.replayed, report.still_pending) == (0, 0, 2)
    assert "2 kept to send again: the backend does not answer" in report.summary()
    keys = {a.suggestion_id: a.idempotency_key for a in session.book.pending()}
    assert session.client.list_annotations(session.project_id) == []
    session.tag(regions[2])  # the clinician keeps working while the backend is away

    reopened = AnswerBook(mrml.scene)  # the module (or the saved scene) opened again
    assert len(reopened.pending()) == 3
    session.book = reopened
    assert session.submit().sent == 3
    stored = session.stored()
    assert stored == session.expected()
    assert {sid: stored[sid][3] for sid in keys} == keys  # sent with the keys kept while the backend was away
    assert session.submit().sent == 0 and len(session.client.list_annotations(session.project_id)) == 3


def test_a_lost_reply_is_replayed_and_a_wrong_project_loses_nothing(mrml, backend, chest_files, clock):
    session = Session(mrml, backend, chest_files[0], "outbox-replay", 3, clock)
    regions = session.lease()
    session.click(regions[0], middle(regions[0]))
    session.tag(regions[1])

    wrong = session.submit(project_id=session.project_id + 1000)
    assert (wrong.sent, wrong.rejected, wrong.still_pending) == (0, [], 2)
    assert [(sid, message.startswith("HTTP 404")) for sid, message in wrong.failed] == [
        (regions[0].id, True),
        (regions[1].id, True),
    ]

    answer = session.book.seal(regions[0].id)  # its first send reached the backend, the reply got lost
    session.client.submit_annotation(
        session.project_id,
        answer.suggestion_id,
        annotator=ANNOTATOR,
        answer=answer.kind.value,
        points=[list(p) for p in answer.points],
        effort_seconds=answer.effort_seconds,
        idempotency_key=answer.idempotency_key,
    )
    report = session.submit()
    assert (report.sent, report.replayed, report.still_pending) == (1, 1, 0)
    assert session.stored() == session.expected()
    assert len(session.client.list_annotations(session.project_id)) == 2


def test_refused_answers_are_kept_with_the_servers_reason(mrml, backend, chest_files, clock):
    session = Session(mrml, backend, chest_files[0], "outbox-refusals", 4, clock)
    mine = session.lease(limit=2)
    theirs = session.lease("dr-other", limit=2)
    elsewhere = AnswerBook(slicer.vtkMRMLScene())  # the same clinician, on another computer
    elsewhere.start_cycle(session.cycle["id"])
    elsewhere.begin(mine[0])
    elsewhere.tag_background(mine[0])
    assert submit_pending(elsewhere, session.client, session.project_id, ANNOTATOR).sent == 1

    session.click(mine[0], middle(mine[0]))  # answered differently, with another key
    session.tag(theirs[0])  # leased to someone else
    session.tag(mine[1])
    report = session.submit()

    assert report.sent == 1 and report.still_pending == 0
    reasons = dict(report.rejected)
    assert set(reasons) == {mine[0].id, theirs[0].id}
    assert "was already answered" in reasons[mine[0].id]
    assert "is leased to 'dr-other'" in reasons[theirs[0].id]
    rows = {row.suggestion_id: row for row in session.book.rows()}
    assert rows[mine[0].id].status_text == f"rejected: {reasons[mine[0].id]}"
    assert (rows[theirs[0].id].status, rows[mine[1].id].status) == (AnswerStatus.REJECTED, AnswerStatus.SENT)
    assert session.stored()[mine[0].id][0] == AnswerKind.BACKGROUND.value  # the first answer stands
    assert session.submit().rejected == []  # a refused answer is not sent again
