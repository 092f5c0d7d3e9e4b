"""Tables of learning curves: test Dice at fixed annotation efforts, and the effort to reach a target Dice.

Both are conservative step functions of the recorded cycles, never
interpolated: the Dice at effort ``e`` is that of the last cycle whose effort is
at most ``e``, and a target is reached at the effort of the first cycle whose
Dice is at least the target. Seeds of a group are summarised by mean and sample
standard deviation (``ddof=1``) over the seeds where the value exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from covidal.activelearning.simulation.curve import RunCurve, RunGroup, group_runs, shared_full_effort

DEFAULT_EFFORT_COUNT = 5
NICE_STEPS = (1, 2, 5, 10)


@dataclass(frozen=True)
class SeedValues:
    """One value per seed of a group, in the group's seed order; None where a seed has none."""

    values: tuple[float | None, ...]

    @property
    def defined(self) -> list[float]:
        return [value for value in self.values if value is not None]

    @property
    def count(self) -> int:
        return len(self.defined)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.defined)) if self.defined else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation; None with fewer than two values."""
        return float(np.std(self.defined, ddof=1)) if self.count >= 2 else None


@dataclass(frozen=True)
class DiceAtEffortsRow:
    group: RunGroup
    cells: tuple[SeedValues, ...]  # one per effort of the table


@dataclass(frozen=True)
class DiceAtEfforts:
    """Test Dice of each group at each effort (seconds); ``full_effort_seconds`` if shared by all runs."""

    efforts_seconds: tuple[float, ...]
    rows: tuple[DiceAtEffortsRow, ...]
    full_effort_seconds: float | None


@dataclass(frozen=True)
class EffortToReachRow:
    group: RunGroup
    efforts: SeedValues  # seconds per seed; None where the seed never reached the target


@dataclass(frozen=True)
class EffortToReach:
    """Effort at which each run first reached ``target_dice``, by group."""

    target_dice: float
    rows: tuple[EffortToReachRow, ...]
    full_effort_seconds: float | None


def dice_at(run: RunCurve, effort_seconds: float) -> float | None:
    """Dice of the last cycle of ``run`` whose effort is at most ``effort_seconds``.

    None if no cycle is that cheap, or that cycle's Dice is undefined.
    """
    within = [record for record in run.cycles if record.effort_seconds <= effort_seconds]
    return within[-1].metric("dice") if within else None


def effort_to_reach_run(run: RunCurve, target_dice: float) -> float | None:
    """Effort (seconds) of the first cycle of ``run`` with Dice >= ``target_dice``; None if never."""
    for record in run.cycles:
        dice = record.metric("dice")
        if dice is not None and dice >= target_dice:
            return record.effort_seconds
    return None


def dice_at_efforts(runs: Sequence[RunCurve], efforts_seconds: Sequence[float]) -> DiceAtEfforts:
    """The Dice of every group (see :func:`group_runs`) at every effort.

    Raises:
        ValueError: no runs, no efforts, a negative or non-finite effort, or a seed twice in a group.
    """
    _check_runs(runs)
    if not efforts_seconds:
        raise ValueError("give at least one effort")
    for effort in efforts_seconds:
        if not (math.isfinite(effort) and effort >= 0):
            raise ValueError(f"efforts must be non-negative seconds, got {effort}")
    rows = tuple(
        DiceAtEffortsRow(
            group, tuple(SeedValues(tuple(dice_at(run, e) for run in group.runs)) for e in efforts_seconds)
        )
        for group in group_runs(runs)
    )
    return DiceAtEfforts(tuple(float(e) for e in efforts_seconds), rows, shared_full_effort(runs))


def effort_to_reach(runs: Sequence[RunCurve], target_dice: float) -> EffortToReach:
    """For every group, the effort at which each seed first reached ``target_dice``.

    Raises:
        ValueError: no runs, a target outside (0, 1], or a seed twice in a group.
    """
    _check_runs(runs)
    if not (math.isfinite(target_dice) and 0 < target_dice <= 1):
        raise ValueError(f"the target Dice must be in (0, 1], got {target_dice}")
    rows = tuple(
        EffortToReachRow(group, SeedValues(tuple(effort_to_reach_run(run, target_dice) for run in group.runs)))
        for group in group_runs(runs)
    )
    return EffortToReach(target_dice, rows, shared_full_effort(runs))


def default_efforts(runs: Sequence[RunCurve], count: int = DEFAULT_EFFORT_COUNT) -> list[float]:
    """About ``count`` round efforts (seconds; whole multiples of 1, 2 or 5 x 10^k minutes) spanning the runs.

    They lie between the cheapest first cycle and the most expensive last cycle of all runs.

    Raises:
        ValueError: no runs, or no run with a cycle.
    """
    _check_runs(runs)
    efforts = [record.effort_seconds for run in runs for record in run.cycles]
    if not efforts:
        raise ValueError("the runs have no cycles")
    low, high = min(efforts) / 60, max(efforts) / 60
    if high - low <= 0:
        return [high * 60]
    step = _nice_step((high - low) / count)
    multiples = range(math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9) + 1)
    return [round(k * step * 60, 6) for k in multiples]


def markdown_table(at_efforts: DiceAtEfforts, reach: EffortToReach | None = None) -> str:
    """Markdown for the Dice-at-efforts table and, if given, the effort-to-reach table.

    Efforts are in minutes, with their percentage of the full-delineation effort when it is known.
    """
    full = at_efforts.full_effort_seconds
    headers = ["strategy / loss", "seeds", *(_effort_header(e, full) for e in at_efforts.efforts_seconds)]
    rows = [
        [row.group.label, str(len(row.group.runs)), *(_dice_cell(cell) for cell in row.cells)]
        for row in at_efforts.rows
    ]
    caption = (
        "Test Dice at fixed annotation efforts (mean ± std over seeds; last cycle at or below each effort; "
        "(k/n): only k of n seeds had a cycle that cheap):"
    )
    parts = [caption, "", _table(headers, rows)]
    if reach is not None:
        parts += ["", _reach_caption(reach), "", _reach_table(reach)]
    return "\n".join(parts) + "\n"


def _reach_caption(reach: EffortToReach) -> str:
    return (
        f"Annotation effort to first reach test Dice >= {reach.target_dice:.3f} "
        "(mean ± std over the seeds that reached it):"
    )


def _reach_table(reach: EffortToReach) -> str:
    full = reach.full_effort_seconds
    headers = ["strategy / loss", "reached", "effort (min)", *(["% of full"] if full else []), "per seed (min)"]
    rows = []
    for row in reach.rows:
        efforts = row.efforts
        mean = efforts.mean
        percent = [_percent(mean, full) if mean is not None else "—"] if full else []
        per_seed = ", ".join(
            f"s{seed} {_minutes(e) if e is not None else 'never'}" for seed, e in zip(row.group.seeds, efforts.values)
        )
        rows.append(
            [row.group.label, f"{efforts.count}/{len(efforts.values)}", _minutes_cell(efforts), *percent, per_seed]
        )
    return _table(headers, rows)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _dice_cell(cell: SeedValues) -> str:
    if cell.count == 0:
        return "—"
    text = f"{cell.mean:.3f}" + (f" ± {cell.std:.3f}" if cell.std is not None else "")
    return text + (f" ({cell.count}/{len(cell.values)})" if cell.count < len(cell.values) else "")


def _minutes_cell(efforts: SeedValues) -> str:
    if efforts.count == 0:
        return "never"
    return _minutes(efforts.mean) + (f" ± {_minutes(efforts.std)}" if efforts.std is not None else "")


def _minutes(seconds: float) -> str:
    """Minutes with at most two decimals and no trailing zeros: 600 s -> ``10``, 90 s -> ``1.5``."""
    text = f"{seconds / 60:.2f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def _effort_header(seconds: float, full_seconds: float | None) -> str:
    """``10 min``, or ``10 min (4.2% of full)`` when the full-delineation effort is known."""
    return f"{_minutes(seconds)} min" + (f" ({_percent(seconds, full_seconds)} of full)" if full_seconds else "")


def _percent(seconds: float, full_seconds: float) -> str:
    return f"{100 * seconds / full_seconds:.1f}%"


def _nice_step(rough: float) -> float:
    """The smallest of 1, 2, 5, 10 x 10^k that is at least ``rough`` (> 0)."""
    scale = 10 ** math.floor(math.log10(rough))
    return next(step * scale for step in NICE_STEPS if step * scale >= rough * (1 - 1e-9))


def _check_runs(runs: Sequence[RunCurve]) -> None:
    if not runs:
        raise ValueError("no runs to summarise")
