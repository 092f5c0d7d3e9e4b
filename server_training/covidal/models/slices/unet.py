"""A 2D U-Net (MONAI ``BasicUNet`` trunk) with the shared dropout + 1x1 head."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import BasicUNet
from torch import Tensor, nn

from covidal.models.slices.network import SegmentationNet, check_image_batch

# Four 2x max-poolings: each side must halve evenly four times.
UNET_SIZE_MULTIPLE = 16


class UNet2D(SegmentationNet):
    """MONAI ``BasicUNet`` (2D, instance norm, LeakyReLU) whose 1x1 output conv is the shared head.

    The trunk is ``BasicUNet`` with ``final_conv`` replaced by the identity, so it
    returns the last decoder block's ``features[5]`` full-resolution maps; the
    head's ``Dropout2d`` + 1x1 ``classifier`` then stands where ``final_conv`` was.
    The trunk itself has no dropout. Instance norm keeps no running statistics,
    so the trunk computes the same thing in train and eval mode.
    """

    def __init__(
        self,
        features: Sequence[int] = (32, 32, 64, 128, 256, 32),
        dropout: float = 0.5,
        in_channels: int = 1,
        num_classes: int = 2,
    ) -> None:
        """Build the network.

        Args:
            features: BasicUNet's six widths: five encoder levels, then the last decoder level (= F).
            dropout: head channel-dropout probability, ``0 <= p < 1``.
            in_channels: image channels.
            num_classes: output classes.

        Raises:
            ValueError: if ``features`` does not have six entries, or as :class:`SegmentationNet`.
        """
        features = tuple(features)
        if len(features) != 6:
            raise ValueError(f"UNet2D needs six feature widths, got {len(features)}: {features}")
        super().__init__(feature_channels=features[5], num_classes=num_classes, dropout=dropout)
        self.in_channels = in_channels
        self.trunk = BasicUNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=num_classes,
            features=features,
            dropout=0.0,
        )
        self.trunk.final_conv = nn.Identity()

    def features(self, images: Tensor) -> Tensor:
        """Decoder features ``[B, F, H, W]`` for images ``[B, in_channels, H, W]``.

        Raises:
            ValueError: if the layout is wrong or H, W are not multiples of 16.
        """
        check_image_batch(images, self.in_channels, UNET_SIZE_MULTIPLE, "UNet2D")
        return self.trunk(images)
