"""Tests of CovidActiveLearningLib/answers.py: the answer book on a headless MRML scene, saved and read back."""

from __future__ import annotations

import json

import pytest
import slicer

from CovidActiveLearningLib.answers import (
    ANSWERS_NODE_NAME,
    AnswerBook,
    AnswerKind,
    AnswerStatus,
)
from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.regions import SuggestedRegion, VoxelBox

CYCLE = 7
BOX = VoxelBox(k=2, i0=10, i1=20, j0=5, j1=15)


def region(suggestion_id: int, rank: int, cycle_id: int = CYCLE) -> SuggestedRegion:
    return SuggestedRegion(id=suggestion_id, cycle_id=cycle_id, volume_id=3, box=BOX, score=0.5, rank=rank)


R1, R2, R3 = region(101, 1), region(102, 2), region(103, 3)
OLD = region(90, 1, cycle_id=CYCLE - 1)


@pytest.fixture
def book(mrml, clock) -> AnswerBook:
    book = AnswerBook(mrml.scene, clock)
    book.start_cycle(CYCLE)
    return book


def test_points_and_tags_become_answers(book):
    book.begin(R1)
    book.add_point(R1, (12, 6, 2))
    answer = book.add_point(R1, (19, 14, 2))
    book.begin(R2)
    tag = book.tag_background(R2)

    assert (answer.kind, answer.points, answer.cycle_id, answer.volume_id, answer.rank) == (
        AnswerKind.INFECTION,
        ((12, 6, 2), (19, 14, 2)),
        CYCLE,
        3,
        1,
    )
    assert (tag.kind, tag.points) == (AnswerKind.BACKGROUND, ())
    assert len({answer.idempotency_key, tag.idempotency_key}) == 2 and len(answer.idempotency_key) == 32
    assert book.tag_background(R2) == tag  # tagging twice changes nothing, not even the key
    assert book.progress([R1, R2, R3]) == "2 of 3 answered"
    assert [(row.rank, row.suggestion_id, row.kind, row.points, row.status_text) for row in book.rows()] == [
        (1, 101, AnswerKind.INFECTION, 2, "pending"),
        (2, 102, AnswerKind.BACKGROUND, 0, "pending"),
    ]
    assert [answer.suggestion_id for answer in book.pending()] == [101, 102]
    assert book.answer_for(R3.id) is None


def _nothing(book):
    pass


def _click(book):
    book.add_point(R1, (12, 6, 2))


def _tag(book):
    book.tag_background(R1)


def _click_and_submit(book):
    book.add_point(R1, (12, 6, 2))
    book.seal(R1.id)


@pytest.mark.parametrize(
    ("before", "act", "message"),
    [
        (
            _nothing,
            lambda book: book.add_point(R1, (BOX.i1, 6, 2)),
            "outside region 1; click inside the highlighted box",
        ),
        (_nothing, lambda book: book.add_point(R1, (12, BOX.j0 - 1, 2)), "outside region 1"),
        (_nothing, lambda book: book.add_point(R1, (12, 6, BOX.k + 1)), "outside region 1"),
        (
            _nothing,
            lambda book: book.add_point(OLD, (12, 6, 2)),
            r"Region 1 is from another cycle \(6\) than the current one \(7\)",
        ),
        (_nothing, lambda book: book.tag_background(OLD), "another cycle"),
        (_nothing, lambda book: book.begin(OLD), "another cycle"),
        (_nothing, lambda book: book.add_point(R2, (12, 6, 2)), "Region 2 is not the region on screen"),
        (_nothing, lambda book: book.tag_background(R2), "not the region on screen"),
        (_click, lambda book: book.add_point(R1, (12, 6, 2)), r"already has a point on voxel \(12, 6, 2\)"),
        (_tag, lambda book: book.add_point(R1, (12, 6, 2)), "tagged as background; undo the tag"),
        (_click, lambda book: book.tag_background(R1), r"has 1 infection point\(s\); undo them"),
        (_click_and_submit, lambda book: book.add_point(R1, (13, 6, 2)), "has been submitted"),
    ],
    ids=[
        "outside-i",
        "outside-j",
        "other-slice",
        "old-cycle-point",
        "old-cycle-tag",
        "old-cycle-shown",
        "not-shown-point",
        "not-shown-tag",
        "twice",
        "point-on-background",
        "tag-over-points",
        "after-submit",
    ],
)
def test_a_refused_action_says_why_and_changes_nothing(book, before, act, message):
    book.begin(R1)
    before(book)
    answers = book.answers()
    with pytest.raises(UserFacingError, match=message):
        act(book)
    assert book.answers() == answers


