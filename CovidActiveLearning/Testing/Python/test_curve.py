"""Tests of CovidActiveLearningLib/curve.py: the learning curve as real table, plot series and chart nodes."""

import pytest

from CovidActiveLearningLib.curve import (
    ANSWERS_COLUMN,
    CHART_TITLE,
    DICE_COLUMN,
    EFFORT_COLUMN,
    show_learning_curve,
)
from CovidActiveLearningLib.errors import UserFacingError


def curve_point(job_id, answers, effort, dice):
    """One point as ``GET /projects/{id}/metrics/curve`` sends it; ``dice`` is the share of the answers given
    after the model that it agreed with, the curve. Its Dice on its own training pixels (``val_dice``) is not
    drawn."""
    return {
        "job_id": job_id,
        "finished_at": 1_795_000_000.0 + 60 * job_id,
        "answers": answers,
        "effort_seconds": effort,
        "val_dice": 0.95,
        "unseen_agreement": dice,
        "unseen_answers": 0 if dice is None else 48,
        "steps": 40,
    }


POINTS = [curve_point(1, 4, 35.5, None), curve_point(2, 8, 80.0, 0.41), curve_point(3, 15, 151.25, 0.63)]


def table_rows(chart):
    """``[(effort, answers, dice), ...]`` of the table behind the chart's one series."""
    table = chart.GetNthPlotSeriesNode(0).GetTableNode().GetTable()
    columns = [table.GetColumnByName(name) for name in (EFFORT_COLUMN, ANSWERS_COLUMN, DICE_COLUMN)]
    return [tuple(column.GetValue(row) for column in columns) for row in range(table.GetNumberOfRows())]


def node_counts(scene):
    return [
        scene.GetNodesByClass(name).GetNumberOfItems()
        for name in ("vtkMRMLTableNode", "vtkMRMLPlotSeriesNode", "vtkMRMLPlotChartNode")
    ]


def test_chart_shows_agreement_over_effort_without_the_points_not_yet_scored(mrml):
    chart = show_learning_curve(mrml, POINTS)
    assert chart.IsA("vtkMRMLPlotChartNode")
    assert chart.GetTitle() == CHART_TITLE
    assert "effort" in chart.GetXAxisTitle().lower() and "later answers" in chart.GetYAxisTitle().lower()
    assert chart.GetNumberOfPlotSeriesNodes() == 1
    series = chart.GetNthPlotSeriesNode(0)
    assert (series.GetXColumnName(), series.GetYColumnName()) == (EFFORT_COLUMN, DICE_COLUMN)
    assert series.GetPlotType() == series.PlotTypeScatter and series.GetLineStyle() == series.LineStyleSolid
    assert table_rows(chart) == [(80.0, 8, 0.41), (151.25, 15, 0.63)]
    assert node_counts(mrml.scene) == [1, 1, 1]


def test_refreshing_updates_the_same_nodes(mrml):
    chart = show_learning_curve(mrml, POINTS[:2])
    series_id, table_id = chart.GetNthPlotSeriesNodeID(0), chart.GetNthPlotSeriesNode(0).GetTableNodeID()
    assert table_rows(chart) == [(80.0, 8, 0.41)]
    again = show_learning_curve(mrml, [*POINTS, curve_point(4, 22, 230.0, 0.7)])
    assert again.GetID() == chart.GetID()
    assert again.GetNumberOfPlotSeriesNodes() == 1 and again.GetNthPlotSeriesNodeID(0) == series_id
    assert again.GetNthPlotSeriesNode(0).GetTableNodeID() == table_id
    assert table_rows(again) == [(80.0, 8, 0.41), (151.25, 15, 0.63), (230.0, 22, 0.7)]
    assert node_counts(mrml.scene) == [1, 1, 1]


def test_points_are_drawn_in_order_of_effort(mrml):
    chart = show_learning_curve(mrml, [POINTS[2], POINTS[1]])
    assert [row[0] for row in table_rows(chart)] == [80.0, 151.25]


def test_a_curve_not_yet_scored_gives_an_empty_table(mrml):
    assert table_rows(show_learning_curve(mrml, [])) == []
    assert table_rows(show_learning_curve(mrml, POINTS[:1])) == []
    assert node_counts(mrml.scene) == [1, 1, 1]


@pytest.mark.parametrize(
    "broken",
    [
        {"job_id": 1, "answers": 3, "unseen_agreement": 0.5},
        {**POINTS[1], "effort_seconds": "a while"},
        {**POINTS[1], "unseen_agreement": float("nan")},
    ],
)
def test_a_malformed_point_is_a_clear_error(mrml, broken):
    with pytest.raises(UserFacingError, match="learning curve point"):
        show_learning_curve(mrml, [POINTS[1], broken])
