"""Training losses for point-supervised infection segmentation.

Pick one with :func:`build_loss` and a :class:`LossConfig`; every loss is
called as ``loss(model, batch) -> LossResult``.
"""

from covidal.losses.base import (
    IGNORE_INDEX,
    Batch,
    LogitsLoss,
    LossResult,
    SegmentationLoss,
)
from covidal.losses.consistency import ConsistencyLoss, TransformSet
from covidal.losses.full import FullSupervisionLoss
from covidal.losses.lcfcn import LCFCNLoss
from covidal.losses.point import PointLoss, point_loss
from covidal.losses.registry import LossConfig, LossName, build_loss

__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "ConsistencyLoss",
    "FullSupervisionLoss",
    "LCFCNLoss",
    "LogitsLoss",
    "LossConfig",
    "LossName",
    "LossResult",
    "PointLoss",
    "SegmentationLoss",
    "TransformSet",
    "build_loss",
    "point_loss",
]
