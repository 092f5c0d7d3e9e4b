"""``covidal simulate``: region-based active learning with a simulated annotator; writes a learning curve.

A simulated annotator answers each suggested region from the reference masks:
one random click on infection inside the region, or a background tag (3 s each);
with --protocol mask it outlines the region's infection instead (3 s per polygon
vertex).
After every cycle the model is evaluated on the held-out test slices, and
``OUT/curve.json`` and ``OUT/curve.png`` are updated. Several runs (strategies,
losses, seeds) may share one OUT folder: each keeps its own entry in
curve.json, and curve.png shows one line per strategy and loss.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from covidal.activelearning.scoring import DEFAULT_REDUCTION, TOP_FRACTION, Reduction
from covidal.activelearning.selection import DEFAULT_MAX_PER_SLICE
from covidal.activelearning.simulation.curve import load_curves
from covidal.activelearning.simulation.loop import CURVE_FILE, simulate
from covidal.activelearning.simulation.plot import plot_curves
from covidal.activelearning.simulation.simulation_config import SIMULATION_LOSSES, SimulationConfig
from covidal.activelearning.strategies import StrategyName, StrategyParams
from covidal.annotation.annotator import AnswerProtocol
from covidal.bench.losses import split_for_bench
from covidal.cli.options import (
    add_data_options,
    add_device_option,
    fraction,
    image_size,
    non_negative_int,
    positive_float,
    positive_int,
    window_from,
)
from covidal.data.slices import load_slices
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, LossName
from covidal.models.kinds import SLICE_MODEL_KINDS, ModelKind
from covidal.models.slices.build import ModelConfig
from covidal.training.augment_kind import Augment

PLOT_FILE = "curve.png"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "simulate",
        help="simulate region-based active learning and write a learning curve",
        description=__doc__.split(":", 1)[1].strip(),
    )
    add_data_options(parser, masks_required=True)
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for curve.json, curve.png and runs/ (may be shared by runs)"
    )
    parser.add_argument("--strategy", choices=[s.value for s in StrategyName], required=True)
    parser.add_argument(
        "--protocol",
        choices=[p.value for p in AnswerProtocol],
        default=AnswerProtocol.POINT.value,
        help="how the simulated annotator answers a region with infection: one click, 3 s (point, default), or "
        "its full outline, 3 s per polygon vertex (mask); an empty region costs a 3 s tag either way",
    )
    add_strategy_params(parser)
    parser.add_argument(
        "--regions", type=positive_int, default=64, help="regions per slice, a perfect square (default 64 = 8x8)"
    )
    parser.add_argument(
        "--reduction",
        choices=[r.value for r in Reduction],
        default=DEFAULT_REDUCTION.value,
        help=f"region score = max, mean, or mean of its top {TOP_FRACTION * 100:.0f}%% pixel scores "
        f"(default {DEFAULT_REDUCTION.value})",
    )
    parser.add_argument(
        "--init-slices", type=positive_int, default=2, help="slices labelled in full before the first cycle"
    )
    parser.add_argument("--cycles", type=non_negative_int, default=10)
    parser.add_argument("--per-cycle", type=positive_int, default=10, help="regions asked per cycle (default 10)")
    parser.add_argument(
        "--max-per-slice",
        type=non_negative_int,
        default=DEFAULT_MAX_PER_SLICE,
        help="at most N of a cycle's regions from one slice while other slices can fill the cycle; "
        f"0: no cap, the top regions wherever they are (default {DEFAULT_MAX_PER_SLICE})",
    )
    parser.add_argument("--mc-samples", type=positive_int, default=20, help="Monte-Carlo dropout samples T")
    parser.add_argument("--steps", type=positive_int, default=300, help="optimiser steps per cycle")
    parser.add_argument(
        "--scratch", action="store_true", help="retrain from a fresh initialisation each cycle (default: warm start)"
    )
    parser.add_argument(
        "--background-sample",
        type=positive_int,
        default=None,
        help="pixels of a background-tagged region used as background (default: all)",
    )
    parser.add_argument("--loss", choices=[n.value for n in SIMULATION_LOSSES], default=LossName.CB_FLIP_ROT.value)
    parser.add_argument(
        "--augment",
        choices=[kind.value for kind in Augment],
        default=Augment.NONE.value,
        help="random augmentation of each cycle's training batches (default none; covidal train's default, "
        "intensity+scale, was measured by cross-validation, BENCHMARKS.md)",
    )
    parser.add_argument("--model", choices=[k.value for k in SLICE_MODEL_KINDS], default=ModelKind.UNET.value)
    parser.add_argument("--width", type=positive_int, default=32, help="U-Net base channels")
    parser.add_argument("--dropout", type=fraction, default=0.5, help="head dropout probability (default 0.5)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--size", type=image_size, default=352, help="square training grid")
    parser.add_argument(
        "--test-images", type=Path, default=None, help="held-out slices (default: the last --test-count slices)"
    )
    parser.add_argument("--test-masks", type=Path, default=None)
    parser.add_argument(
        "--test-count",
        type=positive_int,
        default=10,
        help="without --test-images: hold out the last N slices in natural name order (default 10)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def add_strategy_params(parser: argparse.ArgumentParser) -> None:
    """One ``--NAME`` option per :class:`StrategyParams` field (its docstring says what each means), defaulting to
    its default; the values are checked by :class:`StrategyParams`."""
    group = parser.add_argument_group("strategy parameters (each strategy reads its own)")
    for spec in fields(StrategyParams):
        kind = positive_int if spec.type == "int" else float
        group.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest=f"param_{spec.name}",
            metavar=spec.name.upper(),
            type=kind,
            default=spec.default,
            help=f"default {spec.default}",
        )


def strategy_params_from(args: argparse.Namespace) -> StrategyParams:
    return StrategyParams(**{spec.name: getattr(args, f"param_{spec.name}") for spec in fields(StrategyParams)})


def config_from(args: argparse.Namespace) -> SimulationConfig:
    try:
        return SimulationConfig(
            strategy=args.strategy,
            strategy_params=strategy_params_from(args),
            protocol=args.protocol,
            regions=args.regions,
            reduction=args.reduction,
            init_slices=args.init_slices,
            cycles=args.cycles,
            per_cycle=args.per_cycle,
            max_per_slice=args.max_per_slice or None,
            mc_samples=args.mc_samples,
            steps_per_cycle=args.steps,
            warm_start=not args.scratch,
            background_sample=args.background_sample,
            loss=LossConfig(name=LossName(args.loss)),
            augment=Augment(args.augment),
            model=ModelConfig(name=ModelKind(args.model), dropout=args.dropout, width=args.width),
            batch_size=args.batch_size,
            learning_rate=args.lr,
            image_size=args.size,
            device=args.device,
            window=window_from(args),
            mask_class=args.mask_class,
            seed=args.seed,
        )
    except ValueError as error:
        raise CovidalError(str(error)) from error


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    if (args.test_images is None) != (args.test_masks is None):
        raise CovidalError("give --test-images and --test-masks together")
    records = load_slices(args.images, args.masks, config.window, config.mask_class)
    if args.test_images is None:
        split = split_for_bench(records, 0, args.test_count)
        pool, test = split.train, split.test
    else:
        pool, test = records, load_slices(args.test_images, args.test_masks, config.window, config.mask_class)
    out: Path = args.out
    curve = simulate(pool, test, config, out, progress=not args.quiet)
    plot_curves(
        load_curves(out / CURVE_FILE), out / PLOT_FILE, title=f"{len(pool)} pool slices, {len(test)} test slices"
    )
    last = curve.cycles[-1]
    print(
        f"{curve.name}: {len(curve.cycles)} cycle(s); last: {last.labelled_regions} regions, "
        f"{last.effort_seconds / 60:.1f} min of clicks, test Dice {last.test['dice']:.4f} -> {out / CURVE_FILE}"
    )
    return 0
