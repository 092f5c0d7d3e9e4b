"""2D segmentation networks: a trunk producing full-resolution features, then a dropout + 1x1 head."""

from covidal.models.base import SegmentationNet
from covidal.models.kinds import ModelKind
from covidal.models.registry import ModelConfig, build_model

__all__ = ["ModelConfig", "ModelKind", "SegmentationNet", "build_model"]