def test_no_cycle_means_no_answers(mrml, clock):
    with pytest.raises(UserFacingError, match="Get suggestions first"):
        AnswerBook(mrml.scene, clock).begin(R1)


def test_undo_steps_back_through_unsent_points_and_tags(book):
    book.begin(R1)
    book.add_point(R1, (12, 6, 2))
    book.begin(R2)
    book.tag_background(R2)
    book.begin(R3)
    book.add_point(R3, (10, 5, 2))
    book.add_point(R3, (11, 5, 2))
    book.seal(R1.id)  # submitted: beyond undo

    steps = [
        ("Removed the point (11, 5, 2) of region 3.", {101: 1, 102: 0, 103: 1}),
        ("Removed the point (10, 5, 2) of region 3.", {101: 1, 102: 0}),
        ("Removed the background tag of region 2.", {101: 1}),
        (None, {101: 1}),
    ]
    for description, points_left in steps:
        assert book.undo() == description
        assert {answer.suggestion_id: len(answer.points) for answer in book.answers()} == points_left
    book.begin(R2)
    assert book.add_point(R2, (12, 6, 2)).points == ((12, 6, 2),)  # an undone tag frees the region


def test_effort_counts_only_the_region_on_screen(book, clock):
    book.begin(R1)
    clock.advance(10)
    book.begin(R2)
    clock.advance(5)
    book.add_point(R2, (12, 6, 2))
    clock.advance(3)
    assert book.answer_for(R2.id).effort_seconds == 8  # open: still counting
    book.begin(R1)
    clock.advance(2)
    assert book.tag_background(R1).effort_seconds == 12  # two visits: 10 + 2
    assert book.effort_seconds() == 20

    assert book.seal(R2.id).effort_seconds == 8
    clock.advance(100)  # still on R1
    assert book.answer_for(R2.id).effort_seconds == 8  # sealed: frozen
    assert book.answer_for(R1.id).effort_seconds == 112
    book.end()
    clock.advance(50)
    assert book.effort_seconds() == 120  # nothing on screen: the clock stands still


def test_send_outcomes_show_in_the_table_and_the_progress(book):
    for number, current in enumerate((R1, R2, R3)):
        book.begin(current)
        book.add_point(current, (12 + number, 6, 2))
    book.mark_sent(R1.id)
    book.mark_rejected(R2.id, "suggestion 102 was already answered by 'dr-b'")

    assert [row.status for row in book.rows()] == [AnswerStatus.SENT, AnswerStatus.REJECTED, AnswerStatus.PENDING]
    assert book.rows()[1].status_text == "rejected: suggestion 102 was already answered by 'dr-b'"
    assert [answer.suggestion_id for answer in book.pending()] == [R3.id]
    assert book.progress([R1, R2, R3]) == "2 of 3 answered"

    rejected_key = book.answer_for(R2.id).idempotency_key
    book.begin(R2)
    again = book.tag_background(R2)  # a rejected answer can be replaced by a new one
    assert (again.kind, again.status, again.sealed) == (AnswerKind.BACKGROUND, AnswerStatus.PENDING, False)
    assert again.idempotency_key != rejected_key
    with pytest.raises(ValueError, match="no answer for suggestion 999"):
        book.mark_sent(999)


def test_a_new_cycle_keeps_the_older_cycles_unsent_answers(book):
    book.begin(R1)
    book.add_point(R1, (12, 6, 2))
    book.start_cycle(CYCLE + 1)
    newer = region(201, 1, cycle_id=CYCLE + 1)
    book.begin(newer)
    book.tag_background(newer)
    assert [(answer.cycle_id, answer.suggestion_id) for answer in book.pending()] == [(CYCLE, 101), (CYCLE + 1, 201)]
    with pytest.raises(UserFacingError, match="another cycle"):
        book.add_point(R1, (13, 6, 2))


