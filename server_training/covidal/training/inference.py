"""Run a trained 2D model on slices; every output is mapped back to each slice's native grid."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from covidal.data.intensity_lungs import intensity_lung_mask
from covidal.data.resizing import probabilities_to_native
from covidal.data.slices import SliceRecord
from covidal.losses.consistency import TRANSFORMS, DihedralTransform, TransformSet, apply_transform, invert_transform
from covidal.metrics.counting import CountingMetric
from covidal.metrics.segmentation import SegmentationMetric
from covidal.models.slices.network import SegmentationNet
from covidal.training.dataset import network_input
from covidal.training.train_config import PLAIN_PREDICTION, PredictionOptions


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (fast, and safe for segmentation logits); nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def softmax_of(model: SegmentationNet, images: torch.Tensor, device: torch.device, tta: bool = False) -> torch.Tensor:
    """float32 softmax ``[B, 2, S, S]`` of ``model`` on ``images`` ``[B, 1, S, S]``, averaged over the dihedral
    group of the square when ``tta`` (the identity and :data:`TRANSFORMS` of ``flip-rot``)."""
    transforms = [DihedralTransform(0, False), *TRANSFORMS[TransformSet.FLIP_ROT]] if tta else []
    with autocast_for(device):
        probs = torch.softmax(model(images).float(), dim=1)
        for transform in transforms[1:]:
            moved = apply_transform(images, transform.quarter_turns, transform.flip)
            probs += invert_transform(
                torch.softmax(model(moved).float(), dim=1), transform.quarter_turns, transform.flip
            )
    return probs / max(1, len(transforms))


@torch.no_grad()
def predict_probabilities(
    model: SegmentationNet,
    records: Sequence[SliceRecord],
    image_size: int,
    device: torch.device,
    batch_size: int = 16,
    progress: bool = False,
    options: PredictionOptions = PLAIN_PREDICTION,
) -> Iterator[tuple[SliceRecord, np.ndarray]]:
    """Yield ``(record, infection probability [H, W])`` on each record's native grid.

    The model runs in eval mode (dropout off) on the square training grid; the 2-class
    softmax is resized back to the native grid before anything is thresholded; ``options`` add test-time
    augmentation and the lung restriction.
    """
    model.eval()
    batches = range(0, len(records), batch_size)
    for start in tqdm(batches, desc="predict", unit="batch", disable=not progress, leave=False):
        chunk = records[start : start + batch_size]
        images = network_input([record.image for record in chunk], image_size).to(device)
        probs = softmax_of(model, images, device, options.tta)
        for record, prob in zip(chunk, probs):
            native = probabilities_to_native(prob[None], record.image.shape)[0, 1].cpu().numpy()
            if options.lung_restriction:
                native = np.where(intensity_lung_mask(record.image), native, 0.0).astype(native.dtype)
            yield record, native


@dataclass
class Evaluation:
    """Micro-averaged segmentation metrics and counting metrics over a set of slices."""

    metrics: dict
    slices: int

    def to_dict(self) -> dict:
        return {**self.metrics, "slices": self.slices}


def evaluate(
    model: SegmentationNet,
    records: Sequence[SliceRecord],
    image_size: int,
    device: torch.device,
    progress: bool = False,
    options: PredictionOptions = PLAIN_PREDICTION,
) -> Evaluation:
    """Dice, IoU, PPV, sensitivity, specificity (micro), counting MAE and GAME on the native grids.

    Raises:
        ValueError: a record has no reference mask.
    """
    missing = [r.slice_id for r in records if r.mask is None]
    if missing:
        raise ValueError(f"cannot evaluate slices without a reference mask: {missing[:5]}")
    segmentation, counting = SegmentationMetric(), CountingMetric()
    for record, prob in predict_probabilities(model, records, image_size, device, progress=progress, options=options):
        prediction = prob >= options.threshold
        reference = record.mask.astype(bool)
        segmentation.update(prediction, reference)
        counting.update(prediction, reference)
    counts = segmentation.counts
    metrics = {
        **segmentation.aggregate(),
        **counting.aggregate(),
        "counts": {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "tn": counts.tn},
    }
    return Evaluation(metrics=metrics, slices=len(records))
