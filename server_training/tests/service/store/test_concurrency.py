"""Clients racing on one store (threads and processes, hundreds of requests, bounded in time):
no region leased to two annotators at once, no lost or duplicated answer."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from covidal.service.store.errors import Conflict, LeaseError
from covidal.service.store.store import Store

WORKER = Path(__file__).parent / "worker.py"
TIME_LIMIT_S = 60


def run_threads(target, arguments):
    """Run ``target(*arguments[n])`` in one thread each; fail if one raised or did not end in time."""
    errors = []

    def guarded(*args):
        try:
            target(*args)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=args, daemon=True) for args in arguments]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIME_LIMIT_S
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "threads did not finish in time"
    assert errors == []


def overlapping_leases(grants):
    """Pairs of leases of one region to two annotators whose ``[start, end)`` intersect."""
    by_region = defaultdict(list)
    for suggestion_id, annotator, start, end in grants:
        by_region[suggestion_id].append((annotator, start, end))
    return [
        (suggestion_id, a, b)
        for suggestion_id, leases in by_region.items()
        for index, a in enumerate(leases)
        for b in leases[index + 1 :]
        if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]
    ]


def test_threads_leasing_with_short_leases_and_answering_lose_and_duplicate_nothing(project_opener):
    """4 threads sharing one Store lease 2 regions at a time for 0.1 s, answer them and resend some answers.

    Now and then a thread abandons its leases and comes back under a new annotator name (a clinician
    who closed Slicer and logged in elsewhere): those regions are taken over once the leases run out;
    or it answers too late, when its lease may have been taken over (refused) or not (accepted).
    """
    store, project, _, cycle = project_opener(regions=120)
    lease_s, lock = 0.1, threading.Lock()
    grants, acks, refusals = [], {}, []
    deadline = time.monotonic() + TIME_LIMIT_S

    def annotate(name, seed):
        rng, session = random.Random(seed), 0
        while time.monotonic() < deadline:
            annotator = f"{name}.{session}"
            now = time.time()
            leased = store.lease_suggestions(project.id, cycle.id, annotator, limit=2, lease_seconds=lease_s, now=now)
            with lock:
                grants.extend((s.id, annotator, now, now + lease_s) for s in leased)
            if not leased:
                if all(s.answered for s in store.list_suggestions(project.id, cycle.id)):
                    return
                time.sleep(0.01)  # the regions left are leased to others: wait for answers or expiry
            if leased and rng.random() < 0.2:
                session += 1  # abandons its leases
                continue
            if rng.random() < 0.1:
                time.sleep(lease_s * 1.5)  # answers after its leases ran out
            for suggestion in leased:
                key, point = f"{annotator}:{suggestion.id}", (suggestion.box.i0, suggestion.box.j1 - 1, suggestion.k)
                try:
                    answer, created = store.submit_annotation(
                        project.id,
                        suggestion.id,
                        annotator=annotator,
                        answer="infection",
                        points=[point],
                        effort_seconds=rng.uniform(0, 30),
                        idempotency_key=key,
                    )
                except (LeaseError, Conflict) as error:  # its lease ran out and another annotator took over
                    with lock:
                        refusals.append((annotator, suggestion.id, error))
                    continue
                with lock:
                    acks[key] = (answer, created)
                if rng.random() < 0.3:  # a client retrying after a lost response
                    again = store.submit_annotation(
                        project.id,
                        suggestion.id,
                        annotator=annotator,
                        answer="infection",
                        points=[point],
                        effort_seconds=answer.effort_seconds,
                        idempotency_key=key,
                    )
                    assert again == (answer, False)

    run_threads(annotate, [(f"annotator{n}", n) for n in range(4)])
    history = store.annotation_history(project.id)
    assert sorted(a.suggestion_id for a in history) == sorted(
        s.id for s in store.list_suggestions(project.id, cycle.id)
    )
    assert all(created for _, created in acks.values()) and len(acks) == len(history) == 120
    assert {a.idempotency_key: a for a in history} == {key: answer for key, (answer, _) in acks.items()}
    assert overlapping_leases(grants) == []
    answered_by = {a.suggestion_id: a.annotator for a in history}
    for annotator, suggestion_id, error in refusals:  # refused for another annotator's answer or lease only
        if isinstance(error, Conflict):
            assert "was already answered" in str(error) and answered_by[suggestion_id] != annotator
        else:
            assert "is leased to" in str(error) and f"leased to {annotator!r}" not in str(error)
    assert len(grants) >= 120 and store.integrity_check() == []


def test_threads_with_their_own_connections_racing_for_the_same_regions_answer_each_once(project_opener):
    """4 threads, each with its own Store (connection), answer all 60 regions in their own orders: 240 submits."""
    store, project, _, cycle = project_opener(regions=60)
    suggestions = store.list_suggestions(project.id, cycle.id)
    outcomes, lock = [], threading.Lock()

    def answer_all(annotator, seed):
        order = random.Random(seed).sample(suggestions, len(suggestions))
        with Store(store.root) as own:
            for suggestion in order:
                try:
                    _, created = own.submit_annotation(
                        project.id,
                        suggestion.id,
                        annotator=annotator,
                        answer="background",
                        points=[],
                        effort_seconds=1.0,
                        idempotency_key=f"{annotator}:{suggestion.id}",
                    )
                    outcome = "created" if created else "replayed"
                except Conflict as error:
                    assert "was already answered at" in str(error)
                    outcome = "conflict"
                with lock:
                    outcomes.append((suggestion.id, annotator, outcome))

    run_threads(answer_all, [(f"annotator{n}", n) for n in range(4)])
    winners = {sid: annotator for sid, annotator, outcome in outcomes if outcome == "created"}
    assert Counter(outcome for _, _, outcome in outcomes) == {"created": 60, "conflict": 180}
    assert {a.suggestion_id: a.annotator for a in store.annotation_history(project.id)} == winners
    assert len(winners) == 60


def test_two_processes_annotating_one_store_never_share_a_region(project_opener):
    store, project, _, cycle = project_opener(regions=120)
    store.close()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "annotate",
                str(store.root),
                str(project.id),
                str(cycle.id),
                name,
                "1000",
                "0.002",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alice", "bob")
    ]
    try:
        assert [worker.stdout.readline() for worker in workers] == ["READY\n"] * 2
        for worker in workers:  # start both at once: neither may finish before the other starts
            worker.stdin.write("GO\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=TIME_LIMIT_S) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    leased = [{int(line.split()[1]) for line in out.splitlines() if line.startswith("LEASE")} for out, _ in outputs]
    acked = dict(line.split()[1:] for out, _ in outputs for line in out.splitlines() if line.startswith("ACK"))
    assert leased[0].isdisjoint(leased[1]) and leased[0] and leased[1]  # both worked, never on the same region
    with Store(store.root) as reopened:
        history = reopened.annotation_history(project.id)
        assert {a.idempotency_key: str(a.suggestion_id) for a in history} == acked
        assert len(history) == 120 and leased[0] | leased[1] == {a.suggestion_id for a in history}
        assert reopened.integrity_check() == []
