"""Send the answer book's pending answers to the backend, losing none.

Each answer is sealed before its first attempt and always sent with its stored idempotency key,
so an answer whose reply was lost is replayed, never stored twice. What the backend's reply
means for the answer:

- 201: stored (``sent``); 200: a replay of an answer stored before (``replayed``); both mark it sent;
- 409 (already answered, leased to someone else, key reused) or 422 (a point outside the region
  or volume): refused for good, marked rejected with the server's message, and the loop goes on;
- 401/403 (token): every answer would meet the same refusal, so the loop stops; all stay pending;
- any other error status (404, 5xx, ...): that answer stays pending and the loop goes on;
- unreachable: the loop stops, everything not sent stays pending for the next submit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from CovidActiveLearningLib.answers import AnswerBook
from CovidActiveLearningLib.backend_client import BackendUnreachable, ClientError, CovidalClient
from CovidActiveLearningLib.operations import Operation, Remote, run_now

REFUSED_FOR_GOOD = frozenset({409, 422})
REFUSED_EVERY_REQUEST = frozenset({401, 403})


@dataclass(frozen=True)
class SubmitReport:
    """What one submit did.

    Attributes:
        sent: answers the backend stored now. replayed: answers it had stored already (a lost reply).
        still_pending: answers left to send next time (this submit's failures and anything not tried).
        rejected: ``(suggestion id, server message)`` of the answers refused for good.
        unreachable: why the backend could not be reached (None when it answered).
        failed: ``(suggestion id, server message)`` of answers left pending after an error status.
    """

    sent: int
    replayed: int
    still_pending: int
    rejected: list[tuple[int, str]]
    unreachable: str | None
    failed: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the status bar."""
        parts = [f"{self.sent} answer(s) sent" + (f", {self.replayed} already stored" if self.replayed else "")]
        if self.rejected:
            parts.append(f"{len(self.rejected)} refused (see the table)")
        if self.still_pending:
            reason = (
                f"the backend does not answer ({self.unreachable})"
                if self.unreachable
                else "; ".join(message for _, message in self.failed) or "not sent"
            )
            parts.append(f"{self.still_pending} kept to send again: {reason}")
        return "; ".join(parts) + "."


def submit_pending(book: AnswerBook, client: CovidalClient, project_id: int, annotator: str) -> SubmitReport:
    """Send every pending answer of ``book`` to ``project_id`` as ``annotator`` (see the module docstring)."""
    return run_now(submit_operation(book, client, project_id, annotator))


def submit_operation(
    book: AnswerBook, client: CovidalClient, project_id: int, annotator: str
) -> Operation[SubmitReport]:
    """:func:`submit_pending` as an operation: the requests may run off the GUI thread, the book's updates do not."""
    sent = replayed = 0
    rejected: list[tuple[int, str]] = []
    failed: list[tuple[int, str]] = []
    unreachable = None
    for pending in book.pending():
        answer = book.seal(pending.suggestion_id)
        try:
            _, created = yield Remote(
                client.submit_annotation,
                (project_id, answer.suggestion_id),
                {
                    "annotator": annotator,
                    "answer": answer.kind.value,
                    "points": [list(point) for point in answer.points],
                    "effort_seconds": answer.effort_seconds,
                    "idempotency_key": answer.idempotency_key,
                },
                raw=True,
            )
        except BackendUnreachable as error:
            unreachable = str(error)
            break
        except ClientError as error:
            if error.status in REFUSED_FOR_GOOD:
                book.mark_rejected(answer.suggestion_id, error.detail)
                rejected.append((answer.suggestion_id, error.detail))
                continue
            failed.append((answer.suggestion_id, f"HTTP {error.status}: {error.detail}"))
            if error.status in REFUSED_EVERY_REQUEST:
                break
            continue
        book.mark_sent(answer.suggestion_id)
        sent, replayed = (sent + 1, replayed) if created else (sent, replayed + 1)
    return SubmitReport(
        sent=sent,
        replayed=replayed,
        still_pending=len(book.pending()),
        rejected=rejected,
        unreachable=unreachable,
        failed=failed,
    )
