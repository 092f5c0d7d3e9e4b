"""The shape every 2D segmentation network here shares: trunk, then a dropout + 1x1 head.

The trunk maps an image batch ``[B, in_ch, H, W]`` to full-resolution features
``[B, F, H, W]``; the head is ``Dropout2d(p)`` followed by a 1x1 convolution to
class logits ``[B, C, H, W]``.

Why channel dropout (``nn.Dropout2d``) in the head: Monte-Carlo dropout scoring
runs the deterministic trunk once per slice and resamples only the head. With
channel dropout, one dropout sample is a per-(image, channel) mask ``m[b, f]``,
so the stochastic head ``classifier(features * m / (1 - p))`` equals a 1x1
convolution whose weights are ``W[c, f] * m[b, f] / (1 - p)``. T samples are then
one batched contraction with T stacked weight matrices
(:meth:`SegmentationNet.head_logits_with_masks`) instead of T full head passes.
Element-wise dropout would need a separate ``[F, H, W]`` mask per sample.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class SegmentationNet(nn.Module, ABC):
    """Trunk -> features ``[B, F, H, W]`` -> ``Dropout2d(p)`` -> 1x1 conv -> logits ``[B, C, H, W]``.

    Subclasses build the trunk and implement :meth:`features`.

    Attributes:
        feature_channels: F, the number of trunk feature maps fed to the head.
        head_dropout: channel dropout applied to the features before the head.
        classifier: 1x1 convolution ``F -> num_classes``.
    """

    def __init__(self, feature_channels: int, num_classes: int, dropout: float) -> None:
        """Create the head.

        Args:
            feature_channels: F, channels of the trunk's output.
            num_classes: C, number of output classes (2: background, infection).
            dropout: head channel-dropout probability p, ``0 <= p < 1``.

        Raises:
            ValueError: if a count is not positive or p is outside ``[0, 1)``.
        """
        super().__init__()
        if feature_channels < 1 or num_classes < 1:
            raise ValueError(f"feature_channels and num_classes must be >= 1, got {feature_channels} and {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"head dropout must satisfy 0 <= p < 1, got {dropout}")
        self.feature_channels = feature_channels
        self.num_classes = num_classes
        self.head_dropout = nn.Dropout2d(p=dropout)
        self.classifier = nn.Conv2d(feature_channels, num_classes, kernel_size=1)

    @property
    def dropout(self) -> float:
        """The head channel-dropout probability p."""
        return float(self.head_dropout.p)

    @abstractmethod
    def features(self, images: Tensor) -> Tensor:
        """Trunk features: ``[B, in_ch, H, W]`` -> ``[B, F, H, W]``.

        Deterministic when the trunk is in eval mode.
        """

    def head(self, features: Tensor) -> Tensor:
        """Channel dropout then the 1x1 classifier: ``[B, F, H, W]`` -> ``[B, C, H, W]``."""
        return self.classifier(self.head_dropout(features))

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``[B, C, H, W]`` for images ``[B, in_ch, H, W]``."""
        return self.head(self.features(images))

    def head_logits_with_masks(self, features: Tensor, channel_masks: Tensor) -> Tensor:
        """Head logits for T given channel-dropout masks, as one batched operation.

        For every sample t this equals
        ``classifier(features * channel_masks[t, :, :, None, None] / (1 - p))``,
        i.e. the train-mode head with its dropout mask fixed to ``channel_masks[t]``.

        Args:
            features: trunk features ``[B, F, H, W]``.
            channel_masks: ``[T, B, F]`` with values in ``{0, 1}`` (1 keeps a channel).

        Returns:
            Logits ``[T, B, C, H, W]``.

        Raises:
            ValueError: if the shapes do not match.
        """
        if features.ndim != 4 or features.shape[1] != self.feature_channels:
            raise ValueError(f"features must be [B, {self.feature_channels}, H, W], got {tuple(features.shape)}")
        batch = features.shape[0]
        if channel_masks.ndim != 3 or channel_masks.shape[1:] != (batch, self.feature_channels):
            raise ValueError(
                f"channel_masks must be [T, {batch}, {self.feature_channels}], got {tuple(channel_masks.shape)}"
            )
        weight = self.classifier.weight[:, :, 0, 0]  # [C, F]
        scale = 1.0 / (1.0 - self.dropout)
        masks = channel_masks.to(dtype=weight.dtype) * scale
        stacked_weights = weight[None, None, :, :] * masks[:, :, None, :]  # [T, B, C, F]
        logits = torch.einsum("tbcf,bfhw->tbchw", stacked_weights, features)
        return logits + self.classifier.bias[None, None, :, None, None]

    def sample_channel_masks(self, samples: int, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw T head-dropout masks, each entry Bernoulli(1 - p).

        Args:
            samples: T, number of Monte-Carlo samples.
            batch: B, number of images.
            generator: optional random generator (for reproducible draws); the
                masks are drawn on its device and moved to the classifier's.

        Returns:
            ``[T, B, F]`` float masks in ``{0, 1}`` on the classifier's device.

        Raises:
            ValueError: if samples or batch is not positive.
        """
        if samples < 1 or batch < 1:
            raise ValueError(f"samples and batch must be >= 1, got {samples} and {batch}")
        weight = self.classifier.weight
        draw_device = generator.device if generator is not None else weight.device
        keep = torch.full((samples, batch, self.feature_channels), 1.0 - self.dropout, device=draw_device)
        masks = torch.bernoulli(keep, generator=generator)
        return masks.to(device=weight.device, dtype=weight.dtype)


def check_image_batch(images: Tensor, in_channels: int, size_multiple: int, model_name: str) -> None:
    """Check that ``images`` is ``[B, in_channels, H, W]`` with H, W divisible by ``size_multiple``.

    Raises:
        ValueError: naming the model, the expected layout and the offending shape.
    """
    if images.ndim != 4 or images.shape[1] != in_channels:
        raise ValueError(f"{model_name} expects images [B, {in_channels}, H, W], got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if height % size_multiple or width % size_multiple:
        raise ValueError(
            f"{model_name} needs height and width divisible by {size_multiple}, got {height}x{width}; "
            f"pad or crop the slices to a multiple of {size_multiple}"
        )
