"""``covidal bench-service``: p50/p99 latency of "get suggestions" and "submit annotation", and requests/s, in one run."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidal.bench.service import (
    SYNTHETIC_SHAPE,
    ServiceBenchConfig,
    bench_service,
    summary,
)
from covidal.cli.options import non_negative_int, positive_int


def add_parser(commands) -> None:
    k, j, i = SYNTHETIC_SHAPE
    parser = commands.add_parser(
        "bench-service",
        help="time the HTTP service under concurrent annotators (benchmark, not a test)",
        description=__doc__.split(":", 1)[1].strip() + " It starts `covidal serve` on a free loopback port over a "
        "temporary project folder, uploads one volume, opens a cycle with one region per annotation, and runs "
        "the clients, each leasing suggestions and answering them.",
    )
    parser.add_argument("--clients", type=positive_int, default=8, help="concurrent annotators (default 8)")
    parser.add_argument(
        "--requests",
        type=positive_int,
        default=2000,
        help="annotations to submit in all, the cycle's regions (default 2000)",
    )
    parser.add_argument(
        "--volume",
        type=Path,
        default=None,
        help=f"CT to upload: NRRD, NIfTI, DICOM zip or folder (default: a synthetic int16 CT of {i}x{j}x{k} voxels)",
    )
    parser.add_argument("--grid-k", type=positive_int, default=64, help="regions per slice, a square (default 64)")
    parser.add_argument(
        "--batch", type=positive_int, default=5, help="suggestions leased per 'get suggestions' request (default 5)"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seeds the synthetic CT")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = ServiceBenchConfig(
        clients=args.clients,
        requests=args.requests,
        volume=args.volume,
        grid_k=args.grid_k,
        batch=args.batch,
        seed=args.seed,
    )
    print(summary(bench_service(config)))
    return 0
