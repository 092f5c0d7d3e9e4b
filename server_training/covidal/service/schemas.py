"""Request and response bodies of the HTTP API (pydantic), and their conversion from store records.

Geometry is always in the volume's voxel indices ``(i, j, k)`` (``i`` along a
slice's columns, ``j`` along its rows, ``k`` across slices), with the volume's
``ijk_to_ras`` 4x4 matrix so clients can place things in RAS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from covidal.models.kinds import ModelKind
from covidal.service.defaults import ServedDefaults
from covidal.service.store import records

MAX_CYCLE_REGIONS = 10_000
MAX_GRID_K = 4096  # 64 x 64 regions per slice: 8-pixel squares on a 512 x 512 CT


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(_Request):
    """A new project; every field but the name left out (or null) takes the service's default for its device
    (``GET /defaults``), and the project records what it was created with."""

    name: str = Field(min_length=1, max_length=100)
    model_kind: ModelKind | None = None
    grid_k: int | None = Field(
        default=None, ge=1, le=MAX_GRID_K, description="regions per slice, a perfect square (e.g. 16)"
    )
    strategy: str | None = Field(
        default=None, description="a selection strategy of covidal.activelearning.strategies, e.g. 'entropy'"
    )
    mc_samples: int | None = Field(default=None, ge=1, le=1000)
    loss: str | None = Field(default=None, description="a loss of covidal.losses.registry, e.g. 'cb-flip-rot'")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="training and cycle settings (image_size, width, steps, seed, max_per_slice, ...); the "
        "device's defaults of image_size, width and steps are recorded for those left out",
    )


class DefaultsOut(ServedDefaults):
    """The project defaults of this service's device (:mod:`covidal.service.defaults`)."""

    device: str


class ProjectOut(BaseModel):
    id: int
    name: str
    model_kind: str
    grid_k: int
    strategy: str
    mc_samples: int
    loss: str
    settings: dict[str, Any]
    created_at: float


class VolumeOut(BaseModel):
    id: int
    project_id: int
    name: str
    format: str
    sha256: str
    size: int
    dims: tuple[int, int, int] = Field(description="voxels along (i, j, k)")
    spacing: tuple[float, float, float] = Field(description="mm along (i, j, k)")
    origin: tuple[float, float, float] = Field(description="LPS mm of voxel (0, 0, 0)")
    direction: list[list[float]] = Field(description="3x3 LPS direction cosines, one column per axis i, j, k")
    ijk_to_ras: list[list[float]] = Field(description="4x4 homogeneous matrix from (i, j, k) to RAS mm")
    created_at: float


class LabelOut(BaseModel):
    volume_id: int
    project_id: int
    format: str
    sha256: str
    size: int
    foreground_voxels: int = Field(description="voxels labelled above 0 (infection)")
    created_at: float


class CycleCreate(_Request):
    count: int = Field(ge=1, le=MAX_CYCLE_REGIONS, description="how many regions to suggest")
    volume_ids: list[int] | None = Field(default=None, description="the pool (default: every volume of the project)")


class BoxOut(BaseModel):
    i0: int
    i1: int
    j0: int
    j1: int


class SuggestionOut(BaseModel):
    id: int
    cycle_id: int
    volume_id: int
    k: int
    region: int
    box: BoxOut = Field(description="half-open voxel box [i0, i1) x [j0, j1) of slice k")
    score: float
    rank: int
    lease_holder: str | None
    lease_expires_at: float | None
    answered: bool


class CycleOut(BaseModel):
    id: int
    project_id: int
    number: int
    status: str
    created_at: float
    suggestions: list[SuggestionOut]


class AnnotationCreate(_Request):
    suggestion_id: int
    annotator: str
    answer: records.Answer
    points: list[tuple[int, int, int]] = Field(default_factory=list, description="[[i, j, k], ...] on infection")
    effort_seconds: float = Field(ge=0, allow_inf_nan=False)
    idempotency_key: str


class AnnotationOut(BaseModel):
    id: int
    suggestion_id: int
    project_id: int
    answer: str
    points: list[tuple[int, int, int]]
    annotator: str
    effort_seconds: float
    idempotency_key: str
    created_at: float


def project_out(project: records.Project) -> ProjectOut:
    return ProjectOut(
        id=project.id,
        name=project.name,
        model_kind=project.model_kind,
        grid_k=project.grid_k,
        strategy=project.strategy,
        mc_samples=project.mc_samples,
        loss=project.loss,
        settings=dict(project.settings),
        created_at=project.created_at,
    )


def ijk_to_ras(geometry: records.VolumeGeometry) -> np.ndarray:
    """``[4, 4]`` IJK-to-RAS of a stored geometry (the same as :meth:`covidal.data.volume.Volume.ijk_to_ras`)."""
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(geometry.direction, (3, 3)) @ np.diag(geometry.spacing)
    lps[:3, 3] = geometry.origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def volume_out(volume: records.Volume) -> VolumeOut:
    geometry = volume.geometry
    return VolumeOut(
        id=volume.id,
        project_id=volume.project_id,
        name=volume.name,
        format=volume.format.value,
        sha256=volume.sha256,
        size=volume.size,
        dims=geometry.dims,
        spacing=geometry.spacing,
        origin=geometry.origin,
        direction=np.reshape(geometry.direction, (3, 3)).tolist(),
        ijk_to_ras=ijk_to_ras(geometry).tolist(),
        created_at=volume.created_at,
    )


