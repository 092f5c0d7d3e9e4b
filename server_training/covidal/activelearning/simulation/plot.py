"""Learning-curve plots: test Dice against annotation effort, one line per group of seeds.

Rendering uses matplotlib's Agg canvas on a private :class:`Figure` (no pyplot,
no global state), so it works headless and from several threads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from covidal.activelearning.simulation.curve import TEST_METRICS, RunCurve, RunGroup, group_runs, shared_full_effort
from covidal.utils.atomic import atomic_write_bytes

FIGURE_INCHES = (8.0, 5.0)
DPI = 120  # 960 x 600 pixels
METRIC_NAMES = {"dice": "Dice", "iou": "IoU", "ppv": "PPV", "sensitivity": "sensitivity", "specificity": "specificity"}


@dataclass(frozen=True)
class MeanCurve:
    """A group's curve averaged over its seeds, cycle by cycle.

    Attributes:
        group: the runs averaged.
        cycles: ``[C]`` cycle numbers reached by at least one run.
        effort_seconds: ``[C]`` mean effort of the runs that reached each cycle.
        mean, low, high: ``[C]`` mean, min and max of the metric over the runs
            where it is defined at that cycle; NaN where it is defined for none.
        counts: ``[C]`` runs with a defined metric at each cycle.
    """

    group: RunGroup
    cycles: np.ndarray
    effort_seconds: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    counts: np.ndarray

    @property
    def legend(self) -> str:
        """``entropy / cb-flip-rot (3 seeds)``, noting when some cycles have fewer."""
        seeds = len(self.group.runs)
        note = f"{seeds} seed{'s' if seeds != 1 else ''}"
        if self.counts.size and self.counts.min() < seeds:
            note += ", fewer at some cycles"
        return f"{self.group.label} ({note})"


def mean_curves(runs: Sequence[RunCurve], metric: str = "dice") -> list[MeanCurve]:
    """Average each group's runs (see :func:`group_runs`) at every cycle number.

    A run that stopped early (killed, or its pool ran out) only counts at the
    cycles it reached; an undefined metric (None/NaN) is left out of that cycle's statistics.

    Raises:
        ValueError: an unknown ``metric``, or two runs of one group with the same seed.
    """
    _check_metric(metric)
    return [_mean_curve(group, metric) for group in group_runs(runs)]


def plot_curves(
    runs: Sequence[RunCurve],
    path: Path,
    supervised_dice: float | None = None,
    title: str | None = None,
    metric: str = "dice",
    target_fraction: float = 0.9,
) -> None:
    """Write :func:`curve_figure` of the same arguments to the PNG ``path`` atomically (folders are created).

    Raises:
        ValueError: as :func:`curve_figure`.
    """
    figure = curve_figure(runs, supervised_dice, title, metric, target_fraction)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    atomic_write_bytes(Path(path), buffer.getvalue())


def curve_figure(
    runs: Sequence[RunCurve],
    supervised_dice: float | None = None,
    title: str | None = None,
    metric: str = "dice",
    target_fraction: float = 0.9,
) -> Figure:
    """``metric`` against effort (minutes), one line per group, on a ``FIGURE_INCHES`` figure at ``DPI``.

    Each line is the mean over seeds, with a min-max band for two seeds or more.
    When every run has the same full-delineation effort, a top axis shows the
    effort as a percentage of it.

    Args:
        runs: the runs to draw, at least one.
        supervised_dice: Dice of the fully supervised model: a dashed line, and a
            dotted one at ``target_fraction`` of it. Only with ``metric="dice"``.
        title: the figure title (default: names the metric).
        metric: one of ``TEST_METRICS``.
        target_fraction: in (0, 1], where the dotted line goes.

    Raises:
        ValueError: no runs, an unknown metric, a supervised Dice outside (0, 1] or
            with another metric, a bad ``target_fraction``, or a seed twice in a group.
    """
    if not runs:
        raise ValueError("no runs to plot")
    curves = mean_curves(runs, metric)
    _check_supervised(supervised_dice, metric, target_fraction)
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for curve in curves:
        _draw_curve(axes, curve)
    if supervised_dice is not None:
        axes.axhline(
            supervised_dice, linestyle="--", color="black", label=f"fully supervised (Dice {supervised_dice:.2f})"
        )
        target = target_fraction * supervised_dice
        axes.axhline(
            target,
            linestyle=":",
            color="dimgray",
            label=f"{100 * target_fraction:g}% of fully supervised (Dice {target:.2f})",
        )
    _add_percent_axis(axes, shared_full_effort(runs))
    name = METRIC_NAMES[metric]
    axes.set_xlabel("annotation effort (minutes)")
    axes.set_ylabel(f"test {name}")
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    axes.set_title(title if title is not None else f"Test {name} against annotation effort")
    return figure


def _mean_curve(group: RunGroup, metric: str) -> MeanCurve:
    cycles = sorted({record.cycle for run in group.runs for record in run.cycles})
    efforts, means, lows, highs, counts = [], [], [], [], []
    for cycle in cycles:
        records = [record for run in group.runs for record in run.cycles if record.cycle == cycle]
        values = [value for value in (record.metric(metric) for record in records) if value is not None]
        efforts.append(float(np.mean([record.effort_seconds for record in records])))
        means.append(float(np.mean(values)) if values else math.nan)
        lows.append(min(values, default=math.nan))
        highs.append(max(values, default=math.nan))
        counts.append(len(values))
    return MeanCurve(
        group,
        np.array(cycles, dtype=int),
        np.array(efforts),
        np.array(means),
        np.array(lows),
        np.array(highs),
        np.array(counts, dtype=int),
    )


def _draw_curve(axes, curve: MeanCurve) -> None:
    minutes = curve.effort_seconds / 60
    (line,) = axes.plot(minutes, curve.mean, marker="o", markersize=3, label=curve.legend)
    if len(curve.group.runs) >= 2:
        axes.fill_between(
            minutes, curve.low, curve.high, where=np.isfinite(curve.low), color=line.get_color(), alpha=0.2, linewidth=0
        )


def _add_percent_axis(axes, full_effort_seconds: float | None) -> None:
    """A top axis in % of the full-delineation effort, when all runs share one."""
    if full_effort_seconds is None:
        return
    full_minutes = full_effort_seconds / 60
    top = axes.secondary_xaxis("top", functions=(lambda m: 100 * m / full_minutes, lambda p: p * full_minutes / 100))
    top.set_xlabel(f"% of the effort of delineating the whole pool with polygons ({full_minutes:.0f} min)")


def _check_metric(metric: str) -> None:
    if metric not in TEST_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(TEST_METRICS)}")


def _check_supervised(supervised_dice: float | None, metric: str, target_fraction: float) -> None:
    if not 0 < target_fraction <= 1:
        raise ValueError(f"target_fraction must be in (0, 1], got {target_fraction}")
    if supervised_dice is None:
        return
    if metric != "dice":
        raise ValueError(f"a supervised Dice line does not belong on a plot of {metric}")
    if not (math.isfinite(supervised_dice) and 0 < supervised_dice <= 1):
        raise ValueError(f"the supervised Dice must be in (0, 1], got {supervised_dice}")
