"""``covidal bench-reweight``: time of one training step per student mode, as a ratio to the supervised step, in one run.

All modes start from the same weights and get the same batches (random CT-like patches with an
ellipsoidal lesion: timings do not depend on the content). Goal on one H100 (batch 4, 96^3, bf16
autocast): rgsm-al at most 2.5x the supervised step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from covidal.bench.reweight import ReweightBenchConfig, as_dict, bench_reweight, format_config, markdown_table
from covidal.cli.options import add_device_option, non_negative_int, positive_int
from covidal.cli.volumes.options import int_tuple, patch_size
from covidal.errors import CovidalError
from covidal.models.volumes.unet import UNet3DConfig
from covidal.noisyteacher.student_modes import StudentMode
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write_json


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-reweight",
        help="time a training step per student mode (benchmark, not a test)",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("--patch", type=patch_size, default=(96, 96, 96), help="N or D,H,W (default 96)")
    parser.add_argument("--batch", type=positive_int, default=4, help="patches per batch (default 4)")
    parser.add_argument(
        "--channels",
        type=int_tuple,
        default=UNet3DConfig().channels,
        help="U-Net channels per level (default: the paper's network)",
    )
    parser.add_argument(
        "--modes", nargs="+", choices=[m.value for m in StudentMode], default=[m.value for m in StudentMode]
    )
    parser.add_argument("--rounds", type=positive_int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the timings as JSON")
    add_device_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    channels = tuple(args.channels)
    try:
        config = ReweightBenchConfig(
            patch=tuple(args.patch),
            batch_size=args.batch,
            network=UNet3DConfig(channels=channels, strides=(2,) * (len(channels) - 1)),
            modes=tuple(StudentMode(m) for m in args.modes),
            rounds=args.rounds,
            warmup=args.warmup,
            amp=not args.no_amp,
            seed=args.seed,
        )
    except ValueError as error:
        raise CovidalError(str(error)) from None
    print(f"timing {len(config.modes)} modes on {device} ...", file=sys.stderr, flush=True)
    result = bench_reweight(config, device)
    print(format_config(result))
    print(markdown_table(result))
    if args.json is not None:
        atomic_write_json(args.json, as_dict(result))
    return 0
