"""``covidal``: the command line of the training backend.

Every command has ``--help``. Bad input ends with one line on stderr,
``covidal: error: <what is wrong>``, and exit status 2; never a traceback
(set ``COVIDAL_DEBUG=1`` to see one for an unexpected failure).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from covidal import __version__
from covidal.cli import (
    bench_clicks_3d,
    bench_cv,
    bench_cycle,
    bench_hostile,
    bench_losses,
    bench_lungs,
    bench_reweight,
    bench_scoring,
    bench_service,
    bench_strategies,
    bench_thresholds,
    clicks_to_3d,
    demo,
    serve,
)
from covidal.cli.slices import compare, evaluate, predict, simulate, train
from covidal.cli.volumes import compare as compare_3d
from covidal.cli.volumes import corrupt_labels, make_cases, noisy_teacher, pseudo_label
from covidal.cli.volumes import evaluate as evaluate_3d
from covidal.cli.volumes import train as train_3d
from covidal.errors import CovidalError

COMMANDS = (
    train,
    evaluate,
    predict,
    simulate,
    compare,
    demo,
    bench_losses,
    bench_cv,
    bench_scoring,
    make_cases,
    corrupt_labels,
    train_3d,
    pseudo_label,
    noisy_teacher,
    evaluate_3d,
    compare_3d,
    bench_reweight,
    serve,
    bench_service,
    bench_cycle,
    bench_hostile,
    bench_strategies,
    bench_lungs,
    bench_thresholds,
    bench_clicks_3d,
    clicks_to_3d,
)


class OneLineErrorParser(argparse.ArgumentParser):
    """Report a bad command line in one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="covidal",
        description="Point-supervised segmentation of COVID-19 lung infection in CT (the training backend of CovidActiveLearning).",
    )
    parser.add_argument("--version", action="version", version=f"covidal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except CovidalError as error:
        print(f"covidal: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("covidal: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("COVIDAL_DEBUG"):
            raise
        print(
            f"covidal: unexpected error: {error.__class__.__name__}: {error} (COVIDAL_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
