"""A training job's kinds and options (where its files live: :mod:`covidal.service.project.layout`).

This module imports no torch: the HTTP routes use it. The 'noisy-teacher' options are in
:mod:`covidal.service.jobs.noisy_teacher_config`, which does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from covidal.errors import CovidalError
from covidal.models.kinds import SLICE_MODEL_KINDS, VOLUME_MODEL_KINDS, ModelKind
from covidal.service.defaults import CPU_DEFAULTS
from covidal.training.augment_kind import Augment
from covidal.training.background_prior import BackgroundPrior
from covidal.validation import check_choice, check_int, check_real, config_from_mapping

# A job of a project that recorded no training settings (created before they were recorded) trains like the CPU's.
DEFAULT_STEPS = CPU_DEFAULTS.steps
DEFAULT_IMAGE_SIZE = CPU_DEFAULTS.image_size
DEFAULT_WIDTH = CPU_DEFAULTS.width
MAX_STEPS = 1_000_000
# Upper bounds of the settings that size a job's memory: far above any useful value, far below an exhausted machine.
MAX_IMAGE_SIZE = 1024
MAX_WIDTH = 256
MAX_BATCH_SIZE = 256


class JobKind(StrEnum):
    """What a job trains; each kind trains the projects of its :attr:`model_kinds`."""

    TRAIN = "train"  # the 2D point model (unet, fcn8) on the answered regions
    NOISY_TEACHER = "noisy-teacher"  # the 3D model (unet3d): teacher on the expert labels, pseudo-labels, student
    CLICKS_TO_3D = "clicks-to-3d"  # a 2D project's 3D model: the 2D model's pseudo-labels, the answers as clean data

    @property
    def model_kinds(self) -> tuple[ModelKind, ...]:
        return VOLUME_MODEL_KINDS if self is JobKind.NOISY_TEACHER else SLICE_MODEL_KINDS

    @classmethod
    def parse(cls, kind: object) -> JobKind:
        """``kind`` as a JobKind.

        Raises:
            CovidalError: listing the kinds.
        """
        try:
            return cls(kind)
        except ValueError:
            raise CovidalError(
                f"job kind must be one of {', '.join(repr(k.value) for k in cls)}; got {kind!r}"
            ) from None

    def check_model_kind(self, project_id: int, model_kind: str) -> None:
        """Raises CovidalError, naming the right job kind, when this kind does not train ``model_kind``."""
        if model_kind in self.model_kinds:
            return
        fitting = next((kind for kind in JobKind if model_kind in kind.model_kinds), None)
        advice = f"start a {fitting.value!r} job" if fitting else "no job kind trains it"
        raise CovidalError(
            f"project {project_id} uses the {model_kind!r} model, but {self.value!r} jobs train "
            f"{' and '.join(repr(k.value) for k in self.model_kinds)} models: {advice}"
        )


class JobConfig:
    """What every job config dataclass reads its values with: JSON objects and the project's settings."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        """The config of ``values`` (a JSON object; missing keys take their defaults).

        Raises:
            CovidalError: not a mapping, an unknown key, or a bad value.
        """
        return config_from_mapping(cls, values, "job config")

    @classmethod
    def for_project(cls, project_settings: Mapping[str, Any], overrides: Mapping[str, Any]):
        """Defaults, then the project's settings of the same names (e.g. ``image_size``), then ``overrides``.

        Raises:
            CovidalError: as :meth:`from_dict`.
        """
        return cls.from_dict(with_project_settings(cls, project_settings, overrides))


@dataclass(frozen=True)
class TrainJobConfig(JobConfig):
    """What a ``train`` job does: ``steps`` Adam steps on every answered slice of the project.

    Attributes:
        steps: optimiser steps in all (a resumed job runs the ones left), 1..:data:`MAX_STEPS`.
        checkpoint_every: steps between checkpoints and progress reports (>= 1).
        batch_size: slices per step, 1..:data:`MAX_BATCH_SIZE`.
        learning_rate: Adam step size (> 0, finite).
        image_size: side of the square training grid, a multiple of 32 up to :data:`MAX_IMAGE_SIZE`.
        width: base channel count of the 2D U-Net (ignored by fcn8), 1..:data:`MAX_WIDTH`.
        dropout: head dropout, in [0, 1); MC-dropout scoring needs it above 0.
        background_sample: pixels drawn per background region (at most ``MAX_IMAGE_SIZE ** 2``), or None for all.
        background_prior: background labelled without an answer on the answered slices, below the answers'
            weight (:class:`~covidal.training.background_prior.BackgroundPrior`: ``intensity`` is aerated lung,
            air and bone); a project created before it was recorded has ``none``.
        seed: seeds the initial weights, the batch order and the loss.
        warm_start: start from the project's current model when it is the same network (else fresh weights).
        augment: random augmentation of the training batches (:class:`Augment`: none, intensity,
            intensity+scale); a project chooses it in its settings.

    Raises:
        CovidalError: a value of the wrong type or out of range (naming the field).
    """

    steps: int = DEFAULT_STEPS
    checkpoint_every: int = 5
    batch_size: int = 4
    learning_rate: float = 1e-3
    image_size: int = DEFAULT_IMAGE_SIZE
    width: int = DEFAULT_WIDTH
    dropout: float = 0.5
    background_sample: int | None = None
    background_prior: str = BackgroundPrior.NONE.value
    seed: int = 0
    warm_start: bool = True
    augment: Augment = Augment.NONE

    def __post_init__(self) -> None:
        for name, maximum in (
            ("steps", MAX_STEPS),
            ("checkpoint_every", None),
            ("batch_size", MAX_BATCH_SIZE),
            ("image_size", MAX_IMAGE_SIZE),
            ("width", MAX_WIDTH),
        ):
            check_int(f"job config {name}", getattr(self, name), minimum=1, maximum=maximum)
        check_int("job config seed", self.seed, minimum=0)
        if self.background_sample is not None:
            check_int("job config background_sample", self.background_sample, minimum=1, maximum=MAX_IMAGE_SIZE**2)
        if self.image_size % 32:
            raise CovidalError(f"job config image_size must be a multiple of 32, got {self.image_size}")
        check_real("job config learning_rate", self.learning_rate, above=0.0)
        check_real("job config dropout", self.dropout, minimum=0.0, below=1.0)
        check_choice("job config background_prior", self.background_prior, BackgroundPrior, error=CovidalError)
        if not isinstance(self.warm_start, bool):
            raise CovidalError(f"job config warm_start must be true or false, got {self.warm_start!r}")
        check_choice("job config augment", self.augment, Augment, error=CovidalError)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_project_settings(
    cls: type, project_settings: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The project's settings named like fields of the dataclass ``cls``, updated by ``overrides`` (a job's config).

    Raises:
        CovidalError: ``overrides`` is not a JSON object.
    """
    if not isinstance(overrides, Mapping):
        raise CovidalError(f"job config must be a JSON object, got {type(overrides).__name__}")
    known = {field.name for field in fields(cls)}
    return {**{key: value for key, value in project_settings.items() if key in known}, **overrides}
