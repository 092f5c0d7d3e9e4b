"""Whole-volume prediction with a 3D patch network, mapped back onto the grid each volume was read on."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from covidal.data.volume import Volume
from covidal.training.inference import autocast_for
from covidal.validation import check_int, check_real
from covidal.volumes.patches import checked_size
from covidal.volumes.preprocess import Interpolation, PreparedCase, resample_to_grid

FOREGROUND_THRESHOLD = 0.5  # as in 2D prediction: infection where its probability is at least this


@dataclass(frozen=True)
class SlidingWindowConfig:
    """How a volume is covered by network windows.

    Attributes:
        patch_size: window size ``[D, H, W]`` = ``[K, J, I]`` in voxels (usually the training patch size).
        overlap: fraction of a window shared with its neighbour along each axis, in ``[0, 1)``.
        batch_size: windows per forward pass.

    Raises:
        ValueError: a window size below 1, overlap outside ``[0, 1)``, or batch size below 1.
    """

    patch_size: tuple[int, int, int] = (96, 96, 96)
    overlap: float = 0.5
    batch_size: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", checked_size(self.patch_size, "sliding-window patch size"))
        check_real("sliding-window overlap", self.overlap, minimum=0.0, below=1.0)
        check_int("sliding-window batch size", self.batch_size, minimum=1)


def predict_probability(
    model: torch.nn.Module,
    image: np.ndarray,
    config: SlidingWindowConfig,
    device: torch.device,
    amp: bool = False,
) -> np.ndarray:
    """Infection probability of every voxel of a volume on the training grid.

    Windows are blended with a Gaussian weight (their centres count most, where
    the network saw the most context); MONAI pads a volume smaller than a window
    with 0.0 (air) and crops the result back. The model runs in eval mode.

    Args:
        model: 2-class network, ``[B, 1, D, H, W]`` -> logits ``[B, 2, D, H, W]``.
        image: float32 ``[K, J, I]`` in ``[0, 1]``.
        config: window size, overlap and batch size.
        device: where the model and the volume are.
        amp: bf16 autocast (CUDA only; ignored elsewhere).

    Returns:
        float32 ``[K, J, I]``: softmax channel 1 of the blended logits.

    Raises:
        ValueError: ``image`` is not 3D, or the model does not give 2 channels.
    """
    if image.ndim != 3:
        raise ValueError(f"expected an image [K, J, I], got shape {image.shape}")
    model.eval()
    volume = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
    with torch.inference_mode(), autocast_for(device) if amp else nullcontext():
        logits = sliding_window_inference(
            volume, config.patch_size, config.batch_size, model, overlap=config.overlap, mode="gaussian"
        )
    if logits.shape[1] != 2:
        raise ValueError(f"expected a 2-class model (background, infection), got {logits.shape[1]} output channels")
    return torch.softmax(logits.float(), dim=1)[0, 1].cpu().numpy()


def predict_on_source_grid(
    model: torch.nn.Module,
    prepared: PreparedCase,
    config: SlidingWindowConfig,
    device: torch.device,
    amp: bool = False,
) -> tuple[Volume, Volume]:
    """Predict a prepared case and map the result onto the grid it was read on.

    The probability is resampled LINEAR to ``prepared.source``'s grid and only
    then thresholded at 0.5: the interpolated probability places the boundary
    between coarse voxels, so the mask follows smooth outlines on the finer
    source grid, where resampling the thresholded mask would copy the coarse
    voxels' staircase (blocks of 1.6 x 1.6 x 3.2 mm). Source voxels up to half a
    coarse voxel beyond the training grid take the nearest coarse voxel's value.

    Returns:
        ``(label, probability)`` on exactly ``prepared.source``'s grid (size,
        spacing, origin, direction): uint8 {0, 1} and float32 in ``[0, 1]``.
    """
    probability = predict_probability(model, prepared.image, config, device, amp)
    on_source = resample_to_grid(
        prepared.grid.with_array(probability), prepared.source, Interpolation.LINEAR, extrapolate=True
    )
    label = on_source.with_array((on_source.array >= FOREGROUND_THRESHOLD).astype(np.uint8))
    return label, on_source
