"""Throughput of Monte-Carlo dropout scoring: the cached path against the naive reference, same model and data.

Scoring an unlabelled pool is the hot path of every active-learning cycle:
images -> T head-dropout masks -> MC softmax samples -> predictive entropy on the
CPU. Both methods score the same slices with the same masks, so their entropy
maps must agree; their timings are taken in the same process, alternating the
order across repeats so that machine noise hits both alike.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

import torch
from torch import Tensor

from covidal.activelearning.scoring import Sampler, mc_pixel_scores
from covidal.models.slices.network import SegmentationNet
from covidal.uncertainty.mc_dropout import (
    mc_probabilities_cached,
    mc_probabilities_naive,
    sample_dropout_masks,
)
from covidal.uncertainty.measures import predictive_entropy


class ScoringMethod(StrEnum):
    """How the T Monte-Carlo dropout samples are computed."""

    CACHED = "cached"  # trunk once, all T heads as one batched contraction
    NAIVE = "naive"  # T full forward passes


SAMPLERS: dict[ScoringMethod, Sampler] = {
    ScoringMethod.CACHED: mc_probabilities_cached,
    ScoringMethod.NAIVE: mc_probabilities_naive,
}


def score_batch(model: SegmentationNet, images: Tensor, samples: int, seed: int, method: ScoringMethod) -> Tensor:
    """Predictive-entropy map of a batch, end to end as an active-learning cycle computes it
    (:func:`covidal.activelearning.scoring.mc_pixel_scores`, the pixel scores of every cycle's query).

    Args:
        model: the network, on the device of ``images``.
        images: ``[B, in_ch, S, S]`` on the model's device.
        samples: T, Monte-Carlo dropout samples (>= 1).
        seed: seeds the head-dropout masks; the same seed gives both methods the same masks.
        method: which sampler computes the MC softmax samples.

    Returns:
        ``[B, S, S]`` float64 entropy (nats) on the CPU.

    Raises:
        ValueError: as :func:`sample_dropout_masks` and the samplers.
    """
    masks = sample_dropout_masks(model, samples, images.shape[0], seed)
    return mc_pixel_scores(model, images, masks, predictive_entropy, SAMPLERS[method])


@dataclass(frozen=True)
class ScoringBenchResult:
    """Slices per second of both scoring methods, measured in one run on the same model and data.

    Attributes:
        slices: slices scored per timed pass.
        samples: T, Monte-Carlo dropout samples per slice.
        batch_size: slices per forward pass.
        image_size: S, side of the square network input.
        device: the accelerator's name, or the CPU and its torch thread count.
        model: the network class and its head width F and dropout p.
        repeats: timed passes per method.
        cached_seconds: wall time of each timed cached pass over all slices.
        naive_seconds: wall time of each timed naive pass over all slices.
        cached_slices_per_s: ``slices / median(cached_seconds)``.
        naive_slices_per_s: ``slices / median(naive_seconds)``.
        ratio: ``cached_slices_per_s / naive_slices_per_s`` (the speed-up).
        max_abs_entropy_difference: largest pixel-wise difference between the two
            methods' entropy maps (nats); bf16 autocast of the cached path on CUDA makes it non-zero.
    """

    slices: int
    samples: int
    batch_size: int
    image_size: int
    device: str
    model: str
    repeats: int
    cached_seconds: tuple[float, ...]
    naive_seconds: tuple[float, ...]
    cached_slices_per_s: float
    naive_slices_per_s: float
    ratio: float
    max_abs_entropy_difference: float

    def to_dict(self) -> dict:
        """Plain JSON-compatible dict of every field."""
        return asdict(self)

    def markdown_row(self) -> str:
        """One row of :data:`MARKDOWN_HEADER`'s table."""
        return (
            f"| {self.device} | {self.model} | {self.image_size} | {self.samples} | {self.batch_size} | {self.slices} "
            f"| {format_rate(self.cached_slices_per_s)} | {format_rate(self.naive_slices_per_s)} | {self.ratio:.1f}x "
            f"| {self.max_abs_entropy_difference:.1e} |"
        )


MARKDOWN_HEADER = (
    "| device | model | size | T | batch | slices | cached slices/s | naive slices/s | ratio | max abs entropy diff |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def format_rate(slices_per_s: float) -> str:
    """One decimal from 1 slice/s up, three significant digits below (a CPU's naive rate is ~0.04)."""
    return f"{slices_per_s:.1f}" if slices_per_s >= 1 else f"{slices_per_s:.3g}"


def markdown_table(results: Sequence[ScoringBenchResult]) -> str:
    """The results as a Markdown table, one row each (for BENCHMARKS.md)."""
    return "\n".join([MARKDOWN_HEADER, *(result.markdown_row() for result in results)])


def bench_scoring(
    model: SegmentationNet,
    images: Tensor,
    samples: int,
    batch_size: int,
    device: torch.device,
    repeats: int,
    seed: int,
) -> ScoringBenchResult:
    """Time cached and naive MC-dropout scoring of ``images`` and check that they agree.

    Both methods first score one batch untimed (warm-up: kernel selection, allocator).
    Then each repeat times one pass of each method over all slices, the order
    alternating between repeats; batch ``i`` always uses masks seeded ``seed + i``.

    Args:
        model: the network; moved to ``device``.
        images: ``[N, in_ch, S, S]`` slices, N >= 1; moved to ``device`` before timing.
        samples: T, Monte-Carlo dropout samples per slice.
        batch_size: slices per forward pass (the last batch may be smaller).
        device: where to run.
        repeats: timed passes per method; the median is reported.
        seed: seed of the head-dropout masks.

    Returns:
        The timings, their medians as slices per second, the ratio and the agreement.

    Raises:
        ValueError: if ``images`` is not ``[N >= 1, C, S, S]``, a count is below 1,
            or as the model for images it cannot take.
    """
    if images.ndim != 4 or images.shape[0] < 1 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be [N >= 1, C, S, S], got {tuple(images.shape)}")
    if min(samples, batch_size, repeats) < 1:
        raise ValueError(f"samples, batch_size and repeats must be >= 1, got {samples}, {batch_size}, {repeats}")
    model = model.to(device).eval()
    batches = list(images.to(device).split(batch_size))
    for method in ScoringMethod:
        score_batch(model, batches[0], samples, seed, method)
    seconds: dict[ScoringMethod, list[float]] = {method: [] for method in ScoringMethod}
    entropy: dict[ScoringMethod, Tensor] = {}
    for repeat in range(repeats):
        order = list(ScoringMethod) if repeat % 2 == 0 else list(reversed(ScoringMethod))
        for method in order:
            elapsed, entropy[method] = _timed_pass(model, batches, samples, seed, method, device)
            seconds[method].append(elapsed)
    slices = images.shape[0]
    cached_rate = slices / statistics.median(seconds[ScoringMethod.CACHED])
    naive_rate = slices / statistics.median(seconds[ScoringMethod.NAIVE])
    difference = (entropy[ScoringMethod.CACHED] - entropy[ScoringMethod.NAIVE]).abs().max().item()
    return ScoringBenchResult(
        slices=slices,
        samples=samples,
        batch_size=batch_size,
        image_size=images.shape[-1],
        device=device_description(device),
        model=f"{type(model).__name__} F={model.feature_channels} p={model.dropout:g}",
        repeats=repeats,
        cached_seconds=tuple(seconds[ScoringMethod.CACHED]),
        naive_seconds=tuple(seconds[ScoringMethod.NAIVE]),
        cached_slices_per_s=cached_rate,
        naive_slices_per_s=naive_rate,
        ratio=cached_rate / naive_rate,
        max_abs_entropy_difference=difference,
    )


def device_description(device: torch.device) -> str:
    """The GPU's name, or ``cpu <processor> (<n> threads)``: throughput on a CPU depends on the thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    processor = platform.processor() or platform.machine() or "unknown"
    return f"cpu {processor} ({torch.get_num_threads()} threads)"


def _timed_pass(
    model: SegmentationNet,
    batches: Sequence[Tensor],
    samples: int,
    seed: int,
    method: ScoringMethod,
    device: torch.device,
) -> tuple[float, Tensor]:
    """Seconds to score every batch with ``method``, and the entropy maps ``[N, S, S]`` (CPU)."""
    _synchronize(device)
    started = time.perf_counter()
    maps = [score_batch(model, batch, samples, seed + index, method) for index, batch in enumerate(batches)]
    _synchronize(device)
    return time.perf_counter() - started, torch.cat(maps)


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer brackets all of it (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
