"""Several annotators answering one cycle at once through ``covidal.client`` against a real server.

Four threads share a cycle of 300 regions on five small volumes: three lease batches and
answer every region they get (resending some answers with the same idempotency key, as a
client does after a lost reply); one leases a batch and walks away, so its leases expire
(the lease is 2 s) and the others take those regions over. Afterwards, from the answers,
the server's annotation history and every lease reply (holder and expiry time):
every acknowledged answer is stored exactly once, no region is answered twice, every
region is answered, and no region was ever leased to two annotators at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
from service_testing import new_project, write_volume

from covidal.client import ClientError, CovidalClient
from covidal.service.settings import ServiceSettings

LEASE_SECONDS = 2.0
REGIONS = 300  # 5 volumes x 4 slices x 16 regions = 320 in the pool
WORKERS = ("ana", "ben", "chloe")
DEADLINE_S = 60.0


@dataclass
class Record:
    """What the client threads saw, appended under a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    leases: list[tuple[int, str, float]] = field(default_factory=list)  # (suggestion id, holder, expires at)
    acknowledged: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # id -> (suggestion, who, key)
    refused: list[str] = field(default_factory=list)  # 409 details: the lease was lost or the region answered
    errors: list[BaseException] = field(default_factory=list)

    def leased(self, suggestions: list[dict]) -> None:
        with self.lock:
            self.leases += [(s["id"], s["lease_holder"], s["lease_expires_at"]) for s in suggestions]


def annotate(client: CovidalClient, project_id: int, cycle_id: int, annotator: str, record: Record) -> None:
    """Lease 5 at a time and answer each (every third one sent twice with its key) until the cycle is done."""
    deadline = time.monotonic() + DEADLINE_S
    sent = 0
    while time.monotonic() < deadline:
        batch = client.lease_suggestions(project_id, cycle_id, annotator, limit=5)
        record.leased(batch)
        if not batch:
            if all(s["answered"] for s in client.get_cycle(project_id, cycle_id)["suggestions"]):
                return
            time.sleep(0.05)  # the rest is leased to someone else: wait for answers or expiry
            continue
        for suggestion in batch:
            key = uuid.uuid4().hex
            answer = {
                "annotator": annotator,
                "answer": "background",
                "effort_seconds": float(sent),
                "idempotency_key": key,
            }
            try:
                stored, created = client.submit_annotation(project_id, suggestion["id"], **answer)
            except ClientError as error:
                if error.status != 409:
                    raise
                with record.lock:
                    record.refused.append(error.detail)
                continue
            assert created and stored["suggestion_id"] == suggestion["id"]
            with record.lock:
                record.acknowledged[stored["id"]] = (suggestion["id"], annotator, key)
            if sent % 3 == 0:
                replay, created_again = client.submit_annotation(project_id, suggestion["id"], **answer)
                assert (replay, created_again) == (stored, False)
            sent += 1
    raise TimeoutError(f"{annotator} did not finish within {DEADLINE_S} s")


def walk_away(client: CovidalClient, project_id: int, cycle_id: int, record: Record) -> None:
    """Lease a batch and never answer it: the leases must expire and pass to the others."""
    record.leased(client.lease_suggestions(project_id, cycle_id, "walker", limit=10))


def run_in_thread(target, record: Record, *args) -> threading.Thread:
    def guarded() -> None:
        try:
            target(*args)
        except BaseException as error:  # noqa: BLE001 - reported by the test, not lost in the thread
            with record.lock:
                record.errors.append(error)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread


def lease_overlaps(leases: list[tuple[int, str, float]]) -> list[str]:
    """Regions leased to two annotators at once: lease intervals ``[expires - LEASE_SECONDS, expires)`` that meet."""
    by_region: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for suggestion_id, holder, expires in leases:
        by_region[suggestion_id].append((expires - LEASE_SECONDS, expires, holder))
    overlaps = []
    for suggestion_id, intervals in by_region.items():
        for start, end, holder in intervals:
            overlaps += [
                f"region {suggestion_id}: {holder} [{start}, {end}) and {other} [{s}, {e})"
                for s, e, other in intervals
                if other != holder and s < end - 1e-6 and start < e - 1e-6
            ]
    return overlaps


@pytest.fixture
def cycle(service_starter, tmp_path):
    """A server with 2 s leases, and a project whose open cycle has :data:`REGIONS` regions."""
    running = service_starter(ServiceSettings(tmp_path / "project", lease_seconds=LEASE_SECONDS))
    project = new_project(running.client, grid_k=16)
    rng = np.random.default_rng(0)
    for number in range(5):
        ct = rng.integers(-1000, -300, size=(4, 16, 16), dtype=np.int16)
        running.client.upload_volume(project["id"], write_volume(ct, tmp_path / f"ct{number}.nrrd"))
    cycle = running.client.create_cycle(project["id"], count=REGIONS)
    assert len(cycle["suggestions"]) == REGIONS
    return running, project["id"], cycle["id"]


@pytest.mark.timeout(120)
def test_concurrent_annotators_neither_lose_nor_duplicate_answers(cycle):
    running, project_id, cycle_id = cycle
    record = Record()
    walker = run_in_thread(walk_away, record, running.client, project_id, cycle_id, record)
    walker.join(30)
    threads = [run_in_thread(annotate, record, running.client, project_id, cycle_id, name, record) for name in WORKERS]
    for thread in threads:
        thread.join(DEADLINE_S + 10)
    assert not record.errors, record.errors
    assert not any(thread.is_alive() for thread in [walker, *threads])

    history = running.client.list_annotations(project_id)
    stored = {annotation["id"]: annotation for annotation in history}
    assert len(stored) == len(history) == len(record.acknowledged) == REGIONS
    assert {
        i: (a["suggestion_id"], a["annotator"], a["idempotency_key"]) for i, a in stored.items()
    } == record.acknowledged
    assert len({annotation["suggestion_id"] for annotation in history}) == REGIONS
    assert all(s["answered"] for s in running.client.get_cycle(project_id, cycle_id)["suggestions"])

    assert lease_overlaps(record.leases) == []
    walked_away = {suggestion_id for suggestion_id, holder, _ in record.leases if holder == "walker"}
    taken_over = {a["suggestion_id"] for a in history if a["suggestion_id"] in walked_away}
    assert len(walked_away) == 10 and taken_over == walked_away  # the check above saw regions change hands
    answered_by = {a["suggestion_id"]: a["annotator"] for a in history}
    assert all(answered_by[s] != "walker" for s in walked_away)


@pytest.mark.parametrize(
    ("leases", "overlapping"),
    [
        ([(1, "a", 10.0), (1, "b", 12.0)], False),  # b leased at 10.0, exactly when a's lease ended
        ([(1, "a", 10.0), (1, "b", 11.9)], True),  # b leased at 9.9 while a held it until 10.0
        ([(1, "b", 11.9), (1, "a", 10.0)], True),  # the same, recorded in the other order
        ([(1, "a", 10.0), (1, "a", 11.0)], False),  # a renewing its own lease
        ([(1, "a", 10.0), (2, "b", 10.5)], False),  # different regions
    ],
)
def test_lease_overlaps_finds_two_holders_at_once(leases, overlapping):
    assert bool(lease_overlaps(leases)) is overlapping
