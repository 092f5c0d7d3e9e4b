"""The options of a ``noisy-teacher`` job (the 3D training of a ``unet3d`` project), typed and validated.

This module imports torch (through :mod:`covidal.noisyteacher`): the jobs route imports it only when such
a job is started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from covidal.errors import CovidalError
from covidal.models.volumes.unet import UNet3DConfig
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.noisyteacher.student_modes import (
    StudentMode,
    parse_student_mode,
    uses_pseudo_labels,
)
from covidal.service.jobs.job_config import MAX_STEPS, JobConfig
from covidal.validation import check_int, check_ints, check_real, is_real
from covidal.volumes.patches import PatchConfig
from covidal.volumes.preprocess import TARGET_SPACING_MM
from covidal.volumes.sliding_window import SlidingWindowConfig

DEFAULTS = Train3DConfig()
# Bounds of the settings that size a 3D job's memory (the defaults: batch 2, patch 96, channels up to 256, 5 levels)
MAX_BATCH_SIZE = 64
MAX_PATCH_SIDE = 256
MAX_CHANNELS = 1024
MAX_LEVELS = 7
MIN_SPACING_MM = 0.25  # the training grid; finer would resample a CT to billions of voxels


@dataclass(frozen=True)
class NoisyTeacherJobConfig(JobConfig):
    """What a ``noisy-teacher`` job does: train a teacher, then (unless ``mode`` is ``supervised``) pseudo-label
    the pool with it and train a student; both networks train ``epochs * steps_per_epoch`` Adam steps.

    Attributes:
        mode: the student's :class:`StudentMode` (how pseudo-labelled patches are weighted); ``supervised``
            stops after the teacher, which then becomes the project's model.
        lam: the RGS share of the ``rgsm`` modes' weights, in [0, 1].
        epochs: epochs of each network (>= 1); each epoch ends with a checkpoint to resume from.
        steps_per_epoch: Adam steps per epoch (>= 1).
        batch_size: patches per batch, 1..:data:`MAX_BATCH_SIZE`; a student step takes one expert and one
            pseudo-labelled batch.
        patch_size: ``[D, H, W]`` = ``[k, j, i]`` voxels of the training patches and the sliding window, each a
            multiple of ``2 ** (len(channels) - 1)`` (every U-Net level halves the grid) up to :data:`MAX_PATCH_SIDE`.
        learning_rate: Adam step size (> 0, finite).
        spacing: the training grid in mm, ``(i, j, k)``, each at least :data:`MIN_SPACING_MM`.
        channels: the 3D U-Net's channels per level (2..:data:`MAX_LEVELS` levels, each 1..:data:`MAX_CHANNELS`).
        seed: seeds the initial weights and the patches (>= 0).

    Raises:
        CovidalError: a value of the wrong type or out of range (naming the field).
    """

    mode: StudentMode = StudentMode.RGSM_AL
    lam: float = DEFAULTS.lam
    epochs: int = DEFAULTS.epochs
    steps_per_epoch: int = DEFAULTS.steps_per_epoch
    batch_size: int = DEFAULTS.batch_size
    patch_size: tuple[int, int, int] = DEFAULTS.patch.size
    learning_rate: float = DEFAULTS.learning_rate
    spacing: tuple[float, float, float] = TARGET_SPACING_MM
    channels: tuple[int, ...] = DEFAULTS.network.channels
    seed: int = DEFAULTS.seed

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", parse_student_mode(self.mode))
        except CovidalError as error:
            raise CovidalError(f"job config mode: {error}") from None
        for name in ("epochs", "steps_per_epoch"):
            check_int(f"job config {name}", getattr(self, name), minimum=1)
        check_int("job config batch_size", self.batch_size, minimum=1, maximum=MAX_BATCH_SIZE)
        check_int("job config seed", self.seed, minimum=0)
        if self.epochs * self.steps_per_epoch > MAX_STEPS:
            raise CovidalError(
                f"job config epochs * steps_per_epoch must be at most {MAX_STEPS}, got "
                f"{self.epochs * self.steps_per_epoch}"
            )
        check_real("job config lam", self.lam, minimum=0.0, maximum=1.0)
        check_real("job config learning_rate", self.learning_rate, above=0.0)
        object.__setattr__(self, "channels", check_ints("job config channels", self.channels, maximum=MAX_CHANNELS))
        object.__setattr__(
            self, "patch_size", check_ints("job config patch_size", self.patch_size, count=3, maximum=MAX_PATCH_SIDE)
        )
        object.__setattr__(self, "spacing", _spacing(self.spacing))
        if not 2 <= len(self.channels) <= MAX_LEVELS:
            raise CovidalError(f"job config channels needs 2 to {MAX_LEVELS} levels, got {list(self.channels)}")
        multiple = 2 ** (len(self.channels) - 1)
        if any(size % multiple for size in self.patch_size):
            raise CovidalError(
                f"job config patch_size must be multiples of {multiple} (the {len(self.channels)} "
                f"U-Net levels halve it {len(self.channels) - 1} times), got {list(self.patch_size)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (lists for the tuples, the mode's name)."""
        values = asdict(self)
        values.update(
            mode=self.mode.value,
            patch_size=list(self.patch_size),
            spacing=list(self.spacing),
            channels=list(self.channels),
        )
        return values

    @property
    def trains_student(self) -> bool:
        """Whether the job pseudo-labels the pool and trains a student (every mode but ``supervised``)."""
        return uses_pseudo_labels(self.mode)

    def train_config(self, mode: StudentMode, device: str) -> Train3DConfig:
        """The :class:`Train3DConfig` of the network trained in ``mode`` (the teacher's is ``supervised``).

        Raises:
            CovidalError: a combination :class:`Train3DConfig` refuses.
        """
        try:
            return Train3DConfig(
                mode=mode,
                lam=self.lam,
                batch_size=self.batch_size,
                epochs=self.epochs,
                steps_per_epoch=self.steps_per_epoch,
                learning_rate=self.learning_rate,
                spacing=self.spacing,
                patch=PatchConfig(size=self.patch_size),
                network=UNet3DConfig(channels=self.channels, strides=(2,) * (len(self.channels) - 1)),
                sliding_window=SlidingWindowConfig(patch_size=self.patch_size),
                seed=self.seed,
                device=device,
            )
        except ValueError as error:
            raise CovidalError(f"job config: {error}") from None

    @property
    def steps_per_network(self) -> int:
        return self.epochs * self.steps_per_epoch


def _spacing(values: object) -> tuple[float, float, float]:
    items = tuple(values) if isinstance(values, list | tuple) else ()
    if len(items) != 3 or not all(is_real(v) and v >= MIN_SPACING_MM for v in items):
        raise CovidalError(
            f"job config spacing must be three millimetre values (i, j, k), each at least "
            f"{MIN_SPACING_MM}, got {values!r}"
        )
    return tuple(float(v) for v in items)  # type: ignore[return-value]
