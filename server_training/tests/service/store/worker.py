"""A store client run as a separate process by the concurrency and crash tests.

python worker.py annotate ROOT PROJECT CYCLE ANNOTATOR LEASE_SECONDS THINK_SECONDS
    print ``READY`` once the store is open and start when a line (or end of file) arrives on
    stdin, so that racing workers start together; then lease and answer regions until none
    is left, printing ``LEASE <id>`` for every region leased and ``ACK <key> <id>`` once a
    submit returned (flushed, so a killer sees it); it pauses THINK_SECONDS after each answer
    (a clinician's think time: SQLite's lock is not fair, so a client that never pauses can keep
    another process waiting).
python worker.py upload ROOT PROJECT MODE
    MODE ``endless``: stream 256 KiB chunks to a new volume file forever, printing ``CHUNK <n>``;
    MODE ``stored``: store a small file, print ``STORED <path>`` and sleep before recording it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from covidal.service.store.store import Store


def annotate(root: str, project_id: str, cycle_id: str, annotator: str, lease_seconds: str, think_seconds: str) -> None:
    with Store(Path(root)) as store:
        print("READY", flush=True)
        sys.stdin.readline()
        while leased := store.lease_suggestions(
            int(project_id), int(cycle_id), annotator, limit=2, lease_seconds=float(lease_seconds)
        ):
            for suggestion in leased:
                print(f"LEASE {suggestion.id}", flush=True)
            for suggestion in leased:
                key = f"{annotator}:{suggestion.id}"
                point = (suggestion.box.i0, suggestion.box.j0, suggestion.k)
                store.submit_annotation(
                    int(project_id),
                    suggestion.id,
                    annotator=annotator,
                    answer="infection",
                    points=[point],
                    effort_seconds=1.5,
                    idempotency_key=key,
                )
                print(f"ACK {key} {suggestion.id}", flush=True)
                time.sleep(float(think_seconds))


def upload(root: str, project_id: str, mode: str) -> None:
    with Store(Path(root)) as store:
        folder = store.volume_folder(int(project_id))
        if mode == "stored":
            stored = store.files.put_stream(folder, ".nii.gz", [b"complete volume"], 10**6)
            print(f"STORED {stored.relative_path}", flush=True)
            time.sleep(60)
            return

        def chunks():
            for number in range(10**6):
                yield bytes([number % 256]) * (256 * 1024)
                print(f"CHUNK {number}", flush=True)

        store.files.put_stream(folder, ".nii.gz", chunks(), 10**12)


if __name__ == "__main__":
    {"annotate": annotate, "upload": upload}[sys.argv[1]](*sys.argv[2:])
