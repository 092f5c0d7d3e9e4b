"""Segmentation networks by axis: ``slices/`` (2D: U-Net, FCN8) and ``volumes/`` (3D U-Net); ``kinds`` lists them."""

from covidal.models.kinds import ModelKind
from covidal.models.slices.build import ModelConfig, build_model
from covidal.models.slices.network import SegmentationNet

__all__ = ["ModelConfig", "ModelKind", "SegmentationNet", "build_model"]
