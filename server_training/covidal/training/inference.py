"""Run a trained 2D model on slices; every output is mapped back to each slice's native grid."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from covidal.data.resizing import probabilities_to_native
from covidal.data.slices import SliceRecord
from covidal.metrics.counting import CountingMetric
from covidal.metrics.segmentation import SegmentationMetric
from covidal.models.slices.network import SegmentationNet
from covidal.training.dataset import network_input


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (fast, and safe for segmentation logits); nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict_probabilities(
    model: SegmentationNet,
    records: Sequence[SliceRecord],
    image_size: int,
    device: torch.device,
    batch_size: int = 16,
    progress: bool = False,
) -> Iterator[tuple[SliceRecord, np.ndarray]]:
    """Yield ``(record, infection probability [H, W])`` on each record's native grid.

    The model runs in eval mode (dropout off) on the square training grid; the 2-class
    softmax is resized back to the native grid before anything is thresholded.
    """
    model.eval()
    batches = range(0, len(records), batch_size)
    for start in tqdm(batches, desc="predict", unit="batch", disable=not progress, leave=False):
        chunk = records[start : start + batch_size]
        images = network_input([record.image for record in chunk], image_size).to(device)
        with autocast_for(device):
            logits = model(images)
        probs = torch.softmax(logits.float(), dim=1)
        for record, prob in zip(chunk, probs):
            native = probabilities_to_native(prob[None], record.image.shape)[0, 1]
            yield record, native.cpu().numpy()


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
) -> Evaluation:
    """Dice, IoU, PPV, sensitivity, specificity (micro), counting MAE and GAME on the native grids.

    Raises:
        ValueError: a record has no reference mask.
    """
    missing = [r.slice_id for r in records if r.mask is None]
    if missing:
        raise ValueError(f"cannot evaluate slices without a reference mask: {missing[:5]}")
    segmentation, counting = SegmentationMetric(), CountingMetric()
    for record, prob in predict_probabilities(model, records, image_size, device, progress=progress):
        prediction = prob >= 0.5
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
