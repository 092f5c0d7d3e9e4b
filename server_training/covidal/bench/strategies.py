"""What each region strategy costs per cycle: seconds to score and select a pool, and for CEAL to pseudo-label
it too, as a ratio to entropy's in the same run (``covidal bench-strategies``). A cycle's training costs every
strategy the same (its steps are fixed, whatever slices the pseudo-labels add), so it is left out.

Every strategy answers the same query: the same model, pool, answers (with their effort), selection rule and
cycle seed, timed ``repeats`` times in turns (strategy A, B, ..., then again), so that a slow spell of a shared
machine falls on all of them; the median of each is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from covidal.activelearning.query import QueryOptions
from covidal.activelearning.simulation.loop import select_for_cycle
from covidal.activelearning.simulation.pool import Pool
from covidal.activelearning.strategies import StrategyName, StrategyParams, build_strategy
from covidal.activelearning.strategies.strategy import PartAnswers
from covidal.models.slices.network import SegmentationNet
from covidal.regions.grid import RegionId

REFERENCE = StrategyName.ENTROPY


@dataclass(frozen=True)
class StrategyTiming:
    """One strategy's seconds per cycle (each timed pass), their median's ratio to entropy's, and the pixels it
    pseudo-labelled in the last pass (None: the strategy adds no pseudo-labels)."""

    strategy: str
    seconds: tuple[float, ...]
    median_seconds: float
    ratio_to_entropy: float
    pseudo_labelled_pixels: int | None = None


@dataclass(frozen=True)
class StrategyBenchResult:
    """Timings of every strategy on one query.

    Attributes:
        slices: pool slices.
        regions: regions per slice.
        count: regions selected per query.
        samples: T, MC-dropout samples.
        image_size: network input side.
        device: where the model ran, with torch's thread count.
        answered: answered regions in the pool when timed.
        timings: one per strategy, entropy included.
    """

    slices: int
    regions: int
    count: int
    samples: int
    image_size: int
    device: str
    answered: int
    timings: tuple[StrategyTiming, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        """The timings as a Markdown table (for BENCHMARKS.md)."""
        rows = [
            f"| {t.strategy} | {t.median_seconds:.2f} | {t.ratio_to_entropy:.2f}x | "
            + ", ".join(f"{s:.2f}" for s in t.seconds)
            + " |"
            for t in self.timings
        ]
        header = "| strategy | median s per cycle | ratio to entropy | each pass (s) |\n|---|---|---|---|"
        return "\n".join([header, *rows])


def bench_strategies(
    pool: Pool,
    labelled: frozenset[RegionId],
    answers: PartAnswers,
    model: SegmentationNet,
    options: QueryOptions,
    strategies: Sequence[StrategyName],
    params: StrategyParams,
    repeats: int,
    seed: int,
    device: str,
) -> StrategyBenchResult:
    """Time each of ``strategies`` (entropy is always timed, as the reference) on one cycle of ``pool``: its query
    and the pseudo-labels it adds (:meth:`Strategy.pseudo_labels`, as the simulation and the service call it).

        Raises:
            ValueError: as the strategies (e.g. suggestive or VAAL with no answer yet).
    """
    names = list(dict.fromkeys([REFERENCE, *strategies]))
    seconds: dict[str, list[float]] = {name: [] for name in names}
    pseudo_pixels: dict[str, int | None] = {}
    for _ in range(repeats):
        for name in names:
            strategy = build_strategy(name, params)  # built afresh each cycle, as the service does
            started = time.perf_counter()
            select_for_cycle(pool, labelled, strategy, model, options, seed, answers)
            pseudo = strategy.pseudo_labels(model, pool.images, 1, seed)
            seconds[name].append(time.perf_counter() - started)
            pseudo_pixels[name] = None if pseudo is None else pseudo.pixels
    return StrategyBenchResult(
        slices=len(pool),
        regions=options.grid.regions,
        count=options.rule.count,
        samples=options.samples,
        image_size=int(pool.images.shape[-1]),
        device=f"{device}, {torch.get_num_threads()} torch thread(s)",
        answered=len(labelled),
        timings=tuple(_timing(name, seconds[name], seconds[REFERENCE], pseudo_pixels[name]) for name in names),
    )


def _timing(
    name: str, seconds: Sequence[float], reference: Sequence[float], pseudo_pixels: int | None
) -> StrategyTiming:
    median = statistics.median(seconds)
    return StrategyTiming(name, tuple(seconds), median, median / statistics.median(reference), pseudo_pixels)


def efforts_by_region(labels, effort) -> Mapping[RegionId, float]:
    """``{region: seconds}`` of answers priced by an effort model."""
    return {label.region: effort.seconds(label) for label in labels}
