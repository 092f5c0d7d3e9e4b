"""``covidal bench-clicks-3d``: the 2D click model against 3D students trained from the same clicks, through the
served loop on ``covidal make-cases-3d`` cases (real CT anatomy, synthetic lesions), per seed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from covidal.bench.clicks_3d import Arm, BenchCases, run_seed, summary_table
from covidal.cli.options import add_device_option, non_negative_int, positive_int
from covidal.errors import CovidalError
from covidal.noisyteacher.student_modes import parse_student_mode
from covidal.service.defaults import CLICKS_TO_3D_CPU
from covidal.training.train_config import resolve_device
from covidal.utils.atomic import atomic_write

DEFAULT_ARMS = ("supervised", "semi", "rgs", "rgm", "rgs+expert")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-clicks-3d",
        help="2D click model against 3D students from the same clicks, through the service (benchmark)",
        description=__doc__.split(":", 1)[1].strip() + " Each seed: cycles of suggested regions of the training "
        "cases answered by a simulated clinician (a click on infection, else background) with a 'train' job after "
        "each, then one 'clicks-to-3d' job per arm; every model scored on the test cases (never in the project) "
        "inside their lungs: Dice and HD95. Arm 'MODE+expert' uploads the first training case's true label as an "
        "expert volume first. A seed whose OUT/seed<N>/result.json exists is read back, so seeds can run apart.",
    )
    parser.add_argument("--cases", type=Path, required=True, help="a make-cases-3d folder (images/, labels/)")
    parser.add_argument("--train", nargs="+", required=True, help="case names the clinician answers (e.g. case_00)")
    parser.add_argument("--test", nargs="+", required=True, help="held-out case names")
    parser.add_argument("--out", type=Path, required=True, help="folder of seed<N>/ (service, models, result.json)")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0], help="seeds (default 0)")
    parser.add_argument("--cycles", type=positive_int, default=3, help="annotate-then-train cycles (default 3)")
    parser.add_argument("--regions", type=positive_int, default=None, help="regions per cycle (service default)")
    parser.add_argument(
        "--arms", nargs="+", default=list(DEFAULT_ARMS), help=f"3D jobs: MODE or MODE+expert (default {DEFAULT_ARMS})"
    )
    parser.add_argument(
        "--job-options",
        type=json.loads,
        default=None,
        help=f"clicks-to-3d job options as JSON (default: the service's CPU ones, {CLICKS_TO_3D_CPU})",
    )
    add_device_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    arms = [Arm(name) for name in args.arms]
    for arm in arms:
        parse_student_mode(arm.mode)
    cases = BenchCases(args.cases, tuple(args.train), tuple(args.test))
    missing = [n for n in (*cases.train, *cases.test) if not (cases.image(n).is_file() and cases.label(n).is_file())]
    if missing:
        raise CovidalError(f"no image and label for case(s) {missing} in {args.cases} (run covidal make-cases-3d)")
    if set(cases.train) & set(cases.test):
        raise CovidalError("a test case must not be a training case")
    options = {key: value for key, value in CLICKS_TO_3D_CPU.items() if key != "mode"}
    if args.job_options is not None:
        options = args.job_options
    device = resolve_device(args.device).type
    results = [
        run_seed(cases, args.out / f"seed{seed}", seed, arms, args.cycles, args.regions, options, device)
        for seed in args.seeds
    ]
    table = summary_table(results)
    atomic_write(args.out / "table.md", lambda tmp: tmp.write_text(table + "\n"))
    print(table)
    return 0
