"""``covidal bench-cycle``: time from "start cycle" to suggestions ready for one CT, with a warm model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from covidal.bench.cycle import CycleBenchConfig, bench_cycle, summary
from covidal.cli.options import (
    add_device_option,
    image_size,
    non_negative_int,
    positive_int,
)
from covidal.service.defaults import CPU_DEFAULTS
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write_json


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-cycle",
        help="time starting a cycle on a many-slice CT with a warm model (benchmark, not a test)",
        description=__doc__.split(":", 1)[1].strip() + " It starts `covidal serve` on a free loopback port, "
        "uploads a synthetic CT, answers a first cycle, trains the project's model for a few steps, then times "
        "POST /cycles (MC-dropout scoring of every region) plus the lease of its suggestions: once cold, then "
        "--repeats times warm.",
    )
    parser.add_argument("--slices", type=positive_int, default=300, help="axial slices of the CT (default 300)")
    parser.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        metavar=("I", "J"),
        default=(512, 512),
        help="in-plane voxels of the CT (default 512 512)",
    )
    served = CPU_DEFAULTS
    for flag, default, what in (
        ("--regions", served.regions_per_cycle, "suggestions per cycle"),
        ("--grid-k", served.grid_k, "regions per slice, a square"),
        ("--mc-samples", served.mc_samples, "MC-dropout samples per slice"),
    ):
        parser.add_argument(
            flag, type=positive_int, default=default, help=f"{what} (default {default}, the service's on a CPU)"
        )
    parser.add_argument(
        "--train-steps",
        type=positive_int,
        default=2,
        help="steps of the training job that gives the project a model (default 2)",
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="warm cycles timed after the cold one (default 3)"
    )
    parser.add_argument(
        "--image-size",
        type=image_size,
        default=served.image_size,
        help=f"the model's input grid, as a project's 'image_size' setting (default {served.image_size}, the "
        "service's on a CPU)",
    )
    parser.add_argument(
        "--width",
        type=positive_int,
        default=served.width,
        help=f"the U-Net's base channels (default {served.width}, the service's on a CPU)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seeds the CT and the training job")
    parser.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="run the service with its cache off (`covidal serve --cache-mb 0`): every cycle reads "
        "the CT and the model file again",
    )
    add_device_option(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the CT, the service's project folder and its log here (default: a temporary folder)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures, the command line and the torch version here"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = CycleBenchConfig(
        slices=args.slices,
        size=tuple(args.size),
        regions=args.regions,
        grid_k=args.grid_k,
        mc_samples=args.mc_samples,
        device=resolve_device(args.device).type,
        train_steps=args.train_steps,
        repeats=args.repeats,
        image_size=args.image_size,
        width=args.width,
        seed=args.seed,
        cache=args.cache,
    )
    result = bench_cycle(config, args.out)
    print(summary(result))
    if args.json is not None:
        atomic_write_json(
            args.json,
            {
                **result.to_dict(),
                "command": " ".join(["covidal", *sys.argv[1:]]),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
            },
        )
        print(f"result written to {args.json}")
    return 0
