"""One typed configuration per 3D training run (teacher or student), saved with its results."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from covidal.data.window import HUWindow
from covidal.models.volumes.unet import UNet3DConfig
from covidal.noisyteacher.student_modes import StudentMode
from covidal.training.train_config import DeviceChoice
from covidal.validation import check_int, check_real
from covidal.volumes.patches import PatchConfig
from covidal.volumes.preprocess import CT_WINDOW, TARGET_SPACING_MM
from covidal.volumes.sliding_window import SlidingWindowConfig


@dataclass(frozen=True)
class Train3DConfig:
    """Everything that determines a 3D training run.

    Attributes:
        mode: ``supervised`` trains on expert volumes only (the teacher); the other
            modes add pseudo-labelled volumes, weighted per sample (see
            :mod:`covidal.noisyteacher.student_modes`).
        lam: lambda of ``rgsm``/``rgsm-al``: weight = lam * W_p + (1 - lam) * W_u.
        batch_size: patches per batch; a student step uses one expert batch and one
            pseudo-labelled batch of this size.
        epochs: number of epochs (>= 1).
        steps_per_epoch: optimiser steps per epoch. Patches are random crops, so an
            epoch is a number of steps rather than a pass over a fixed set.
        learning_rate: Adam step size.
        weight_decay: Adam's L2 penalty.
        spacing: training grid in mm, ``(i, j, k)``.
        window: Hounsfield window, applied after resampling in HU.
        patch: training patch size and foreground-centred share.
        network: the 3D U-Net's shape.
        sliding_window: how whole volumes are predicted.
        seed: seeds initialisation and patch sampling.
        device: ``auto``, ``cpu`` or ``cuda``.
        amp: bf16 autocast on CUDA (ignored on CPU, where bf16 is slow).
        chunk_size: per-sample gradients are computed this many samples at a time
            (``None``: the whole batch at once; smaller saves GPU memory).
    """

    mode: StudentMode = StudentMode.SUPERVISED
    lam: float = 0.5
    batch_size: int = 4
    epochs: int = 100
    steps_per_epoch: int = 25
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    spacing: tuple[float, float, float] = TARGET_SPACING_MM
    window: HUWindow = CT_WINDOW
    patch: PatchConfig = field(default_factory=PatchConfig)
    network: UNet3DConfig = field(default_factory=UNet3DConfig)
    sliding_window: SlidingWindowConfig = field(default_factory=SlidingWindowConfig)
    seed: int = 0
    device: DeviceChoice = DeviceChoice.AUTO
    amp: bool = True
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", StudentMode(self.mode))
        object.__setattr__(self, "device", DeviceChoice(self.device))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        for name in ("batch_size", "epochs", "steps_per_epoch"):
            check_int(name, getattr(self, name), minimum=1)
        check_real("lambda", self.lam, minimum=0.0, maximum=1.0)
        check_real("learning rate", self.learning_rate, above=0.0)
        check_real("weight decay", self.weight_decay, minimum=0.0)
        if len(self.spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in self.spacing):
            raise ValueError(f"spacing must be three positive millimetre values, got {self.spacing}")
        if self.chunk_size is not None:
            check_int("chunk size", self.chunk_size, minimum=1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = self.mode.value
        data["device"] = self.device.value
        data["network"] = self.network.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Train3DConfig:
        data = dict(data)
        data["window"] = HUWindow(**data["window"])
        data["patch"] = PatchConfig(**{**data["patch"], "size": tuple(data["patch"]["size"])})
        data["network"] = UNet3DConfig.from_dict(data["network"])
        sliding = data["sliding_window"]
        data["sliding_window"] = SlidingWindowConfig(**{**sliding, "patch_size": tuple(sliding["patch_size"])})
        data["spacing"] = tuple(data["spacing"])
        return cls(**data)
