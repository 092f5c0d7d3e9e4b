"""The project's current 2D model in the HTTP process: its network input of a volume, and predictions.

This module imports torch; the routes import it inside the request that needs
a model, so a service that never trains starts without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidal.data.slices import load_volume_slices
from covidal.data.volume import Volume
from covidal.data.window import HUWindow, to_unit_intensity
from covidal.service.cache import VolumeKey
from covidal.training.checkpoint import LoadedRun, load_run
from covidal.training.dataset import network_input
from covidal.training.inference import predict_probabilities


def load_model(path: Path, device: str) -> LoadedRun:
    """The model saved at ``path`` on ``device`` (eval mode). CovidalError if it cannot be read."""
    return load_run(Path(path), torch.device(device))


@dataclass(frozen=True)
class NetworkInputKey:
    """What a volume's network input depends on: the volume's content, the model's HU window and grid size."""

    volume: VolumeKey
    window: HUWindow
    image_size: int


def network_input_of(array: np.ndarray, window: HUWindow, image_size: int) -> torch.Tensor:
    """float32 ``[K, 1, S, S]``: the axial slices of ``array`` ``[K, J, I]`` (HU) windowed one at a time (windowing
    a whole 512 x 512 x 300 CT at once makes a 300 MB float copy and was four times slower), resized, standardised.

    Raises:
        CovidalError: a slice holds NaN or infinite values.
    """
    return network_input((to_unit_intensity(k_slice, window) for k_slice in array), image_size)


def tensor_nbytes(tensor: torch.Tensor) -> int:
    return tensor.element_size() * tensor.nelement()


def predict_labels(run: LoadedRun, volume: Volume) -> np.ndarray:
    """uint8 ``[K, J, I]``: 1 where the model's infection probability reaches the threshold it was trained with
    (0.5 unless its config says otherwise), slice by slice."""
    device = next(run.model.parameters()).device
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    records = load_volume_slices(volume, None, "volume", run.config.window)
    for record, probability in predict_probabilities(
        run.model, records, run.config.image_size, device, options=run.config.prediction
    ):
        labels[record.slice_index] = probability >= run.config.prediction.threshold
    return labels