def label_out(label: records.Label) -> LabelOut:
    return LabelOut(
        volume_id=label.volume_id,
        project_id=label.project_id,
        format=label.format.value,
        sha256=label.sha256,
        size=label.size,
        foreground_voxels=label.foreground_voxels,
        created_at=label.created_at,
    )


def suggestion_out(suggestion: records.Suggestion) -> SuggestionOut:
    box = suggestion.box
    return SuggestionOut(
        id=suggestion.id,
        cycle_id=suggestion.cycle_id,
        volume_id=suggestion.volume_id,
        k=suggestion.k,
        region=suggestion.region,
        box=BoxOut(i0=box.i0, i1=box.i1, j0=box.j0, j1=box.j1),
        score=suggestion.score,
        rank=suggestion.rank,
        lease_holder=suggestion.lease_holder,
        lease_expires_at=suggestion.lease_expires_at,
        answered=suggestion.answered,
    )


def cycle_out(cycle: records.Cycle, suggestions: list[records.Suggestion]) -> CycleOut:
    return CycleOut(
        id=cycle.id,
        project_id=cycle.project_id,
        number=cycle.number,
        status=cycle.status.value,
        created_at=cycle.created_at,
        suggestions=[suggestion_out(s) for s in suggestions],
    )


def annotation_out(annotation: records.Annotation) -> AnnotationOut:
    return AnnotationOut(
        id=annotation.id,
        suggestion_id=annotation.suggestion_id,
        project_id=annotation.project_id,
        answer=annotation.answer.value,
        points=list(annotation.points),
        annotator=annotation.annotator,
        effort_seconds=annotation.effort_seconds,
        idempotency_key=annotation.idempotency_key,
        created_at=annotation.created_at,
    )


class JobCreate(_Request):
    kind: str = Field(
        description="'train': train a 2D project's model (unet, fcn8) on every answered region; "
        "'noisy-teacher': train a unet3d project's 3D model (teacher on the volumes with "
        "an expert label, pseudo-labels of the others, student)"
    )
    steps: int | None = Field(
        default=None,
        ge=1,
        description="'train' jobs: optimiser steps (default: the project's 'steps' setting, else 20)",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="more options: of "
        "covidal.service.jobs.job_config.TrainJobConfig for 'train' (e.g. checkpoint_every, "
        "batch_size), of covidal.service.jobs.noisy_teacher_config.NoisyTeacherJobConfig "
        "for 'noisy-teacher' (e.g. mode, epochs, steps_per_epoch, patch_size)",
    )


class JobProgressOut(BaseModel):
    step: int = Field(description="optimiser steps done (of all stages)")
    steps: int | None = Field(description="optimiser steps planned (of all stages)")
    loss: float | None = Field(description="the last step's training loss")
    val_dice: float | None = Field(
        description="'train': Dice on the known pixels (background regions and clicks) "
        "of the answered slices; 'noisy-teacher': Dice of the last finished "
        "stage's model on the expert volumes; both are trained on (null: none)"
    )
    eta_seconds: float | None
    stage: str | None = Field(default=None, description="'noisy-teacher' jobs: teacher, pseudo-label or student")


class JobOut(BaseModel):
    id: int
    project_id: int
    kind: str
    status: str = Field(description="queued, running, done, failed, cancelled or interrupted (resumable)")
    device: str | None
    config: dict[str, Any]
    progress: JobProgressOut | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None


class PredictionOut(BaseModel):
    volume_id: int
    voxels: int = Field(description="voxels labelled infection (inside the lungs when they were found)")
    infected_ml: float
    lungs: str = Field(
        description="'restricted to the lungs', or why no lungs were found (then the prediction is not restricted "
        "and the lung figures are null)"
    )
    lung_ml: float | None = Field(default=None, description="aerated lung plus the infection found in the lungs")
    lung_percent: float | None = Field(default=None, description="infected share of both lungs")
    right_lung_percent: float | None = Field(default=None, description="infected share of the patient's right lung")
    left_lung_percent: float | None = Field(default=None, description="infected share of the patient's left lung")


class CurvePoint(BaseModel):
    job_id: int
    finished_at: float
    answers: int = Field(description="answered regions the model trained on")
    effort_seconds: float = Field(description="the annotators' summed effort for those answers")
    val_dice: float | None
    steps: int


def job_out(job: records.Job) -> JobOut:
    progress = job.progress
    return JobOut(
        id=job.id,
        project_id=job.project_id,
        kind=job.kind,
        status=job.status.value,
        device=job.device,
        config=dict(job.config),
        progress=None
        if progress is None
        else JobProgressOut(
            step=progress.epoch,
            steps=progress.epochs,
            loss=progress.loss,
            val_dice=progress.val_dice,
            eta_seconds=progress.eta_seconds,
            stage=progress.stage,
        ),
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
    )
