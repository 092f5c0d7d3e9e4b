"""The service thread that runs queued jobs: one at a time on the service's device, each in a child process.

The child (:mod:`covidal.service.jobs.worker`) writes its own progress, end
status and errors to the store; a crash of the child (an exception it could
not report, a signal, running out of memory) marks the job failed here with
the exit code and the last line of its log, and the service goes on. When the
service stops, the running child is stopped too and its job stays running in
the store until the next start, which marks it interrupted (resumable).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from covidal.service.project.layout import JobPaths
from covidal.service.store.errors import Conflict, StoreError
from covidal.service.store.records import Job, JobStatus
from covidal.service.store.store import Store
from covidal.utils.process import stop_process

LOG = logging.getLogger("covidal.service.jobs")
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 5.0


class JobRunner:
    """Claims the next queued job for ``device`` and runs it in a child process, until :meth:`stop`.

    Args:
        project_dir: the store folder (the runner opens its own connection).
        device: ``"cpu"`` or ``"cuda"``: one running job per device, others wait queued.
    """

    def __init__(self, project_dir: Path, device: str) -> None:
        self.project_dir = Path(project_dir)
        self.device = device
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="covidal-job-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming jobs, stop the running child (if any) and wait for the thread."""
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        with Store(self.project_dir) as store:
            while not self._stopping.is_set():
                try:
                    job = store.claim_next_job(self.device)
                    if job is not None:
                        self._run_child(store, job)
                        continue
                except StoreError as error:  # a locked database must not end the runner
                    LOG.error("job runner: %s", error)
                self._stopping.wait(POLL_SECONDS)

    def _run_child(self, store: Store, job: Job) -> None:
        paths = JobPaths(self.project_dir, job.id)
        paths.folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "covidal.service.jobs.worker",
            "--project-dir",
            str(self.project_dir),
            "--project-id",
            str(job.project_id),
            "--job-id",
            str(job.id),
            "--parent-pid",
            str(os.getpid()),
        ]
        LOG.info("job %d of project %d starts on %s", job.id, job.project_id, self.device)
        with open(paths.log, "ab") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            while child.poll() is None:
                if self._stopping.wait(POLL_SECONDS):
                    stop_process(child, STOP_GRACE_SECONDS)
                    return
        if store.get_job(job.project_id, job.id).status is JobStatus.RUNNING:
            reason = f"the training process exited with code {child.returncode}: {_last_line(paths.log)}"
            try:
                store.finish_job(job.id, JobStatus.FAILED, reason)
            except Conflict:  # it finished itself in the meantime
                pass
        LOG.info("job %d ended: %s", job.id, store.get_job(job.project_id, job.id).status.value)


def _last_line(path: Path) -> str:
    """The last non-empty line of the log (the error of a crash, usually), or a note that it is empty."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError as error:
        return f"(the log cannot be read: {error})"
    return lines[-1].strip()[:500] if lines else "(nothing in the log)"
