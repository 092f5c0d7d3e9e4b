"""``covidal bench-strategies``: seconds per cycle of every region strategy to score and select a pool (and for
CEAL to pseudo-label it), as a ratio to entropy in the same run."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from covidal.activelearning.query import QueryOptions
from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.selection import SelectionRule
from covidal.activelearning.simulation.loop import answers_of
from covidal.activelearning.simulation.pool import Pool
from covidal.activelearning.strategies import StrategyName
from covidal.annotation.annotator import AnswerProtocol, SimulatedAnnotator
from covidal.annotation.effort import ClickEffort, OutlineEffort, PolygonEffort
from covidal.annotation.state import AnnotationState
from covidal.bench.strategies import bench_strategies, efforts_by_region
from covidal.cli.options import (
    add_data_options,
    add_device_option,
    image_size,
    non_negative_int,
    positive_int,
    window_from,
)
from covidal.cli.slices.simulate import add_strategy_params, strategy_params_from
from covidal.data.slices import load_slices
from covidal.errors import CovidalError
from covidal.models.slices.build import ModelConfig, build_model
from covidal.regions.grid import RegionGrid
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write_json


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-strategies",
        help="time every region strategy's cycle on a pool: scoring, selection, pseudo-labels (benchmark, not a test)",
        description=__doc__.split(":", 1)[1].strip()
        + " The first --answered-slices slices are answered in full by the simulated annotator (so that the "
        "strategies that learn from answers have some); a freshly initialised U-Net is timed (timings do not "
        "depend on the weights).",
    )
    add_data_options(parser, masks_required=True)
    parser.add_argument("--strategies", nargs="+", choices=[s.value for s in StrategyName], default=None)
    parser.add_argument("--protocol", choices=[p.value for p in AnswerProtocol], default=AnswerProtocol.MASK.value)
    parser.add_argument("--answered-slices", type=non_negative_int, default=1)
    parser.add_argument("--regions", type=positive_int, default=64)
    parser.add_argument("--per-cycle", type=positive_int, default=10)
    parser.add_argument("--mc-samples", type=positive_int, default=20)
    parser.add_argument("--size", type=image_size, default=128)
    parser.add_argument("--width", type=positive_int, default=16)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    add_strategy_params(parser)
    add_device_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        params = strategy_params_from(args)
        grid = RegionGrid(args.regions)
    except ValueError as error:
        raise CovidalError(str(error)) from error
    records = load_slices(args.images, args.masks, window_from(args), args.mask_class)
    if args.answered_slices > len(records):
        raise CovidalError(f"--answered-slices {args.answered_slices} is more than the {len(records)} slices")
    pool = Pool.build(records, args.size)
    device = resolve_device(args.device)
    torch.manual_seed(derived_seed(args.seed, "initial-weights"))
    model = build_model(ModelConfig(width=args.width)).to(device)
    annotator = SimulatedAnnotator(pool.masks, grid, derived_seed(args.seed, "annotator"), args.protocol)
    effort = ClickEffort() if args.protocol == "point" else OutlineEffort(PolygonEffort(pool.masks, grid))
    labels = [label for key in pool.keys[: args.answered_slices] for label in annotator.answer_slice(key)]
    state = AnnotationState(grid, pool.shapes)
    state.add_many(labels)
    efforts = efforts_by_region(labels, effort)
    options = QueryOptions(grid, SelectionRule(args.per_cycle), args.mc_samples)
    strategies = [StrategyName(s) for s in (args.strategies or list(StrategyName))]
    try:
        result = bench_strategies(
            pool,
            state.labelled,
            answers_of(pool, state, efforts),
            model,
            options,
            strategies,
            params,
            args.repeats,
            derived_seed(args.seed, "cycle", 1),
            str(device),
        )
    except ValueError as error:
        raise CovidalError(str(error)) from error
    print(
        f"{result.slices} slices of {result.regions} regions, {result.answered} answered ({args.protocol}), "
        f"{result.count} per query, T = {result.samples}, {result.image_size} px, {result.device}, "
        f"median of {args.repeats}:"
    )
    print(result.markdown())
    if args.json is not None:
        atomic_write_json(args.json, result.to_dict())
    return 0 if np.isfinite([t.median_seconds for t in result.timings]).all() else 1
