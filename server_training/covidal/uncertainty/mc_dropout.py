"""Monte-Carlo dropout samples of a :class:`SegmentationNet`'s softmax, with recorded randomness.

Only the head is stochastic (channel dropout before the 1x1 classifier), so the
cached path runs the deterministic trunk once and evaluates all T dropout
samples as one batched head operation. The naive path recomputes everything T
times and is kept as the reference the cached path is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from covidal.models.slices.network import SegmentationNet
from covidal.training.inference import autocast_for


@dataclass(frozen=True)
class MCSamples:
    """T dropout samples for a batch of images.

    Attributes:
        probs: ``[T, B, C, H, W]`` float32 softmax probabilities.
        masks: ``[T, B, F]`` the head channel-dropout masks used (1 keeps a channel).
        features: ``[B, F, H, W]`` the deterministic trunk features the heads ran on, for strategies that also
            describe regions by them (no second forward pass).
    """

    probs: Tensor
    masks: Tensor
    features: Tensor


def sample_dropout_masks(model: SegmentationNet, samples: int, batch: int, seed: int) -> Tensor:
    """Draw reproducible head-dropout masks: the same seed gives the same masks on any device.

    Args:
        model: the network whose head dropout p and width F define the masks.
        samples: T, number of Monte-Carlo samples, >= 1.
        batch: B, number of images, >= 1.
        seed: seed of the CPU random generator the masks are drawn from.

    Returns:
        ``[T, B, F]`` masks in ``{0, 1}`` on the model's device.

    Raises:
        ValueError: if samples or batch is below 1.
    """
    if samples < 1 or batch < 1:
        raise ValueError(f"samples and batch must be >= 1, got {samples} and {batch}")
    # A CPU generator so the draw does not depend on which device the model is on.
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return model.sample_channel_masks(samples, batch, generator)


@torch.no_grad()
def mc_probabilities_cached(model: SegmentationNet, images: Tensor, masks: Tensor) -> MCSamples:
    """MC-dropout softmax samples with the trunk run once and the T heads batched.

    Puts the model in eval mode. On CUDA the network runs under bf16 autocast;
    the returned probabilities are float32 either way.

    Args:
        model: the network.
        images: ``[B, in_ch, H, W]``; moved to the model's device.
        masks: ``[T, B, F]`` head-dropout masks, e.g. from :func:`sample_dropout_masks`.

    Returns:
        :class:`MCSamples` with probs ``[T, B, C, H, W]`` and the masks.

    Raises:
        ValueError: if the masks are not ``[T >= 1, B, F]``, or as the model's
            ``features`` for a bad image batch.
    """
    images, masks = _prepare(model, images, masks)
    with autocast_for(images.device):
        features = model.features(images)
        logits = model.head_logits_with_masks(features, masks)
    return MCSamples(probs=logits.float().softmax(dim=2), masks=masks, features=features.float())


@torch.no_grad()
def mc_probabilities_naive(model: SegmentationNet, images: Tensor, masks: Tensor) -> MCSamples:
    """Reference MC-dropout samples: T full forward passes, each with its given head mask.

    Each pass computes ``classifier(features * masks[t, :, :, None, None] / (1 - p))``,
    what the train-mode ``Dropout2d`` head would compute had it drawn ``masks[t]``.
    Puts the model in eval mode and runs in the model's own precision (no autocast).

    Args:
        model: the network.
        images: ``[B, in_ch, H, W]``; moved to the model's device.
        masks: ``[T, B, F]`` head-dropout masks.

    Returns:
        :class:`MCSamples` with probs ``[T, B, C, H, W]`` and the masks.

    Raises:
        ValueError: as :func:`mc_probabilities_cached`.
    """
    images, masks = _prepare(model, images, masks)
    scale = 1.0 / (1.0 - model.dropout)
    samples = []
    features = None
    for sample_mask in masks:
        features = model.features(images)
        dropped = features * sample_mask[:, :, None, None].to(features.dtype) * scale
        samples.append(model.classifier(dropped).float().softmax(dim=1))
    return MCSamples(probs=torch.stack(samples), masks=masks, features=features.float())


def _prepare(model: SegmentationNet, images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """Validate the mask shape, switch to eval mode and move both tensors to the model's device.

    Raises:
        ValueError: if masks are not ``[T, B, F]`` with T >= 1, B = ``images.shape[0]``
            and F = ``model.feature_channels``.
    """
    batch = images.shape[0] if images.ndim > 0 else 0
    expected = (batch, model.feature_channels)
    if masks.ndim != 3 or masks.shape[0] < 1 or tuple(masks.shape[1:]) != expected:
        raise ValueError(
            f"masks must be [T >= 1, {batch}, {model.feature_channels}] for {batch} images and "
            f"{model.feature_channels} head channels, got {tuple(masks.shape)}"
        )
    model.eval()
    device = model.classifier.weight.device
    return images.to(device), masks.to(device)
