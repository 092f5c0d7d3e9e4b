"""Dice at fixed efforts, effort to reach a target, default efforts and the Markdown: hand-computed tables."""

from __future__ import annotations

import math

import pytest
from curve_testing import make_run

from covidal.activelearning.simulation.curve import RunCurve
from covidal.activelearning.simulation.summary import (
    SeedValues,
    default_efforts,
    dice_at,
    dice_at_efforts,
    effort_to_reach,
    effort_to_reach_run,
    markdown_table,
)

SD_OF_TWO_01 = math.sqrt(0.005)  # sample std of two values 0.1 apart (0.0707)


def two_seeds() -> list[RunCurve]:
    return [
        make_run("entropy", 0, [(60, 0.2), (180, 0.5), (300, 0.6)]),
        make_run("entropy", 1, [(60, 0.3), (180, 0.4), (300, 0.8)]),
    ]


@pytest.mark.parametrize(
    ("effort", "expected"),
    [
        (59.9, None),
        (60, 0.2),
        (179, 0.2),
        (180, 0.5),
        (10_000, 0.6),
    ],
)
def test_dice_at_is_the_last_cycle_at_or_below_the_effort(effort, expected):
    assert dice_at(two_seeds()[0], effort) == expected


def test_dice_at_an_undefined_cycle_is_none_not_an_earlier_cycle():
    assert dice_at(make_run("entropy", 0, [(60, 0.2), (120, math.nan)]), 130) is None


@pytest.mark.parametrize(("target", "expected"), [(0.2, 60), (0.45, 180), (0.6, 300), (0.61, None)])
def test_effort_to_reach_is_the_first_cycle_at_or_above_the_target(target, expected):
    assert effort_to_reach_run(two_seeds()[0], target) == expected


def test_effort_to_reach_skips_undefined_cycles():
    assert effort_to_reach_run(make_run("entropy", 0, [(60, None), (120, 0.9)]), 0.5) == 120


def test_dice_at_efforts_by_hand():
    runs = [*two_seeds(), make_run("random", 0, [(120, 0.1)])]
    table = dice_at_efforts(runs, [30, 60, 200, 1000])
    assert table.efforts_seconds == (30.0, 60.0, 200.0, 1000.0) and table.full_effort_seconds == 6000.0
    entropy, random = table.rows
    assert entropy.group.label == "entropy / cb-flip-rot" and random.group.label == "random / cb-flip-rot"
    assert [cell.values for cell in entropy.cells] == [(None, None), (0.2, 0.3), (0.5, 0.4), (0.6, 0.8)]
    assert [cell.mean for cell in entropy.cells] == [None, pytest.approx(0.25), pytest.approx(0.45), pytest.approx(0.7)]
    assert [cell.std for cell in entropy.cells] == [
        None,
        pytest.approx(SD_OF_TWO_01),
        pytest.approx(SD_OF_TWO_01),
        pytest.approx(2 * SD_OF_TWO_01),
    ]
    assert [cell.values for cell in random.cells] == [(None,), (None,), (0.1,), (0.1,)]
    assert random.cells[2].std is None  # one seed: no spread


def test_effort_to_reach_by_hand():
    table = effort_to_reach(two_seeds(), 0.7)
    [row] = table.rows
    assert row.efforts.values == (None, 300) and row.efforts.count == 1
    assert row.efforts.mean == 300 and row.efforts.std is None
    both = effort_to_reach(two_seeds(), 0.45).rows[0].efforts
    assert both.values == (180, 300) and both.mean == 240 and both.std == pytest.approx(math.sqrt(7200))


def test_seed_values_statistics():
    values = SeedValues((1.0, None, 3.0))
    assert (values.defined, values.count, values.mean, values.std) == ([1.0, 3.0], 2, 2.0, pytest.approx(math.sqrt(2)))
    empty = SeedValues((None,))
    assert (empty.count, empty.mean, empty.std) == (0, None, None)


@pytest.mark.parametrize(
    ("efforts", "expected_minutes"),
    [
        ([60, 660], [2, 4, 6, 8, 10]),  # span 10 min / 5 -> step 2
        ([0, 3000], [0, 10, 20, 30, 40, 50]),  # span 50 / 5 -> step 10, 0 included
        ([90, 100], [1.5, 1.55, 1.6, 1.65]),  # span 1/6 min / 5 = 0.033 -> step 0.05
        ([300, 300], [5]),  # one effort: itself
    ],
)
def test_default_efforts_are_round_and_within_the_runs(efforts, expected_minutes):
    runs = [make_run("entropy", 0, [(e, 0.5) for e in efforts])]
    got = default_efforts(runs)
    assert all(min(efforts) <= e <= max(efforts) for e in got)
    assert [round(e / 60, 6) for e in got] == pytest.approx(expected_minutes)


def test_markdown_by_hand():
    runs = [*two_seeds(), make_run("random", 0, [(120, 0.1)])]
    text = markdown_table(dice_at_efforts(runs, [30, 60, 300]), effort_to_reach(runs, 0.45))
    assert text == (
        "Test Dice at fixed annotation efforts (mean ± std over seeds; last cycle at or below each effort; "
        "(k/n): only k of n seeds had a cycle that cheap):\n"
        "\n"
        "| strategy / loss | seeds | 0.5 min (0.5% of full) | 1 min (1.0% of full) | 5 min (5.0% of full) |\n"
        "|---|---|---|---|---|\n"
        "| entropy / cb-flip-rot | 2 | — | 0.250 ± 0.071 | 0.700 ± 0.141 |\n"
        "| random / cb-flip-rot | 1 | — | — | 0.100 |\n"
        "\n"
        "Annotation effort to first reach test Dice >= 0.450 (mean ± std over the seeds that reached it):\n"
        "\n"
        "| strategy / loss | reached | effort (min) | % of full | per seed (min) |\n"
        "|---|---|---|---|---|\n"
        "| entropy / cb-flip-rot | 2/2 | 4 ± 1.41 | 4.0% | s0 3, s1 5 |\n"
        "| random / cb-flip-rot | 0/1 | never | — | s0 never |\n"
    )


def test_markdown_marks_partial_seeds_and_leaves_out_percentages_without_a_full_effort():
    runs = [make_run("entropy", 0, [(60, 0.2)], full=None), make_run("entropy", 1, [(120, 0.4)], full=None)]
    text = markdown_table(dice_at_efforts(runs, [90]), effort_to_reach(runs, 0.3))
    assert "| 1.5 min |" in text and "of full" not in text
    assert "| entropy / cb-flip-rot | 2 | 0.200 (1/2) |" in text
    assert "| entropy / cb-flip-rot | 1/2 | 2 | s0 never, s1 2 |" in text


def test_markdown_without_a_target_has_one_table():
    text = markdown_table(dice_at_efforts(two_seeds(), [60]))
    assert text.count("\n|---") == 1 and "reach" not in text


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dice_at_efforts([], [60]), "no runs"),
        (lambda: dice_at_efforts(two_seeds(), []), "at least one effort"),
        (lambda: dice_at_efforts(two_seeds(), [-1]), "non-negative"),
        (lambda: dice_at_efforts(two_seeds(), [math.inf]), "non-negative"),
        (lambda: effort_to_reach(two_seeds(), 0.0), r"\(0, 1\]"),
        (lambda: effort_to_reach(two_seeds(), 1.2), r"\(0, 1\]"),
        (lambda: effort_to_reach([], 0.5), "no runs"),
        (lambda: default_efforts([]), "no runs"),
        (lambda: default_efforts([make_run("entropy", 0, [])]), "no cycles"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
