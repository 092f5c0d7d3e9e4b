"""``covidal bench-lungs``: the lungs found on an in-plane subsample against full resolution, in one run."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from covidal.bench.lungs import compare_lungs, first_cycle_hits
from covidal.cli.options import non_negative_int, positive_int
from covidal.data.io import read_volume
from covidal.sample_data.demo import cropped_demo_case
from covidal.service.defaults import CPU_DEFAULTS
from covidal.utils.atomic import atomic_write_json
from covidal.volumes.lungs import find_lungs, lung_grid_step


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-lungs",
        help="lungs found on a subsample against full resolution: time, Dice, first-cycle hits (benchmark)",
        description=__doc__.split(":", 1)[1].strip() + " For each CT: the seconds `find_lungs` takes at full "
        "resolution and at --step, and the Dice of each mask; for each demo case (cropped as `covidal demo` "
        "crops it, lesions known): how many of the first cycle's regions hold a lesion with either lungs.",
    )
    parser.add_argument("volumes", type=Path, nargs="*", help="CT volume files or DICOM series folders, in HU")
    parser.add_argument(
        "--step", type=positive_int, default=2, help="in-plane subsampling compared with full resolution (default 2)"
    )
    parser.add_argument(
        "--demo-seeds",
        type=non_negative_int,
        nargs="*",
        default=[],
        help="demo cases (lesion seeds) whose first-cycle hits to count (fetches the demo CT once if needed)",
    )
    parser.add_argument(
        "--regions",
        type=positive_int,
        default=CPU_DEFAULTS.regions_per_cycle,
        help=f"regions of the first cycle (default {CPU_DEFAULTS.regions_per_cycle}, the service's on a CPU)",
    )
    parser.add_argument(
        "--grid-k",
        type=positive_int,
        default=CPU_DEFAULTS.grid_k,
        help=f"regions per slice (default {CPU_DEFAULTS.grid_k}, the service's on a CPU)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    figures: dict = {"step": args.step, "volumes": [], "demo": []}
    if args.volumes:
        print(
            "| CT | voxels (K, J, I) | mm (i, j, k) | served step | full (s) | step (s) | ratio | Dice aerated "
            "| Dice filled | Dice right | Dice left | aerated mL full / step |"
        )
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for path in args.volumes:
        ct = read_volume(path)
        row = compare_lungs(ct, path.name, args.step)
        figures["volumes"].append({**asdict(row), "served_step": lung_grid_step(ct.spacing)})
        print(
            f"| {row.name} | {' x '.join(map(str, row.shape))} | {' x '.join(f'{s:.2f}' for s in row.spacing)} "
            f"| {lung_grid_step(ct.spacing)} | {row.full_s:.2f} | {row.subsampled_s:.2f} "
            f"| {row.full_s / row.subsampled_s:.1f}x | "
            + " | ".join(f"{row.dice[key]:.4f}" for key in ("aerated", "filled", "right", "left"))
            + f" | {row.aerated_ml[0]:.0f} / {row.aerated_ml[1]:.0f} |",
            flush=True,
        )
    if args.demo_seeds:
        print(f"\n| demo case (cropped) | first-cycle hits of {args.regions}, step 1 | step {args.step} |")
        print("|---|---:|---:|")
    for seed in args.demo_seeds:
        ct, lesions = cropped_demo_case(seed)
        hits = [first_cycle_hits(ct, lesions, find_lungs(ct, s), args.grid_k, args.regions) for s in (1, args.step)]
        figures["demo"].append({"seed": seed, "shape": list(ct.array.shape), "hits": hits})
        print(f"| seed {seed}, {' x '.join(map(str, ct.array.shape))} | {hits[0]} | {hits[1]} |", flush=True)
    if args.json is not None:
        atomic_write_json(args.json, figures)
    return 0
