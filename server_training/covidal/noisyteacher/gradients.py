"""Per-sample and batch gradients of the combo loss, and the inner products the sample weights are built from.

A :data:`GradientDict` maps parameter names (as in ``model.named_parameters()``) to gradients: ``[*shape]``
for a batch gradient, ``[B, *shape]`` for per-sample gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from covidal.losses.base import IGNORE_INDEX
from covidal.losses.combo import ComboLoss, check_binary_labels, per_sample_combo_loss
from covidal.losses.point import point_loss

GradientDict = dict[str, Tensor]


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """``{name: parameter}`` of the parameters that require gradients, in module order."""
    return {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}


def check_image_batch(images: Tensor, labels: Tensor) -> None:
    """Check images ``[B, 1, D, H, W]`` against labels ``[B, D, H, W]`` with values 0/1.

    Raises:
        ValueError: on other shapes or label values.
    """
    if images.ndim != 5 or images.shape[1] != 1:
        raise ValueError(f"images must be [B, 1, D, H, W], got shape {tuple(images.shape)}")
    if labels.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(
            f"labels must be [B, D, H, W] = {[images.shape[0], *images.shape[2:]]} to match images "
            f"{tuple(images.shape)}, got shape {tuple(labels.shape)}"
        )
    check_binary_labels(labels)


def per_sample_gradients(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    chunk_size: int | None = None,
) -> tuple[Tensor, GradientDict]:
    """Each sample's combo loss and the gradient of that loss alone, by ``torch.func.vmap``.

    Every sample runs through the model as a batch of one, so sample ``i``'s gradient is exactly that of
    ``per_sample_combo_loss(model(images[i:i+1]), labels[i:i+1])`` (instance norm has no batch coupling).
    Buffers and frozen parameters are passed through as constants.
    Dropout, if any, draws an independent mask per sample. Works under ``torch.autocast`` (the loss is
    computed in float32; gradients take the parameters' dtype).

    Args:
        model: maps ``[N, 1, D, H, W]`` to logits ``[N, 2, D, H, W]``.
        images: ``[B, 1, D, H, W]``.
        labels: ``[B, D, H, W]`` integer or bool, values in {0, 1}.
        chunk_size: samples per vectorised chunk (None: all at once); smaller uses less memory.

    Returns:
        Per-sample losses ``[B]`` (detached) and gradients ``{name: [B, *param.shape]}``.

    Raises:
        ValueError: on bad shapes or labels.
    """
    check_image_batch(images, labels)
    differentiated = {name: parameter.detach() for name, parameter in trainable_parameters(model).items()}
    constants = {name: p.detach() for name, p in model.named_parameters() if name not in differentiated}
    constants.update(model.named_buffers())

    def sample_loss(parameters: GradientDict, fixed: GradientDict, image: Tensor, label: Tensor) -> Tensor:
        logits = functional_call(model, (parameters, fixed), (image.unsqueeze(0),))
        return per_sample_combo_loss(logits, label.unsqueeze(0)).squeeze(0)

    batched = vmap(
        grad_and_value(sample_loss), in_dims=(None, None, 0, 0), chunk_size=chunk_size, randomness="different"
    )
    gradients, losses = batched(differentiated, constants, images, labels)
    return losses.detach(), gradients


def batch_gradient(model: nn.Module, images: Tensor, labels: Tensor) -> tuple[Tensor, GradientDict]:
    """The mean combo loss of the batch (detached scalar) and its gradient ``{name: [*param.shape]}``.

    Plain autograd over the trainable parameters; the parameters' ``.grad`` is left untouched.

    Raises:
        ValueError: on bad shapes or labels.
    """
    check_image_batch(images, labels)
    parameters = trainable_parameters(model)
    loss = ComboLoss()(model(images), labels)
    gradients = torch.autograd.grad(loss, list(parameters.values()))
    return loss.detach(), dict(zip(parameters, gradients, strict=True))


def point_batch_gradient(model: nn.Module, images: Tensor, point_labels: Tensor) -> tuple[Tensor, GradientDict]:
    """The class-balanced point loss (:func:`covidal.losses.point.point_loss`) of a batch labelled only where a
    clinician answered, and its gradient ``{name: [*param.shape]}``: a clean signal for the re-weighting (RGS)
    before any volume is delineated in full.

    Args:
        images: ``[B, 1, D, H, W]``.
        point_labels: ``[B, D, H, W]`` int64: 1 at infection clicks, 0 in background answers, -1 elsewhere.

    Raises:
        ValueError: on other shapes, a label outside {-1, 0, 1}, or no labelled voxel at all.
    """
    if images.ndim != 5 or images.shape[1] != 1 or point_labels.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(
            f"expected images [B, 1, D, H, W] and point labels [B, D, H, W], got {tuple(images.shape)} and "
            f"{tuple(point_labels.shape)}"
        )
    if not bool((point_labels != IGNORE_INDEX).any()):
        raise ValueError("the point labels hold no answered voxel, so they give no clean gradient")
    parameters = trainable_parameters(model)
    logits = model(images)
    batch, classes, depth, height, width = logits.shape
    # The point loss is per voxel, so the depth folds into the rows of its 2D form.
    loss = point_loss(
        logits.reshape(batch, classes, depth * height, width), point_labels.reshape(batch, depth * height, width)
    )
    gradients = torch.autograd.grad(loss, list(parameters.values()))
    return loss.detach(), dict(zip(parameters, gradients, strict=True))


def _check_same_names(a: GradientDict, b: GradientDict) -> None:
    if not a or set(a) != set(b):
        raise ValueError(f"gradients must cover the same, non-empty set of parameters: {sorted(a)} vs {sorted(b)}")


def per_sample_dot(per_sample: GradientDict, gradient: GradientDict) -> Tensor:
    """``[B]`` inner products ``<per_sample[i], gradient>`` over all named parameters.

    Args:
        per_sample: ``{name: [B, *shape]}``.
        gradient: ``{name: [*shape]}`` with the same names.

    Raises:
        ValueError: if the names or shapes differ, or there are none.
    """
    _check_same_names(per_sample, gradient)
    terms = []
    for name, stacked in per_sample.items():
        if stacked.shape[1:] != gradient[name].shape:
            raise ValueError(
                f"gradient of {name!r} is {tuple(gradient[name].shape)}, per-sample is {tuple(stacked.shape)}"
            )
        terms.append(stacked.flatten(1) @ gradient[name].flatten().to(stacked.dtype))
    return torch.stack(terms).sum(dim=0)


def per_sample_norm(per_sample: GradientDict, names: Sequence[str]) -> Tensor:
    """``[B]`` L2 norms of each sample's gradient restricted to the parameters ``names``.

    Raises:
        ValueError: if ``names`` is empty or names a parameter missing from ``per_sample``.
    """
    missing = sorted(set(names) - set(per_sample))
    if missing or not names:
        raise ValueError(f"names must be a non-empty subset of the gradient's parameters; missing {missing}")
    squares = [per_sample[name].flatten(1).square().sum(dim=1) for name in names]
    return torch.stack(squares).sum(dim=0).sqrt()
