"""SIGKILL mid-write, then restart: every acknowledged answer survives, no half-written volume, a clean store."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_testing import GEOMETRY

from covidal.service.store.files import TEMPORARY_PREFIX
from covidal.service.store.store import Store

WORKER = Path(__file__).parent / "worker.py"
TIME_LIMIT_S = 60


def run_until(arguments, stop_line, extra_delay_s=0.0):
    """Start the worker, read its stdout until ``stop_line(line)`` is true, SIGKILL it; every stdout line.

    Lines the worker flushed before dying are read too: they were printed after their call returned.
    """
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, arguments)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, deadline = [], time.monotonic() + TIME_LIMIT_S
    try:
        for line in worker.stdout:
            lines.append(line.strip())
            if stop_line(line) or time.monotonic() > deadline:
                break
        time.sleep(extra_delay_s)
        worker.send_signal(signal.SIGKILL)
        out, err = worker.communicate(timeout=TIME_LIMIT_S)
    finally:
        worker.kill()
    assert worker.returncode == -signal.SIGKILL, err  # it was killed, not finished or crashed
    return lines + out.splitlines()


def after_acks(count):
    """A ``stop_line`` for :func:`run_until`: true at the ``count``-th ``ACK`` line."""
    seen = []

    def stop(line):
        seen.extend([line] if line.startswith("ACK") else [])
        return len(seen) >= count

    return stop


@pytest.mark.parametrize("kill_after, extra_delay_s", [(1, 0.0), (15, 0.002), (40, 0.005)])
def test_acknowledged_answers_survive_a_sigkill_mid_submit(project_opener, kill_after, extra_delay_s):
    store, project, _, cycle = project_opener(regions=120)
    store.close()
    lines = run_until(
        ["annotate", store.root, project.id, cycle.id, "alice", 1000, 0], after_acks(kill_after), extra_delay_s
    )
    acked = {line.split()[1] for line in lines if line.startswith("ACK")}
    assert len(acked) >= kill_after
    with Store(store.root) as restarted:
        assert restarted.recover().removed_files == ()
        stored = {a.idempotency_key for a in restarted.annotation_history(project.id)}
        assert acked <= stored and len(stored - acked) <= 1  # at most the submit in flight committed unacknowledged
        assert restarted.integrity_check() == []
        # the store keeps working: the killed client's regions stay leased to it, the others can be leased
        free = {
            s.id
            for s in restarted.list_suggestions(project.id, cycle.id)
            if not s.answered and s.lease_holder != "alice"
        }
        leased = restarted.lease_suggestions(project.id, cycle.id, "bob", limit=200, lease_seconds=60)
        assert {s.id for s in leased} == free and len(free) >= 120 - len(stored) - 2


def test_a_sigkill_during_a_large_upload_leaves_no_volume_file_and_no_row(project_opener):
    store, project, volume, _ = project_opener()
    store.close()
    run_until(["upload", store.root, project.id, "endless"], lambda line: line.startswith("CHUNK 8"))
    with Store(store.root) as restarted:
        assert restarted.list_volumes(project.id) == [volume]
        assert restarted.files.files("volumes") == [volume.path]  # no complete-looking file
        [partial] = restarted.files.temporaries()
        assert Path(partial).name.startswith(TEMPORARY_PREFIX)
        assert restarted.files.path(partial).stat().st_size >= 8 * 256 * 1024
        assert restarted.integrity_check() == [f"file {partial}: left over by an interrupted write"]
        assert restarted.recover().removed_files == (partial,)
        assert restarted.integrity_check() == []
        stored = restarted.files.put_stream(restarted.volume_folder(project.id), ".nii.gz", io.BytesIO(b"v2"), 100)
        assert restarted.add_volume(project.id, "ct2.nii.gz", stored, "nifti", GEOMETRY)[1]  # uploads work again


def test_a_sigkill_between_the_upload_and_its_row_leaves_a_file_that_recovery_removes(project_opener):
    store, project, volume, _ = project_opener()
    store.close()
    lines = run_until(["upload", store.root, project.id, "stored"], lambda line: line.startswith("STORED"))
    orphan = lines[-1].split()[1]
    with Store(store.root) as restarted:
        assert restarted.list_volumes(project.id) == [volume]
        assert restarted.integrity_check() == [f"file {orphan}: not referenced by any volume"]
        assert restarted.recover().removed_files == (orphan,)
        assert restarted.integrity_check() == [] and restarted.files.files("volumes") == [volume.path]
