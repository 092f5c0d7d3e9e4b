"""The reference that :func:`covidal.noisyteacher.sample_weights.rgs_weights` is tested against."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from covidal.losses.combo import per_sample_combo_loss
from covidal.noisyteacher.gradients import check_image_batch, trainable_parameters
from covidal.noisyteacher.sample_weights import normalise_or_zero


def rgs_weights_reference(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    val_images: Tensor,
    val_labels: Tensor,
    step_size: float = 1e-2,
) -> Tensor:
    """RGS weights by the explicit learning-to-reweight meta-gradient (double back-propagation).

    ``eps = 0`` (requires grad), a virtual step
    ``params' = params - step_size * d(sum_i eps_i L_i)/dparams`` kept in the graph, the validation loss at
    ``params'`` through ``functional_call``, and ``w = normalise(max(0, -dL_val/deps))``.

    Args:
        model: maps ``[N, 1, D, H, W]`` to logits ``[N, 2, D, H, W]``.
        images, labels: the pseudo-labelled batch, ``[B, 1, D, H, W]`` and ``[B, D, H, W]``.
        val_images, val_labels: the validation batch, ``[V, 1, D, H, W]`` and ``[V, D, H, W]``.
        step_size: the virtual learning rate (> 0; it cancels after normalisation).

    Returns:
        ``[B]`` weights, as :func:`rgs_weights`.

    Raises:
        ValueError: on bad shapes or labels, or a step size <= 0.
    """
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    check_image_batch(images, labels)
    check_image_batch(val_images, val_labels)
    parameters = trainable_parameters(model)
    eps = torch.zeros(images.shape[0], dtype=images.dtype, device=images.device, requires_grad=True)
    weighted = (eps * per_sample_combo_loss(model(images), labels)).sum()
    gradients = torch.autograd.grad(weighted, list(parameters.values()), create_graph=True)
    stepped = {name: p - step_size * g for (name, p), g in zip(parameters.items(), gradients, strict=True)}
    constants = {name: p for name, p in model.named_parameters() if name not in stepped}
    constants.update(model.named_buffers())
    val_logits = functional_call(model, (stepped, constants), (val_images,))
    (meta,) = torch.autograd.grad(per_sample_combo_loss(val_logits, val_labels).mean(), eps)
    return normalise_or_zero((-meta).clamp(min=0)).detach()
