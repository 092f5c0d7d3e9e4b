"""The clinician's answers to suggested regions, kept in the MRML scene so that none is lost.

An answer is a background tag, or one or more clicks on infection (voxel indices ``(i, j, k)``),
for one region. Its life:

- *open*: points can be added and undone;
- *sealed* once a send is first attempted: points, effort and idempotency key are frozen, so a
  resend after a lost reply is an exact replay that the backend recognises (it refuses a key
  reused with other content);
- *sent* when the backend acknowledged it, or *rejected* when it refused it for good (the message
  shows in the table; answering the region again starts a new answer with a new key).

Storage: a ``vtkMRMLTextNode`` named :data:`ANSWERS_NODE_NAME` holds the book as JSON, with a
text storage node (a ``.txt`` file: the text storage node's only default) so that Slicer's Save
writes it and loading the scene reads it back. Every change rewrites it at once, and every
method reads it, so the node is the only state: a scene closed and reopened needs no extra call.

Effort: the seconds during which a region is the current one (:meth:`AnswerBook.begin`),
accumulated per region over visits. An open answer reports its region's effort so far; sealing
freezes it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.regions import SuggestedRegion

ANSWERS_NODE_NAME = "CovidActiveLearning answers"
ROLE_ATTRIBUTE = "CovidActiveLearning.Role"  # marks the node, whatever the user renames it to
ANSWERS_ROLE = "answers"
FORMAT_VERSION = 1

Voxel = tuple[int, int, int]


class AnswerKind(StrEnum):
    """The backend's answer values."""

    BACKGROUND = "background"
    INFECTION = "infection"


class AnswerStatus(StrEnum):
    PENDING = "pending"  # not yet acknowledged by the backend
    SENT = "sent"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RegionAnswer:
    """The answer for one suggested region.

    Attributes:
        points: clicks on infection ``(i, j, k)`` in click order; empty for a background tag.
        effort_seconds: the region's effort so far while open; frozen once sealed.
        idempotency_key: sent with every attempt; a new answer for the region gets a new key.
        error: the backend's reason for a rejection (None otherwise).
        rank: the region's rank in its cycle (1 = most uncertain), for the table.
        sealed: a send was attempted, so the content can no longer change.
    """

    suggestion_id: int
    cycle_id: int
    volume_id: int
    kind: AnswerKind
    points: tuple[Voxel, ...]
    effort_seconds: float
    idempotency_key: str
    sent: bool
    error: str | None
    rank: int = 0
    sealed: bool = False

    @property
    def status(self) -> AnswerStatus:
        if self.sent:
            return AnswerStatus.SENT
        return AnswerStatus.PENDING if self.error is None else AnswerStatus.REJECTED


@dataclass(frozen=True)
class AnswerRow:
    """One line of the answers table."""

    rank: int
    suggestion_id: int
    cycle_id: int
    kind: AnswerKind
    points: int
    effort_seconds: float
    status: AnswerStatus
    message: str | None

    @property
    def status_text(self) -> str:
        """``pending``, ``sent`` or ``rejected: <the backend's reason>``."""
        return f"rejected: {self.message}" if self.status is AnswerStatus.REJECTED else self.status.value


@dataclass(frozen=True)
class _Action:
    """One undoable step: a click on ``voxel``, or a background tag when ``voxel`` is None."""

    suggestion_id: int
    voxel: Voxel | None


