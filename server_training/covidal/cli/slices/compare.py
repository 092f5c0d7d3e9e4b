"""``covidal compare``: learning curves of several simulations in one plot, and their table.

Each CURVES argument is a folder written by ``covidal simulate --out`` (its
curve.json is read) or a curve.json file. Runs that differ only in their seed
become one line (mean over seeds, min-max band) and one table row. The table
(Markdown, printed and optionally written) gives the test Dice at fixed
annotation efforts and, with a fully supervised Dice, the effort at which each
run first reaches --target-fraction of it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from covidal.activelearning.simulation.curve import RunCurve, load_curves
from covidal.activelearning.simulation.plot import plot_curves
from covidal.activelearning.simulation.summary import default_efforts, dice_at_efforts, effort_to_reach, markdown_table
from covidal.cli.options import non_negative_float
from covidal.errors import CovidalError
from covidal.utils.atomic import atomic_write_bytes
from covidal.validation import is_real

CURVE_FILE = "curve.json"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "compare",
        help="plot and tabulate the learning curves of several simulations",
        description=__doc__.split(":", 1)[1].strip(),
    )
    parser.add_argument(
        "curves",
        type=Path,
        nargs="+",
        metavar="CURVES",
        help="folder written by `covidal simulate --out`, or a curve.json file",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="PNG", help="the PNG to write")
    supervised = parser.add_mutually_exclusive_group()
    supervised.add_argument(
        "--supervised",
        type=Path,
        default=None,
        metavar="EVAL_JSON",
        help="JSON written by `covidal evaluate --json` for the fully supervised model",
    )
    supervised.add_argument(
        "--supervised-dice", type=_dice, default=None, metavar="DICE", help="the fully supervised test Dice"
    )
    parser.add_argument(
        "--efforts",
        type=non_negative_float,
        nargs="+",
        default=None,
        metavar="SECONDS",
        help="efforts (seconds) at which to tabulate the Dice (default: round values spanning the runs)",
    )
    parser.add_argument(
        "--target-fraction",
        type=_target_fraction,
        default=0.9,
        metavar="F",
        help="tabulate the effort to reach this fraction of the supervised Dice (default 0.9)",
    )
    parser.add_argument("--table", type=Path, default=None, metavar="MD", help="also write the Markdown table here")
    parser.add_argument("--title", default=None, help="plot title")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".png":
        raise CovidalError(f"--out {args.out} must be a .png file")
    runs = _load_all(args.curves)
    supervised = _supervised_dice(args)
    try:
        efforts = args.efforts if args.efforts is not None else default_efforts(runs)
        at_efforts = dice_at_efforts(runs, efforts)
        reach = effort_to_reach(runs, args.target_fraction * supervised) if supervised is not None else None
        plot_curves(runs, args.out, supervised_dice=supervised, title=args.title, target_fraction=args.target_fraction)
    except ValueError as error:  # e.g. the same seed of one experiment in two inputs, or runs without cycles
        raise CovidalError(str(error)) from error
    table = _supervised_line(supervised, args) + markdown_table(at_efforts, reach)
    print(table, end="")
    if args.table is not None:
        atomic_write_bytes(args.table, table.encode())
    print(f"\n{len(runs)} run(s) -> {args.out}" + (f", {args.table}" if args.table is not None else ""))
    return 0


def _load_all(paths: list[Path]) -> list[RunCurve]:
    """Every run of every input, in order.

    Raises:
        CovidalError: an input that does not exist, has no curve.json, is malformed, or holds no runs.
    """
    runs = []
    for path in paths:
        if not path.exists():
            raise CovidalError(
                f"{path} does not exist (give a folder written by `covidal simulate --out`, or its curve.json)"
            )
        file = path / CURVE_FILE if path.is_dir() else path
        loaded = load_curves(file)
        if not loaded:
            raise CovidalError(f"{file} holds no runs")
        runs.extend(loaded)
    return runs


def _supervised_dice(args: argparse.Namespace) -> float | None:
    """``--supervised-dice``, or the top-level ``dice`` of the ``--supervised`` JSON, or None.

    Raises:
        CovidalError: the JSON is missing, malformed, or has no Dice in (0, 1].
    """
    if args.supervised is None:
        return args.supervised_dice
    path: Path = args.supervised
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise CovidalError(f"--supervised {path} does not exist (write it with `covidal evaluate --json`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CovidalError(f"cannot read --supervised {path}: {error}") from None
    dice = report.get("dice") if isinstance(report, dict) else None
    if not is_real(dice) or not 0 < dice <= 1:
        raise CovidalError(
            f"--supervised {path} has no Dice in (0, 1] at its top level "
            f"(expected the JSON of `covidal evaluate --json`), found {dice!r}"
        )
    return float(dice)


def _supervised_line(supervised: float | None, args: argparse.Namespace) -> str:
    if supervised is None:
        return ""
    source = f" ({args.supervised})" if args.supervised is not None else ""
    return (
        f"Fully supervised test Dice: {supervised:.3f}{source}; "
        f"target {100 * args.target_fraction:g}% of it: {args.target_fraction * supervised:.3f}.\n\n"
    )


def _dice(text: str) -> float:
    return _in_unit_interval(text, "Dice")


def _target_fraction(text: str) -> float:
    return _in_unit_interval(text, "fraction")


def _in_unit_interval(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"a {what} must be in (0, 1], got {text}")
    return value