def _answered_book(book, clock) -> AnswerBook:
    """R1: two points, sent; R2: background, sealed; R3: one open point."""
    book.begin(R1)
    clock.advance(4.25)
    book.add_point(R1, (12, 6, 2))
    book.add_point(R1, (19, 14, 2))
    book.begin(R2)
    clock.advance(1.5)
    book.tag_background(R2)
    book.begin(R3)
    clock.advance(2)
    book.add_point(R3, (10, 5, 2))
    book.mark_sent(R1.id)
    book.seal(R2.id)
    return book


def test_a_new_book_on_the_same_scene_has_the_same_answers(book, mrml, clock):
    answers = _answered_book(book, clock).answers()
    reopened = AnswerBook(mrml.scene, clock)
    assert reopened.answers() == answers
    assert [(a.idempotency_key, a.effort_seconds) for a in reopened.answers()] == [
        (a.idempotency_key, e) for a, e in zip(answers, (4.25, 1.5, 2.0))
    ]
    assert reopened.current_cycle == CYCLE
    assert reopened.undo() == "Removed the point (10, 5, 2) of region 3."  # the undo history is stored too
    assert reopened.undo() is None


def test_answers_survive_a_scene_saved_to_a_file_and_loaded(book, mrml, clock, tmp_path):
    answers = _answered_book(book, clock).answers()
    node = mrml.scene.GetFirstNodeByName(ANSWERS_NODE_NAME)
    storage = node.GetStorageNode()  # Slicer's Save writes every storable node through its storage node
    storage.SetFileName(str(tmp_path / "answers.txt"))
    assert storage.WriteData(node)
    mrml.scene.SetRootDirectory(str(tmp_path))
    mrml.scene.SetURL(str(tmp_path / "scene.mrml"))
    assert mrml.scene.Commit()
    assert json.loads((tmp_path / "answers.txt").read_text())["cycle_id"] == CYCLE

    loaded = slicer.vtkMRMLScene()
    loaded.SetURL(str(tmp_path / "scene.mrml"))
    assert loaded.Import()
    assert AnswerBook(loaded, clock).answers() == answers


def test_answers_survive_a_scene_bundle(book, mrml, clock, tmp_path):
    answers = _answered_book(book, clock).answers()
    bundle = tmp_path / "session.mrb"
    assert mrml.scene.WriteToMRB(str(bundle))
    loaded = slicer.vtkMRMLScene()
    cache = slicer.vtkCacheManager()  # reading a bundle unpacks it into the cache folder, as in Slicer
    cache.SetRemoteCacheDirectory(str(tmp_path / "cache"))
    io_manager = slicer.vtkDataIOManager()
    io_manager.SetCacheManager(cache)
    loaded.SetDataIOManager(io_manager)
    loaded.SetCacheManager(cache)
    assert loaded.ReadFromMRB(str(bundle))
    assert AnswerBook(loaded, clock).answers() == answers


def test_a_damaged_answers_node_gives_a_clear_message(book, mrml):
    book.begin(R1)
    book.add_point(R1, (12, 6, 2))
    mrml.scene.GetFirstNodeByName(ANSWERS_NODE_NAME).SetText("{not json")
    with pytest.raises(UserFacingError, match="answers saved in this scene .* cannot be read"):
        AnswerBook(mrml.scene)


def test_end_stops_the_clock_without_touching_an_empty_scene(mrml, clock):
    book = AnswerBook(mrml.scene, clock)
    book.end()  # nothing shown yet: nothing to stop, no answers node made
    assert mrml.scene.GetFirstNodeByName(ANSWERS_NODE_NAME) is None and not book.clock_running
    book.start_cycle(CYCLE)
    book.begin(R1)
    assert book.clock_running and not book.can_undo()
    book.tag_background(R1)
    assert book.can_undo()
    book.end()
    assert not book.clock_running
