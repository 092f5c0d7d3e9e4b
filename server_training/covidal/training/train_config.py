"""One typed configuration per training run, saved with its results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

import torch

from covidal.data.window import HUWindow, ImageKind
from covidal.losses.registry import LossConfig, LossName
from covidal.models.slices.build import ModelConfig
from covidal.training.augment_kind import Augment
from covidal.training.background_prior import BackgroundPrior
from covidal.validation import ConfigError, check_choice, check_int, check_real


class DeviceChoice(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def resolve_device(choice: DeviceChoice | str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without a GPU is a user error."""
    from covidal.errors import CovidalError

    choice = DeviceChoice(choice)
    if choice is DeviceChoice.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice is DeviceChoice.CUDA and not torch.cuda.is_available():
        raise CovidalError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(choice.value)


@dataclass(frozen=True)
class PredictionOptions:
    """How a trained 2D model predicts.

    Attributes:
        tta: average the softmax over the 8 flips and quarter turns of the square (the transforms the
            ``cb-flip-rot`` loss trains the model to be equivariant to), each mapped back.
        lung_restriction: zero the infection probability outside the (widened) intensity lung mask of each
            slice (:func:`covidal.data.intensity_lungs.intensity_lung_mask`).
        threshold: infection where its probability is at least this (evaluation; 0.5 is the argmax).
    """

    tta: bool = False
    lung_restriction: bool = False
    threshold: float = 0.5


PLAIN_PREDICTION = PredictionOptions()
# Decision thresholds measured per loss and kind of image; every other pair keeps the argmax (0.5). The point
# losses balance the classes (one click weighs as much as a background region), so models trained with them call
# infection far more often than it occurs, the more so the rarer it is:
# - 8-bit slices, by cross-validation on covid_semiseg/train (BENCHMARKS.md, "a decision threshold and a background
#   weight"): CB (flip, rot) at 0.7 raised Dice from 0.485 to 0.586 with TTA and from 0.468 to 0.545 without.
# - CT in HU (infection a few percent of the lungs), chosen on the demo's validation cases (synthetic lesions of
#   seeds 2 and 3) with the models a served demo run trained (BENCHMARKS.md, "Demo"): 0.95.
MEASURED_THRESHOLDS = {
    (LossName.CB_FLIP_ROT, ImageKind.EIGHT_BIT): 0.7,
    (LossName.CB_FLIP_ROT, ImageKind.HU): 0.95,
}


def measured_threshold(loss: LossName | str, kind: ImageKind | None = ImageKind.EIGHT_BIT) -> float:
    """The decision threshold models trained with ``loss`` on images of ``kind`` predict with by default
    (:data:`MEASURED_THRESHOLDS`; an unknown kind is taken as 8-bit)."""
    return MEASURED_THRESHOLDS.get((LossName(loss), kind or ImageKind.EIGHT_BIT), 0.5)


@dataclass
class TrainConfig:
    """Everything that determines a 2D point-supervised training run.

    Attributes:
        loss: which loss and its weights.
        model: which network and its head dropout.
        steps: optimiser steps in all (>= 1); ``covidal train --epochs E`` sets E passes over the training slices.
        validate_every: steps between validations (each may keep the model as the best so far), or None for
            once per pass over the training slices; the last step is always validated.
        batch_size: slices per optimisation step (>= 1).
        learning_rate: Adam step size (> 0).
        image_size: side of the square training grid in pixels (multiple of 32).
        val_fraction: share of the slices held out for model selection, in [0, 1).
        seed: seeds the split, the derived points, the initialisation and the batches.
        device: ``auto``, ``cpu`` or ``cuda``.
        window: Hounsfield window applied to CT volumes (8-bit images are used as they are).
        mask_class: binarise multi-class masks as ``== mask_class`` instead of "any non-zero".
        min_background_points: when points are derived from masks, at least this many
            background clicks per slice (the paper's protocol is as many as infection clicks).
        pseudo_masks: grow each infection click into a pseudo-mask (flood fill of similar tissue), a derived
            label weighed by ``loss.derived_weight``.
        background_prior: background labelled without clicks (:class:`BackgroundPrior`), weighed likewise.
        tta: predict (validation, evaluation, prediction) with test-time augmentation over flips and rotations.
        lung_restriction: predict no infection outside the widened intensity lung mask.
        threshold: the infection probability from which a pixel counts as infected in evaluations, in (0, 1).
        ema_decay: keep an exponential moving average of the weights with this decay, in [0, 1), and validate,
            save and predict with it (:mod:`covidal.training.ema`); None: the trained weights themselves.
        augment: random augmentation of the training batches (:class:`~covidal.training.augment.Augment`),
            drawn from a generator derived from ``seed``.
    """

    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 1000
    validate_every: int | None = None
    batch_size: int = 8
    learning_rate: float = 1e-3
    image_size: int = 352
    val_fraction: float = 0.1
    seed: int = 0
    device: DeviceChoice = DeviceChoice.AUTO
    window: HUWindow = field(default_factory=HUWindow)
    mask_class: int | None = None
    min_background_points: int = 1
    pseudo_masks: bool = False
    background_prior: BackgroundPrior = BackgroundPrior.NONE
    tta: bool = False
    lung_restriction: bool = False
    threshold: float = 0.5
    ema_decay: float | None = None
    augment: Augment = Augment.NONE

    def __post_init__(self) -> None:
        self.device = DeviceChoice(self.device)
        if self.ema_decay is not None:
            self.ema_decay = check_real("ema_decay", self.ema_decay, minimum=0.0, below=1.0)
        self.augment = check_choice("augment", self.augment, Augment)
        self.threshold = check_real("threshold", self.threshold, above=0.0, below=1.0)
        self.background_prior = check_choice("background_prior", self.background_prior, BackgroundPrior)
        for flag in ("pseudo_masks", "tta", "lung_restriction"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        check_int("steps", self.steps, minimum=1)
        if self.validate_every is not None:
            check_int("validate_every", self.validate_every, minimum=1)
        check_int("batch size", self.batch_size, minimum=1)
        check_real("learning rate", self.learning_rate, above=0.0)
        if check_int("image size", self.image_size, minimum=32) % 32:
            raise ConfigError(f"image size must be a positive multiple of 32, got {self.image_size}")
        check_int("min_background_points", self.min_background_points, minimum=1)
        check_real("validation fraction", self.val_fraction, minimum=0.0, below=1.0)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["loss"] = self.loss.to_dict()
        data["model"] = self.model.to_dict()
        data["device"] = self.device.value
        data["background_prior"] = self.background_prior.value
        data["augment"] = self.augment.value
        return data

    @property
    def prediction(self) -> PredictionOptions:
        """How models trained with this config predict."""
        return PredictionOptions(tta=self.tta, lung_restriction=self.lung_restriction, threshold=self.threshold)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The config of :meth:`to_dict`. One saved before training counted steps has ``epochs`` instead: it
        reads as that many steps (the service's jobs stored their step count there; for ``covidal train`` runs
        the number only describes the run, nothing trains from a loaded config)."""
        data = dict(data)
        if "epochs" in data and "steps" not in data:
            data["steps"] = data.pop("epochs")
        data["loss"] = LossConfig.from_dict(data["loss"])
        data["model"] = ModelConfig.from_dict(data["model"])
        data["window"] = HUWindow(**data["window"])
        return cls(**data)


__all__ = [
    "MEASURED_THRESHOLDS",
    "Augment",
    "DeviceChoice",
    "LossName",
    "PredictionOptions",
    "TrainConfig",
    "measured_threshold",
    "resolve_device",
]
