"""2D segmentation networks: a trunk producing full-resolution features, then a dropout + 1x1 head."""

from covidal.models.base import SegmentationNet
from covidal.models.registry import ModelConfig, ModelName, build_model

__all__ = ["ModelConfig", "ModelName", "SegmentationNet", "build_model"]
