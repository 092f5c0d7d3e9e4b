"""``covidal serve`` killed (SIGKILL) while a client submits annotations: restarted on the same project folder,
every acknowledged annotation is there exactly once, a resend of any of them is a replay, and the store is intact."""

from __future__ import annotations

import os
import time
from collections import Counter

import numpy as np
import pytest
from job_testing import lesion_ct, tiny_project
from process_testing import kill_group, serve
from service_testing import write_volume

from covidal.bench.kill import Submitter, lost_answers
from covidal.service.store.store import Store

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and SIGKILL are POSIX")

SLICES = 16  # 4 regions a slice: 64 suggestions, far more than are answered before the kill
KILL_AFTER = 5  # acknowledged answers


def test_acknowledged_annotations_survive_a_kill_during_submission(tmp_path):
    project_dir, ct = tmp_path / "project", tmp_path / "lesion.nrrd"
    write_volume(np.tile(lesion_ct(), (SLICES // 4, 1, 1)), ct)
    process, client = serve(project_dir)
    try:
        project, _ = tiny_project(client, ct)
        cycle = client.create_cycle(project["id"], count=4 * SLICES)
        leased = client.lease_suggestions(project["id"], cycle["id"], "dr-a", limit=4 * SLICES)
        assert len(leased) == 4 * SLICES
        submitter = Submitter(client, project["id"], leased)
        submitter.start()
        deadline = time.monotonic() + 60
        while len(submitter.acknowledged) < KILL_AFTER and submitter.is_alive():
            assert time.monotonic() < deadline, "the submissions did not get going"
            time.sleep(0.002)
    finally:
        kill_group(process)
    submitter.join(60)
    assert not submitter.is_alive() and submitter.failure is None, submitter.failure
    acknowledged = submitter.acknowledged
    # killed mid-loop: some answers acknowledged, the loop cut short by a request the dead server never answered
    assert len(acknowledged) >= KILL_AFTER and submitter.in_flight is not None
    assert len(acknowledged) < len(leased)

    process, client = serve(project_dir)
    try:
        stored = client.list_annotations(project["id"])
        keys = Counter(annotation["idempotency_key"] for annotation in stored)
        assert all(count == 1 for count in keys.values()), keys
        by_key = {annotation["idempotency_key"]: annotation for annotation in stored}
        assert lost_answers(acknowledged, stored) == []
        # the request in flight at the kill was stored whole or not at all
        in_flight_key = submitter.in_flight["idempotency_key"]
        assert set(by_key) - {a["idempotency_key"] for a in acknowledged} <= {in_flight_key}
        # resending is safe: an acknowledged answer replays as itself, the one in flight lands exactly once
        replay, created = client.submit_annotation(
            project["id"], **{k: v for k, v in acknowledged[0].items() if k != "id"}
        )
        assert (replay["id"], created) == (acknowledged[0]["id"], False)
        _, created = client.submit_annotation(project["id"], **submitter.in_flight)
        assert created == (in_flight_key not in by_key)
        final = Counter(annotation["idempotency_key"] for annotation in client.list_annotations(project["id"]))
        assert final == Counter({**{a["idempotency_key"]: 1 for a in acknowledged}, in_flight_key: 1})
    finally:
        process.terminate()
        process.wait(30)
    with Store(project_dir) as store:
        assert store.integrity_check() == []
