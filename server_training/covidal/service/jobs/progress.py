"""What a job's worker process tells the store while it runs (progress, at most once a second) and at its end.

Progress reports are also where a job learns that it should stop: a cancel asked by a client raises
:class:`Cancelled`, and the service that started the worker being gone raises :class:`ParentGone`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
from pathlib import Path

from covidal.service.store.errors import Conflict
from covidal.service.store.records import JobProgress, JobStatus
from covidal.service.store.store import Store
from covidal.utils.atomic import atomic_write

PROGRESS_INTERVAL_S = 1.0


class ParentGone(Exception):
    """The service that started this worker has stopped (the restarted service marks the job interrupted)."""


class Cancelled(Exception):
    """A client asked to cancel the job; it stops at the report that saw it."""


class JobReporter:
    """Reports one running job's progress to the store and watches for a cancel and for the service's end.

    Args:
        store: the worker's store.
        job_id: the running job.
        parent_pid: the service's process id; when this process's parent changes, the service is gone.
        interval: seconds between reports (checkpoints and the last step are always reported).
    """

    def __init__(self, store: Store, job_id: int, parent_pid: int, interval: float = PROGRESS_INTERVAL_S) -> None:
        self.store, self.job_id, self.parent_pid, self.interval = store, job_id, parent_pid, interval
        self.last: JobProgress | None = None
        self._last_report = -math.inf
        self._clock: tuple[float, int] | None = None  # (time, step) the ETA's pace is measured from

    def restart_clock(self) -> None:
        """Measure the ETA's pace from the next report on (a new stage, whose steps take another time)."""
        self._clock = None

    def report(
        self,
        step: int,
        steps: int,
        loss: float | None,
        val_dice: float | None,
        *,
        stage: str | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        """Record step ``step`` of ``steps`` (call it after every step: it reports at most once per ``interval``,
        but always for a checkpoint and the last step). ``checkpoint`` is an absolute path under the store's root
        folder; the ETA follows the pace since the first report (or :meth:`restart_clock`).

        Raises:
            ParentGone: the service stopped. Cancelled: a cancel was asked.
        """
        self.check_parent()
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, step)
        if checkpoint is None and step < steps and now - self._last_report < self.interval:
            return
        started, first = self._clock
        eta = 0.0 if step >= steps else None if step == first else (now - started) / (step - first) * (steps - step)
        finite_loss = loss if loss is not None and math.isfinite(loss) else None
        self._publish(JobProgress(step, steps, finite_loss, val_dice, eta, stage), checkpoint)
        print(
            f"{'' if stage is None else stage + ' '}step {step}/{steps} loss {_text(finite_loss)} "
            f"val_dice {_text(val_dice)} eta {'-' if eta is None else f'{eta:.0f}s'}",
            flush=True,
        )

    def amend(self, **changes: object) -> None:
        """Report the last progress again with ``changes`` (fields of :class:`JobProgress`, e.g. ``stage``).

        Raises:
            ParentGone, Cancelled: as :meth:`report`.
        """
        self.check_parent()
        self._publish(dataclasses.replace(self.last or JobProgress(0), **changes), None)

    def check_parent(self) -> None:
        """Raises ParentGone when the service that started this worker has stopped."""
        if os.getppid() != self.parent_pid:
            raise ParentGone()

    def _publish(self, progress: JobProgress, checkpoint: Path | None) -> None:
        relative = None if checkpoint is None else Path(checkpoint).relative_to(self.store.root).as_posix()
        job = self.store.update_job_progress(self.job_id, progress, relative)
        self.last, self._last_report = progress, time.monotonic()
        if job.cancel_requested:
            print("cancel asked: stopping", flush=True)
            raise Cancelled()


def finish(store: Store, job_id: int, status: JobStatus, error: str | None = None) -> JobStatus:
    """Record how the job ended (unless the service already ended it, e.g. marked it interrupted); returns ``status``."""
    try:
        store.finish_job(job_id, status, error)
    except Conflict as conflict:
        print(f"could not record the job as {status.value}: {conflict}", file=sys.stderr, flush=True)
    return status


def publish_model(model: Path, current: Path) -> None:
    """Copy a finished job's model file over the project's current model, atomically."""
    atomic_write(current, lambda temporary: shutil.copyfile(model, temporary))


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
