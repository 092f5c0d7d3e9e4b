"""Where a service keeps each project's files, under its ``project_dir``: every path is spelled here::

    store.sqlite3, files/volumes/<project>/, files/labels/<project>/   the store's (covidal.service.store)
    models/<project>/current/model.pt     the model of the project's latest successful job
    models/<project>/current-3d/model.pt  a 2D project's 3D model: its latest successful 'clicks-to-3d' job's
    predictions/<project>/<volume>.nrrd   the latest prediction of a volume, replaced by the next
    predictions/<project>/<volume>-3d.nrrd   the same by a 2D project's 3D model
    jobs/<job>/log.txt                    the job worker's stdout and stderr
    jobs/<job>/checkpoint/state.pt        a 'train' job's newest training state (a resume starts from it)
    jobs/<job>/checkpoint/model.pt        a finished 'train' job's model
    jobs/<job>/pseudo_labels.npz          a 'train' job's pseudo-labels of the pool (CEAL projects)
    jobs/<job>/teacher/, pseudo/, student/, volumes.json   the stages of a 'noisy-teacher' job
    jobs/<job>/model2d.pt, pseudo/, student/, volumes.json   a 'clicks-to-3d' job's: the 2D model it started from
    jobs/<job>/result.json                what a finished 'train' job trained on: a point of the learning curve
    jobs/<job>/unseen.json                how many of the answers given after it its model agreed with (the next job)

This module imports no torch: the HTTP routes use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"


@dataclass(frozen=True)
class JobPaths:
    """Where job ``job_id``'s files live under ``project_dir``."""

    project_dir: Path
    job_id: int

    @property
    def folder(self) -> Path:
        return Path(self.project_dir) / "jobs" / str(int(self.job_id))

    @property
    def log(self) -> Path:
        return self.folder / "log.txt"

    @property
    def checkpoint(self) -> Path:
        """A 'train' job's newest training state (weights, optimiser, random states)."""
        return self.folder / "checkpoint" / STATE_FILE

    @property
    def model(self) -> Path:
        """A finished 'train' job's model (a :func:`covidal.training.checkpoint.load_run` file)."""
        return self.folder / "checkpoint" / MODEL_FILE

    @property
    def pseudo_labels(self) -> Path:
        """A 'train' job's pseudo-labels (:mod:`covidal.service.jobs.training_set`): ``labels`` int8
        ``[N, S, S]`` (-1 none), ``made_by`` ``[cycle, seed]``, ``threshold``, ``volume_ids`` of the pool."""
        return self.folder / "pseudo_labels.npz"

    @property
    def result(self) -> Path:
        return self.folder / "result.json"

    @property
    def unseen(self) -> Path:
        """A finished 'train' job's model scored on the answers given after it (the next job writes it)."""
        return self.folder / "unseen.json"

    def stage(self, name: str) -> Path:
        """The folder of a 3D job's stage (``teacher``, ``pseudo``, ``student``)."""
        return self.folder / name


@dataclass(frozen=True)
class ProjectLayout:
    """The files of the projects of the service whose folder is ``root`` (see the module docstring)."""

    root: Path

    def current_model(self, project_id: int) -> Path:
        """The model of the project's latest successful job (it may not exist yet)."""
        return Path(self.root) / "models" / str(int(project_id)) / "current" / MODEL_FILE

    def current_model_3d(self, project_id: int) -> Path:
        """A 2D project's 3D model, trained from its answers by 'clicks-to-3d' jobs (it may not exist yet)."""
        return Path(self.root) / "models" / str(int(project_id)) / "current-3d" / MODEL_FILE

    def prediction(self, project_id: int, volume_id: int, model_3d: bool = False) -> Path:
        """The latest prediction of the volume by the project's model (``model_3d``: by a 2D project's 3D model)."""
        name = f"{int(volume_id)}{'-3d' if model_3d else ''}.nrrd"
        return Path(self.root) / "predictions" / str(int(project_id)) / name

    def job(self, job_id: int) -> JobPaths:
        return JobPaths(Path(self.root), job_id)
