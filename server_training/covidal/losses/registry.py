"""Losses by name, and the configuration that picks one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import torch

from covidal.losses.base import SegmentationLoss
from covidal.losses.consistency import ConsistencyLoss, TransformSet
from covidal.losses.full import FullSupervisionLoss
from covidal.losses.lcfcn import LCFCNLoss
from covidal.losses.point import PointLoss
from covidal.validation import check_choice, check_real, config_from_mapping


class LossName(StrEnum):
    """The training losses compared in the consistency-loss paper."""

    POINT = "point"
    CB_FLIP = "cb-flip"
    CB_FLIP_ROT = "cb-flip-rot"
    LCFCN = "lcfcn"
    CB_LCFCN = "cb-lcfcn"
    FULL = "full"


@dataclass(frozen=True)
class LossConfig:
    """Which loss to train with.

    Attributes:
        name: the loss (a :class:`LossName` or its string value).
        consistency_weight: ``lambda`` of the consistency term; used by the
            ``cb-*`` losses only. Must be finite and >= 0.
        derived_weight: weight of the labels derived from the clicks and the image (pseudo-masks, certain
            background; chosen in the training config) beside the clicks; point and ``cb-flip*`` losses only.
        self_training_weight: weight of self-training on the confident unclicked pixels (``cb-flip*`` losses
            only; 0 = off).
        self_training_threshold: confidence a pixel needs to be self-labelled, in [0.5, 1].
        background_weight: weight of the background clicks' term against the infection clicks' (point and
            ``cb-flip*`` losses only; > 0; above 1 holds back over-segmentation).

    Raises:
        ConfigError: on an unknown name or a negative or non-finite weight.
    """

    name: LossName = LossName.CB_FLIP_ROT
    consistency_weight: float = 1.0
    derived_weight: float = 0.5
    self_training_weight: float = 0.0
    self_training_threshold: float = 0.9
    background_weight: float = 1.0

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise the values through object.__setattr__.
        object.__setattr__(self, "name", check_choice("loss", self.name, LossName))
        for weight in ("consistency_weight", "derived_weight", "self_training_weight"):
            object.__setattr__(self, weight, check_real(weight, getattr(self, weight), minimum=0.0))
        object.__setattr__(
            self,
            "self_training_threshold",
            check_real("self_training_threshold", self.self_training_threshold, minimum=0.5, maximum=1.0),
        )
        object.__setattr__(self, "background_weight", check_real("background_weight", self.background_weight, above=0))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, e.g. ``{"name": "cb-flip-rot", "consistency_weight": 1.0}``."""
        values = asdict(self)
        values["name"] = str(self.name)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LossConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Raises:
            ConfigError: not a mapping, unknown keys or bad values.
        """
        return config_from_mapping(cls, values, "loss config")


LossBuilder = Callable[[LossConfig, torch.Generator | None], SegmentationLoss]


def _point_consistency(transforms: TransformSet) -> LossBuilder:
    def build(config: LossConfig, generator: torch.Generator | None) -> SegmentationLoss:
        return ConsistencyLoss(
            PointLoss(config.derived_weight, config.background_weight),
            transforms,
            config.consistency_weight,
            generator,
            config.self_training_weight,
            config.self_training_threshold,
        )

    return build


LOSS_BUILDERS: dict[LossName, LossBuilder] = {
    LossName.POINT: lambda config, generator: PointLoss(config.derived_weight, config.background_weight),
    LossName.CB_FLIP: _point_consistency(TransformSet.FLIP),
    LossName.CB_FLIP_ROT: _point_consistency(TransformSet.FLIP_ROT),
    LossName.LCFCN: lambda config, generator: LCFCNLoss(),
    LossName.CB_LCFCN: lambda config, generator: ConsistencyLoss(
        LCFCNLoss(), TransformSet.FLIP_ROT, config.consistency_weight, generator
    ),
    LossName.FULL: lambda config, generator: FullSupervisionLoss(),
}


def build_loss(config: LossConfig, generator: torch.Generator | None = None) -> SegmentationLoss:
    """The loss named by ``config``.

    Args:
        config: which loss, and the consistency weight for the ``cb-*`` losses.
        generator: random source for the consistency losses' transforms; the
            global RNG if None.
    """
    return LOSS_BUILDERS[config.name](config, generator)
