"""Answers submitted while ``covidal serve`` is killed (SIGKILL): the submitting client, and what survived.

Used by ``covidal bench-hostile`` and the crash tests: a :class:`Submitter` answers leased suggestions one by
one, recording each acknowledged (201) answer, until a request gets no answer (the server is gone).
"""

from __future__ import annotations

import http.client
import threading

from covidal.client import BackendUnreachable, CovidalClient


class Submitter(threading.Thread):
    """Answers ``suggestions`` as background, in order, with idempotency keys ``<key_prefix>-<n>``.

    Attributes:
        acknowledged: every request answered 201, with the stored annotation's ``id``.
        in_flight: the request the server never answered (None if every one was).
        failure: anything else that went wrong (a replay for a first submission, an HTTP error).
    """

    def __init__(
        self, client: CovidalClient, project_id: int, suggestions: list[dict], key_prefix: str = "answer"
    ) -> None:
        super().__init__(daemon=True)
        self.client, self.project_id, self.suggestions = client, project_id, suggestions
        self.key_prefix = key_prefix
        self.acknowledged: list[dict] = []
        self.in_flight: dict | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        for number, suggestion in enumerate(self.suggestions):
            request = {
                "suggestion_id": suggestion["id"],
                "annotator": "dr-a",
                "answer": "background",
                "effort_seconds": 1.0,
                "idempotency_key": f"{self.key_prefix}-{number}",
            }
            try:
                annotation, created = self.client.submit_annotation(self.project_id, **request)
            except (BackendUnreachable, http.client.HTTPException, OSError):  # no answer: the server died
                self.in_flight = request
                return
            except BaseException as error:  # noqa: BLE001 - reported by the caller, not lost in the thread
                self.failure = error
                return
            if not created:
                self.failure = AssertionError(f"a first submission was answered as a replay: {annotation}")
                return
            self.acknowledged.append({**request, "id": annotation["id"]})


def lost_answers(acknowledged: list[dict], stored: list[dict]) -> list[dict]:
    """The acknowledged answers the store does not hold as acknowledged (same id, suggestion and answer)."""
    by_key = {annotation["idempotency_key"]: annotation for annotation in stored}
    return [
        answer
        for answer in acknowledged
        if (kept := by_key.get(answer["idempotency_key"])) is None
        or (kept["id"], kept["suggestion_id"], kept["answer"])
        != (answer["id"], answer["suggestion_id"], answer["answer"])
    ]
