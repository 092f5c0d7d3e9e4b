"""The 3D residual U-Net (MONAI ``UNet``) of the noisy-teacher student, its configuration and layer look-ups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monai.networks.nets import UNet
from torch import nn
from torch.nn.modules.conv import _ConvNd

from covidal.errors import CovidalError
from covidal.validation import check_int, check_ints, config_from_mapping

# Trainable parameters of the default network, as the paper reports.
PAPER_PARAMETER_COUNT = 4_806_481

IN_CHANNELS = 1  # one CT intensity channel
NUM_CLASSES = 2  # background, infection


@dataclass(frozen=True)
class UNet3DConfig:
    """Shape of the MONAI 3D ``UNet``, saved with checkpoints.

    Attributes:
        channels: output channels of each encoder level, at least two levels.
        strides: downsampling stride between consecutive levels (``len(channels) - 1`` entries); an input side
            must be divisible by their product.
        num_res_units: residual units per block (0: plain convolutions).

    Raises:
        CovidalError: if a width or stride is not a positive integer, the lengths do not match, or
            ``num_res_units`` is not an integer >= 0.
    """

    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 2

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise JSON lists to tuples through object.__setattr__.
        object.__setattr__(self, "channels", check_ints("UNet3D channels", self.channels))
        if len(self.channels) < 2:
            raise CovidalError(f"UNet3D channels needs at least two levels, got {list(self.channels)}")
        object.__setattr__(self, "strides", check_ints("UNet3D strides", self.strides))
        if len(self.strides) != len(self.channels) - 1:
            raise CovidalError(
                f"UNet3D strides needs len(channels) - 1 = {len(self.channels) - 1} entries, "
                f"got {len(self.strides)}: {list(self.strides)}"
            )
        check_int("UNet3D num_res_units", self.num_res_units, minimum=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, e.g. ``{"channels": [16, ...], "strides": [2, ...], "num_res_units": 2}``."""
        return {"channels": list(self.channels), "strides": list(self.strides), "num_res_units": self.num_res_units}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> UNet3DConfig:
        """Inverse of :meth:`to_dict` (lists become tuples); missing keys take their defaults.

        Raises:
            CovidalError: if ``values`` is not a mapping, has unknown keys, or holds invalid values.
        """
        return config_from_mapping(cls, values, "UNet3D config")


def build_unet3d(config: UNet3DConfig = UNet3DConfig()) -> nn.Module:
    """A freshly initialised MONAI 3D ``UNet``: 1 input channel, 2 logit channels ``[B, 2, D, H, W]``.

    MONAI's defaults apply: instance norm (no running statistics, so train and eval mode compute the same),
    PReLU, no dropout.
    """
    return UNet(
        spatial_dims=3,
        in_channels=IN_CHANNELS,
        out_channels=NUM_CLASSES,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
    )


def count_trainable_parameters(model: nn.Module) -> int:
    """Number of scalars in the parameters that require gradients."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def final_layer_parameter_names(model: nn.Module) -> tuple[str, ...]:
    """Names (as in ``model.named_parameters()``) of the trainable parameters of the layer producing the logits.

    That layer is the last convolution (plain or transposed) with ``NUM_CLASSES`` output channels in module
    order: MONAI's ``UNet`` registers its top-level up path last, and that path ends in the convolution that
    writes the logits (with residual units, the logits are its output plus an identity shortcut).

    Raises:
        ValueError: if the model has no such convolution or it has no trainable parameters.
    """
    convolutions = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, _ConvNd) and module.out_channels == NUM_CLASSES
    ]
    if not convolutions:
        raise ValueError(f"model has no convolution with {NUM_CLASSES} output channels to take as the final layer")
    prefix, layer = convolutions[-1]
    names = tuple(f"{prefix}.{name}" for name, parameter in layer.named_parameters() if parameter.requires_grad)
    if not names:
        raise ValueError(f"the final layer {prefix!r} has no trainable parameters")
    return names
