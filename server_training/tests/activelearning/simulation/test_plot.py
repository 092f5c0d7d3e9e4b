"""Learning-curve plots: the per-group means (hand-computed), what is drawn, and the PNG file."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from curve_testing import make_run
from matplotlib.collections import PolyCollection
from PIL import Image

from covidal.activelearning.simulation.curve import RunCurve
from covidal.activelearning.simulation.plot import DPI, FIGURE_INCHES, curve_figure, mean_curves, plot_curves

EXPECTED_PIXELS = (round(FIGURE_INCHES[0] * DPI), round(FIGURE_INCHES[1] * DPI))


def three_entropy_seeds() -> list[RunCurve]:
    return [
        make_run("entropy", 0, [(60, 0.2), (120, 0.5), (180, 0.6)]),
        make_run("entropy", 1, [(60, 0.4), (120, None), (240, 0.9)]),
        make_run("entropy", 2, [(60, 0.3), (150, 0.3)]),  # stopped after cycle 1
    ]


def test_mean_curve_of_a_group_by_hand():
    [curve] = mean_curves(three_entropy_seeds())
    assert curve.cycles.tolist() == [0, 1, 2]
    assert curve.effort_seconds.tolist() == pytest.approx([60, 130, 210])  # (120+120+150)/3, (180+240)/2
    assert curve.mean.tolist() == pytest.approx([0.3, 0.4, 0.75])  # cycle 1: seed 1 undefined -> (0.5+0.3)/2
    assert curve.low.tolist() == pytest.approx([0.2, 0.3, 0.6])
    assert curve.high.tolist() == pytest.approx([0.4, 0.5, 0.9])
    assert curve.counts.tolist() == [3, 2, 2]
    assert curve.legend == "entropy / cb-flip-rot (3 seeds, fewer at some cycles)"


def test_groups_by_strategy_and_loss_in_order_of_appearance():
    runs = [
        make_run("random", 0, [(60, 0.1)]),
        make_run("entropy", 0, [(60, 0.2)]),
        make_run("random", 1, [(60, 0.3)]),
        make_run("random", 0, [(60, 0.7)], loss="point"),
    ]
    curves = mean_curves(runs)
    assert [c.legend for c in curves] == [
        "random / cb-flip-rot (2 seeds)",
        "entropy / cb-flip-rot (1 seed)",
        "random / point (1 seed)",
    ]
    assert [c.mean.tolist() for c in curves] == [pytest.approx([0.2]), [0.2], [0.7]]


def test_a_cycle_undefined_for_every_seed_is_nan():
    [curve] = mean_curves([make_run("entropy", 0, [(60, None), (120, math.nan)])])
    assert np.isnan(curve.mean).all() and np.isnan(curve.low).all() and curve.counts.tolist() == [0, 0]


def test_other_metrics_are_averaged_too():
    [curve] = mean_curves([make_run("entropy", 0, [(60, 0.1)])], metric="iou")
    assert curve.mean.tolist() == [0.5]


def _lines(figure):
    axes = figure.axes[0]
    handles, labels = axes.get_legend_handles_labels()
    return axes, dict(zip(labels, handles))


def test_figure_draws_group_means_bands_supervised_lines_and_percent_axis():
    runs = [*three_entropy_seeds(), make_run("random", 0, [(60, 0.1), (600, 0.2)])]
    axes, lines = _lines(curve_figure(runs, supervised_dice=0.8, title="demo"))
    assert list(lines) == [
        "entropy / cb-flip-rot (3 seeds, fewer at some cycles)",
        "random / cb-flip-rot (1 seed)",
        "fully supervised (Dice 0.80)",
        "90% of fully supervised (Dice 0.72)",
    ]
    entropy = lines["entropy / cb-flip-rot (3 seeds, fewer at some cycles)"]
    assert np.asarray(entropy.get_xdata()) == pytest.approx(np.array([60, 130, 210]) / 60)  # minutes
    assert np.asarray(entropy.get_ydata()) == pytest.approx([0.3, 0.4, 0.75])
    assert list(lines["fully supervised (Dice 0.80)"].get_ydata()) == [0.8, 0.8]
    assert list(lines["90% of fully supervised (Dice 0.72)"].get_ydata()) == pytest.approx([0.72, 0.72])
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # only the group with several seeds has a min-max band
    assert len(axes.child_axes) == 1  # the top axis in % of the full effort
    assert axes.get_title() == "demo"


def test_no_percent_axis_when_runs_disagree_on_the_full_effort_and_no_band_for_one_seed():
    runs = [make_run("entropy", 0, [(60, 0.2)], full=6000.0), make_run("random", 0, [(60, 0.2)], full=None)]
    axes, lines = _lines(curve_figure(runs, target_fraction=0.95))
    assert len(axes.child_axes) == 0 and not axes.collections
    assert len(lines) == 2  # no supervised lines without a supervised Dice


def test_target_fraction_moves_the_dotted_line():
    _, lines = _lines(curve_figure([make_run("entropy", 0, [(60, 0.2)])], supervised_dice=0.8, target_fraction=0.95))
    assert list(lines["95% of fully supervised (Dice 0.76)"].get_ydata()) == pytest.approx([0.76, 0.76])


@pytest.mark.parametrize(
    "runs",
    [
        [make_run("entropy", 0, [(60, 0.2)])],
        [*three_entropy_seeds(), make_run("random", 0, [(60, 0.1), (600, 0.2)]), make_run("random", 1, [(60, 0.2)])],
    ],
    ids=["one run", "groups and seeds"],
)
def test_plot_writes_a_png_of_the_expected_size(tmp_path, runs):
    path = tmp_path / "deep" / "curve.png"
    plot_curves(runs, path, supervised_dice=0.8)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == EXPECTED_PIXELS
        assert np.unique(np.asarray(image.convert("L"))).size > 2  # something was drawn
    assert [p.name for p in path.parent.iterdir()] == ["curve.png"]  # written atomically, no temporary left


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": []}, "no runs"),
        ({"metric": "hausdorff"}, "unknown metric"),
        ({"metric": "iou", "supervised_dice": 0.8}, "does not belong"),
        ({"supervised_dice": 1.5}, r"\(0, 1\]"),
        ({"supervised_dice": math.nan}, r"\(0, 1\]"),
        ({"target_fraction": 0.0}, "target_fraction"),
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    arguments = {"runs": [make_run("entropy", 0, [(60, 0.2)])], **kwargs}
    with pytest.raises(ValueError, match=message):
        plot_curves(path=tmp_path / "curve.png", **arguments)
    assert not (tmp_path / "curve.png").exists()


def test_the_same_seed_twice_in_a_group_is_refused(tmp_path):
    run = make_run("entropy", 0, [(60, 0.2)])
    with pytest.raises(ValueError, match="seed 0"):
        plot_curves([run, replace(run, name="copy")], tmp_path / "curve.png")
