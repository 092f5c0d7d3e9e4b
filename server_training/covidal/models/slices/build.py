"""The JSON-serialisable configuration of a 2D network, and the kind -> builder registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from covidal.errors import CovidalError
from covidal.models.kinds import SLICE_MODEL_KINDS, ModelKind
from covidal.models.slices.fcn8 import FCN8VGG16, load_vgg16_imagenet_weights
from covidal.models.slices.network import SegmentationNet
from covidal.models.slices.unet import UNet2D
from covidal.validation import check_int, check_real, config_from_mapping


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build, saved with checkpoints.

    Attributes:
        name: the 2D network (a :class:`~covidal.models.kinds.ModelKind` of 2 dims or its string value).
        dropout: head channel-dropout probability, ``0 <= p < 1``.
        pretrained: local torchvision-format ImageNet VGG16 weights file for the
            FCN8 trunk; None trains from scratch. Only valid with ``fcn8``.
        width: base channel count of the U-Net, whose levels have
            ``(w, w, 2w, 4w, 8w, w)`` channels (32 gives MONAI BasicUNet's default).

    Raises:
        CovidalError: for an unknown name, a dropout outside ``[0, 1)``, or
            pretrained weights with a network other than ``fcn8``.
    """

    name: ModelKind = ModelKind.UNET
    dropout: float = 0.5
    pretrained: str | None = None
    width: int = 32

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise the fields through object.__setattr__.
        object.__setattr__(self, "name", _parse_model_name(self.name))
        object.__setattr__(self, "dropout", check_real("model dropout", self.dropout, minimum=0.0, below=1.0))
        check_int("model width", self.width, minimum=1)
        if self.pretrained is not None:
            if self.name is not ModelKind.FCN8:
                raise CovidalError(
                    f"pretrained weights are only supported for fcn8, not {self.name}; drop the pretrained setting"
                )
            object.__setattr__(self, "pretrained", str(self.pretrained))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict: ``{"name": str, "dropout": float, "pretrained": str | None, "width": int}``."""
        values = asdict(self)
        values["name"] = str(self.name)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Raises:
            CovidalError: if ``values`` is not a mapping, has unknown keys, or holds invalid values.
        """
        return config_from_mapping(cls, values, "model config")


def _parse_model_name(name: object) -> ModelKind:
    """``name`` as a 2D ModelKind, or a CovidalError listing the choices."""
    if name not in SLICE_MODEL_KINDS:
        choices = ", ".join(kind.value for kind in SLICE_MODEL_KINDS)
        raise CovidalError(f"unknown 2D model {name!r}; choose one of: {choices}")
    return ModelKind(name)


def _build_unet(config: ModelConfig) -> SegmentationNet:
    w = config.width
    return UNet2D(features=(w, w, 2 * w, 4 * w, 8 * w, w), dropout=config.dropout)


def _build_fcn8(config: ModelConfig) -> SegmentationNet:
    model = FCN8VGG16(dropout=config.dropout)
    if config.pretrained is not None:
        load_vgg16_imagenet_weights(model, Path(config.pretrained))
    return model


MODEL_BUILDERS: dict[ModelKind, Callable[[ModelConfig], SegmentationNet]] = {
    ModelKind.UNET: _build_unet,
    ModelKind.FCN8: _build_fcn8,
}


def build_model(config: ModelConfig) -> SegmentationNet:
    """A freshly initialised network as ``config`` describes (ImageNet trunk weights if ``pretrained``).

    Raises:
        CovidalError: if the pretrained weights file is missing or unusable.
    """
    return MODEL_BUILDERS[config.name](config)
