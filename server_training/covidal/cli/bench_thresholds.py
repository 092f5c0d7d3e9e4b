"""``covidal bench-thresholds``: the decision threshold of a served demo run's models, chosen on validation cases."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np

from covidal.bench.thresholds import LabelledCase, chosen_threshold, threshold_scores
from covidal.cli.options import non_negative_int
from covidal.errors import CovidalError
from covidal.sample_data.demo import cropped_demo_case
from covidal.utils.atomic import atomic_write_json

DEFAULT_THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench-thresholds",
        help="decision threshold of a demo run's models, chosen on validation demo cases (benchmark)",
        description=__doc__.split(":", 1)[1].strip() + " Every finished training job's model of the run's "
        "project predicts the demo cases of the validation seeds and the test seed (cropped as `covidal demo` "
        "crops them, restricted to their lungs); the threshold with the best mean validation Dice is chosen, and "
        "the test case's Dice and mL are printed at every threshold beside it.",
    )
    parser.add_argument("demo_out", type=Path, help="the --out folder of a finished `covidal demo` run")
    parser.add_argument("--validation-seeds", type=non_negative_int, nargs="+", default=[2, 3], help="default: 2 3")
    parser.add_argument("--test-seed", type=non_negative_int, default=1, help="default 1 (the demo's held-out case)")
    parser.add_argument(
        "--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS), help="thresholds to score"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every score here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    jobs = args.demo_out / "service" / "jobs"
    models = {
        path.parents[1].name: path
        for path in sorted(jobs.glob("*/checkpoint/model.pt"), key=lambda path: int(path.parents[1].name))
    }
    if not models:
        raise CovidalError(f"no trained model under {jobs}: point at the --out folder of a finished covidal demo")
    if args.test_seed in args.validation_seeds:
        raise CovidalError(f"the test seed {args.test_seed} is also a validation seed")
    if any(not 0.0 < threshold < 1.0 for threshold in args.thresholds):
        raise CovidalError(f"thresholds must lie in (0, 1), got {args.thresholds}")
    cases = {
        f"seed {seed}": LabelledCase(*cropped_demo_case(seed)) for seed in [*args.validation_seeds, args.test_seed]
    }
    scores = threshold_scores(models, cases, sorted(args.thresholds))
    validation = [f"seed {seed}" for seed in args.validation_seeds]
    chosen = chosen_threshold(scores, validation)
    test = f"seed {args.test_seed}"
    print(
        f"| threshold | validation Dice (mean of {len(validation)} cases, {len(models)} models) | "
        + " | ".join(f"job {model}: test Dice, mL" for model in models)
        + " |"
    )
    print("|---:|---:|" + "---|" * len(models))
    for threshold in sorted(args.thresholds):
        mean = np.mean([s.dice for s in scores if s.threshold == threshold and s.case in validation])
        cells = [
            next(s for s in scores if (s.model, s.case, s.threshold) == (model, test, threshold)) for model in models
        ]
        mark = " (chosen)" if threshold == chosen else ""
        print(
            f"| {threshold:g}{mark} | {mean:.3f} | "
            + " | ".join(f"{c.dice:.3f}, {c.predicted_ml:.0f}" for c in cells)
            + " |"
        )
    truth_ml = float(cases[test].labels.sum() * np.prod(cases[test].ct.spacing) / 1000.0)
    print(f"chosen on the validation cases: {chosen:g}; test case {test}: {truth_ml:.1f} mL true")
    if args.json is not None:
        atomic_write_json(args.json, {"chosen": chosen, "scores": [asdict(s) for s in scores]})
    return 0
