"""Training jobs seen from the module: start, poll (from a GUI timer, never blocking), cancel.

Two kinds of job share the progress display: ``train`` (the 2D model, on the clinician's clicks) and
``clicks-to-3d`` (the 3D model: pseudo-labels of the click-trained 2D model, then a student re-weighted by the
clicks; its ``stage`` says which part runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.operations import BackgroundOperation, Operation


class JobStatus(StrEnum):
    """The backend's job states (``covidal.service`` ``JobOut.status``)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
TRAIN_2D = "train"
CLICKS_TO_3D = "clicks-to-3d"
# The clicks-to-3d job's modes (the backend's noisy-teacher modes); a job without one gets the backend's default.
MODES_3D = ("supervised", "semi", "rgs", "rgm", "rgsm", "rgs-al", "rgsm-al")
_STAGES = {"pseudo-label": "pseudo-labels from the 2D model", "student": "student"}


def clicks_to_3d_config(mode: str | None, config: Mapping[str, Any] | None = None) -> dict:
    """The ``config`` of a ``clicks-to-3d`` job: ``config`` (e.g. ``epochs``, ``patch_size``) plus ``mode`` when one
    was chosen (None or ``""``: the backend's default, so no mode is sent).

    Raises:
        UserFacingError: a mode the backend does not have.
    """
    chosen = dict(config or {})
    if mode:
        if mode not in MODES_3D:
            raise UserFacingError(f"'{mode}' is not a 3D training mode; choose one of {', '.join(MODES_3D)}.")
        chosen["mode"] = mode
    return chosen


@dataclass(frozen=True)
class TrainingStatus:
    """One poll of a training job: its state and progress (``None`` where the backend has no figure yet)."""

    job_id: int
    status: JobStatus
    kind: str
    stage: str | None
    step: int
    steps: int | None
    loss: float | None
    val_dice: float | None
    eta_seconds: float | None
    error: str | None

    @classmethod
    def from_json(cls, job: Mapping[str, Any]) -> TrainingStatus:
        """From the backend's ``JobOut`` JSON.

        Raises:
            ValueError: an unknown status or a malformed job.
        """
        progress = job.get("progress") or {}
        try:
            return cls(
                job_id=int(job["id"]),
                status=JobStatus(job["status"]),
                kind=str(job.get("kind") or TRAIN_2D),
                stage=_optional(progress.get("stage"), str),
                step=int(progress.get("step", 0)),
                steps=_optional(progress.get("steps"), int),
                loss=_optional(progress.get("loss"), float),
                val_dice=_optional(progress.get("val_dice"), float),
                eta_seconds=_optional(progress.get("eta_seconds"), float),
                error=job.get("error"),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"a malformed training job from the backend: {error!r}") from None

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled (an interrupted job can still be resumed)."""
        return self.status in FINISHED

    @property
    def fraction(self) -> float:
        """Share of the planned steps done, in ``[0, 1]`` (0 while the plan is unknown)."""
        return min(1.0, self.step / self.steps) if self.steps else 0.0

    @property
    def text(self) -> str:
        """One line for the progress bar: (a 3D job: ``"3D model: "`` and its stage) state, step, loss, Dice (a 2D
        job's on the training pixels, a 3D job's on the expert labels; the learning curve holds the Dice on answers a
        model never saw), ETA."""
        parts = [self.status.value.capitalize()]
        if self.stage is not None and not self.finished:
            parts.append(_STAGES.get(self.stage, self.stage))
        if self.steps:
            parts.append(f"step {self.step} of {self.steps}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.val_dice is not None:
            parts.append(
                f"{'Dice on the expert labels' if self.is_3d else 'Dice on training pixels'} {self.val_dice:.3f}"
            )
        if self.eta_seconds is not None and not self.finished:
            parts.append(f"about {_duration(self.eta_seconds)} left")
        if self.error:
            parts.append(self.error)
        return ("3D model: " if self.is_3d else "") + ", ".join(parts)

    @property
    def is_3d(self) -> bool:
        """A ``clicks-to-3d`` job (the 3D model's)."""
        return self.kind == CLICKS_TO_3D


class TrainingWatch:
    """A training job followed from a GUI timer: at most one progress request in flight, none blocking.

    Args:
        poll_operation: makes the operation that fetches the job's status (the logic's
            ``poll_training_operation``).
    """

    def __init__(self, poll_operation: Callable[[], Operation[TrainingStatus]]) -> None:
        self._poll_operation = poll_operation
        self._request: BackgroundOperation | None = None
        self.active = False

    def start(self) -> None:
        """A job was queued: follow it."""
        self.active = True

    def stop(self) -> None:
        self.active, self._request = False, None

    def poll(self) -> TrainingStatus | UserFacingError | None:
        """Call from the timer. Returns the job's status when a request came back (then ``active`` says whether
        it still runs), the error when the backend did not answer (it may be restarting: the watch goes on),
        else None."""
        if not self.active:
            return None
        if self._request is None:
            self._request = BackgroundOperation(self._poll_operation())
        if not self._request.poll():
            return None
        request, self._request = self._request, None
        try:
            status = request.result()
        except UserFacingError as error:
            return error
        self.active = not (status.finished or status.status is JobStatus.INTERRUPTED)
        return status


def _optional(value: Any, convert) -> Any:
    return None if value is None else convert(value)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
