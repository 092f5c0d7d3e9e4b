"""Request and response bodies of the HTTP API (pydantic), and their conversion from store records.

Geometry is always in the volume's voxel indices ``(i, j, k)`` (``i`` along a
slice's columns, ``j`` along its rows, ``k`` across slices), with the volume's
``ijk_to_ras`` 4x4 matrix so clients can place things in RAS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from covidal.data.volume import ijk_to_ras_matrix
from covidal.models.kinds import ModelKind
from covidal.service.defaults import ServedDefaults
from covidal.service.store import records

MAX_CYCLE_REGIONS = 10_000
MAX_GRID_K = 4096  # 64 x 64 regions per slice: 8-pixel squares on a 512 x 512 CT


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    """A response body; ``model_validate(record)`` reads a store record's attributes of the same names."""

    model_config = ConfigDict(from_attributes=True)


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


class StrategiesOut(_Response):
    """The region strategies a project may choose (``covidal.activelearning.strategies``)."""

    names: list[str] = Field(description="the registry's strategies, in its order")
    default: str = Field(description="what a project of this service's device gets when its creator leaves it out")
    strategy_params: dict[str, float | int] = Field(
        description="every strategy option with its default (each strategy reads its own): a project's "
        "strategy_params setting overrides them"
    )


class ProjectOut(_Response):
    id: int
    name: str
    model_kind: str
    grid_k: int
    strategy: str
    mc_samples: int
    loss: str
    settings: dict[str, Any]
    created_at: float


class VolumeOut(_Response):
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


class LabelOut(_Response):
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


class BoxOut(_Response):
    i0: int
    i1: int
    j0: int
    j1: int


class SuggestionOut(_Response):
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


class CycleOut(_Response):
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


class AnnotationOut(_Response):
    id: int
    suggestion_id: int
    project_id: int
    answer: str
    points: list[tuple[int, int, int]]
    annotator: str
    effort_seconds: float
    idempotency_key: str
    created_at: float


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
        ijk_to_ras=ijk_to_ras_matrix(geometry.spacing, geometry.origin, geometry.direction).tolist(),
        created_at=volume.created_at,
    )


def cycle_out(cycle: records.Cycle, suggestions: list[records.Suggestion]) -> CycleOut:
    """The cycle with its suggestions (which the cycle record does not hold)."""
    fields = {name: getattr(cycle, name) for name in CycleOut.model_fields if name != "suggestions"}
    return CycleOut.model_validate({**fields, "suggestions": suggestions})


class JobCreate(_Request):
    kind: str = Field(
        description="'train': train a 2D project's model (unet, fcn8) on every answered region; "
        "'noisy-teacher': train a unet3d project's 3D model (teacher on the volumes with "
        "an expert label, pseudo-labels of the others, student); 'clicks-to-3d': train a 2D project's 3D model "
        "from its answers (the 2D model's pseudo-labels of the volumes, the answers and any expert labels as "
        "clean data)"
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


class JobProgressOut(_Response):
    step: int = Field(validation_alias="epoch", description="optimiser steps done (of all stages)")
    steps: int | None = Field(validation_alias="epochs", description="optimiser steps planned (of all stages)")
    loss: float | None = Field(description="the last step's training loss")
    val_dice: float | None = Field(
        description="'train': Dice on the known pixels (background regions and clicks) "
        "of the answered slices; 'noisy-teacher': Dice of the last finished "
        "stage's model on the expert volumes; both are trained on (null: none)"
    )
    eta_seconds: float | None
    stage: str | None = Field(default=None, description="'noisy-teacher' jobs: teacher, pseudo-label or student")


class JobOut(_Response):
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


class PredictionOut(_Response):
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


class PseudoLabelsOut(_Response):
    cycle: int = Field(description="the cycle whose answers the job trained on; its threshold decays with it")
    threshold: float = Field(description="delta of that cycle: a pixel's predicted class probability exceeded it")
    seed: int = Field(description="seeds the draw of the pseudo_weight share of the confident pixels")
    pixels: int = Field(description="pixels of the job's grid that carried a pseudo-label")
    slices: int = Field(description="axial slices of the pool with at least one")


class CurvePoint(_Response):
    job_id: int
    finished_at: float
    answers: int = Field(description="answered regions the model trained on")
    effort_seconds: float = Field(description="the annotators' summed effort for those answers")
    val_dice: float | None = Field(description="Dice on its training pixels (the answered regions it trained on)")
    unseen_agreement: float | None = Field(
        default=None,
        description="the share of the answers given after it, which it never trained on, that it agreed with (an "
        "infection click it calls infected, a background region with nothing called infected), scored by the next "
        "training job before it trains; None until then. This is the learning curve",
    )
    unseen_answers: int = Field(default=0, description="how many answers unseen_agreement was measured on")
    steps: int
    pseudo_labels: PseudoLabelsOut | None = Field(
        default=None,
        description="the pseudo-labels (CEAL) the job trained on besides the answers; they count as neither "
        "answers nor effort. None: none",
    )
