"""``covidal compare``: several curve folders in one plot and table, supervised reference, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from PIL import Image

from covidal.activelearning.simulation.curve import CycleRecord, RunCurve, update_curve_file
from covidal.cli.main import OneLineErrorParser
from covidal.cli.slices import compare
from covidal.errors import CovidalError


def make_run(strategy: str, seed: int, dices: list[float], loss: str = "cb-flip-rot") -> RunCurve:
    """Cycle ``c`` costs ``60 * (c + 1)`` seconds and scores ``dices[c]``; the pool costs 100 min in full."""
    cycles = [
        CycleRecord(
            cycle=c,
            labelled_regions=c,
            labelled_slices=c,
            effort_seconds=60.0 * (c + 1),
            test={"dice": dice, "iou": 0.5, "ppv": 0.5, "sensitivity": 0.5, "specificity": 0.5},
            train_seconds=1.0,
            score_seconds=1.0,
        )
        for c, dice in enumerate(dices)
    ]
    return RunCurve(f"{strategy}-{loss}-seed{seed}", strategy, loss, seed, 6000.0, {"seed": seed}, cycles)


@pytest.fixture
def two_folders(tmp_path):
    """``a/`` holds entropy seeds 0 and 1, ``b/curve.json`` random seed 0 and entropy/point seed 0."""
    for run in (make_run("entropy", 0, [0.2, 0.5, 0.7]), make_run("entropy", 1, [0.4, 0.5, 0.9])):
        update_curve_file(tmp_path / "a" / "curve.json", run)
    for run in (make_run("random", 0, [0.1, 0.3, 0.4]), make_run("entropy", 0, [0.3, 0.3, 0.3], loss="point")):
        update_curve_file(tmp_path / "b" / "curve.json", run)
    return tmp_path


def covidal_compare(*argv: object) -> int:
    parser = OneLineErrorParser(prog="covidal")
    compare.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["compare", *map(str, argv)])
    return args.run(args)


def test_plots_and_tabulates_runs_from_a_folder_and_a_curve_file(two_folders, capsys):
    out, table = two_folders / "plots" / "compare.png", two_folders / "table.md"
    code = covidal_compare(
        two_folders / "a", two_folders / "b" / "curve.json", "--out", out, "--efforts", "60", "150", "--table", table
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(table.read_text())  # the file holds exactly the printed Markdown
    assert printed.endswith(f"4 run(s) -> {out}, {table}\n")
    assert "| strategy / loss | seeds | 1 min (1.0% of full) | 2.5 min (2.5% of full) |" in printed
    assert "| entropy / cb-flip-rot | 2 | 0.300 ± 0.141 | 0.500 ± 0.000 |" in printed
    assert "| random / cb-flip-rot | 1 | 0.100 | 0.300 |" in printed
    assert "| entropy / point | 1 | 0.300 | 0.300 |" in printed
    assert "reach" not in printed  # no target without a supervised Dice
    with Image.open(out) as image:
        assert image.format == "PNG"


def test_supervised_evaluation_json_gives_the_target_table(two_folders, capsys):
    evaluation = two_folders / "supervised.json"
    evaluation.write_text(json.dumps({"dice": 0.8, "iou": 0.66, "slices": 10, "settings": {}}))
    covidal_compare(
        two_folders / "a",
        two_folders / "b",
        "--out",
        two_folders / "c.png",
        "--supervised",
        evaluation,
        "--efforts",
        "180",
    )
    printed = capsys.readouterr().out
    assert printed.startswith(f"Fully supervised test Dice: 0.800 ({evaluation}); target 90% of it: 0.720.\n")
    assert "Annotation effort to first reach test Dice >= 0.720" in printed
    assert "| entropy / cb-flip-rot | 1/2 | 3 | 3.0% | s0 never, s1 3 |" in printed
    assert "| random / cb-flip-rot | 0/1 | never | — | s0 never |" in printed


def test_supervised_dice_and_target_fraction_on_the_command_line(two_folders, capsys):
    covidal_compare(
        two_folders / "a", "--out", two_folders / "c.png", "--supervised-dice", "0.4", "--target-fraction", "1"
    )
    printed = capsys.readouterr().out
    assert "target 100% of it: 0.400" in printed  # Dice 0.4 counts as reached (>=)
    assert "| entropy / cb-flip-rot | 2/2 | 1.5 ± 0.71 | 1.5% | s0 2, s1 1 |" in printed


def test_default_efforts_are_round_minutes_across_the_runs(two_folders, capsys):
    covidal_compare(two_folders / "a", "--out", two_folders / "c.png")
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| strategy"))
    # efforts 1..3 min: span 2 / 5 = 0.4 -> step 0.5 min
    assert header == (
        "| strategy / loss | seeds | 1 min (1.0% of full) | 1.5 min (1.5% of full) | 2 min (2.0% of full) "
        "| 2.5 min (2.5% of full) | 3 min (3.0% of full) |"
    )


def _one_line_error(*argv: object) -> str:
    with pytest.raises(CovidalError) as raised:
        covidal_compare(*argv)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_missing_inputs_are_clear_errors(two_folders):
    png = two_folders / "c.png"
    assert "does not exist" in _one_line_error(two_folders / "nowhere", "--out", png)
    (two_folders / "empty").mkdir()
    assert "curve.json does not exist" in _one_line_error(two_folders / "empty", "--out", png)
    assert "does not exist" in _one_line_error(
        two_folders / "a", "--out", png, "--supervised", two_folders / "none.json"
    )
    assert not png.exists()


def test_malformed_inputs_are_clear_errors(two_folders):
    png = two_folders / "c.png"
    bad = two_folders / "bad" / "curve.json"
    bad.parent.mkdir()
    bad.write_text('{"format": "covidal.curve", "version": 1, "runs": [{"name": "x"}]}')
    assert "malformed curve file" in _one_line_error(bad.parent, "--out", png)
    bad.write_text('{"format": "covidal.curve", "version": 1, "runs": []}')
    assert "holds no runs" in _one_line_error(bad, "--out", png)
    no_dice = two_folders / "eval.json"
    no_dice.write_text(json.dumps({"iou": 0.5}))
    assert "no Dice" in _one_line_error(two_folders / "a", "--out", png, "--supervised", no_dice)
    no_dice.write_text(json.dumps({"dice": None}))
    assert "no Dice" in _one_line_error(two_folders / "a", "--out", png, "--supervised", no_dice)
    no_dice.write_text("[0.8]")
    assert "no Dice" in _one_line_error(two_folders / "a", "--out", png, "--supervised", no_dice)
    assert ".png" in _one_line_error(two_folders / "a", "--out", two_folders / "c.md")
    assert not png.exists()


def test_the_same_experiment_in_two_inputs_is_refused(two_folders):
    message = _one_line_error(two_folders / "a", two_folders / "a" / "curve.json", "--out", two_folders / "c.png")
    assert "seed 0" in message and "twice" in message


def test_scratch_runs_next_to_warm_ones_are_separate_lines(tmp_path, capsys):
    path = tmp_path / "curve.json"
    warm = make_run("entropy", 0, [0.2, 0.5])
    update_curve_file(path, replace(warm, config={"seed": 0, "warm_start": True}))
    update_curve_file(path, replace(warm, name="scratch", config={"seed": 0, "warm_start": False}))
    covidal_compare(path, "--out", tmp_path / "c.png", "--efforts", "120")
    printed = capsys.readouterr().out
    assert "| entropy / cb-flip-rot, warm_start=True | 1 |" in printed
    assert "| entropy / cb-flip-rot, warm_start=False | 1 |" in printed


@pytest.mark.parametrize(
    "options",
    [
        ["--supervised", "e.json", "--supervised-dice", "0.8"],
        ["--supervised-dice", "1.5"],
        ["--supervised-dice", "nan"],
        ["--target-fraction", "0"],
        ["--efforts", "-60"],
        [],  # --out missing
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, options):
    out = [] if not options else ["--out", tmp_path / "c.png"]
    with pytest.raises(SystemExit) as raised:
        covidal_compare(tmp_path, *out, *options)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("covidal") and err.count("\n") == 1