@dataclass
class _Document:
    """The JSON held by the text node."""

    cycle_id: int | None = None
    answers: dict[int, RegionAnswer] = field(default_factory=dict)
    effort: dict[int, float] = field(default_factory=dict)  # seconds spent per suggestion id
    actions: list[_Action] = field(default_factory=list)  # undoable steps of open answers, oldest first

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "cycle_id": self.cycle_id,
            "answers": [_answer_to_json(answer) for answer in self.answers.values()],
            "effort": {str(suggestion_id): seconds for suggestion_id, seconds in self.effort.items()},
            "actions": [
                [action.suggestion_id, None if action.voxel is None else list(action.voxel)] for action in self.actions
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Document:
        """Raises KeyError, TypeError or ValueError for a malformed document."""
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {data.get('format')!r} is not {FORMAT_VERSION}")
        answers = [_answer_from_json(entry) for entry in data["answers"]]
        return cls(
            cycle_id=None if data["cycle_id"] is None else int(data["cycle_id"]),
            answers={answer.suggestion_id: answer for answer in answers},
            effort={int(key): float(seconds) for key, seconds in data["effort"].items()},
            actions=[_Action(int(sid), None if voxel is None else _voxel(voxel)) for sid, voxel in data["actions"]],
        )


class AnswerBook:
    """The clinician's answers of the current project, saved in the scene (see the module docstring).

    Args:
        scene: the vtkMRMLScene holding (or to hold) the answers node.
        clock: monotonic seconds, for the effort counter.

    Errors: methods that take a clinician's action raise :class:`UserFacingError` with the reason;
    any method raises it when the stored JSON cannot be read.
    """

    def __init__(self, scene, clock: Callable[[], float] = time.monotonic) -> None:
        self._scene = scene
        self._clock = clock
        self._current: SuggestedRegion | None = None
        self._since = 0.0  # clock reading up to which the current region's effort is in the document
        self._load()  # a node that cannot be read is reported now, not at the first click

    # The cycle and the region on screen

    def start_cycle(self, cycle_id: int) -> None:
        """Make ``cycle_id`` the cycle being answered; answers of older cycles stay (unsent ones stay pending)."""
        document = self._load()
        if self._current is not None and self._current.cycle_id != cycle_id:
            self._stop_clock(document)
        document.cycle_id = int(cycle_id)
        self._save(document)

    def begin(self, region: SuggestedRegion) -> None:
        """``region`` is now shown: its effort clock runs (the previous region's stops).

        Raises:
            UserFacingError: the region is not of the current cycle.
        """
        document = self._load()
        _check_cycle(document, region)
        self._stop_clock(document)
        self._current, self._since = region, self._clock()
        self._save(document)

    def end(self) -> None:
        """No region is shown any more (the clinician left the module, closed the scene, quit): the effort clock
        stops until the next :meth:`begin`. Nothing happens when it is not running."""
        if self._current is None:
            return
        document = self._load()
        self._stop_clock(document)
        self._save(document)

    @property
    def clock_running(self) -> bool:
        """Whether effort is being counted for a region now."""
        return self._current is not None

    def can_undo(self) -> bool:
        """Whether :meth:`undo` has a point or tag of an unsent answer to take back."""
        return bool(self._load().actions)

    # The clinician's actions

    def add_point(self, region: SuggestedRegion, voxel: Voxel) -> RegionAnswer:
        """A click on infection at ``voxel`` ``(i, j, k)`` of the current region.

        Raises:
            UserFacingError: the region is not the current one or not of the current cycle; the voxel
                is outside the region's box or already clicked; the region is tagged as background;
                its answer was submitted.
        """
        voxel = _voxel(voxel)
        document = self._load()
        self._check_current(document, region)
        if not region.box.contains(voxel):
            raise UserFacingError(outside_region_message(region))
        answer = self._open_answer(document, region)
        if answer is not None and answer.kind is AnswerKind.BACKGROUND:
            raise UserFacingError(
                f"Region {region.rank} is tagged as background; undo the tag before clicking on infection in it."
            )
        if answer is not None and voxel in answer.points:
            raise UserFacingError(f"Region {region.rank} already has a point on voxel {voxel}.")
        if answer is None:
            answer = _new_answer(region, AnswerKind.INFECTION)
        document.answers[region.id] = replace(answer, points=answer.points + (voxel,))
        document.actions.append(_Action(region.id, voxel))
        self._save(document)
        return self._view(document, region.id)

    def tag_background(self, region: SuggestedRegion) -> RegionAnswer:
        """Tag the current region as background (no infection in it); tagging it again changes nothing.

        Raises:
            UserFacingError: as :meth:`add_point`, or the region already has infection points (undo them first:
                a tag never silently discards clicks).
        """
        document = self._load()
        self._check_current(document, region)
        answer = self._open_answer(document, region)
        if answer is not None and answer.kind is AnswerKind.INFECTION:
            raise UserFacingError(
                f"Region {region.rank} has {len(answer.points)} infection point(s); undo them "
                "before tagging it as background."
            )
        if answer is None:
            document.answers[region.id] = _new_answer(region, AnswerKind.BACKGROUND)
            document.actions.append(_Action(region.id, None))
            self._save(document)
        return self._view(document, region.id)

    def undo(self) -> str | None:
        """Undo the last point or tag of an answer not yet submitted; returns what was undone, None if nothing."""
        document = self._load()
        if not document.actions:
            return None
        action = document.actions.pop()
        answer = document.answers[action.suggestion_id]
        if action.voxel is None:
            del document.answers[action.suggestion_id]
            undone = f"Removed the background tag of region {answer.rank}."
        else:
            points = tuple(point for point in answer.points if point != action.voxel)
            if points:
                document.answers[action.suggestion_id] = replace(answer, points=points)
            else:
                del document.answers[action.suggestion_id]
            undone = f"Removed the point {action.voxel} of region {answer.rank}."
        self._save(document)
        return undone

    # Sending (see outbox.submit_pending)

    def seal(self, suggestion_id: int) -> RegionAnswer:
        """Freeze the answer's content before a send; every later attempt sends exactly this.

        Raises:
            ValueError: no answer for ``suggestion_id``.
        """
        document = self._load()
        answer = self._sealed(document, suggestion_id)
        self._save(document)
        return answer

    def mark_sent(self, suggestion_id: int) -> None:
        """The backend stored the answer (sealing it if it was not)."""
        document = self._load()
        document.answers[suggestion_id] = replace(self._sealed(document, suggestion_id), sent=True, error=None)
        self._save(document)

    def mark_rejected(self, suggestion_id: int, message: str) -> None:
        """The backend refused the answer for good, for ``message``; it leaves the pending list."""
        document = self._load()
        answer = self._sealed(document, suggestion_id)
        document.answers[suggestion_id] = replace(answer, sent=False, error=str(message) or "refused by the backend")
        self._save(document)

    # Reading

    def answers(self) -> list[RegionAnswer]:
        """Every answer, by cycle and rank."""
        document = self._load()
        return [self._view(document, sid) for sid in _table_order(document)]

    def answer_for(self, suggestion_id: int) -> RegionAnswer | None:
        document = self._load()
        return self._view(document, suggestion_id) if suggestion_id in document.answers else None

    def pending(self) -> list[RegionAnswer]:
        """Answers not yet acknowledged by the backend (rejected ones excluded), by cycle and rank."""
        return [answer for answer in self.answers() if answer.status is AnswerStatus.PENDING]

    def progress(self, regions: Sequence[SuggestedRegion]) -> str:
        """``"3 of 5 answered"``: regions with an answer that was not rejected."""
        document = self._load()
        answered = sum(
            1 for region in regions if (answer := document.answers.get(region.id)) is not None and answer.error is None
        )
        return f"{answered} of {len(regions)} answered"

    def effort_seconds(self) -> float:
        """Seconds spent on all regions, answered or not, the current one included."""
        document = self._load()
        return sum(document.effort.values()) + self._running_seconds()

    def rows(self) -> list[AnswerRow]:
        """The answers table, by cycle and rank."""
        return [
            AnswerRow(
                answer.rank,
                answer.suggestion_id,
                answer.cycle_id,
                answer.kind,
                len(answer.points),
                answer.effort_seconds,
                answer.status,
                answer.error,
            )
            for answer in self.answers()
        ]

    @property
    def current_cycle(self) -> int | None:
        return self._load().cycle_id

    # Internals

    def _check_current(self, document: _Document, region: SuggestedRegion) -> None:
        _check_cycle(document, region)
        if self._current is None or self._current.id != region.id:
            raise UserFacingError(f"Region {region.rank} is not the region on screen; go to it before answering it.")

    @staticmethod
    def _open_answer(document: _Document, region: SuggestedRegion) -> RegionAnswer | None:
        """The region's answer that can still change; None when there is none or it was rejected (a new one starts).

        Raises:
            UserFacingError: the answer was submitted.
        """
        answer = document.answers.get(region.id)
        if answer is None or answer.error is not None:
            return None
        if answer.sealed:
            raise UserFacingError(f"Region {region.rank} has been submitted; its answer can no longer change.")
        return answer

    def _sealed(self, document: _Document, suggestion_id: int) -> RegionAnswer:
        answer = document.answers.get(suggestion_id)
        if answer is None:
            raise ValueError(f"no answer for suggestion {suggestion_id}")
        if not answer.sealed:
            # Milliseconds: a float that prints and reads back exactly, as a replay must match.
            effort = round(self._region_seconds(document, suggestion_id), 3)
            answer = replace(answer, sealed=True, effort_seconds=effort)
            document.answers[suggestion_id] = answer
            document.actions = [action for action in document.actions if action.suggestion_id != suggestion_id]
        return answer

    def _view(self, document: _Document, suggestion_id: int) -> RegionAnswer:
        """The stored answer, with the live effort while it is open."""
        answer = document.answers[suggestion_id]
        if answer.sealed:
            return answer
        return replace(answer, effort_seconds=self._region_seconds(document, suggestion_id))

    def _region_seconds(self, document: _Document, suggestion_id: int) -> float:
        running = self._running_seconds() if self._current is not None and self._current.id == suggestion_id else 0.0
        return document.effort.get(suggestion_id, 0.0) + running

    def _running_seconds(self) -> float:
        """Seconds on the current region not yet added to the document."""
        return max(0.0, self._clock() - self._since) if self._current is not None else 0.0

    def _flush_clock(self, document: _Document) -> None:
        if self._current is not None:
            sid = self._current.id
            document.effort[sid] = document.effort.get(sid, 0.0) + self._running_seconds()
            self._since = self._clock()

    def _stop_clock(self, document: _Document) -> None:
        self._flush_clock(document)
        self._current = None

    def _load(self) -> _Document:
        node = self._find_node()
        text = node.GetText() if node is not None else ""
        if not text:
            return _Document()
        try:
            return _Document.from_json(json.loads(text))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise UserFacingError(
                f"The answers saved in this scene (text node '{node.GetName()}') cannot be read "
                f"({error!r}); remove that node to start a new answer book."
            ) from None

    def _save(self, document: _Document) -> None:
        self._flush_clock(document)
        node = self._find_node() or self._new_node()
        node.SetText(json.dumps(document.to_json(), sort_keys=True))

    def _find_node(self):
        for index in range(self._scene.GetNumberOfNodesByClass("vtkMRMLTextNode")):
            node = self._scene.GetNthNodeByClass(index, "vtkMRMLTextNode")
            if node.GetAttribute(ROLE_ATTRIBUTE) == ANSWERS_ROLE:
                return node
        return None

    def _new_node(self):
        node = self._scene.AddNewNodeByClass("vtkMRMLTextNode", ANSWERS_NODE_NAME)
        node.SetAttribute(ROLE_ATTRIBUTE, ANSWERS_ROLE)
        node.SetForceCreateStorageNode(node.CreateStorageNodeAlways)  # short texts would otherwise go in the .mrml
        node.AddDefaultStorageNode()
        return node


def outside_region_message(region: SuggestedRegion) -> str:
    """The sentence for a click outside ``region``."""
    return f"The point is outside region {region.rank}; click inside the highlighted box or move to the region."


def _check_cycle(document: _Document, region: SuggestedRegion) -> None:
    if document.cycle_id is None:
        raise UserFacingError("Get suggestions first: no cycle is being answered.")
    if region.cycle_id != document.cycle_id:
        raise UserFacingError(
            f"Region {region.rank} is from another cycle ({region.cycle_id}) than the current one "
            f"({document.cycle_id}); answer the regions of the current cycle."
        )


def _new_answer(region: SuggestedRegion, kind: AnswerKind) -> RegionAnswer:
    return RegionAnswer(
        suggestion_id=region.id,
        cycle_id=region.cycle_id,
        volume_id=region.volume_id,
        kind=kind,
        points=(),
        effort_seconds=0.0,
        idempotency_key=uuid.uuid4().hex,
        sent=False,
        error=None,
        rank=region.rank,
    )


def _table_order(document: _Document) -> list[int]:
    return sorted(document.answers, key=lambda sid: (document.answers[sid].cycle_id, document.answers[sid].rank, sid))


def _voxel(values) -> Voxel:
    """``(i, j, k)`` as three ints; TypeError or ValueError for anything else."""
    i, j, k = (int(value) for value in values)
    return i, j, k


def _answer_to_json(answer: RegionAnswer) -> dict[str, Any]:
    return {
        "suggestion_id": answer.suggestion_id,
        "cycle_id": answer.cycle_id,
        "volume_id": answer.volume_id,
        "rank": answer.rank,
        "kind": answer.kind.value,
        "points": [list(point) for point in answer.points],
        "effort_seconds": answer.effort_seconds,
        "idempotency_key": answer.idempotency_key,
        "sealed": answer.sealed,
        "sent": answer.sent,
        "error": answer.error,
    }


def _answer_from_json(entry: dict[str, Any]) -> RegionAnswer:
    return RegionAnswer(
        suggestion_id=int(entry["suggestion_id"]),
        cycle_id=int(entry["cycle_id"]),
        volume_id=int(entry["volume_id"]),
        kind=AnswerKind(entry["kind"]),
        points=tuple(_voxel(point) for point in entry["points"]),
        effort_seconds=float(entry["effort_seconds"]),
        idempotency_key=str(entry["idempotency_key"]),
        sent=bool(entry["sent"]),
        error=None if entry["error"] is None else str(entry["error"]),
        rank=int(entry["rank"]),
        sealed=bool(entry["sealed"]),
    )
