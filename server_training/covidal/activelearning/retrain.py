"""Train a model for a fixed number of optimiser steps on the labelled part of the pool."""

from __future__ import annotations

import torch

from covidal.losses.base import SegmentationLoss
from covidal.models.base import SegmentationNet
from covidal.training.dataset import TrainingSlices
from covidal.training.trainer import train_step


def fit_steps(
    model: SegmentationNet,
    loss_fn: SegmentationLoss,
    data: TrainingSlices,
    steps: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
) -> list[float]:
    """Run ``steps`` Adam steps over reshuffled passes of ``data`` (a fresh optimiser each call).

    Args:
        model: trained in place, on its own device.
        loss_fn: the training loss.
        data: labelled slices; unlabelled pixels are -1 and ignored by the loss.
        steps: optimiser steps, >= 1.
        batch_size: slices per step.
        learning_rate: Adam step size.
        generator: seeds the batch order.

    Returns:
        The loss of every step.

    Raises:
        CovidalError: the loss is not finite.
        ValueError: ``steps`` below 1 or ``data`` empty.
    """
    if steps < 1 or len(data) == 0:
        raise ValueError(f"need steps >= 1 and at least one slice, got {steps} steps and {len(data)} slices")
    device = model.classifier.weight.device
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    losses: list[float] = []
    while len(losses) < steps:
        for batch in data.batches(batch_size, generator, device):
            losses.append(train_step(model, loss_fn, batch, optimiser, device).total.item())
            if len(losses) == steps:
                break
    return losses
