"""``covidal compare-3d``: a Markdown table of 3D runs (Dice, HD95) against the supervised teacher."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidal.errors import CovidalError
from covidal.noisyteacher.report import corrupted_cases, load_result, markdown_table
from covidal.utils.atomic import atomic_write_bytes


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "compare-3d",
        help="tabulate evaluate-3d reports against the teacher",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument("evaluations", type=Path, nargs="+", help="evaluate-3d JSON files, one per run")
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="the teacher's evaluate-3d JSON (default: the first run of mode supervised)",
    )
    parser.add_argument(
        "--corruption",
        type=Path,
        default=None,
        help="corruption.json of the pseudo-labels: adds the mean weight of corrupted vs clean cases",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    results = [load_result(path) for path in args.evaluations]
    if args.reference is not None:
        reference = load_result(args.reference)
    else:
        reference = next((r for r in results if r.mode == "supervised"), None)
        if reference is None:
            raise CovidalError("no run of mode supervised among the evaluations; give --reference")
    corrupted = None if args.corruption is None else corrupted_cases(args.corruption)
    table = markdown_table(results, reference, corrupted)
    print(table)
    if args.out is not None:
        atomic_write_bytes(args.out, (table + "\n").encode())
    return 0
